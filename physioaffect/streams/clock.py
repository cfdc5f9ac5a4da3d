"""The one clock every timestamp in physioaffect is on: LSL's ``local_clock``.

``local_clock`` is monotonic seconds since an arbitrary origin (not UNIX time).
Devices that stamp in UNIX time (BrainFlow) are mapped onto it with an offset
measured here and kept with the data.
"""

from __future__ import annotations

import time

import pylsl


def local_clock() -> float:
    """Return the LSL clock in seconds (monotonic, shared by all LSL programs on this host)."""
    return pylsl.local_clock()


def unix_to_lsl_offset(n_probes: int = 5) -> float:
    """Measure ``lsl_time - unix_time`` in seconds.

    Takes the probe with the tightest bracket of two LSL readings around one
    UNIX reading, so scheduling jitter does not leak into the offset.

    Returns
    -------
    float
        Add it to a UNIX timestamp (s) to get the LSL timestamp (s).
    """
    best_width = float("inf")
    best = 0.0
    for _ in range(max(1, n_probes)):
        before = pylsl.local_clock()
        unix = time.time()
        after = pylsl.local_clock()
        if after - before < best_width:
            best_width = after - before
            best = (before + after) / 2.0 - unix
    return best
