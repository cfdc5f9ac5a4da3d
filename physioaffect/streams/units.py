"""Unit spellings of streams, and the one table that turns them into symbols.

Devices and files spell units many ways (``microvolts``, ``uV``, ``µV``, ``mV``,
``microsiemens``, ``a.u.``). Every place that shows or writes a unit (figure and viewer axes,
MNE's ``orig_units``, BIDS sidecars, EDF headers) goes through :func:`unit_symbol`, so they
agree.
"""

from __future__ import annotations

__all__ = ["UNIT_SYMBOLS", "unit_symbol"]

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
