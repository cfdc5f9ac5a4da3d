"""``physioaffect datasets fake/info/prepare`` run as real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from physioaffect.datasets.cache import load_windows, read_info


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "datasets", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_fake_then_prepare_twice_reuses_cache(tmp_path):
    out = tmp_path / "data_preprocessed_python"
    r = _run("fake", "deap", str(out), "--subjects", "2", "--seconds", "2", "--trials", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["s01.dat", "s02.dat"]
    args = ("prepare", "deap", "--root", str(out), "--window", "1", "--baseline", "subtract",
            "--features", "de", "--cache", str(tmp_path / "cache"), "--label-rule", "gt5",
            "--target", "arousal")
    r = _run(*args)
    assert r.returncode == 0, r.stderr
    assert "12 windows of 2 subjects (0 reused from cache)" in r.stdout
    assert "labels gt5 on arousal" in r.stdout
    path = r.stdout.strip().splitlines()[-1].split("windows written to ")[1]
    png = Path(path).with_suffix(".png")
    assert f"figure written to {png}" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    ws = load_windows(path)
    assert ws.X.shape == (12, 32, 4) and np.isfinite(ws.X).all()
    assert read_info(path)["config"]["baseline"] == "subtract"
    r = _run(*args)
    assert "(2 reused from cache)" in r.stdout


def test_fake_seed_dreamer_sim_and_info(tmp_path):
    for name, n in (("seed", 2), ("dreamer", 2), ("sim", 2)):
        out = tmp_path / name
        r = _run("fake", name, str(out), "--subjects", str(n), "--seconds", "2", "--trials", "3")
        assert r.returncode == 0, r.stderr
        r = _run("info", name, "--root", str(out), "--deep")
        assert r.returncode == 0, r.stderr
        assert f"{n} subjects" in r.stdout and "folder OK" in r.stdout
    assert "62 channels at 200 Hz" in _run("info", "seed", "--root", str(tmp_path / "seed")).stdout
    assert "ECG: ECG1, ECG2 at 256 Hz" in _run("info", "dreamer", "--root",
                                               str(tmp_path / "dreamer")).stdout
    r = _run("prepare", "sim", "--root", str(tmp_path / "sim"), "--window", "1", "--features",
             "raw", "--cache", str(tmp_path / "c"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "12 windows of 2 subjects" in r.stdout


def test_bad_folder_is_one_line_error_without_traceback(tmp_path):
    out = tmp_path / "deap"
    assert _run("fake", "deap", str(out), "--subjects", "3", "--seconds", "1",
                "--trials", "2").returncode == 0
    (out / "s02.dat").unlink()
    r = _run("prepare", "deap", "--root", str(out), "--cache", str(tmp_path / "c"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "missing subject file(s) s02.dat" in r.stderr
    assert not (tmp_path / "c").exists()  # failed before any work
