"""``--modalities face`` end to end on a tiny DEAP fixture whose face CSVs carry a planted
valence signal: face-only baselines find it, the fused network trains with the face branch
masked where a subject has no face data, and a saved checkpoint reproduces the run's
predictions from the same inputs (with face features and without).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from physioaffect.datasets.fixtures import deap_subject_arrays, write_deap
from physioaffect.streams.face_layout import FEATURE_LABELS
from physioaffect.training import TrainConfig, build_inputs, load_checkpoint, predict, train
from physioaffect.training.data import prepare_data

N_SUBJECTS, N_TRIALS, SECONDS, SEED = 4, 8, 8.0, 2
TINY = dict(windows={"window_s": 4.0},
            inputs={"graphs": {"sub_window_s": 2.0, "sub_overlap": 0.5}},
            optim={"batch_size": 16, "epochs": 2, "patience": 0}, compute={"threads": 1},
            seed=3, channels=["Fp1", "F3", "O1", "Fp2", "F4", "O2"],
            model_kwargs={"n_layers": 1, "K": 2, "heads": 2, "dim_head": 8})


@pytest.fixture(scope="module")
def deap(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("deap_face_train")
    data = write_deap(root / "data", N_SUBJECTS, SECONDS, N_TRIALS, seed=SEED)
    face = root / "face"
    face.mkdir()
    rng = np.random.default_rng(0)
    fps = 10
    t = np.arange(int(SECONDS * fps)) / fps
    for s in range(1, N_SUBJECTS):  # the last subject has no face data
        valence = deap_subject_arrays(s, N_TRIALS, SECONDS, SEED)["labels"][:, 0]
        for k, v in enumerate(valence, start=1):
            table = pd.DataFrame(rng.normal(0.3, 0.02, (t.size, len(FEATURE_LABELS))),
                                 columns=list(FEATURE_LABELS))
            table.insert(0, "time", t)
            table["status"] = 0.0
            # smiling with valence (a clear step at the label threshold): the planted signal
            table["lip_corner_pull"] = 0.1 * (v > 5) + 0.01 * (v - 5) + rng.normal(0, 0.02, t.size)
            table.to_csv(face / f"s{s:02d}_video{k:02d}.csv", index=False)
    return {"data": data, "face": face, "root": root}


def _cfg(deap: dict, **kw) -> TrainConfig:
    base = dict(dataset="deap", root=str(deap["data"]), model="emt", protocol="loso",
                target="valence", face={"folder": str(deap["face"])},
                baselines=["majority", "logreg"],
                cache_dir=str(deap["root"] / "cache"), **TINY)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def fused_run(deap: dict) -> Path:
    return train(_cfg(deap, modalities=["eeg", "face"]), out=deap["root"] / "fused",
                 progress=False)


def test_face_only_baseline_finds_the_planted_signal(deap: dict) -> None:
    # no per-subject adaptation: the planted smile has no subject offsets to remove, and a
    # per-subject z-score would move each subject's threshold with its share of high ratings
    run = train(_cfg(deap, modalities=["face"], model="emt", adaptation={"method": "none"}),
                out=deap["root"] / "faceonly", progress=False)
    pred = pd.read_csv(run / "predictions.csv", dtype={"subject": str})
    with_face = pred[pred.subject != f"s{N_SUBJECTS:02d}"]
    acc = {m: float((g.y_true == g.y_pred).mean()) for m, g in with_face.groupby("model")}
    majority = acc["majority"]
    assert acc["logreg"] >= 0.85 and acc["logreg"] > majority + 0.2, acc
    info = json.loads((run / "data.json").read_text())
    assert "face_lip_corner_pull_mean" in info["face_features"]
    assert info["face_trials"] == (N_SUBJECTS - 1) * N_TRIALS
    assert info["face_windows"] == (N_SUBJECTS - 1) * N_TRIALS * 2  # 2 windows of 4 s per trial


def test_checkpoint_reproduces_fused_predictions_with_and_without_face(deap: dict,
                                                                       fused_run: Path) -> None:
    from physioaffect.training.checkpoint import fit_adaptation

    cfg = _cfg(deap, modalities=["eeg", "face"]).resolve()
    data = prepare_data(cfg)
    pred = pd.read_csv(fused_run / "predictions.csv", dtype={"subject": str})
    folds = {f["test_subjects"][0]: f["name"]
             for f in json.loads((fused_run / "folds.json").read_text())}
    for subject, has_face in (("s01", True), (f"s{N_SUBJECTS:02d}", False)):
        folder = fused_run / "folds" / folds[subject]
        model, contract = load_checkpoint(folder / "checkpoint")
        assert contract.modalities == ("eeg", "face")
        rows = np.flatnonzero(data.meta["subject"].astype(str).to_numpy() == subject)
        # the subject's own unlabelled windows give its adaptation, as in training
        adapt = fit_adaptation(contract, data.raw[rows], face=data.face[rows])
        inputs = build_inputs(contract, data.raw[rows], face=data.face[rows], adaptation=adapt)
        assert bool(inputs["face_present"].all()) is has_face
        prob = predict(model, contract, inputs)
        saved = pred[(pred.model == contract.label) & (pred.subject == subject)
                     & (pred.protocol == "session")]  # each subject adapted on all its windows
        saved = saved.sort_values(["trial", "onset_s"])
        order = np.lexsort((data.meta["onset_s"].to_numpy()[rows],
                            data.meta["trial"].to_numpy()[rows]))
        assert np.allclose(prob[order][:, 1], saved["score_1"].to_numpy(), atol=1e-5)
        if not has_face:  # a subject without face data: same as giving no face at all
            same = predict(model, contract, build_inputs(contract, data.raw[rows], face=None,
                                                         adaptation=adapt))
            assert np.allclose(same, prob, atol=1e-6)
        else:  # with face data the face branch is used: removing it changes the output
            without = predict(model, contract, build_inputs(contract, data.raw[rows],
                                                            face=None, adaptation=adapt))
            assert not np.allclose(without, prob, atol=1e-4)


def test_face_modality_needs_face_data(deap: dict, tmp_path: Path) -> None:
    from physioaffect.training import TrainingError

    with pytest.raises(TrainingError, match="--face FOLDER"):
        TrainConfig(dataset="deap", root=str(deap["data"]), modalities=["face"]).resolve()
    empty_subjects = tmp_path / "other"
    empty_subjects.mkdir()
    (empty_subjects / "s01_video40.csv").write_text((deap["face"] / "s01_video01.csv").read_text())
    cfg = _cfg(deap, modalities=["face"], face={"folder": str(empty_subjects)},
               cache_dir=str(tmp_path / "cache"))
    with pytest.raises(TrainingError, match="no trial of deap has face data"):
        train(cfg, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before a run folder was made


def test_simulated_faces_carry_the_ground_truth_affect(tmp_path: Path) -> None:
    """``--dataset sim --modalities face``: the simulator records a Face stream, the sessions
    reader turns it into trial face tracks, and face-only models find the planted arousal."""
    from physioaffect.datasets import open_dataset

    cfg = TrainConfig(dataset="sim", root=str(tmp_path / "sim"), model="emt", protocol="loso",
                      target="arousal", modalities=["face"],
                      sim={"subjects": 6, "n_trials": 8, "stimulus_seconds": 12.0,
                           "eeg_channels": 14, "rate": 128, "seed": 3},
                      baselines=["majority", "logreg"], cache_dir=str(tmp_path / "cache"),
                      **{**{k: v for k, v in TINY.items() if k not in ("channels",)},
                         "optim": {**TINY["optim"], "epochs": 4}})
    run = train(cfg, out=tmp_path / "run", progress=False)
    tr = open_dataset("sim", tmp_path / "sim").read_subject("01").trials[0]
    assert tr.face is not None and tr.face.source.endswith("sim-Face")
    # the track spans the baseline before the onset to the offset, at 30 frames/s
    assert tr.face.times[0] == pytest.approx(-3.0, abs=1 / 30)
    assert tr.face.times[-1] == pytest.approx(12.0, abs=2 / 30)
    assert np.allclose(np.diff(tr.face.times), 1 / 30, atol=1e-6)
    pred = pd.read_csv(run / "predictions.csv")
    acc = {m: float((g.y_true == g.y_pred).mean()) for m, g in pred.groupby("model")}
    assert acc["majority"] <= 0.6
    assert acc["logreg"] >= 0.7 and acc["emt[face]"] >= 0.7, acc


def test_evaluate_face_checkpoint_with_and_without_the_face_folder(deap: dict,
                                                                   fused_run: Path) -> None:
    from physioaffect.training import evaluate

    folds = {f["test_subjects"][0]: f["name"]
             for f in json.loads((fused_run / "folds.json").read_text())}
    ckpt = fused_run / "folds" / folds["s01"]
    saved = pd.read_csv(fused_run / "predictions.csv", dtype={"subject": str})
    saved = saved[(saved.model == "emt[eeg+face]") & (saved.subject == "s01")
                  & (saved.protocol == "session")]
    key = ["trial", "onset_s"]
    cache = str(deap["root"] / "cache")
    with_face = evaluate(ckpt, "deap", deap["data"], deap["root"] / "ev_face", cache_dir=cache,
                         face=deap["face"])
    got = pd.read_csv(with_face / "predictions.csv", dtype={"subject": str})
    got = got[(got.subject == "s01") & (got.model == "emt[eeg+face]")
              & (got.protocol == "session")].merge(saved, on=key, suffixes=("", "_run"))
    assert len(got) == len(saved) > 0
    assert np.allclose(got["score_1"], got["score_1_run"], atol=1e-5)  # same inputs, same output
    masked = evaluate(ckpt, "deap", deap["data"], deap["root"] / "ev_noface", cache_dir=cache)
    other = pd.read_csv(masked / "predictions.csv", dtype={"subject": str})
    other = other[(other.subject == "s01") & (other.model == "emt[eeg+face]")
                  & (other.protocol == "session")].merge(saved, on=key, suffixes=("", "_run"))
    assert not np.allclose(other["score_1"], other["score_1_run"], atol=1e-4)
