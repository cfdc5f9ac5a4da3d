"""Readers on fixtures written in the exact on-disk formats, checked against what was written.

The fixture writers are deterministic, so each test regenerates the arrays the writer wrote
(``deap_subject_arrays`` etc.) and compares the reader's output element by element. Other
libraries' loaders (plain ``pickle`` with latin1 as TorchEEG does, ``scipy.io.loadmat`` indexed
the way TorchEEG indexes DREAMER/SEED) read the same files unchanged.
"""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pytest
from scipy.io import loadmat

from physioaffect.datasets import open_dataset
from physioaffect.datasets.fixtures import (
    SEED_LABELS,
    SEED_PREFIXES,
    deap_subject_arrays,
    dreamer_subject_arrays,
    seed_session_arrays,
    seed_trial_samples,
    write_deap,
    write_dreamer,
    write_seed,
)
from physioaffect.datasets.montages import DEAP32, DREAMER14, SEED62

DEAP_GENEVA = ("Fp1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 Oz Pz Fp2 AF4 Fz F4 F8 FC6 FC2 "
               "Cz C4 T8 CP6 CP2 P4 P8 PO4 O2").split()


@pytest.fixture(scope="module")
def deap_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("deap") / "data_preprocessed_python"
    write_deap(d, n_subjects=3, seconds=4, n_trials=5, seed=7)
    (d / ".DS_Store").write_bytes(b"\x00\x01junk")
    (d / "README").write_text("stray file")
    return d


def test_deap_reader_matches_written_arrays(deap_dir):
    r = open_dataset("deap", deap_dir)
    assert r.subjects == ["s01", "s02", "s03"]
    rec = r.read_subject("s02")
    ref = deap_subject_arrays(2, n_trials=5, seconds=4, seed=7)
    assert len(rec.trials) == 5
    for k, tr in enumerate(rec.trials):
        assert tr.trial == k + 1 and tr.stimulus == f"video{k + 1:02d}"
        assert tr.sfreq == 128.0
        assert tr.ch_names == DEAP_GENEVA
        assert tr.eeg.shape == (32, 4 * 128) and tr.baseline.shape == (32, 384)
        np.testing.assert_array_equal(tr.eeg, ref["data"][k, :32, 384:])
        np.testing.assert_array_equal(tr.baseline, ref["data"][k, :32, :384])
        np.testing.assert_array_equal(tr.peripheral["GSR"].data[0], ref["data"][k, 36, 384:])
        np.testing.assert_array_equal(tr.peripheral["TEMP"].data[0], ref["data"][k, 39, 384:])
        assert tr.peripheral["EOG"].ch_names == ["hEOG", "vEOG"]
        assert tr.ratings == {n: ref["labels"][k, i] for i, n in
                              enumerate(("valence", "arousal", "dominance", "liking"))}


def test_deap_fixture_is_a_python2_pickle_read_by_plain_pickle(deap_dir):
    raw = (deap_dir / "s01.dat").read_bytes()
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    # Python 2 cPickle protocol 2: byte strings as BINSTRING, no Python-3-only opcodes.
    assert raw[:2] == b"\x80\x02"
    assert "BINSTRING" in ops and not ops & {"BINBYTES", "SHORT_BINBYTES", "BINUNICODE", "FRAME"}
    globals_ = [a for op, a, _ in pickletools.genops(raw) if op.name == "GLOBAL"]
    assert "numpy.core.multiarray _reconstruct" in globals_
    # TorchEEG's DEAPDataset: pickle.load(f, encoding="iso-8859-1").
    with open(deap_dir / "s01.dat", "rb") as f:
        d = pickle.load(f, encoding="iso-8859-1")
    ref = deap_subject_arrays(1, n_trials=5, seconds=4, seed=7)
    assert set(d) == {"data", "labels"}
    assert d["data"].dtype == np.float64 and d["data"].shape == (5, 40, 7 * 128)
    np.testing.assert_array_equal(d["data"], ref["data"])
    np.testing.assert_array_equal(d["labels"], ref["labels"])
    assert ((d["labels"] >= 1) & (d["labels"] <= 9)).all()


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    # 11 subjects and 11 trials: "10_..." sorts before "2_..." and "eeg10" before "eeg2" as text.
    d = tmp_path_factory.mktemp("seed") / "Preprocessed_EEG"
    write_seed(d, n_subjects=11, seconds=0.3, n_sessions=2, n_trials=11, seed=3)
    (d / "Thumbs.db").write_bytes(b"junk")
    (d / "notes.mat.bak").write_text("stray")
    return d


def test_seed_subjects_by_number_and_trials_by_suffix(seed_dir):
    r = open_dataset("seed", seed_dir)
    assert r.subjects == [str(i) for i in range(1, 12)]
    rec = r.read_subject("10")
    assert [t.trial for t in rec.trials] == list(range(1, 12)) * 2
    assert [t.session for t in rec.trials] == [1] * 11 + [2] * 11
    lengths = seed_trial_samples(0.3)
    for sess in (1, 2):
        ref = seed_session_arrays(10, sess, seconds=0.3, n_trials=11, seed=3)
        for tr in [t for t in rec.trials if t.session == sess]:
            k = tr.trial
            np.testing.assert_array_equal(tr.eeg, ref[f"{SEED_PREFIXES[9]}_eeg{k}"])
            assert tr.eeg.shape == (62, lengths[k - 1])
            assert tr.ratings == {"emotion": float(SEED_LABELS[k - 1])}
            assert tr.stimulus == f"clip{k:02d}" and tr.sfreq == 200.0
            assert tr.ch_names == list(SEED62) and tr.ch_names[:3] == ["FP1", "FPZ", "FP2"]
            assert tr.baseline is None


def test_seed_fixture_read_by_scipy_like_torcheeg(seed_dir):
    files = sorted(p.name for p in seed_dir.glob("3_*.mat"))
    mat = loadmat(seed_dir / files[0], verify_compressed_data_integrity=False)
    keys = [k for k in mat if "eeg" in k]
    assert sorted(keys, key=lambda k: int(k.split("eeg")[1])) == [f"jj_eeg{k}" for k in range(1, 12)]
    assert all(mat[k].shape[0] == 62 and mat[k].dtype == np.float64 for k in keys)
    labels = loadmat(seed_dir / "label.mat")["label"]
    assert labels.shape == (1, 15)
    np.testing.assert_array_equal(labels[0], SEED_LABELS)
    assert (seed_dir / "readme.txt").is_file()


@pytest.fixture(scope="module")
def dreamer_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dreamer")
    write_dreamer(d, n_subjects=3, seconds=2, n_trials=4, baseline_seconds=3, seed=5)
    return d


def test_dreamer_reader_matches_written_arrays(dreamer_dir):
    r = open_dataset("dreamer", dreamer_dir)
    assert r.subjects == ["1", "2", "3"]
    rec = r.read_subject("2")
    ref = dreamer_subject_arrays(2, seconds=2, n_trials=4, baseline_seconds=3, seed=5)
    assert rec.info == {"age": ref["age"], "gender": ref["gender"]}
    for k, tr in enumerate(rec.trials):
        assert tr.sfreq == 128.0 and tr.ch_names == list(DREAMER14)
        np.testing.assert_array_equal(tr.eeg, ref["eeg_stimuli"][k].T)
        np.testing.assert_array_equal(tr.baseline, ref["eeg_baseline"][k].T)
        ecg = tr.peripheral["ECG"]
        assert ecg.sfreq == 256.0 and ecg.data.shape == (2, 2 * tr.eeg.shape[1])
        np.testing.assert_array_equal(ecg.data, ref["ecg_stimuli"][k].T)
        assert tr.ratings == {"valence": ref["valence"][k], "arousal": ref["arousal"][k],
                              "dominance": ref["dominance"][k]}


def test_dreamer_fixture_nesting_as_torcheeg_reads_it(dreamer_dir):
    # Indexing copied from how TorchEEG's DREAMERDataset walks the struct (default loadmat).
    m = loadmat(dreamer_dir / "DREAMER.mat", verify_compressed_data_integrity=False)
    top = m["DREAMER"][0, 0]
    assert {"Data", "EEG_SamplingRate", "ECG_SamplingRate", "EEG_Electrodes", "noOfSubjects",
            "noOfVideoSequences", "Disclaimer", "Provider", "Version",
            "Acknowledgement"} <= set(top.dtype.names)
    assert top["Data"].shape == (1, 3)
    assert [str(e[0]) for e in top["EEG_Electrodes"][0]] == list(DREAMER14)
    assert top["EEG_SamplingRate"][0, 0] == 128 and top["ECG_SamplingRate"][0, 0] == 256
    subj = top["Data"][0, 1]
    stim = subj["EEG"][0, 0]["stimuli"][0, 0]
    assert stim.shape == (4, 1) and stim[0, 0].shape[1] == 14
    assert subj["EEG"][0, 0]["baseline"][0, 0][2, 0].shape == (3 * 128, 14)
    assert subj["ECG"][0, 0]["baseline"][0, 0][2, 0].shape == (3 * 256, 2)
    v = subj["ScoreValence"][0, 0]
    assert v.shape == (4, 1) and np.issubdtype(v.dtype, np.integer)
    assert ((v >= 1) & (v <= 5)).all()


def test_sessions_reader_on_simulator_sessions(tmp_path):
    from physioaffect.datasets.sessions import write_sim_sessions
    from physioaffect.sources.sim import SimConfig, simulate_subject

    write_sim_sessions(tmp_path, n_subjects=2, seconds=3, n_trials=4, rest_seconds=4, seed=2)
    r = open_dataset("sessions", tmp_path)
    assert r.subjects == ["01", "02"]
    rec = r.read_subject("02")
    sim = simulate_subject(SimConfig(subjects=2, eeg_channels=32, rate=128, seed=2, n_trials=4,
                                     stimulus_seconds=3, rest_seconds=4, baseline_seconds=4),
                           subject=1)
    assert len(rec.trials) == len(sim.trials) == 4
    _, ts, x = sim.signals["EEG"]
    for tr, st in zip(rec.trials, sim.trials, strict=True):
        assert tr.ratings["valence"] == st["valence"] and tr.ratings["arousal"] == st["arousal"]
        assert tr.stimulus == str(st["stimulus"])
        i0 = np.searchsorted(ts, st["onset"])
        assert tr.eeg.shape == (32, 3 * 128)
        np.testing.assert_allclose(tr.eeg, x[i0:i0 + 384].T, rtol=0, atol=0)
        assert tr.baseline.shape == (32, 384)
        assert set(tr.peripheral) == {"ECG", "GSR", "PPG", "RESP"}
    assert rec.trials[0].ch_names == list(DEAP32)


TORCHEEG_PY = __import__("pathlib").Path(
    __import__("os").environ.get("PA_TORCHEEG_VENV", "/tmp/pa_tgvenv")) / "bin" / "python"


@pytest.mark.skipif(not TORCHEEG_PY.exists(),
                    reason="TorchEEG 1.1.3 venv absent (built by benchmarks/bench_datasets.py)")
def test_torcheeg_deapdataset_reads_the_fixture_and_agrees(tmp_path):
    import json
    import subprocess

    from physioaffect.datasets.windows import WindowConfig, subject_windows

    root = tmp_path / "data_preprocessed_python"
    write_deap(root, n_subjects=1, seconds=2, n_trials=2, seed=4)
    script = (
        "import sys, json, numpy as np\n"
        "from torcheeg.datasets import DEAPDataset\n"
        "from torcheeg import transforms\n"
        "ds = DEAPDataset(root_path=sys.argv[1], io_path=sys.argv[2], num_worker=0, verbose=False,\n"
        "    offline_transform=transforms.BandDifferentialEntropy(apply_to_baseline=True))\n"
        "info = ds.info\n"
        "eeg = [ds.read_eeg(str(r), str(c)).tolist() for r, c in zip(info['_record_id'], info['clip_id'])]\n"
        "print(json.dumps({'trial': info['trial_id'].tolist(), 'start': info['start_at'].tolist(),\n"
        "                  'valence': info['valence'].tolist(), 'eeg': eeg}))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(TORCHEEG_PY), "-c", script, str(root), str(tmp_path / "io")],
                         capture_output=True, text=True, timeout=200, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    tg = json.loads(out.stdout.strip().splitlines()[-1])
    ws = subject_windows(open_dataset("deap", root).read_subject("s01"),
                         WindowConfig.torcheeg_compat())
    assert len(tg["eeg"]) == len(ws.X) == 4
    for t, s, v, e in zip(tg["trial"], tg["start"], tg["valence"], tg["eeg"], strict=True):
        i = np.flatnonzero((ws.meta["trial"] == t + 1) & (ws.meta["onset_s"] == (s - 384) / 128))
        assert i.size == 1
        assert ws.meta["valence"][i[0]] == v
        # Same operations; other numpy/scipy versions in TorchEEG's venv: equal to ~1 ulp.
        np.testing.assert_allclose(ws.X[i[0]], np.array(e), rtol=0, atol=1e-13)


def test_datasets_imports_go_one_way():
    """``base`` imports ``face``; ``face`` and the file helpers the readers use import only
    ``datasets.errors`` (they imported ``base`` before: an import circle)."""
    import ast
    from pathlib import Path

    import physioaffect.datasets as pkg

    folder = Path(pkg.__file__).parent
    for name in ("errors", "face", "safe_pickle", "matfile"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "physioaffect.datasets.base" not in imported, name
