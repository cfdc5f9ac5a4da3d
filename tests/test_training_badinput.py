"""Training input a careless operator or a hostile file gives: a resumed run whose epoch
checkpoint is not a safe file, and EEG holding NaN samples (trained, and said so)."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from physioaffect.datasets.fixtures import deap_subject_arrays, write_deap
from physioaffect.datasets.safe_pickle import dump_py2
from physioaffect.training import TrainConfig, TrainingError, load_config, train


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                          capture_output=True, text=True, timeout=300)


class _Payload:
    """Unpickling this would run a shell command (it must never be unpickled)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


TINY = dict(windows={"window_s": 4.0}, optim={"epochs": 2, "batch_size": 16, "patience": 0},
            compute={"threads": 1}, baselines=["majority", "logreg"],
            channels=["Fp1", "F3", "O1", "Fp2", "F4", "O2"], model="eegnet",
            model_kwargs={"F1": 4, "D": 1}, protocol="loso", target="valence")


def test_nan_eeg_trains_and_the_report_says_so_then_a_bad_resume_is_refused(tmp_path: Path):
    root = write_deap(tmp_path / "deap", n_subjects=3, seconds=8.0, n_trials=6, seed=1)
    arrays = deap_subject_arrays(2, 6, 8.0, 1)
    arrays["data"][1, 0, 500:600] = float("nan")  # a dropout in Fp1 during trial 2
    with open(root / "s02.dat", "wb") as f:
        dump_py2({"labels": arrays["labels"], "data": arrays["data"]}, f)
    cfg = TrainConfig(dataset="deap", root=str(root), cache_dir=str(tmp_path / "cache"), **TINY)
    run = train(cfg, out=tmp_path / "run", progress=False)
    report = (run / "report.md").read_text()
    assert "WARNING: 1 of 36 EEG windows hold NaN or infinite samples** (s02: 1)" in report

    # a run folder to resume whose last fold has an epoch checkpoint that is a pickle bomb
    copy = tmp_path / "resumed"
    shutil.copytree(run, copy)
    (copy / "folds" / "loso-03" / "fold.json").unlink()
    (copy / "status.json").write_text(json.dumps({"status": "running"}))
    marker = tmp_path / "pwned"
    with open(copy / "folds" / "loso-03" / "train_state.pt", "wb") as f:
        pickle.dump({"model": _Payload(marker)}, f)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps(cfg.resolve().to_dict()))
    r = _cli("train", "--config", str(conf), "--out", str(copy), "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "train_state.pt: not a safe epoch checkpoint" in errors[0]
    assert "objects other than tensors" in errors[0]
    assert not marker.exists()


# -- hostile config files: bounded parsing, one line, no run folder --------------------------
def _laughs(levels: int = 9, fan: int = 10) -> str:
    """A YAML "billion laughs": ``fan ** levels`` strings from a few hundred bytes."""
    lines = ["dataset: deap", "root: nowhere", "model_kwargs:",
             f"  a0: &a0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_fast_in_bounded_memory(tmp_path: Path):
    import time
    import tracemalloc

    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs())  # 10**9 strings once expanded (~3.5 GB and 77 s before)
    tracemalloc.start()
    t0 = time.process_time()
    try:
        load_config(path)
        raise AssertionError("the alias bomb was accepted")
    except TrainingError as err:
        msg = str(err)
    cpu = time.process_time() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert msg.startswith(f"{path}: ") and "alias" in msg and "\n" not in msg
    assert cpu < 1.0 and peak < 20e6, (cpu, peak)


def test_config_bombs_are_one_line_each_and_ordinary_anchors_still_load(tmp_path: Path):

    cases = {
        "recursive.yaml": ("dataset: deap\nmodel_kwargs: &a\n  x: *a\n", "refers to itself"),
        "recursive_list.yaml": ("dataset: deap\nmodel_kwargs:\n  x: &b [*b]\n",
                                "refers to itself"),
        "latin1.yaml": ("dataset: deap\n# caf\xe9\n".encode("latin-1"), "not UTF-8"),
        "deep.yaml": ("model_kwargs: {a: " + "[" * 5000 + "]" * 5000 + "}\n", "deeper than"),
        "deep.json": ('{"model_kwargs": ' + "[" * 100_000 + "]" * 100_000 + "}", "deeper than"),
        "deep.toml": ("[model_kwargs]\na = " + "[" * 5000 + "]" * 5000 + "\n", "deeper than"),
        "huge.yaml": (" " * (2 << 20), "at most 1048576 bytes"),
        "latin1.json": ('{"dataset": "d\xe9ap"}'.encode("latin-1"), "not UTF-8"),
    }
    for name, (content, expected) in cases.items():
        p = tmp_path / name
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        try:
            load_config(p)
        except TrainingError as err:
            msg = str(err)
        else:
            raise AssertionError(f"{name} was accepted")
        assert msg.startswith(f"{p}: ") and expected in msg and "\n" not in msg, (name, msg)
    ok = tmp_path / "anchors.yaml"  # one section reused: an ordinary anchor
    ok.write_text("dataset: deap\nroot: r\nsearch: {space: {optim.lr: &lr [0.1, 0.01], "
                  "optim.weight_decay: *lr}}\n")
    assert load_config(ok)["search"]["space"]["optim.weight_decay"] == [0.1, 0.01]
    # the same rules for a config built in Python (a cycle, an exponential structure)
    cyc: dict = {}
    cyc["x"] = cyc
    shared: list = ["lol"] * 10
    for _ in range(8):
        shared = [shared] * 10
    for kwargs in (cyc, {"k": shared}):
        try:
            TrainConfig(dataset="deap", root="r", model_kwargs=kwargs).resolve()
        except TrainingError as err:
            assert str(err).startswith("model_kwargs: ")
        else:
            raise AssertionError("accepted")


def test_cli_refuses_an_alias_bomb_in_one_line_without_a_run_folder(tmp_path: Path):
    conf = tmp_path / "laughs.yaml"
    conf.write_text(_laughs())
    run = tmp_path / "run"
    r = _cli("train", "--config", str(conf), "--out", str(run))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"physioaffect: error: {conf}: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not run.exists()
