"""Untrusted and broken input: malicious pickles refused (and not run), clear errors that name
the file, raised when the folder is opened (before any long work)."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest
from scipy.io import savemat

from physioaffect.datasets import DatasetError, UnsafePickleError, open_dataset
from physioaffect.datasets.fixtures import write_deap, write_dreamer, write_seed
from physioaffect.datasets.safe_pickle import dump_py2, safe_load


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func", [os.system, eval, subprocess.getoutput])
def test_malicious_pickle_refused_and_not_executed(tmp_path, func):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}" if func is not eval else f"open({str(marker)!r}, 'w')"
    d = tmp_path / "deap"
    write_deap(d, n_subjects=2, seconds=1, n_trials=2)
    # A DEAP-looking file: right name, protocol 2, ends with STOP, carries a real array too.
    payload = {"data": np.zeros((2, 40, 500)), "labels": _Evil(func, cmd)}
    (d / "s02.dat").write_bytes(pickle.dumps(payload, protocol=2))
    # Plain pickle would run it: prove the payload is live, in a copy.
    live = tmp_path / "live.dat"
    shutil.copy(d / "s02.dat", live)
    r = open_dataset("deap", d)  # cheap validation does not unpickle
    with pytest.raises(UnsafePickleError) as e:
        r.read_subject("s02")
    msg = str(e.value)
    assert "s02.dat" in msg and func.__name__ in msg and "refused" in msg
    assert not marker.exists()
    with open(live, "rb") as f:
        pickle.load(f, encoding="latin1")
    assert marker.exists()  # the same bytes do run code without the restriction


def test_safe_load_reads_python3_protocol2_and_4_numpy_pickles(tmp_path):
    a = {"data": np.arange(12.0).reshape(3, 4), "labels": np.float64(2.5)}
    for proto in (2, 4):
        p = tmp_path / f"p{proto}.dat"
        p.write_bytes(pickle.dumps(a, protocol=proto))
        b = safe_load(p)
        np.testing.assert_array_equal(b["data"], a["data"])
        assert b["labels"] == 2.5
    buf = io.BytesIO()
    dump_py2(a, buf)
    p = tmp_path / "py2.dat"
    p.write_bytes(buf.getvalue())
    np.testing.assert_array_equal(safe_load(p)["data"], a["data"])


@pytest.fixture
def deap(tmp_path):
    d = tmp_path / "data_preprocessed_python"
    write_deap(d, n_subjects=4, seconds=1, n_trials=2)
    return d


def test_deap_missing_subject_named(deap):
    (deap / "s02.dat").unlink()
    with pytest.raises(DatasetError, match=r"missing subject file\(s\) s02\.dat"):
        open_dataset("deap", deap)
    with pytest.raises(DatasetError, match="s05.dat"):
        open_dataset("deap", deap, expected_subjects=5)


def test_deap_truncated_file_found_at_open(deap):
    p = deap / "s03.dat"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"s03\.dat: truncated pickle"):
        open_dataset("deap", deap)


def test_deap_wrong_shape_and_keys(deap):
    with open(deap / "s02.dat", "wb") as f:
        dump_py2({"data": np.zeros((2, 32, 900)), "labels": np.ones((2, 4))}, f)
    with open(deap / "s03.dat", "wb") as f:
        dump_py2({"eeg": np.zeros((2, 40, 900)), "labels": np.ones((2, 4))}, f)
    r = open_dataset("deap", deap)
    with pytest.raises(DatasetError, match=r"s02\.dat: 'data' must be trials x 40 channels"):
        r.read_subject("s02")
    with pytest.raises(DatasetError, match=r"s03\.dat: expected a dict with 'data' and 'labels'"):
        r.read_subject("s03")
    # Deep validation loads every file before any processing and stops at the first bad one.
    with pytest.raises(DatasetError, match=r"s02\.dat"):
        r.validate(deep=True)


def test_wrong_dataset_folder_says_which_it_looks_like(deap, tmp_path):
    with pytest.raises(DatasetError, match="looks like a DEAP"):
        open_dataset("seed", deap)
    dr = tmp_path / "dreamer"
    write_dreamer(dr, n_subjects=1, seconds=1, n_trials=2, baseline_seconds=1)
    with pytest.raises(DatasetError, match="looks like a DREAMER"):
        open_dataset("deap", dr)
    with pytest.raises(DatasetError, match="DREAMER.mat: missing"):
        open_dataset("dreamer", deap)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset("deap", tmp_path / "nowhere")


@pytest.fixture
def seed(tmp_path):
    d = tmp_path / "Preprocessed_EEG"
    write_seed(d, n_subjects=3, seconds=0.2, n_sessions=1, n_trials=3)
    return d


def test_seed_truncated_mat_found_at_open(seed):
    p = next(seed.glob("2_*.mat"))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=rf"{p.name}: truncated MATLAB file"):
        open_dataset("seed", seed)


def test_seed_wrong_variable_names_and_shapes(seed, tmp_path):
    p = next(seed.glob("2_*.mat"))
    savemat(p, {"jl_eegA": np.zeros((62, 10)), "data": np.zeros((62, 10))})
    with pytest.raises(DatasetError, match=rf"{p.name}: no variables named <prefix>_eeg1"):
        open_dataset("seed", seed)
    savemat(p, {"jl_eeg1": np.zeros((62, 10)), "jl_eeg3": np.zeros((62, 10))})
    with pytest.raises(DatasetError, match=r"numbered \[1, 3\]"):
        open_dataset("seed", seed)
    savemat(p, {"jl_eeg1": np.zeros((32, 10)), "jl_eeg2": np.zeros((32, 10))})
    with pytest.raises(DatasetError, match=r"jl_eeg1 has shape \(32, 10\), expected 62 x N"):
        open_dataset("seed", seed)
    (seed / "label.mat").unlink()
    with pytest.raises(DatasetError, match="label.mat: missing"):
        open_dataset("seed", seed)


def test_seed_missing_subject(seed):
    for p in seed.glob("2_*.mat"):
        p.unlink()
    with pytest.raises(DatasetError, match=r"missing subject\(s\) 2"):
        open_dataset("seed", seed)


def test_dreamer_wrong_nesting(tmp_path):
    p = tmp_path / "DREAMER.mat"
    savemat(p, {"DREAMER": {"Data": np.zeros((1, 2)), "EEG_SamplingRate": 128.0}})
    with pytest.raises(DatasetError, match=r"DREAMER\.mat: struct DREAMER lacks field\(s\) "
                                           r"ECG_SamplingRate"):
        open_dataset("dreamer", tmp_path)
    savemat(p, {"dreamer": np.zeros(3)})
    with pytest.raises(DatasetError, match="no variable 'DREAMER'"):
        open_dataset("dreamer", tmp_path)
    write_dreamer(tmp_path, n_subjects=2, seconds=1, n_trials=2, baseline_seconds=1)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) - 500])
    with pytest.raises(DatasetError, match="DREAMER.mat: truncated MATLAB file"):
        open_dataset("dreamer", tmp_path)


def test_flipped_byte_in_compressed_mat_data_is_a_dataset_error(seed):
    """A byte flipped inside a compressed variable makes scipy raise zlib.error, which
    load_mat passed on as a traceback; it names the file now."""
    import struct

    from physioaffect.datasets.matfile import load_mat

    p = next(seed.glob("2_*.mat"))
    data = bytearray(p.read_bytes())
    mtype, nbytes = struct.unpack("<II", data[128:136])
    assert mtype == 15  # miCOMPRESSED
    data[136 + nbytes // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"{p.name}: cannot read MATLAB file"):
        load_mat(p)
    with pytest.raises(DatasetError, match=rf"{p.name}: cannot read MATLAB file"):
        open_dataset("seed", seed)  # the header scan finds it first


# -- contents checked by `info --deep`, `prepare` and `train` alike --------------------------
def _datasets_cli(*args):
    import sys

    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "datasets", *args],
                          capture_output=True, text=True, timeout=120)


def _one_error_line(r, *expected):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and all(e in errors[0] for e in expected), r.stderr
    assert "folder OK" not in r.stdout


def test_deap_strings_ratings_and_link_loops_refused_by_info_deep_and_prepare(tmp_path):
    from physioaffect.datasets.fixtures import deap_subject_arrays

    d = write_deap(tmp_path / "deap", n_subjects=3, seconds=2, n_trials=3)
    good = (d / "s02.dat").read_bytes()
    arrays = deap_subject_arrays(2, 3, 2.0, 0)
    # data as an object array of strings ("could not convert string to float" before)
    text = arrays["data"].astype(str).astype(object)
    with open(d / "s02.dat", "wb") as f:
        dump_py2({"labels": arrays["labels"], "data": text}, f)
    for cmd in (["info", "deap", "--root", str(d), "--deep"],
                ["prepare", "deap", "--root", str(d), "--cache", str(tmp_path / "c"),
                 "--quiet", "--no-figure"]):
        _one_error_line(_datasets_cli(*cmd), f"{d / 's02.dat'}: 'data' must be an array of "
                        "numbers", "dtype object")
    # ratings outside DEAP's 1-9 scale (info said "folder OK", prepare exited 0 before)
    for bad in (42.0, -3.0):
        labels = arrays["labels"].copy()
        labels[1, 0] = bad
        with open(d / "s02.dat", "wb") as f:
            dump_py2({"labels": labels, "data": arrays["data"]}, f)
        with pytest.raises(DatasetError, match=rf"outside \[1, 9\] \(first: {bad:g} at trial "
                                               r"2, valence\)"):
            open_dataset("deap", d).validate(deep=True)
        with pytest.raises(DatasetError, match="s02.dat: 'labels' has 1 value"):
            open_dataset("deap", d).read_subject("s02")
    _one_error_line(_datasets_cli("prepare", "deap", "--root", str(d), "--cache",
                                  str(tmp_path / "c"), "--quiet", "--no-figure"),
                    "s02.dat: 'labels'", "expected DEAP's 1-9")
    (d / "s02.dat").write_bytes(good)
    # a symbolic link loop among the files ("3 subjects ... folder OK" before)
    os.symlink(d / "s05.dat", d / "s04.dat")
    os.symlink(d / "s04.dat", d / "s05.dat")
    _one_error_line(_datasets_cli("info", "deap", "--root", str(d), "--deep"),
                    f"{d / 's04.dat'}: a symbolic link loop")
    os.unlink(d / "s05.dat")  # now a broken link
    with pytest.raises(DatasetError, match=r"s04.dat: a broken symbolic link"):
        open_dataset("deap", d)
    os.unlink(d / "s04.dat")
    os.mkdir(d / "s04.dat")  # a folder with a subject file's name
    with pytest.raises(DatasetError, match=r"s04.dat: not a regular file"):
        open_dataset("deap", d)


def test_other_readers_check_numbers_and_rating_scales(tmp_path):
    from physioaffect.datasets.fixtures import write_faced, write_thu_ep
    from physioaffect.datasets.matfile import load_mat

    # DREAMER: scores 1-5
    dre = write_dreamer(tmp_path / "dreamer", n_subjects=2, seconds=2, n_trials=2)
    path = dre / "DREAMER.mat" if dre.is_dir() else dre
    mat = load_mat(path, squeeze_me=False, struct_as_record=True)
    mat["DREAMER"][0, 0]["Data"][0, 1][0, 0]["ScoreArousal"][1, 0] = 6
    savemat(path, {"DREAMER": mat["DREAMER"]})
    with pytest.raises(DatasetError, match=r"DREAMER.Data\{2\}.ScoreArousal' has 1 value\(s\) "
                                           r"outside \[1, 5\] \(first: 6 at clip 2\)"):
        open_dataset("dreamer", dre)
    # SEED: labels -1/0/1, EEG variables numeric
    sd = write_seed(tmp_path / "seed", n_subjects=1, seconds=2, n_trials=2)
    lab = load_mat(sd / "label.mat")["label"]
    lab[0, 1] = 7
    savemat(sd / "label.mat", {"label": lab})
    with pytest.raises(DatasetError, match=r"label.mat: 'label' holds 7; expected SEED's"):
        open_dataset("seed", sd)
    # FACED and THU-EP: ratings 0-7
    fa = write_faced(tmp_path / "faced", n_subjects=1, seconds=2, n_trials=2)
    rfile = next(fa.rglob("After_remarks.mat"))
    rem = load_mat(rfile, squeeze_me=False, struct_as_record=True)
    rem["After_remark"][0, 0]["score"][0, 9] = 70
    savemat(rfile, {"After_remark": rem["After_remark"]})
    with pytest.raises(DatasetError, match=r"After_remark\(1\).score' has 1 value\(s\) outside "
                                           r"\[0, 7\] \(first: 70 at item 10\)"):
        open_dataset("faced", fa).read_subject("sub000")
    th = write_thu_ep(tmp_path / "thu", n_subjects=1, seconds=2, n_trials=2)
    import h5py

    with h5py.File(th / "Ratings" / "ratings.mat", "r+") as f:
        f["ratings"][0, 0, 0] = float("inf")
    with pytest.raises(DatasetError, match=r"ratings.mat: 'ratings' has 1 value\(s\) outside "
                                           r"\[0, 7\] \(first: inf at anger of stimulus 1"):
        open_dataset("thu-ep", th).read_subject("sub_1")


def test_non_finite_samples_are_said_by_info_deep_not_refused(tmp_path, caplog):
    from physioaffect.datasets.fixtures import deap_subject_arrays

    d = write_deap(tmp_path / "deap", n_subjects=2, seconds=2, n_trials=2)
    arrays = deap_subject_arrays(1, 2, 2.0, 0)
    arrays["data"][0, 3, 10:15] = np.nan
    with open(d / "s01.dat", "wb") as f:
        dump_py2(arrays, f)
    with caplog.at_level("WARNING", logger="physioaffect"):
        open_dataset("deap", d).validate(deep=True)
    assert [r.getMessage() for r in caplog.records] == [
        f"{d / 's01.dat'}: 5 NaN or infinite samples in 'data' (windows holding them are "
        "marked unusable)"]
