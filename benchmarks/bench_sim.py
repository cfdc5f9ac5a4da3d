"""Simulator speed: 64 ch EEG at 1 kHz + ECG, EDA, PPG, respiration on one core.

Floor (issue 2): at least 20x faster than real time.
Run: ``python benchmarks/bench_sim.py [--seconds 120]``; writes benchmarks/results/sim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the floor says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from physioaffect.sources.sim import SimConfig, SimSource, simulate_subject  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=120.0, help="simulated seconds per run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = SimConfig(eeg_channels=64, rate=1000, seed=1)
    simulate_subject(cfg, 0, duration=2)  # warm caches (montage template, filters)
    offline = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        simulate_subject(cfg, 0, duration=args.seconds)
        offline.append(time.perf_counter() - t)
    # The live source, unpaced: includes chunking into stream chunks.
    t = time.perf_counter()
    n = 0
    with SimSource(cfg, speed=0) as src:
        while n < args.seconds * 1000:
            for ch in src.read():
                if ch.stream == "sim-EEG":
                    n += len(ch)
    live = time.perf_counter() - t
    best = min(offline)
    result = {
        "what": "simulator, 64 ch EEG @ 1000 Hz + ECG/EDA/PPG/RESP @ 1000 Hz, one thread",
        "simulated_seconds": args.seconds,
        "offline_wall_seconds": offline,
        "offline_x_realtime": args.seconds / best,
        "live_source_unpaced_x_realtime": args.seconds / live,
        "floor_x_realtime": 20,
        "passes": args.seconds / best >= 20 and args.seconds / live >= 20,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "sim.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
