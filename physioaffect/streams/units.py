"""Unit spellings of streams, and the one table that turns them into symbols.

Devices and files spell units many ways (``microvolts``, ``uV``, ``µV``, ``mV``,
``microsiemens``, ``a.u.``). Every place that shows or writes a unit (figure and viewer axes,
MNE's ``orig_units``, BIDS sidecars, EDF headers) goes through :func:`unit_symbol`, so they
agree.
"""

from __future__ import annotations

from physioaffect.errors import PhysioAffectError

__all__ = ["UNIT_SYMBOLS", "UnitError", "si_unit", "unit_factor", "unit_symbol"]

#: Symbol (SI where there is one) per lower-case unit spelling found in streams.
UNIT_SYMBOLS: dict[str, str] = {
    "microvolts": "µV", "microvolt": "µV", "uv": "µV", "µv": "µV", "μv": "µV",
    "millivolts": "mV", "millivolt": "mV", "mv": "mV", "volts": "V", "volt": "V", "v": "V",
    "microsiemens": "µS", "us": "µS", "µs": "µS", "μs": "µS", "siemens": "S",
    "celsius": "°C", "degc": "°C", "°c": "°C", "bpm": "bpm", "g": "g",
    "nanovolts": "nV", "nanovolt": "nV", "nv": "nV", "millisiemens": "mS",
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


class UnitError(PhysioAffectError, ValueError):
    """Values cannot be converted between two units (another quantity, or no unit stated)."""


#: SI prefixes (powers of ten) that the symbols of :data:`UNIT_SYMBOLS` carry (``µV``, ``mV``).
_PREFIXES = {"n": -9, "µ": -6, "m": -3, "": 0}
#: Symbols that the prefixes apply to (volts, siemens); other symbols stand for themselves.
_PREFIXED = ("V", "S")


def si_unit(unit: str | None) -> tuple[float, str] | None:
    """Factor to SI and the SI symbol of a stream's unit: ``"microvolts"`` -> ``(1e-6, "V")``.

    Read from the symbol :func:`unit_symbol` gives (its prefix ``µ``/``m`` and its base
    ``V``/``S``); symbols without a prefixed base (``°C``, ``bpm``, ``g``) are their own SI
    unit with factor 1. Returns None where the unit states nothing (``""``, ``"a.u."``).
    """
    found = _si_power(unit)
    return None if found is None else (10.0 ** found[0], found[1])


def _si_power(unit: str | None) -> tuple[int, str] | None:
    sym = unit_symbol(unit, None)
    if sym is None:
        return None
    for base in _PREFIXED:
        if sym.endswith(base) and sym[: -len(base)] in _PREFIXES:
            return _PREFIXES[sym[: -len(base)]], base
    return 0, sym


def unit_factor(unit: str | None, to: str, what: str = "values") -> float:
    """The factor that turns values in ``unit`` into values in ``to``:
    ``unit_factor("V", "uV") == 1e6``.

    Parameters
    ----------
    unit, to : str
        Any spelling :func:`unit_symbol` knows (``"uV"``, ``"µV"``, ``"microvolts"``, ``"V"``).
    what : str
        Names the values in the error message (``"X"``, ``"channel Fp1"``).

    Raises
    ------
    UnitError
        One of the units states nothing, or they measure different quantities.
    """
    a, b = _si_power(unit), _si_power(to)
    if a is None or b is None or a[1] != b[1]:
        raise UnitError(f"{what}: cannot convert unit {unit!r} to {to!r} (expected a unit of "
                        f"the same quantity, e.g. 'V', 'mV', 'uV')")
    return 10.0 ** (a[0] - b[0])  # an exact power of ten, not a quotient of rounded ones
