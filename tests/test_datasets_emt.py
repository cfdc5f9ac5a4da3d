"""FACED and THU-EP (EmT's datasets): fixtures in the published formats read back with the values
written, read the way EmT's official loaders read them, and broken folders refused by name."""

from __future__ import annotations

import pickle
import pickletools
import subprocess

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import cli
from scipy.io import loadmat, savemat
from scipy.io.matlab import matfile_version

from physioaffect.datasets import DatasetError, open_dataset
from physioaffect.datasets.fixtures import (
    faced_subject_arrays,
    thu_ep_subject_arrays,
    write_faced,
    write_mat73,
    write_thu_ep,
)
from physioaffect.datasets.labels import make_labels
from physioaffect.datasets.safe_pickle import dump_numpy1

CHANNELS = ("Fp1 Fp2 Fz F3 F4 F7 F8 FC1 FC2 FC5 FC6 Cz C3 C4 T7 T8 A1 A2 CP1 CP2 CP5 CP6 Pz P3 "
            "P4 P7 P8 PO3 PO4 Oz O1 O2").split()


@pytest.fixture(scope="module")
def faced_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("faced") / "FACED"
    write_faced(d, n_subjects=3, seconds=2, n_trials=6, seed=5)
    (d / "Processed_data" / ".DS_Store").write_bytes(b"junk")
    return d


@pytest.fixture(scope="module")
def thu_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("thu") / "THU-EP"
    write_thu_ep(d, n_subjects=3, seconds=2, n_trials=5, seed=5)
    return d


def test_faced_reads_back_values_and_joins_ratings_through_vid(faced_dir) -> None:
    r = open_dataset("faced", faced_dir)
    assert r.subjects == ["sub000", "sub001", "sub002"] and not r.has_baseline
    shuffled = 0
    for i, s in enumerate(r.subjects):
        ref = faced_subject_arrays(i, n_trials=6, seconds=2, seed=5)
        rec = r.read_subject(s)
        assert [t.stimulus for t in rec.trials] == [f"video{k:02d}" for k in range(1, 7)]
        for k, tr in enumerate(rec.trials):
            assert tr.sfreq == 250.0 and tr.ch_names == CHANNELS and tr.eeg.shape == (32, 500)
            np.testing.assert_array_equal(tr.eeg, ref["data"][k])
            assert [tr.ratings[n] for n in r.rating_names] == ref["scores"][k].tolist()
        assert rec.info["presentation_order"] == ref["vids"].tolist()
        shuffled += ref["vids"].tolist() != list(range(1, 7))
    assert shuffled  # a positional join of ratings would have failed on these subjects


def test_faced_files_are_what_emts_loader_and_plain_pickle_read(faced_dir) -> None:
    ref = faced_subject_arrays(1, n_trials=6, seconds=2, seed=5)
    raw = (faced_dir / "Processed_data" / "sub001.pkl").read_bytes()
    assert raw[:2] == b"\x80\x04"  # protocol 4, as pickle.dump of Python 3.8+ writes
    names = [arg for op, arg, _ in pickletools.genops(raw) if op.name == "SHORT_BINUNICODE"]
    assert "numpy.core.multiarray" in names  # numpy-1 name, as written before numpy 2
    np.testing.assert_array_equal(pickle.loads(raw), ref["data"])
    mat = loadmat(faced_dir / "Rating" / "sub001" / "After_remarks.mat")
    remark = mat["After_remark"]
    assert remark.shape == (6, 1)
    assert remark.dtype.names == ("score", "trial", "vid", "Accuracy", "ResponseTime")
    for i in range(6):  # EmT: np.squeeze(after_remark[i, 0]['score'])[8]; FACED: [vid][0][2]
        vid = int(remark[i][0][2].item())
        assert vid == ref["vids"][i]
        assert np.squeeze(remark[i, 0]["score"])[8] == ref["scores"][vid - 1, 8]


def test_thu_ep_reads_back_values(thu_dir) -> None:
    r = open_dataset("thu-ep", thu_dir)
    assert r.subjects == ["sub_1", "sub_2", "sub_3"]
    rec = r.read_subject("sub_2")
    ref = thu_ep_subject_arrays(2, n_trials=5, seconds=2, seed=5)
    assert len(rec.trials) == 5
    for k, tr in enumerate(rec.trials):
        assert tr.ch_names == CHANNELS and tr.sfreq == 250.0 and tr.stimulus == f"video{k + 1:02d}"
        np.testing.assert_array_equal(tr.eeg, ref["data"][:, :, k, 5].T)  # broadband band 5
        assert [tr.ratings[n] for n in r.rating_names] == ref["ratings"][:, k].tolist()
        assert tr.ratings["arousal"] == ref["ratings"][8, k]


def test_thu_ep_files_are_matlab_v73_as_emt_reads_them(thu_dir) -> None:
    eeg, rat = thu_dir / "EEG data" / "sub_3.mat", thu_dir / "Ratings" / "ratings.mat"
    assert matfile_version(eeg) == (2, 0) and matfile_version(rat) == (2, 0)
    with pytest.raises(NotImplementedError, match="v7.3"):
        loadmat(rat)  # scipy sees a v7.3 file and sends you to h5py
    assert eeg.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(eeg) as f:  # EmT: dict(f.items())['data'][:, :, :, 5]
        assert f.userblock_size == 512 and f["data"].attrs["MATLAB_class"] == b"double"
        data = np.array(f["data"])[:, :, :, 5]
    with h5py.File(rat) as f:
        ratings = np.array(f["ratings"])
    ref = thu_ep_subject_arrays(3, n_trials=5, seconds=2, seed=5)
    np.testing.assert_array_equal(data, ref["data"][..., 5])
    assert ratings.shape == (12, 5, 3)
    np.testing.assert_array_equal(ratings[:, :, 2], ref["ratings"])


def test_emt_label_rule() -> None:
    meta = pd.DataFrame({"subject": "s", "session": 1, "trial": range(6),
                         "arousal": [0.0, 3.0, 3.5, 4.0, 7.0, np.nan]})
    y, keep, rep = make_labels(meta, "emt_gt3", "arousal")
    assert y.tolist() == [0, 0, 1, 1, 1] and rep["dropped_nan"] == 1
    with pytest.raises(DatasetError, match=r"\[0, 7\]"):
        make_labels(meta.assign(arousal=9.0), "emt_gt3", "arousal")


# ------------------------------------------------------------------------------- bad input
def _one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg, (p, msg)


def _faced(tmp_path, n=2):
    d = tmp_path / "FACED"
    write_faced(d, n_subjects=n, seconds=1, n_trials=3, seed=0)
    return d


def test_faced_missing_rating_file(tmp_path) -> None:
    d = _faced(tmp_path)
    (d / "Rating" / "sub001" / "After_remarks.mat").unlink()
    with pytest.raises(DatasetError) as e:
        open_dataset("faced", d)
    _one_line(e, "Rating/sub001/After_remarks.mat", "missing")
    # FACED's own layout (Data/subNNN/) is found as well.
    (d / "Data" / "sub001").mkdir(parents=True)
    (d / "Rating" / "sub000" / "After_remarks.mat").rename(d / "Data" / "sub001" / "After_remarks.mat")
    (d / "Data" / "sub000").mkdir()
    write_faced(tmp_path / "other", n_subjects=1, seconds=1, n_trials=3, seed=0)
    (tmp_path / "other" / "Rating" / "sub000" / "After_remarks.mat").rename(
        d / "Data" / "sub000" / "After_remarks.mat")
    assert open_dataset("faced", d).subjects == ["sub000", "sub001"]


def test_faced_wrong_array_shape_and_bad_scores(tmp_path) -> None:
    d = _faced(tmp_path)
    with open(d / "Processed_data" / "sub001.pkl", "wb") as f:
        dump_numpy1(np.zeros((3, 31, 250)), f)
    r = open_dataset("faced", d)  # cheap checks pass: it is a complete pickle
    with pytest.raises(DatasetError) as e:
        r.read_subject("sub001")
    _one_line(e, "sub001.pkl", "32 channels", "(3, 31, 250)")
    remark = loadmat(d / "Rating" / "sub000" / "After_remarks.mat")["After_remark"]
    remark[1, 0]["score"] = np.zeros((1, 11))
    savemat(d / "Rating" / "sub000" / "After_remarks.mat", {"After_remark": remark})
    with pytest.raises(DatasetError) as e:
        r.read_subject("sub000")
    _one_line(e, "sub000/After_remarks.mat", "After_remark(2).score", "11 values")
    remark[1, 0]["score"], remark[1, 0]["vid"] = np.zeros((1, 12)), remark[0, 0]["vid"]
    savemat(d / "Rating" / "sub000" / "After_remarks.mat", {"After_remark": remark})
    with pytest.raises(DatasetError) as e:
        r.read_subject("sub000")
    _one_line(e, "sub000/After_remarks.mat", "'vid' repeats")


def test_faced_truncated_pickle_and_gap(tmp_path) -> None:
    d = _faced(tmp_path, 3)
    p = d / "Processed_data" / "sub001.pkl"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DatasetError) as e:
        open_dataset("faced", d)
    _one_line(e, "sub001.pkl", "truncated")
    p.unlink()
    with pytest.raises(DatasetError) as e:
        open_dataset("faced", d)
    _one_line(e, "missing subject file(s) sub001.pkl")


def _thu(tmp_path):
    d = tmp_path / "THU"
    write_thu_ep(d, n_subjects=2, seconds=1, n_trials=3, seed=0)
    return d


def test_thu_ep_v73_header_without_hdf5(tmp_path) -> None:
    d = _thu(tmp_path)
    p = d / "EEG data" / "sub_2.mat"
    p.write_bytes(p.read_bytes()[:128] + b"\x00" * 2000)  # MATLAB v7.3 header, no HDF5 inside
    with pytest.raises(DatasetError) as e:
        open_dataset("thu-ep", d)
    _one_line(e, "sub_2.mat", "v7.3", "HDF5")


def test_thu_ep_missing_ratings_wrong_shape_and_v5_file(tmp_path) -> None:
    d = _thu(tmp_path)
    rat = d / "Ratings" / "ratings.mat"
    saved = rat.read_bytes()
    rat.unlink()
    with pytest.raises(DatasetError) as e:
        open_dataset("thu-ep", d)
    _one_line(e, "Ratings/ratings.mat", "missing")
    write_mat73(rat, {"ratings": np.zeros((11, 3, 2))})
    with pytest.raises(DatasetError) as e:
        open_dataset("thu-ep", d)
    _one_line(e, "ratings.mat", "'ratings'", "(11, 3, 2)")
    write_mat73(rat, {"scores": np.zeros((12, 3, 2))})
    with pytest.raises(DatasetError) as e:
        open_dataset("thu-ep", d)
    _one_line(e, "ratings.mat", "no variable 'ratings'", "scores")
    rat.write_bytes(saved)
    write_mat73(d / "EEG data" / "sub_1.mat", {"data": np.zeros((250, 31, 3, 6))})
    with pytest.raises(DatasetError) as e:
        open_dataset("thu-ep", d)
    _one_line(e, "sub_1.mat", "'data'", "(250, 31, 3, 6)", "32 channels")
    savemat(d / "EEG data" / "sub_1.mat", {"data": np.zeros((6, 3, 31, 250))})
    with pytest.raises(DatasetError) as e:
        open_dataset("thu-ep", d)
    _one_line(e, "sub_1.mat", "v5/v7", "v7.3")


def test_cli_fake_and_info(tmp_path) -> None:
    faced, thu = tmp_path / "F", tmp_path / "T"
    for name, out in (("faced", faced), ("thu-ep", thu)):
        run = subprocess.run(cli("datasets", "fake", name, str(out), "--subjects", "2",
                                 "--seconds", "1", "--trials", "3"), capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (faced / "Processed_data").iterdir()) == ["sub000.pkl",
                                                                            "sub001.pkl"]
    assert (thu / "Ratings" / "ratings.mat").is_file()
    info = subprocess.run(cli("datasets", "info", "thu-ep", "--root", str(thu), "--deep"),
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert "thu-ep: 2 subjects (sub_1, sub_2)" in info.stdout and "250 Hz" in info.stdout
