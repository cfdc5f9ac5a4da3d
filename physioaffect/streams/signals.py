"""Names of peripheral signals: the one table of their spellings.

Devices, datasets and LSL streams name the same signal several ways (DEAP's ``GSR``, BIDS'
``RSP``, Empatica's ``BVP``). Everything that dispatches on a signal (feature extraction,
training, the live decoder, the viewer) asks :func:`canonical_signal`.
"""

from __future__ import annotations

__all__ = ["SIGNAL_ALIASES", "PERIPHERAL_SIGNALS", "canonical_signal"]

#: Canonical peripheral signals (NeuroKit2-style names).
PERIPHERAL_SIGNALS = ("ECG", "EDA", "PPG", "RESP", "TEMP")

#: Other spellings of the canonical names.
SIGNAL_ALIASES: dict[str, str] = {"GSR": "EDA", "RSP": "RESP", "SKT": "TEMP", "BVP": "PPG"}


def canonical_signal(name: str) -> str | None:
    """``"GSR"`` -> ``"EDA"``; the canonical name of a peripheral signal, None if it is not
    one (case-insensitive)."""
    key = SIGNAL_ALIASES.get(str(name).upper(), str(name).upper())
    return key if key in PERIPHERAL_SIGNALS else None
