"""Calibrate the camera pulse's quality gate: the SNR that traces without a pulse rarely reach.

For each window length (4-12 s) and method (``pos``, ``chrom``, ``green``), colour traces with
no pulse at all go through exactly the tracker's path (:func:`physioaffect.face.rppg.analyse_window`:
pulse signal, band-pass 42-180 bpm, spectral peak, :func:`~physioaffect.face.rppg.pulse_snr`).
The gate of a method for a window length is the 99.5th percentile of the SNR at their peaks
(the green channel's is about 0.5 dB above POS's: it does not cancel common-mode changes),
made non-increasing with the window length (the gate of a window is the largest of those of it
and every longer window: conservative where sampling error makes the percentiles zig-zag): at
most 0.5 % of pulse-free windows would report a rate. Three kinds of pulse-free trace, as many of
each, with amplitudes drawn per trace:

- ``white``: sensor noise, independent per channel (0.1-1 % of the skin colour);
- ``illumination``: plus a 1/f (pink) brightness change common to R, G and B (0.5-5 %), as
  lighting and head motion give;
- ``colour``: plus 1/f changes independent per channel (0.1-1 %), as auto white balance and
  compression give.

At 30 frames/s (the gate) and 15 frames/s (a check that it does not depend on the frame rate).
No video, real or synthetic, is used here: the real video and its degraded copies, and the
synthetic degraded set, are the checks (``bench_face.py``).

Run: ``.venv/bin/python benchmarks/calibrate_face_pulse_gate.py [--quick]``; writes
benchmarks/results/face_pulse_gate.json and prints the table for
:data:`physioaffect.face.rppg.SNR_GATE_DB`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from physioaffect.face.rppg import METHODS, SNR_GATE_DB, analyse_window

RESULTS = Path(__file__).resolve().parent / "results" / "face_pulse_gate.json"
WINDOWS_S = (4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0)
PERCENTILE = 99.5
SKIN_RGB = np.array([180.0, 120.0, 100.0])


def pink(rng: np.random.Generator, n: int, k: int = 1) -> np.ndarray:
    """``k`` columns of 1/f noise, unit standard deviation each."""
    spec = np.fft.rfft(rng.standard_normal((n, k)), axis=0)
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f)[:, None], n, axis=0)
    return (x - x.mean(axis=0)) / x.std(axis=0)


def null_trace(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """One pulse-free colour trace of ``n`` samples (R, G, B)."""
    white = np.exp(rng.uniform(np.log(1e-3), np.log(1e-2)))
    gain = 1.0 + white * rng.standard_normal((n, 3))
    if kind == "illumination":
        gain *= 1.0 + np.exp(rng.uniform(np.log(5e-3), np.log(5e-2))) * pink(rng, n)
    elif kind == "colour":
        gain *= 1.0 + np.exp(rng.uniform(np.log(1e-3), np.log(1e-2))) * pink(rng, n, 3)
    return SKIN_RGB * gain


def null_snr(method: str, seconds: float, fs: float, n_traces: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fs))
    out = {}
    for kind in ("white", "illumination", "colour"):
        out[kind] = np.array([analyse_window(null_trace(kind, rng, n), fs, method)[2]
                              for _ in range(n_traces)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 traces per kind instead of 1500")
    args = ap.parse_args()
    n_traces = 200 if args.quick else 1500
    t0 = time.process_time()
    tables, detail = {}, {}
    for mi, method in enumerate(METHODS):
        raw = []
        for wi, seconds in enumerate(WINDOWS_S):
            row: dict = {}
            for fs, n in ((30.0, n_traces), (15.0, max(n_traces // 5, 100))):
                snr = null_snr(method, seconds, fs, n, seed=10000 * mi + 100 * wi + int(fs))
                pooled = np.concatenate(list(snr.values()))
                row[f"{fs:g}fps"] = {
                    "traces": int(pooled.size),
                    "p99.5_db": round(float(np.percentile(pooled, PERCENTILE)), 2),
                    "per_kind_p99.5_db": {k: round(float(np.percentile(v, PERCENTILE)), 2)
                                          for k, v in snr.items()},
                    "median_db": round(float(np.median(pooled)), 2),
                    "max_db": round(float(pooled.max()), 2),
                }
            raw.append(row["30fps"]["p99.5_db"])
            detail.setdefault(method, {})[f"{seconds:g}s"] = row
            print(f"{method:5s} {seconds:4.0f} s: p99.5 {row['30fps']['p99.5_db']:5.2f} dB at 30 fps "
                  f"({row['15fps']['p99.5_db']:.2f} at 15 fps); per kind "
                  f"{row['30fps']['per_kind_p99.5_db']}", flush=True)
        # non-increasing in the window length: the largest percentile of this and any longer window
        gate = np.maximum.accumulate(np.array(raw)[::-1])[::-1]
        tables[method] = [[s, round(float(g), 1)] for s, g in zip(WINDOWS_S, gate, strict=True)]
    in_package = {m: [list(p) for p in SNR_GATE_DB[m]] for m in SNR_GATE_DB}
    result = {
        "what": f"{PERCENTILE}th percentile of the SNR at the spectral peak of pulse-free colour "
                "traces (white, illumination, colour; one third each), per method and window, "
                "made non-increasing with the window length",
        "traces_per_kind": n_traces,
        "gate_table_db": tables,
        "in_package": in_package,
        "package_matches": all(np.allclose(np.array(tables[m]), np.array(in_package.get(m, [])), atol=0.05)
                               if m in in_package else False for m in tables),
        "detail": detail,
        "cpu_s": round(time.process_time() - t0, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("SNR_GATE_DB = {")
    for m, rows in tables.items():
        print(f'    "{m}": (' + ", ".join(f"({s:g}.0, {g:.1f})" for s, g in rows) + "),")
    print("}")
    print(f"package table matches: {result['package_matches']}; results written to {RESULTS}")


if __name__ == "__main__":
    main()
