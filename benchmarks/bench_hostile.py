"""Battery: hostile and careless input, run as real ``physioaffect`` command lines.

What it does
------------
Builds small inputs in a temporary folder (a fake DEAP folder, a train-free checkpoint, session
files written by the recording stage's writer), damages them the way issue 25 describes (a
killed ``datasets prepare``, YAML alias bombs and recursive anchors, non-UTF-8 configs, JSON
nested 100,000 deep, a 16 TB tensor, a high-pass above Nyquist, a contract of another network,
DEAP data as strings, ratings of 42 and -3, a symbolic link loop, markers with lone
surrogates, 10,000 channels, a 1 MB marker, subjects ``../../evil``/``a_b``/``""``, a BIDS export
onto a full disk), runs each case as a subprocess of the command line and classifies what
happened:

- ``crash``: killed by a signal or a fatal runtime message (segmentation fault, floating point
  exception);
- ``traceback``: a Python traceback on stderr;
- ``data loss``: an input file changed, or a rerun after the failure does not recover
  (a cache left damaged, an export that can no longer be written);
- ``silent``: the command succeeded (or left litter such as a run folder) where it had to
  refuse, warn or say what it altered;
- ``clean``: the expected outcome: a refusal in one line naming the file (exit status not 0),
  or a success with the one line that says what was altered.

Each case also records its exit status, wall time, the child's peak memory (``ru_maxrss``)
and the last stderr line. Writes ``benchmarks/results/hostile.json``.

Run: ``python benchmarks/bench_hostile.py [--keep DIR]`` (about 2 minutes on 2 cores). The
full-disk case mounts a 1 MiB tmpfs when run as root; elsewhere it is reported as skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "hostile.json"
FATAL = ("Segmentation fault", "Floating point exception", "core dumped", "Fatal Python error")


@dataclass
class Run:
    """One command's result."""

    args: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float


@dataclass
class Case:
    """One hostile case and how it ended."""

    name: str
    group: str
    outcome: str = ""
    why: str = ""
    runs: list[dict] = field(default_factory=list)


def physioaffect(*args: str, timeout: float = 300, env: dict | None = None) -> Run:
    """Run the CLI in a child process; peak memory from ``wait4``."""
    cmd = [sys.executable, "-m", "physioaffect.cli.main", *args]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env or _env(), cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run([str(a) for a in args], proc.returncode,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   time.perf_counter() - t0, usage.ru_maxrss / 1024)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(run: Run) -> list[str]:
    return [ln for ln in run.stderr.splitlines() if "error" in ln.lower()]


def classify(case: Case, run: Run, *, refuse: str | None = None, note: str | None = None,
             absent: tuple[Path, ...] = (), check: Callable[[], str | None] | None = None,
             ) -> None:
    """Set ``case.outcome`` from ``run``.

    ``refuse``: text the one-line refusal must hold (the command must fail); ``note``: text
    of the one line a succeeding command must print; ``absent``: paths that must not exist
    afterwards (a run folder, a half-written export); ``check``: returns why data were lost,
    or None.
    """
    case.runs.append({**{k: v for k, v in asdict(run).items() if k not in ("stdout", "stderr")},
                      "stderr_tail": run.stderr.strip().splitlines()[-1:] if run.stderr.strip()
                      else []})
    try:
        lost = check() if check else None
    except Exception as err:  # noqa: BLE001 - what the check could not read is lost
        lost = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if run.rc < 0 or run.rc >= 128 or any(f in run.stderr for f in FATAL):
        case.outcome, case.why = "crash", f"exit status {run.rc}"
    elif "Traceback (most recent call last)" in run.stderr:
        case.outcome, case.why = "traceback", run.stderr.strip().splitlines()[-1]
    elif lost:
        case.outcome, case.why = "data loss", lost
    elif refuse is not None:
        errs = error_lines(run)
        if run.rc == 0:
            case.outcome, case.why = "silent", "exit status 0 where a refusal was due"
        elif len(errs) != 1 or refuse not in errs[0]:
            case.outcome, case.why = "silent", f"refusal not one line holding {refuse!r}: {errs}"
        else:
            case.outcome, case.why = "clean", errs[0]
    elif note is not None:
        said = [ln for ln in (run.stderr + "\n" + run.stdout).splitlines() if note in ln]
        if run.rc != 0:
            case.outcome, case.why = "silent", f"failed (exit {run.rc}) where it had to succeed"
        elif len(said) != 1:
            case.outcome, case.why = "silent", f"{note!r} said {len(said)} times"
        else:
            case.outcome, case.why = "clean", said[0]
    left = [str(p) for p in absent if p.exists()]
    if left and case.outcome == "clean":
        case.outcome, case.why = "silent", f"left behind: {', '.join(left)}"


# ------------------------------------------------------------------------------ builders
def deap_folder(root: Path, subjects: int = 3, seconds: float = 10.0, trials: int = 6) -> Path:
    from physioaffect.datasets.fixtures import write_deap

    return write_deap(root, n_subjects=subjects, seconds=seconds, n_trials=trials, seed=1)


def checkpoint(folder: Path) -> Path:
    """A train-free ShallowConvNet checkpoint with its contract (as training writes it)."""
    import torch

    import physioaffect.models as M
    from physioaffect.models.contract import CheckpointContract, Standardisation
    from physioaffect.preprocessing import PipelineConfig

    chans = ("Fp1", "Fp2", "C3", "C4", "O1", "O2")
    torch.manual_seed(0)
    model = M.create("shallow_convnet", n_chans=len(chans), n_outputs=2, n_times=512, sfreq=128.0,
                     pool_time_length=16, pool_time_stride=4).eval()
    contract = CheckpointContract(
        model="shallow_convnet", modalities=("eeg",), task="classification", target="arousal",
        class_names=("low", "high"), channels=chans, sfreq=128.0,
        pipeline=PipelineConfig(l_freq=1.0, h_freq=30.0, notch_freq=None, phase="causal",
                                detect_bads=False, interpolate_bads=False),
        window_s=4.0, n_times=512, input_kind="raw", input_params={},
        normalisation={"eeg": Standardisation.identity((1,), (len(chans),))}, label_rule="gt5")
    return M.save_checkpoint(model, folder, contract)


def session(path: Path, n_ch: int = 4, rate: int = 128, seconds: float = 3.0,
            markers: tuple[str, ...] = (), subject: str | None = None) -> Path:
    import h5py

    from physioaffect.recording import SessionWriter
    from physioaffect.streams import Chunk, StreamInfo

    w = SessionWriter(path, journal=False, subject="01", task="rest",
                      clock={"unix_start": 1.7e9, "lsl_clock_start": 100.0,
                             "unix_to_lsl_offset": 100.0 - 1.7e9,
                             "utc_start": "2023-11-14T22:13:20Z"})
    info = StreamInfo.from_labels("eeg", "EEG", [f"C{i}" for i in range(n_ch)], float(rate),
                                  "microvolts")
    w.add_stream(info)
    n = int(rate * seconds)
    w.append(Chunk("eeg", 100.0 + np.arange(n) / rate,
                   np.random.default_rng(0).standard_normal((n, n_ch)).astype(np.float32)))
    if markers:
        mk = StreamInfo.from_labels("mk", "Markers", ["Marker"], 0.0, "",
                                    channel_format="string")
        w.add_stream(mk)
        w.append(Chunk("mk", [100.5 + 0.25 * i for i in range(len(markers))],
                       np.array([[m] for m in markers], dtype=object)))
    w.close()
    if subject is not None:  # a crafted file: set in the file, not asked of the writer
        with h5py.File(path, "a") as f:
            f.attrs["subject"] = subject
    return path


# --------------------------------------------------------------------------------- cases
def cache_cases(tmp: Path) -> list[Case]:
    from physioaffect.datasets import open_dataset
    from physioaffect.datasets.cache import load_windows, prepare
    from physioaffect.datasets.windows import WindowConfig

    root = deap_folder(tmp / "deap_big", subjects=5, seconds=30.0, trials=10)
    fresh = prepare(open_dataset("deap", root), WindowConfig(window_s=1.0, features="de"),
                    tmp / "fresh", progress=False)
    want = load_windows(fresh).X
    out = []
    for sig, grown in ((signal.SIGKILL, False), (signal.SIGKILL, True), (signal.SIGTERM, False),
                       (signal.SIGTERM, True)):
        case = Case(f"prepare killed ({signal.Signals(sig).name}, "
                    f"{'after a subject' if grown else 'at file creation'}), rerun", "cache")
        cache = tmp / f"cache-{sig}-{grown}"
        cmd = [sys.executable, "-m", "physioaffect.cli.main", "datasets", "prepare", "deap",
               "--root", str(root), "--cache", str(cache), "--quiet", "--no-figure"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=_env())
        found = list(cache.glob("*.h5*"))
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            found = list(cache.glob("*.h5*"))
            if found and (not grown or found[0].stat().st_size > 200_000):
                break
            time.sleep(0.002)
        proc.send_signal(sig)
        proc.wait()
        run = physioaffect("datasets", "prepare", "deap", "--root", str(root), "--cache",
                           str(cache), "--quiet", "--no-figure")

        def lost(cache=cache) -> str | None:
            done = list(cache.glob("*.h5"))
            if not done:
                return "no cache after the rerun"
            if not np.array_equal(load_windows(done[0]).X, want):
                return "the rerun's windows differ from an uninterrupted run's"
            return None

        classify(case, run, note="windows written to", check=lost)
        out.append(case)
    return out


def config_cases(tmp: Path) -> list[Case]:
    laughs = ["dataset: deap", f"root: {tmp / 'deap'}", "model_kwargs:",
              "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    head = f"dataset: deap\nroot: {tmp / 'deap'}\n"  # a valid run apart from the damage
    files = {
        "laughs.yaml": "\n".join(laughs) + "\n",
        "recursive_map.yaml": head + "model_kwargs: &a\n  x: *a\n",
        "recursive_list.yaml": head + "model_kwargs:\n  x: &b [*b]\n",
        "latin1.yaml": (head + "# caf\xe9\n").encode("latin-1"),
        "latin1.json": f'{{"dataset": "deap", "root": "{tmp / "deap"}", "target": "val\xe9nce"}}'
        .encode("latin-1"),
        "deep.json": '{"model_kwargs": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "deep.yaml": head + "model_kwargs: {a: " + "[" * 100_000 + "]" * 100_000 + "}\n",
        "deep.toml": "[model_kwargs]\na = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "huge.yaml": head + "# " + "x" * (4 << 20) + "\n",
    }
    out = []
    for name, content in files.items():
        p = tmp / "configs" / name
        p.parent.mkdir(exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        run_dir = tmp / "runs" / name
        case = Case(f"train --config {name}", "config")
        run = physioaffect("train", "--config", str(p), "--out", str(run_dir), timeout=300)
        classify(case, run, refuse=str(p), absent=(run_dir,))
        if case.outcome == "clean" and (run.seconds > 30 or run.max_rss_mb > 2000):
            case.outcome, case.why = "silent", f"{run.seconds:.0f} s, {run.max_rss_mb:.0f} MB"
        out.append(case)
    return out


def checkpoint_cases(tmp: Path) -> list[Case]:
    base = checkpoint(tmp / "ck" / "good")
    cfg = json.loads((base / "config.json").read_text())
    con = json.loads((base / "contract.json").read_text())

    def crafted(name: str, file: str, text: str | bytes) -> Path:
        d = tmp / "ck" / name
        shutil.copytree(base, d)
        (d / file).write_bytes(text if isinstance(text, bytes) else text.encode())
        return d

    deep = json.dumps(cfg)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    huge = dict(cfg, kwargs={**cfg["kwargs"], "n_filters_time": 10**6, "n_filters_spat": 10**6})
    nyq = dict(con, pipeline={**con["pipeline"], "l_freq": 100.0, "h_freq": None})
    other = dict(con, model="eeg_deformer")
    cases = {
        "config.json nested 100,000 deep": (crafted("deep", "config.json", deep), "config.json"),
        "16 TB tensor": (crafted("huge", "config.json", json.dumps(huge)), "model.safetensors"),
        "high-pass above Nyquist": (crafted("nyq", "contract.json", json.dumps(nyq)),
                                    "contract.json"),
        "contract of another network": (crafted("other", "contract.json", json.dumps(other)),
                                        "contract.json"),
        "contract.json not UTF-8": (crafted("latin1", "contract.json",
                                            json.dumps(con).replace('"arousal"', '"\xe9"')
                                            .encode("latin-1")), "contract.json"),
    }
    out = []
    for label, (ck, field_file) in cases.items():
        for cmd in ("decode", "evaluate"):
            case = Case(f"{cmd}: {label}", "checkpoint")
            args = (["decode", "-c", str(ck), "--duration", "1"] if cmd == "decode" else
                    ["evaluate", str(ck), "--dataset", "deap", "--root", str(tmp / "deap"),
                     "--out", str(tmp / "eval" / f"{ck.name}")])
            run = physioaffect(*args, timeout=120)
            classify(case, run, refuse=str(ck / field_file))
            out.append(case)
    return out


def deap_cases(tmp: Path) -> list[Case]:
    from physioaffect.datasets.fixtures import deap_subject_arrays
    from physioaffect.datasets.safe_pickle import dump_py2

    arrays = deap_subject_arrays(2, 3, 2.0, 0)

    def strings(d: Path) -> None:
        with open(d / "s02.dat", "wb") as f:
            dump_py2({"labels": arrays["labels"], "data": arrays["data"].astype(str)
                      .astype(object)}, f)

    def rating(value: float) -> Callable[[Path], None]:
        def write(d: Path) -> None:
            labels = arrays["labels"].copy()
            labels[1, 0] = value
            with open(d / "s02.dat", "wb") as f:
                dump_py2({"labels": labels, "data": arrays["data"]}, f)
        return write

    def loop(d: Path) -> None:
        os.symlink(d / "s05.dat", d / "s04.dat")
        os.symlink(d / "s04.dat", d / "s05.dat")

    variants: dict[str, Callable[[Path], None]] = {
        "data as an object array of strings": strings, "rating 42": rating(42.0),
                "rating -3": rating(-3.0), "symbolic link loop": loop}
    expect = {"data as an object array of strings": "s02.dat: 'data'",
              "rating 42": "s02.dat: 'labels'", "rating -3": "s02.dat: 'labels'",
              "symbolic link loop": "s04.dat: a symbolic link loop"}
    out = []
    for label, damage in variants.items():
        d = deap_folder(tmp / "deap_bad" / label.replace(" ", "_"), subjects=3, seconds=2.0,
                        trials=3)
        damage(d)
        for cmd in (["info", "deap", "--root", str(d), "--deep"],
                    ["prepare", "deap", "--root", str(d), "--cache", str(tmp / "c_bad"),
                     "--quiet", "--no-figure"]):
            case = Case(f"datasets {cmd[0]}{' --deep' if cmd[0] == 'info' else ''}: {label}",
                        "datasets")
            classify(case, physioaffect("datasets", *cmd), refuse=expect[label])
            out.append(case)
    return out


def export_cases(tmp: Path) -> list[Case]:
    out = []
    sdir = tmp / "sessions"
    sdir.mkdir()
    (tmp / "exp").mkdir()

    def unchanged(path: Path, before: str) -> Callable[[], str | None]:
        return lambda: None if digest(path) == before else f"{path} changed by the export"

    sur = session(sdir / "surrogate.h5", markers=("ok", "bad\ud800x", "\udfff"))
    for to, target in (("edf", "s.edf"), ("fif", "s_raw.fif"), ("bids", "bids_s")):
        before = digest(sur)
        case = Case(f"export --to {to}: markers with lone surrogates", "export")
        run = physioaffect("export", str(sur), "--to", to, "--out", str(tmp / "exp" / target))
        classify(case, run, note="not valid Unicode", check=unchanged(sur, before))
        out.append(case)
    big = session(sdir / "big.h5", n_ch=10_000, seconds=1.0)
    case = Case("export --to edf: 10,000 channels", "export")
    classify(case, physioaffect("export", str(big), "--to", "edf", "--out",
                                str(tmp / "exp" / "big.edf")),
             refuse="10000 channels do not fit", absent=(tmp / "exp" / "big.edf",))
    out.append(case)
    long = session(sdir / "long.h5", markers=("x" * 1_000_000, "short"))
    case = Case("export --to edf: a 1 MB marker", "export")
    classify(case, physioaffect("export", str(long), "--to", "edf", "--out",
                                str(tmp / "exp" / "long.edf")), note="cut to 200")
    out.append(case)
    for subject, expected in (("../../evil", "exported as 'evil'"), ("a_b", "exported as 'ab'"),
                              ("", None)):
        p = session(sdir / f"sub{len(out)}.h5", subject=subject)
        root = tmp / "exp" / f"bids{len(out)}"
        case = Case(f"export --to bids: subject {subject!r}", "export")
        run = physioaffect("export", str(p), "--to", "bids", "--out", str(root))
        if expected:
            classify(case, run, note=expected,
                     check=lambda root=root: None if not (root.parent / "evil").exists()
                     else "written outside the output folder")
        else:
            classify(case, run, refuse="--subject LABEL", absent=(root / "sub-",))
        out.append(case)
    out.append(full_disk_case(tmp, session(sdir / "long60.h5", n_ch=8, rate=256, seconds=60.0,
                                           markers=("a", "b"))))
    return out


def full_disk_case(tmp: Path, path: Path) -> Case:
    case = Case("export --to bids onto a full disk, then the rerun after space is freed",
                "export")
    mnt = tmp / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        case.outcome, case.why = "skipped", "needs root to mount a 1 MiB tmpfs"
        return case
    try:
        (mnt / "filler").write_bytes(bytes(700_000))
        root = mnt / "bids"
        first = physioaffect("export", str(path), "--to", "bids", "--out", str(root))
        leftovers = sorted(p.name for p in mnt.iterdir() if p.name != "filler")
        (mnt / "filler").unlink()
        rerun = physioaffect("export", str(path), "--to", "bids", "--out", str(root))
        eeg = root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.eeg"

        def lost() -> str | None:
            if rerun.rc != 0:
                return f"the rerun failed: {rerun.stderr.strip().splitlines()[-1:]}"
            if not eeg.is_file() or eeg.stat().st_size != 8 * 256 * 60 * 4:
                return "the rerun's data file is not complete"
            return None

        classify(case, first, refuse="disk full", check=lost)
        if case.outcome == "clean" and leftovers:
            case.outcome, case.why = "silent", f"left behind: {leftovers}"
        case.runs.append({"rerun_rc": rerun.rc})
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, help="Keep the inputs in this folder.")
    ap.add_argument("--only", help="Only this group (cache, config, checkpoint, datasets, "
                                   "export).")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ.update({k: v for k, v in _env().items() if k not in os.environ})
    tmp = Path(tempfile.mkdtemp(prefix="hostile-")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    deap_folder(tmp / "deap")
    load = os.getloadavg()
    t0 = time.perf_counter()
    groups = {"cache": cache_cases, "config": config_cases, "checkpoint": checkpoint_cases,
              "datasets": deap_cases, "export": export_cases}
    cases: list[Case] = []
    try:
        for name, build in groups.items():
            if args.only and name != args.only:
                continue
            for case in build(tmp):
                cases.append(case)
                print(f"{case.outcome:>10}  {case.name}: {case.why[:110]}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    counts = Counter(c.outcome for c in cases)
    result = {
        "what": "hostile and careless input of issue 25 (non-recording cases), each a CLI "
                "subprocess, classified clean / traceback / crash / silent / data loss",
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - t0, 1),
        "counts": {k: counts.get(k, 0) for k in ("clean", "traceback", "crash", "silent",
                                                  "data loss", "skipped")},
        "cases": [asdict(c) for c in cases],
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["counts"]), f"in {result['seconds']} s; wrote {RESULT}")


if __name__ == "__main__":
    main()
