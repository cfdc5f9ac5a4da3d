"""Channel orders of the public datasets, taken from the lead's montage sets.

``physioaffect.streams.montage.load_montage`` is the single source of truth; the tuples here are
those names, frozen at import for cheap comparisons.
"""

from __future__ import annotations

from physioaffect.streams.montage import load_montage

DEAP32: tuple[str, ...] = tuple(load_montage("deap32").ch_names)
SEED62: tuple[str, ...] = tuple(load_montage("seed62").ch_names)
DREAMER14: tuple[str, ...] = tuple(load_montage("dreamer14").ch_names)
FACED32: tuple[str, ...] = tuple(load_montage("faced32").ch_names)  # FACED and THU-EP

# DEAP channels 32-39 (after the 32 EEG channels), as listed in DATASETS.md.
DEAP_PERIPHERAL: tuple[str, ...] = ("hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration",
                                    "Plethysmograph", "Temperature")
