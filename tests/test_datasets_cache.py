"""Windows against independent computations; the HDF5 cache reused, invalidated, resumed; the
torch Dataset reading single windows from it."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from scipy.signal import butter, lfilter

from physioaffect.datasets import open_dataset
from physioaffect.datasets.cache import (
    WindowDataset,
    cache_path,
    load_windows,
    prepare,
    read_info,
    read_meta,
)
from physioaffect.datasets.fixtures import deap_subject_arrays, write_deap, write_dreamer
from physioaffect.datasets.windows import WindowConfig, subject_windows

BANDS = {"theta": (4, 8), "alpha": (8, 14), "beta": (14, 31), "gamma": (31, 49)}


def _torcheeg_de(x: np.ndarray, fs: float = 128) -> np.ndarray:
    """TorchEEG 1.1.3 BandDifferentialEntropy written out channel by channel, band by band."""
    out = np.empty((x.shape[0], 4))
    for j, (lo, hi) in enumerate(BANDS.values()):
        b, a = butter(5, [lo / (fs / 2), hi / (fs / 2)], btype="band")
        for c in range(x.shape[0]):
            out[c, j] = 1 / 2 * np.log2(2 * np.pi * np.e * np.var(lfilter(b, a, x[c])))
    return out


@pytest.fixture(scope="module")
def deap_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("deapc") / "data_preprocessed_python"
    write_deap(d, n_subjects=3, seconds=3, n_trials=3, seed=1)
    return d


def test_torcheeg_compat_windows_equal_reference(deap_dir):
    r = open_dataset("deap", deap_dir)
    ws = subject_windows(r.read_subject("s02"), WindowConfig.torcheeg_compat(1.0))
    ref = deap_subject_arrays(2, n_trials=3, seconds=3, seed=1)["data"]
    assert ws.X.shape == (9, 32, 4) and ws.X_baseline.shape == (9, 32, 4)
    assert list(ws.meta["trial"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert list(ws.meta["onset_s"]) == [0.0, 1.0, 2.0] * 3
    for i in (0, 4, 8):
        t, w = ws.meta["trial"][i] - 1, int(ws.meta["onset_s"][i])
        seg = ref[t, :32, 384 + 128 * w: 384 + 128 * (w + 1)]
        np.testing.assert_array_equal(ws.X[i], _torcheeg_de(seg))
        base = ref[t, :32, :384].reshape(32, 3, 128).mean(axis=1)
        np.testing.assert_array_equal(ws.X_baseline[i], _torcheeg_de(base))
    assert ws.meta["valence"][4] == ref_labels(2)[1, 0]


def ref_labels(s):
    return deap_subject_arrays(s, n_trials=3, seconds=3, seed=1)["labels"]


def test_windows_never_cross_trials_and_subtract_baseline(deap_dir):
    r = open_dataset("deap", deap_dir)
    rec = r.read_subject("s01")
    # 2 s windows, 0.5 s hop in 3 s trials: 3 windows per trial, none reaching the next trial.
    raw = subject_windows(rec, WindowConfig(window_s=2, step_s=0.5, features="raw"))
    assert raw.X.shape == (9, 32, 256) and raw.X.dtype == np.float32
    for i, (t, on) in enumerate(zip(raw.meta["trial"], raw.meta["onset_s"], strict=True)):
        s0 = int(on * 128)
        np.testing.assert_array_equal(raw.X[i], rec.trials[t - 1].eeg[:, s0:s0 + 256].astype(np.float32))
    keep = subject_windows(rec, WindowConfig(window_s=1, baseline="keep", bands="torcheeg4"))
    sub = subject_windows(rec, WindowConfig(window_s=1, baseline="subtract", bands="torcheeg4"))
    np.testing.assert_allclose(sub.X, keep.X - keep.X_baseline)
    assert sub.X_baseline is None


def test_cache_reuse_invalidation_and_resume(deap_dir, tmp_path):
    r = open_dataset("deap", deap_dir)
    cfg = WindowConfig(window_s=1.0, features="de")
    seen = []
    p1 = prepare(r, cfg, tmp_path, progress=False, on_subject=lambda s, re: seen.append((s, re)))
    assert seen == [("s01", False), ("s02", False), ("s03", False)]
    seen.clear()
    assert prepare(r, cfg, tmp_path, progress=False,
                   on_subject=lambda s, re: seen.append((s, re))) == p1
    assert seen == [("s01", True), ("s02", True), ("s03", True)]
    ws1 = load_windows(p1)
    # Another configuration: another file, recomputed.
    cfg2 = WindowConfig(window_s=1.0, features="band_power")
    seen.clear()
    p2 = prepare(r, cfg2, tmp_path, progress=False, on_subject=lambda s, re: seen.append((s, re)))
    assert p2 != p1 and all(not re for _, re in seen)
    assert read_info(p2)["config"]["features"] == "band_power"
    assert read_info(p2)["n_nonfinite"] == {"s01": 0, "s02": 0, "s03": 0}
    assert not np.allclose(load_windows(p2).X, ws1.X)
    # A changed input file changes the key too.
    st = os.stat(deap_dir / "s02.dat")
    os.utime(deap_dir / "s02.dat", ns=(1_000_000_000, 1_000_000_000))
    assert cache_path(r, cfg, tmp_path) != p1
    os.utime(deap_dir / "s02.dat", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache_path(r, cfg, tmp_path) == p1
    # An interrupted run (subject group without the 'complete' flag) is redone, others kept.
    with h5py.File(p1, "a") as h5:
        h5["subjects/s03"].attrs["complete"] = False
    r_same = open_dataset("deap", deap_dir)
    seen.clear()
    assert prepare(r_same, cfg, tmp_path, progress=False,
                   on_subject=lambda s, re: seen.append((s, re))) == p1
    assert seen == [("s01", True), ("s02", True), ("s03", False)]
    np.testing.assert_array_equal(load_windows(p1).X, ws1.X)


def test_torch_dataset_reads_windows_lazily(deap_dir, tmp_path):
    import pickle

    import torch

    r = open_dataset("deap", deap_dir)
    p = prepare(r, WindowConfig.torcheeg_compat(), tmp_path, progress=False)
    ws = load_windows(p)
    rows = WindowDataset.index(p)
    sel = rows[rows["subject"] == "s02"]
    y = np.arange(len(sel))
    ds = WindowDataset(p, sel, targets=y, baseline=True)
    assert len(ds) == 9
    x, xb, t = ds[4]
    i = np.flatnonzero(ws.meta["subject"] == "s02")[4]
    assert torch.equal(x, torch.as_tensor(ws.X[i], dtype=torch.float32))
    assert torch.equal(xb, torch.as_tensor(ws.X_baseline[i], dtype=torch.float32))
    assert int(t) == 4
    ds2 = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives
    assert ds2._h5 is None and torch.equal(ds2[4][0], x)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch[0].shape == (5, 32, 4)
    # Two worker processes (forked after the parent opened the file) read the same windows.
    loader = torch.utils.data.DataLoader(ds, batch_size=9, num_workers=2)
    xs = next(iter(loader))[0]
    assert torch.equal(xs[4], x)
    meta = read_meta(p, ["s03"])
    assert set(meta["subject"]) == {"s03"} and len(meta) == 9


def test_dreamer_baseline_subtract_through_cache(tmp_path):
    write_dreamer(tmp_path / "dr", n_subjects=2, seconds=2, n_trials=3, baseline_seconds=3)
    r = open_dataset("dreamer", tmp_path / "dr")
    p = prepare(r, WindowConfig(window_s=1, baseline="subtract"), tmp_path / "c", progress=False)
    ws = load_windows(p)
    # Trial lengths 2, 2.2, 2.4 s -> 2 whole 1 s windows each.
    assert ws.X.shape == (12, 14, 4)
    assert list(ws.meta.columns[:5]) == ["subject", "session", "trial", "stimulus", "onset_s"]


def test_baseline_on_a_dataset_without_one_fails_before_any_file(tmp_path):
    from physioaffect.datasets import DatasetError
    from physioaffect.datasets.fixtures import write_seed

    write_seed(tmp_path / "seed", n_subjects=1, seconds=0.5, n_sessions=1, n_trials=2)
    r = open_dataset("seed", tmp_path / "seed")
    with pytest.raises(DatasetError, match="seed trials have no pre-stimulus baseline"):
        prepare(r, WindowConfig(baseline="keep"), tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


def test_unusable_windows_are_counted_not_hidden(tmp_path):
    from physioaffect.datasets.safe_pickle import dump_py2

    root = tmp_path / "deap"
    root.mkdir()
    arr = deap_subject_arrays(1, n_trials=2, seconds=2, seed=0)
    arr["data"][1, 5, 384 + 128:384 + 256] = 0.0  # trial 2, second window, channel 5 flat
    with open(root / "s01.dat", "wb") as f:
        dump_py2(arr, f)
    with pytest.warns(UserWarning):
        p = prepare(open_dataset("deap", root), WindowConfig(), tmp_path / "c", progress=False)
    assert read_info(p)["n_nonfinite"] == {"s01": 1}
    ws = load_windows(p)
    bad = ~np.isfinite(ws.X).all(axis=(1, 2))
    assert list(ws.meta[bad][["trial", "onset_s"]].itertuples(index=False, name=None)) == [(2, 1.0)]
    assert np.isnan(ws.X[bad][0, 5]).all() and np.isfinite(ws.X[bad][0, :5]).all()


def _prepare_cli(root, cache) -> list[str]:
    import sys

    return [sys.executable, "-m", "physioaffect.cli.main", "datasets", "prepare", "deap",
            "--root", str(root), "--cache", str(cache), "--quiet", "--no-figure"]


def test_prepare_killed_mid_write_leaves_no_damaged_cache_and_the_rerun_works(tmp_path, caplog):
    """A real ``datasets prepare`` killed (SIGKILL) while it writes, twice: at the moment the
    cache file is created (before this fix, a 96-byte file every rerun failed on) and after a
    subject is in. Each rerun succeeds and gives the windows of an uninterrupted run."""
    import signal
    import subprocess
    import time

    root = write_deap(tmp_path / "deap", n_subjects=4, seconds=20.0, n_trials=8, seed=3)
    fresh = prepare(open_dataset("deap", root), WindowConfig(window_s=1.0, features="de"),
                    tmp_path / "fresh", progress=False)
    expected = load_windows(fresh)
    cache = tmp_path / "cache"
    final = cache / fresh.name
    partial = final.with_name(final.name + ".partial")
    for grown in (0, 1):  # kill at creation, then once a subject is written
        proc = subprocess.Popen(_prepare_cli(root, cache), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if partial.exists() and (not grown or partial.stat().st_size > 60_000):
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not final.exists()  # nothing under the name readers open until it is complete
        assert partial.exists() or proc.returncode == 0
        r = subprocess.run(_prepare_cli(root, cache), capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and final.exists() and not partial.exists()
        # a partial file that no longer opens (a kill inside an HDF5 write can damage it) is
        # started again, said in one line; one that reads back is resumed
        notes = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert notes == [] or (len(notes) == 1 and "starting again" in notes[0]), r.stderr
        got = load_windows(final)
        np.testing.assert_array_equal(got.X, expected.X)
        assert got.meta.equals(expected.meta)
        final.unlink()
    cache.mkdir(exist_ok=True)
    # a damaged file under the final name (a disk fault; what older versions left): one
    # warning line, rebuilt
    with open(fresh, "rb") as f:
        head = f.read(96)
    final.write_bytes(head)
    with caplog.at_level("WARNING", logger="physioaffect"):
        again = prepare(open_dataset("deap", root), WindowConfig(window_s=1.0, features="de"),
                        cache, progress=False)
    assert again == final
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and notes[0].startswith(f"{final}: damaged cache file")
    np.testing.assert_array_equal(load_windows(final).X, expected.X)


def test_readers_of_a_damaged_cache_say_so_in_one_line(tmp_path):
    from physioaffect.datasets import DatasetError

    bad = tmp_path / "deap-0123.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(88))
    for read in (read_info, read_meta, load_windows):
        with pytest.raises(DatasetError, match=r"damaged cache file .*delete it") as err:
            read(bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)
