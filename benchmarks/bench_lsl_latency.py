"""Sim -> LSL outlet -> inlet in another process: the package's LSLSource against a plain
blocking pylsl pull, same streams, same run, alternating.

The publisher is ``physioaffect stream --source sim?eeg_channels=32&rate=250`` (10 ms
chunks) in its own process for the whole run. Readers take turns, each in a fresh
process of its own so that neither disturbs the other: ``plain`` is the lowest-latency
pylsl idiom (``pull_sample(timeout)`` blocks until a sample arrives, then
``pull_chunk(timeout=0.0)`` takes the rest; numpy results, pylsl's fast path), ``package`` is
``LSLSource(...).read(0.05)`` as the live decoder and viewer use it. Both inlets apply
LSL's clock correction (``proc_clocksync``). Latency of one wake-up = ``local_clock()``
on return minus the timestamp of the newest sample received, which the simulator
releases the moment that timestamp comes due: it covers pacing, outlet, transport,
inlet and clock correction.

Floor (issue 16): package median and p95 within 0.2 ms of plain pylsl, same run.
Run: ``python benchmarks/bench_lsl_latency.py [--rounds 6] [--seconds 15]``;
writes ``benchmarks/results/lsl_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read_plain(name: str, seconds: float, warmup: float) -> list[float]:
    import pylsl

    found = pylsl.resolve_byprop("name", name, 1, 30.0)
    inlet = pylsl.StreamInlet(found[0], max_buflen=360, processing_flags=pylsl.proc_clocksync,
                              as_numpy=True)  # pylsl's own fast path: no Python lists
    inlet.open_stream(timeout=10.0)
    lat: list[float] = []
    t_warm = time.monotonic() + warmup
    t_end = t_warm + seconds
    while time.monotonic() < t_end:
        _, ts = inlet.pull_sample(timeout=0.5)
        if ts is None:
            continue
        _, more = inlet.pull_chunk(timeout=0.0, max_samples=1024)
        now = pylsl.local_clock()
        if time.monotonic() >= t_warm:
            lat.append(now - (float(more[-1]) if len(more) else ts))
    return lat


def read_package(name: str, seconds: float, warmup: float) -> list[float]:
    from physioaffect.sources.lsl import LSLSource
    from physioaffect.streams import local_clock

    lat: list[float] = []
    with LSLSource(name, timeout=30) as src:
        t_warm = time.monotonic() + warmup
        t_end = t_warm + seconds
        while time.monotonic() < t_end:
            for chunk in src.read(0.05):
                now = local_clock()
                if time.monotonic() >= t_warm:
                    lat.append(now - float(chunk.timestamps[-1]))
    return lat


def stats(lat_s: list[float]) -> dict:
    ms = np.asarray(lat_s) * 1000
    return {"wakeups": int(ms.size), "median": round(float(np.median(ms)), 4),
            "p95": round(float(np.percentile(ms, 95)), 4),
            "p99": round(float(np.percentile(ms, 99)), 4), "max": round(float(ms.max()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=6, help="Rounds of (plain, package) turns.")
    ap.add_argument("--seconds", type=float, default=15.0, help="Measured seconds per turn.")
    ap.add_argument("--warmup", type=float, default=3.0, help="Seconds before measuring.")
    ap.add_argument("--reader", choices=["plain", "package"], help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader:  # one turn, in a process of its own
        fn = read_plain if args.reader == "plain" else read_package
        print(json.dumps(fn(args.name, args.seconds, args.warmup)))
        return
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    total = args.rounds * 2 * (args.seconds + args.warmup + 10) + 60
    pub = subprocess.Popen(
        [sys.executable, "-m", "physioaffect.cli.main", "stream", "--source",
         f"sim?eeg_channels=32&rate=250&prefix={prefix}&chunk_ms=10", "--duration", str(total)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lat: dict[str, list[float]] = {"plain": [], "package": []}
    turns = []
    try:
        for r in range(args.rounds):
            order = ("plain", "package") if r % 2 == 0 else ("package", "plain")
            for mode in order:
                out = subprocess.run(
                    [sys.executable, __file__, "--reader", mode, "--name", f"{prefix}-EEG",
                     "--seconds", str(args.seconds), "--warmup", str(args.warmup)],
                    capture_output=True, text=True, timeout=args.seconds + args.warmup + 120)
                if out.returncode != 0:
                    raise SystemExit(f"{mode} reader failed: {out.stderr[-2000:]}")
                values = json.loads(out.stdout.strip().splitlines()[-1])
                lat[mode] += values
                turns.append({"round": r, "reader": mode, **stats(values)})
                print(json.dumps(turns[-1]), flush=True)
    finally:
        pub.terminate()
        pub.wait(30)
    plain, package = stats(lat["plain"]), stats(lat["package"])
    result = {
        "what": "sim 32 ch @ 250 Hz, 10 ms chunks -> physioaffect stream (LSL outlet) -> "
                "reader in another process; readers alternate, one process per turn",
        "rounds": args.rounds, "seconds_per_turn": args.seconds,
        "latency_ms": {"plain_pylsl": plain, "physioaffect_LSLSource": package},
        "difference_ms": {k: round(package[k] - plain[k], 4) for k in ("median", "p95")},
        "floor_ms": {"difference_median": 0.2, "difference_p95": 0.2},
        "turns": turns,
    }
    result["passes"] = (result["difference_ms"]["median"] <= 0.2
                        and result["difference_ms"]["p95"] <= 0.2)
    print(json.dumps({k: v for k, v in result.items() if k != "turns"}, indent=2))
    out_path = HERE / "results" / "lsl_latency.json"
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out_path}")


if __name__ == "__main__":
    main()
