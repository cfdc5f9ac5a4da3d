"""LSL outlets for the recording benchmark: the streams of issue 16, from seeded simulator
signals (precomputed, looped), paced on the LSL clock in 10 ms chunks.

    <prefix>-EEG      C channels at 1000 Hz (float32, microvolts; blocks of 64 from seeds 1, 2, ...)
    <prefix>-ECG      1 channel at 1000 Hz
    <prefix>-GSR / -PPG / -RESP   1 channel at 256 Hz each
    <prefix>-Markers  a JSON marker every 2 s

Sample ``k`` of a stream is ``reference(...)[k % len]``: the benchmark checks the recorded
files against :func:`reference` sample by sample. Run:
``python benchmarks/_lsl_publisher.py PREFIX CHANNELS SECONDS``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

LOOP_S = 60  # seconds of signal generated once, then repeated


def reference(channels: int) -> dict[str, tuple[float, np.ndarray, str, str]]:
    """Stream suffix -> (rate, samples (n, ch) float32, LSL type, unit)."""
    from physioaffect.sources.sim import SimConfig, simulate_subject

    # the simulator has at most 64 EEG channels: wider montages join blocks of 64, each
    # from its own seed (every channel differs)
    blocks = [simulate_subject(SimConfig(eeg_channels=min(64, channels - b), rate=1000,
                                         seed=1 + b // 64), 0, duration=LOOP_S).signals
              for b in range(0, channels, 64)]
    fast = blocks[0]
    eeg = np.hstack([blk["EEG"][2][: 1000 * LOOP_S] for blk in blocks])
    slow = simulate_subject(SimConfig(eeg_channels=1, rate=256, seed=2), 0,
                            duration=LOOP_S).signals
    return {
        "EEG": (1000.0, np.ascontiguousarray(eeg), "EEG", "microvolts"),
        "ECG": (1000.0, fast["ECG"][2][: 1000 * LOOP_S], "ECG", "millivolts"),
        "GSR": (256.0, slow["GSR"][2][: 256 * LOOP_S], "GSR", "microsiemens"),
        "PPG": (256.0, slow["PPG"][2][: 256 * LOOP_S], "PPG", "au"),
        "RESP": (256.0, slow["RESP"][2][: 256 * LOOP_S], "RESP", "au"),
    }


def main() -> None:
    import pylsl

    prefix, channels, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ref = reference(channels)
    outlets = {}
    for suffix, (rate, x, stype, unit) in ref.items():
        info = pylsl.StreamInfo(f"{prefix}-{suffix}", stype, x.shape[1], rate, "float32",
                                f"{prefix}-{suffix}-sid")
        chans = info.desc().append_child("channels")
        for k in range(x.shape[1]):
            ch = chans.append_child("channel")
            ch.append_child_value("label", f"{suffix}{k + 1}")
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", stype)
        outlets[suffix] = pylsl.StreamOutlet(info)
    minfo = pylsl.StreamInfo(f"{prefix}-Markers", "Markers", 1, 0, "string",
                             f"{prefix}-Markers-sid")
    markers = pylsl.StreamOutlet(minfo)
    sent = dict.fromkeys(ref, 0)
    n_marks = 0
    t0 = pylsl.local_clock()
    print("publishing", flush=True)
    while True:
        now = pylsl.local_clock() - t0
        if now > seconds:
            break
        for suffix, (rate, x, _, _) in ref.items():
            due = int(now * rate) + 1 - sent[suffix]
            if due <= 0:
                continue
            k = sent[suffix] + np.arange(due)
            outlets[suffix].push_chunk(np.ascontiguousarray(x[k % len(x)]),
                                       (t0 + k / rate).tolist())
            sent[suffix] += due
        if now >= 2.0 * (n_marks + 1):
            n_marks += 1
            markers.push_sample([json.dumps({"event": "tick", "n": n_marks})], t0 + 2.0 * n_marks)
        time.sleep(0.01)


if __name__ == "__main__":
    main()
