"""Training end to end on tiny fixtures: SIGKILL + resume, reports recomputed from the saved
predictions with scikit-learn, checkpoints, evaluation on another dataset, and bad input refused
before training (serial vs Ray: tests/test_training_ray.py, on a three-node cluster).

Everything is tiny (4 simulated subjects, 8 trials of 12 s, 14 channels at 128 Hz, 4 s windows,
a two-layer EmT, 2 epochs) so that the whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from physioaffect.errors import PhysioAffectError
from physioaffect.sources.sim import SimConfig
from physioaffect.training import TrainConfig, TrainingError, compare_runs, train
from physioaffect.training.config import (
    ComputeSettings,
    OptimSettings,
    WindowSettings,
)

TINY = dict(sim=SimConfig(subjects=4, n_trials=8, stimulus_seconds=12.0, eeg_channels=14,
                         rate=128, seed=3, rest_seconds=10.0, baseline_seconds=10.0),
            windows=WindowSettings(window_s=4.0),
            inputs={"graphs": {"sub_window_s": 2.0, "sub_overlap": 0.5}},
            optim=OptimSettings(batch_size=16, epochs=2, patience=0),
            compute=ComputeSettings(threads=1), seed=3,
            # one network per fold (auto trains two); offline or online chosen per fold
            adaptation={"method": "subject_zscore"},
            model_kwargs={"n_layers": 1, "K": 2, "heads": 2, "dim_head": 8})


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("training")


@pytest.fixture(scope="module")
def cfg(work: Path) -> TrainConfig:
    return TrainConfig(dataset="sim", root=str(work / "sim4"), model="emt", protocol="loso",
                       target="arousal", cache_dir=str(work / "cache"), **TINY)


@pytest.fixture(scope="module")
def serial_run(cfg: TrainConfig, work: Path) -> Path:
    return train(cfg, out=work / "serial", progress=False)


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                          capture_output=True, text=True, timeout=120, **kw)


def _write_config(cfg: TrainConfig, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def test_report_numbers_recomputed_from_predictions(serial_run: Path) -> None:
    d = serial_run
    for name in ("config.yaml", "config.toml", "config.json", "report.md", "predictions.csv",
                 "metrics_folds.csv", "metrics_subjects.csv", "summary.json",
                 "figures/per_subject.png", "figures/confusion_emt.png",
                 "figures/learning_curves.png"):
        assert (d / name).is_file(), name
    assert json.loads((d / "status.json").read_text())["status"] == "complete"
    every = pd.read_csv(d / "predictions.csv", dtype={"subject": str})
    assert set(every["model"]) == {"emt", "majority", "logreg", "svm"}
    # whole session: 4 subjects x 8 trials x 3 windows of 4 s in 12 s, every window tested
    # exactly once per model
    session = every[every.protocol == "session"]
    assert (session.groupby("model").size() == 96).all()
    # live: the windows after each subject's first 60 s (5 of 8 trials of 12 s: 60 s end at
    # the 15th window, which calibrates) -> 9 windows per subject
    pred = every[every.protocol == "live"]
    assert (pred.groupby("model").size() == 4 * 9).all()
    assert (pred.groupby(["model", "subject"]).size() == 9).all()
    subj = pd.read_csv(d / "metrics_subjects.csv", dtype={"subject": str})
    subj = subj[subj.protocol == "live"]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["headline_protocol"] == "live"
    for model, g in pred.groupby("model"):
        accs = []
        for s, gs in g.groupby("subject"):
            row = subj[(subj.model == model) & (subj.subject == s)].iloc[0]
            acc = accuracy_score(gs.y_true, gs.y_pred)
            accs.append(acc)
            assert row["accuracy"] == pytest.approx(acc)
            assert row["balanced_accuracy"] == pytest.approx(
                balanced_accuracy_score(gs.y_true, gs.y_pred))
            assert row["macro_f1"] == pytest.approx(
                f1_score(gs.y_true, gs.y_pred, average="macro", labels=[0, 1], zero_division=0))
            if gs.y_true.nunique() == 2:
                assert row["auc"] == pytest.approx(roc_auc_score(gs.y_true, gs.score_1))
        s = summary["over_subjects"][model]["accuracy"]
        assert s["mean"] == pytest.approx(np.mean(accs))
        assert s["std"] == pytest.approx(np.std(accs))
    # the trivial baseline predicts the training-fold majority: one class per fold
    triv = pred[pred.model == "majority"]
    assert (triv.groupby("fold").y_pred.nunique() == 1).all()
    # mean ± std of the network is in the Markdown table
    m = summary["over_subjects"]["emt"]["accuracy"]
    assert f"{m['mean']:.3f} ± {m['std']:.3f}" in (d / "report.md").read_text()


def test_folds_leave_test_subject_out(serial_run: Path) -> None:
    folds = json.loads((serial_run / "folds.json").read_text())
    assert len(folds) == 4
    for f in folds:
        test = set(f["test_subjects"])
        assert not test & set(f["train_subjects"]) and not test & set(f["val_subjects"])
        assert len(f["val_subjects"]) == 1 and f["val_subjects"][0] not in f["train_subjects"]
        contract = json.loads((serial_run / "folds" / f["name"] / "checkpoint"
                               / "contract.json").read_text())
        assert contract["provenance"]["test_subjects"] == f["test_subjects"]


def test_checkpoint_reproduces_saved_predictions(serial_run: Path, cfg: TrainConfig) -> None:
    from physioaffect.preprocessing.pipeline import PipelineConfig
    from physioaffect.training import build_inputs, load_checkpoint, predict
    from physioaffect.training.checkpoint import fit_adaptation
    from physioaffect.training.data import prepare_data

    model, contract = load_checkpoint(serial_run / "folds" / "loso-02")
    pipe = contract.pipeline
    assert isinstance(pipe, PipelineConfig) and pipe.phase == "causal"
    assert contract.sfreq == 128 and contract.n_times == 512 and len(contract.channels) == 14
    assert contract.class_names == ("low", "high") and contract.input_kind == "graphs"
    assert contract.live_problems() == []
    data = prepare_data(cfg.resolve())
    test_subject = contract.provenance["test_subjects"][0]
    rows = np.flatnonzero(data.meta["subject"].astype(str) == test_subject)
    # trained with per-subject adaptation: the subject's own unlabelled windows give its
    # statistics, as in training (the whole-session score); without them it is refused
    assert contract.subject_adaptation["method"] == "subject_zscore"
    assert contract.subject_adaptation["transductive"] is True
    assert contract.subject_adaptation["chosen"]["variant"] in ("offline", "online")
    with pytest.raises(PhysioAffectError, match="fit_adaptation"):
        build_inputs(contract, data.raw[rows])
    adaptation = fit_adaptation(contract, data.raw[rows])
    prob = predict(model, contract, build_inputs(contract, data.raw[rows], adaptation=adaptation))
    saved = pd.read_csv(serial_run / "folds" / "loso-02" / "predictions.csv")
    saved = saved[(saved.model == "emt") & (saved.protocol == "session")]
    np.testing.assert_allclose(prob[:, 1], saved["score_1"].to_numpy(), atol=1e-5)


def test_sigkill_then_resume_equals_uninterrupted(serial_run: Path, cfg: TrainConfig,
                                                  work: Path) -> None:
    conf = _write_config(cfg, work / "resume.yaml")
    out = work / "killed"
    args = ["train", "--config", str(conf), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # The tiny run trains in milliseconds per epoch: the run pauses 1 s after each epoch
    # checkpoint so that the kill lands between two epochs of the second fold.
    proc = subprocess.Popen([sys.executable, "-m", "physioaffect.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**env, "PHYSIOAFFECT_EPOCH_PAUSE_S": "1.0"})
    # Kill mid-run: after the first fold finished and the second has an epoch checkpoint.
    state = out / "folds" / "loso-02" / "train_state.pt"
    t0 = time.time()
    while not state.exists() and proc.poll() is None and time.time() - t0 < 90:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), "run ended before it could be killed mid-fold"
    assert (out / "folds" / "loso-01" / "fold.json").exists()
    assert not (out / "folds" / "loso-02" / "fold.json").exists()
    import torch

    assert torch.load(state, weights_only=True)["epoch"] == 1  # killed after epoch 1 of 2
    assert json.loads((out / "status.json").read_text())["status"] == "running"
    assert not (out / "report.md").exists()
    with pytest.raises(TrainingError, match="no run has a report"):
        compare_runs([out])
    res = _cli(*args, "--resume", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
    a = pd.read_csv(serial_run / "predictions.csv")
    b = pd.read_csv(out / "predictions.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-6)
    side = compare_runs([serial_run, out], "accuracy")
    assert side.count("| complete |") == 8 and "INCOMPLETE" not in side

def test_bad_input_fails_before_training(cfg: TrainConfig, work: Path, serial_run: Path) -> None:
    root = cfg.root
    r = _cli("train", "--dataset", "sim", "--root", root, "--model", "resnet9000",
             "--protocol", "loso", "--target", "arousal", "--out", str(work / "bad1"))
    assert r.returncode == 2 and "model" in r.stderr and "resnet9000" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (work / "bad1").exists()
    r = _cli("train", "--config", str(_write_config(cfg, work / "bad.yaml")), "--target", "joy",
             "--out", str(work / "bad2"))
    assert r.returncode == 2 and "joy" in r.stderr and "arousal" in r.stderr
    assert not (work / "bad2" / "folds").exists()
    r = _cli("train", "--config", str(work / "bad.yaml"), "--out", str(serial_run))
    assert r.returncode == 2 and "exists" in r.stderr


def test_fold_without_a_class_is_refused(cfg: TrainConfig) -> None:
    from physioaffect.training.data import PreparedData
    from physioaffect.training.runner import plan_folds

    # Subjects A and B rated only high arousal, C only low: the LOSO fold testing C has no
    # low-arousal training window.
    rows = [(s, 1, t, "x", 0.0, a) for s, a in (("A", 8), ("B", 7), ("C", 2), ("D", 8))
            for t in range(1, 4)]
    meta = pd.DataFrame(rows, columns=["subject", "session", "trial", "stimulus", "onset_s",
                                       "arousal"])
    data = PreparedData(raw=np.zeros((len(meta), 2, 8), np.float32), meta=meta,
                        ch_names=["a", "b"], sfreq=128.0)
    with pytest.raises(TrainingError, match=r"fold loso-0\d: training windows have no class low "):
        plan_folds(cfg.resolve(), data)


def test_evaluate_transfer_and_incompatible_rate(serial_run: Path, work: Path) -> None:
    from physioaffect.datasets.fixtures import write_dreamer, write_seed

    # The simulator's 14 channels are DREAMER's: transfer works on the common channels.
    write_dreamer(work / "dreamer", n_subjects=2, seconds=8.0, n_trials=4, baseline_seconds=4.0)
    r = _cli("evaluate", str(serial_run), "--dataset", "dreamer", "--root",
             str(work / "dreamer"), "--out", str(work / "eval"))
    assert r.returncode == 0, r.stderr
    ev = json.loads((work / "eval" / "evaluation.json").read_text())
    assert ev["label_rule"] == "gt3" and len(ev["checkpoints"]) == 4
    pred = pd.read_csv(work / "eval" / "predictions.csv")
    one = ev["checkpoints"]["loso-01"]
    # DREAMER's fixture sessions (4 x 8 s) are shorter than the 60 s calibration: nothing is
    # left for the live protocol, and the headline says it is the whole-session score
    assert one["headline_protocol"] == "session"
    assert set(pred["model"]) == {"emt", "majority", "logreg"}
    g = pred[(pred.checkpoint == "loso-01") & (pred.model == "emt")
             & (pred.protocol == "session")]
    assert one["overall"]["accuracy"] == pytest.approx(
        accuracy_score(g.y_true, g.y_pred))
    # SEED is 62 channels at 200 Hz: refused before any window is prepared.
    write_seed(work / "seed", n_subjects=1, seconds=2.0, n_sessions=1, n_trials=15)
    r = _cli("evaluate", str(serial_run), "--dataset", "seed", "--root", str(work / "seed"),
             "--out", str(work / "eval2"), "--target", "emotion", "--label-rule", "seed3")
    assert r.returncode == 2 and "200 Hz" in r.stderr and "128 Hz" in r.stderr
    assert not (work / "eval2").exists()


def test_evaluate_names_the_subjects_a_checkpoint_was_trained_on(serial_run: Path,
                                                                 cfg: TrainConfig,
                                                                 work: Path) -> None:
    """Evaluating a run on its own training folder: every fold's training and validation
    subjects are named (in evaluation.json, the report and a warning), its own test subject is
    not; the report states the adaptation, the live and the whole-session scores and the
    baselines."""
    from physioaffect.training import evaluate

    out = evaluate(serial_run, "sim", cfg.root, work / "eval_same", cache_dir=cfg.cache_dir)
    ev = json.loads((out / "evaluation.json").read_text())
    folds = {f["name"]: f for f in json.loads((serial_run / "folds.json").read_text())}
    for name, f in folds.items():
        named = ev["trained_on_evaluated_subjects"][name]
        assert sorted(named) == sorted(f["train_subjects"] + f["val_subjects"])
        assert not set(named) & set(f["test_subjects"])
    report = (out / "report.md").read_text()
    assert "WARNING" in report and "not cross-subject" in report
    assert "subject_zscore" in report and "transductive" in report
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    assert {"majority", "logreg", "emt"} <= set(pred["model"])
    assert {"live", "session"} <= set(pred["protocol"])
    # the whole-session score is the one the run's own fold gives its test subject
    own = pd.read_csv(serial_run / "folds" / "loso-02" / "predictions.csv")
    own = own[(own.model == "emt") & (own.protocol == "session")]
    test = folds["loso-02"]["test_subjects"][0]
    mine = pred[(pred.checkpoint == "loso-02") & (pred.model == "emt")
                & (pred.protocol == "session") & (pred.subject == test)]
    np.testing.assert_allclose(np.sort(mine["score_1"]), np.sort(own["score_1"]), atol=1e-5)


def test_output_to_a_log_file_is_one_line_per_epoch(cfg: TrainConfig, work: Path) -> None:
    """Written to a pipe or a log file (not a terminal), ``train`` prints one plain line per
    epoch as it goes and says for each fold which epoch's weights it kept and why it stopped."""
    import re

    conf = _write_config(cfg, work / "log.yaml")
    r = _cli("train", "--config", str(conf), "--out", str(work / "logged"))
    assert r.returncode == 0, r.stderr
    epochs = re.findall(r"^fold (loso-0\d) epoch (\d)/2, train_loss [\d.]+, val_loss [\d.]+, "
                        r"val_accuracy [\d.]+, [\d.]+ s$", r.stdout, flags=re.M)
    assert epochs == [(f"loso-0{i}", str(e)) for i in range(1, 5) for e in (1, 2)]
    done = re.findall(r"^fold (loso-0\d) done: kept epoch (\d) of 2 \(all 2 epochs run\); "
                      r"adaptation (offline|online); live test accuracy: .*emt [\d.]+",
                      r.stdout, flags=re.M)
    assert [d[0] for d in done] == [f"loso-0{i}" for i in range(1, 5)], r.stdout
    report = (work / "logged" / "report.md").read_text()
    assert "## Training (network)" in report and "all 2 epochs run" in report
    assert "\x1b[" not in r.stdout  # no terminal escape codes in a log


def test_report_figures_name_what_they_show(serial_run: Path) -> None:
    """The report's figures, inspected as matplotlib objects: class names on the confusion
    matrix with legible text, one legend entry per fold and the kept epoch marked, a chance
    line and a legend beside (not over) the per-subject bars, labelled axes and titles."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from sklearn.metrics import confusion_matrix

    from physioaffect.training.report import report_figures

    figs = report_figures(serial_run)
    assert set(figs) == {"per_subject.png", "confusion_emt.png", "learning_curves.png"}
    for fig in figs.values():
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    pred = pd.read_csv(serial_run / "predictions.csv")

    # confusion matrix: class names (the rating rule's low/high), counts as sklearn counts them,
    # white text on the darkest cell, black on the lightest
    ax = figs["confusion_emt.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["low", "high"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["low", "high"]
    g = pred[(pred.model == "emt") & (pred.protocol == "live")]  # the headline's windows
    cm = confusion_matrix(g.y_true, g.y_pred, labels=[0, 1])
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert {k: int(t.get_text().split()[0]) for k, t in cells.items()} == \
        {(r, c): int(cm[r, c]) for r in range(2) for c in range(2)}
    darkest = np.unravel_index(cm.argmax(), cm.shape)
    assert to_rgb(cells[darkest].get_color()) == (1.0, 1.0, 1.0)
    if cm.min() < cm.max() / 3:
        lightest = np.unravel_index(cm.argmin(), cm.shape)
        assert to_rgb(cells[lightest].get_color()) == (0.0, 0.0, 0.0)
    assert figs["confusion_emt.png"].axes[1].get_ylabel() == "test windows"  # colour bar

    # learning curves: a legend entry per fold, loss name on y, the kept epoch of each fold
    fig = figs["learning_curves.png"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == \
        [f"loso-0{i}" for i in range(1, 5)] + ["kept epoch"]
    assert all("cross-entropy" in a.get_ylabel() and a.get_xlabel() == "epoch"
               for a in fig.axes)
    stars = [ln for ln in fig.axes[1].lines if ln.get_marker() == "*"]
    assert len(stars) == 4
    for i, star in enumerate(stars, start=1):
        fold = serial_run / "folds" / f"loso-0{i}"
        best = json.loads((fold / "fold.json").read_text())["best_epoch"]
        hist = pd.read_csv(fold / "history.csv").set_index("epoch")
        assert star.get_xdata()[0] == best
        assert star.get_ydata()[0] == pytest.approx(hist.loc[best, "val_loss"])

    # per-subject bars: the chance line at 1/2, every model in a legend outside the bars
    fig = figs["per_subject.png"]
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "chance (1/2)" in labels and {"emt", "logreg", "svm"} <= set(labels)
    assert any(np.allclose(ln.get_ydata(), 0.5) for ln in ax.lines)
    renderer = fig.canvas.get_renderer()
    legend_box = ax.get_legend().get_window_extent(renderer)
    assert legend_box.x0 >= ax.get_window_extent(renderer).x1  # beside the axes
    for f in figs.values():
        plt.close(f)
