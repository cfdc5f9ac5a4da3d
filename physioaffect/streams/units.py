"""Unit spellings of streams, and the one table that turns them into symbols.

Devices and files spell units many ways (``microvolts``, ``uV``, ``µV``, ``mV``,
``microsiemens``, ``a.u.``). Every place that shows or writes a unit (figure and viewer axes,
MNE's ``orig_units``, BIDS sidecars, EDF headers) goes through :func:`unit_symbol`, so they
agree.
"""

from __future__ import annotations

__all__ = ["UNIT_SYMBOLS", "unit_symbol", "SI_POWERS", "si_factor", "conversion_factor",
           "UnitError"]

#: Symbol (SI where there is one) per lower-case unit spelling found in streams.
UNIT_SYMBOLS: dict[str, str] = {
    "microvolts": "µV", "microvolt": "µV", "uv": "µV", "µv": "µV", "μv": "µV",
    "millivolts": "mV", "millivolt": "mV", "mv": "mV", "volts": "V", "volt": "V", "v": "V",
    "microsiemens": "µS", "us": "µS", "µs": "µS", "μs": "µS", "siemens": "S",
    "celsius": "°C", "degc": "°C", "°c": "°C", "bpm": "bpm", "g": "g",
}

#: Spellings that state no physical unit (arbitrary units, not given).
_ARBITRARY = {"", "a.u.", "au", "n/a", "none", "unknown", "arbitrary"}


def unit_symbol(unit: str | None, unknown: str | None = "a.u.") -> str | None:
    """The symbol of a stream's unit: ``"millivolts"`` -> ``"mV"``.

    Parameters
    ----------
    unit : str or None
    unknown : str or None
        Returned when the unit states nothing (``""``, ``"a.u."``, ``"n/a"``): ``"a.u."`` for
        axes, ``"n/a"`` for BIDS.

    Returns
    -------
    str or None
        Spellings the table does not know are returned as given.
    """
    text = (unit or "").strip()
    if text.lower() in _ARBITRARY:
        return unknown
    return UNIT_SYMBOLS.get(text.lower(), text)


class UnitError(ValueError):
    """A unit that cannot be converted (unknown, or of another quantity)."""


#: Quantity and power of ten to the SI unit of each symbol: ``value_SI = value * 10**p``. The
#: one table of unit factors in the package (MNE export, feature transformers, the decoder).
SI_POWERS: dict[str, tuple[str, int]] = {
    "V": ("V", 0), "mV": ("V", -3), "µV": ("V", -6), "nV": ("V", -9),
    "S": ("S", 0), "mS": ("S", -3), "µS": ("S", -6), "°C": ("°C", 0),
}
UNIT_SYMBOLS.update({"nanovolts": "nV", "nanovolt": "nV", "nv": "nV", "ms": "mS",
                     "millisiemens": "mS"})


def si_factor(unit: str | None) -> tuple[str, float] | None:
    """``(SI unit, factor)`` of a stream's unit (``"microvolts"`` -> ``("V", 1e-6)``), or None
    when the unit is not a known physical one (``a.u.``, missing, unknown)."""
    sym = unit_symbol(unit, None)
    found = None if sym is None else SI_POWERS.get(sym)
    return None if found is None else (found[0], 10.0 ** found[1])


def conversion_factor(unit: str | None, to: str) -> float:
    """Factor that turns values in ``unit`` into values in ``to`` (``"V"`` -> ``"µV"``: 1e6).

    Raises
    ------
    UnitError
        Either unit is unknown or missing, or they measure different quantities.
    """
    src, dst = (SI_POWERS.get(unit_symbol(u, None) or "") for u in (unit, to))
    if dst is None:
        raise UnitError(f"unknown target unit {to!r}")
    if src is None:
        known = ", ".join(k for k, v in SI_POWERS.items() if v[0] == dst[0])
        what = "missing" if not (unit or "").strip() else "unknown"
        raise UnitError(f"unit {unit!r} is {what} (expected one of {known})")
    if src[0] != dst[0]:
        raise UnitError(f"unit {unit!r} is not a unit of {dst[0]}")
    return 10.0 ** (src[1] - dst[1])
