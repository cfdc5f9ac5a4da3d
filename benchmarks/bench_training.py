"""Training benchmark: floors on a simulated 12-subject dataset, DEAP-sized GPU run, CPU memory.

Modes
-----
``floors`` (default)
    Writes a 12-subject simulator dataset (14 EEG channels at 128 Hz, 16 trials of 30 s), runs
    LOSO on arousal (rule gt5, balanced by design) for EmT, EEG-Deformer, EmT fused with
    peripheral features, and peripheral features alone, each with the trivial and classical
    baselines on the same folds, and prints the table. Floors: EmT and EEG-Deformer >= trivial +
    15 points (mean over test subjects); fused > EEG-only.
``deap-gpu``
    A DEAP-sized fixture (32 subjects x 40 trials x 60 s, 32 channels, 4 s windows) and a full
    LOSO of EEG-Deformer (reference size) on CUDA: wall time per fold and GPU utilisation
    sampled every 0.5 s during training (``torch.cuda.utilization``). Needs a GPU.
``memory``
    Peak resident memory of a DEAP-format run on CPU (data preparation + one fold), on a
    fixture of ``--subjects`` subjects; reported with the per-subject growth to extrapolate to 32.

Run: ``.venv/bin/python benchmarks/bench_training.py [--mode floors|deap-gpu|memory]``.
Results go to ``benchmarks/results/training.json`` (merged per mode).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "training.json"


def _save(key: str, value: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = value
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def _sim_study(work: Path, epochs: int, runs: dict, *, face: bool, tag: str) -> dict:
    """Train every run of ``runs`` (name -> TrainConfig fields) on 12 simulated subjects (LOSO
    arousal, the shared settings below) and collect their accuracies over test subjects."""
    from physioaffect.datasets.sessions import write_sim_sessions
    from physioaffect.training import TrainConfig, train

    root = work / f"sim12{tag}"
    if not root.exists():
        write_sim_sessions(root, n_subjects=12, seconds=30.0, n_trials=16, rate=128,
                           eeg_channels=14, seed=0, face=face)
    common = dict(dataset="sim", root=str(root), protocol="loso", target="arousal",
                  label_rule="gt5", window_s=4.0, epochs=epochs, patience=4, batch_size=64,
                  seed=0, cache_dir=str(work / f"cache{tag}"), graph_sub_window_s=2.0,
                  graph_sub_overlap=0.5, lr=1e-3, weight_decay=1e-4)
    out: dict = {"settings": {**common, "subjects": 12, "trials": 16, "trial_seconds": 30,
                              "channels": 14, "rate_hz": 128, "runs": runs}, "results": {}}
    for name, kw in runs.items():
        run_dir = work / f"runs{tag}" / name.replace("[", "_").replace("]", "").replace("+", "_")
        t0 = time.perf_counter()
        train(TrainConfig(**common, **kw), out=run_dir, resume=run_dir.exists(), progress=False)
        wall = time.perf_counter() - t0
        summ = json.loads((run_dir / "summary.json").read_text())["over_subjects"]
        data = json.loads((run_dir / "data.json").read_text())
        res = {m: {"accuracy": summ[m]["accuracy"]["mean"],
                   "accuracy_std": summ[m]["accuracy"]["std"],
                   "balanced_accuracy": summ[m]["balanced_accuracy"]["mean"],
                   "auc": summ[m]["auc"]["mean"]} for m in summ}
        out["results"][name] = {"wall_s": wall, "models": res, "windows": data["n_windows"],
                                "face_windows": data.get("face_windows")}
        print(f"{name}: {wall:.0f} s", flush=True)
        for m, r in res.items():
            print(f"   {m:24s} acc {r['accuracy']:.3f} ± {r['accuracy_std']:.3f}  "
                  f"bacc {r['balanced_accuracy']:.3f}  auc {r['auc']:.3f}", flush=True)
    return out


def floors(work: Path, epochs: int) -> dict:
    emt_kw = {"n_layers": 2, "K": 3, "heads": 4, "dim_head": 16, "dropout": 0.25}
    runs = {
        "emt": dict(model="emt", model_kwargs=emt_kw),
        "eeg_deformer": dict(model="eeg_deformer", model_kwargs={
            "depth": 2, "heads": 4, "dim_head": 8, "mlp_dim": 16, "n_kernels": 32,
            "dropout": 0.5}),
        "emt[eeg+peripheral]": dict(model="emt", modalities=["eeg", "peripheral"],
                                    model_kwargs={**emt_kw, "fusion": {"modality_dropout": 0.2}}),
        "emt[peripheral]": dict(model="emt", modalities=["peripheral"],
                                model_kwargs={"fusion": {"modality_dropout": 0.0}}),
    }
    out = _sim_study(work, epochs, runs, face=False, tag="")
    triv = out["results"]["emt"]["models"]["majority"]["accuracy"]
    acc = {n: r["models"][n]["accuracy"] for n, r in out["results"].items()}
    floors_ = {
        "trivial_accuracy": triv,
        "emt_minus_trivial": acc["emt"] - triv,
        "deformer_minus_trivial": acc["eeg_deformer"] - triv,
        "fused_minus_eeg_only": acc["emt[eeg+peripheral]"] - acc["emt"],
        "emt_floor_met": acc["emt"] - triv >= 0.15,
        "deformer_floor_met": acc["eeg_deformer"] - triv >= 0.15,
        "fusion_floor_met": acc["emt[eeg+peripheral]"] > acc["emt"],
    }
    out["floors"] = floors_
    print("\nLOSO arousal accuracy, mean over 12 test subjects")
    print(f"{'network':24s} {'network':>8s} {'trivial':>8s} {'logreg':>8s} {'svm':>8s}")
    for n, r in out["results"].items():
        m = r["models"]
        print(f"{n:24s} {m[n]['accuracy']:8.3f} {m['majority']['accuracy']:8.3f} "
              f"{m['logreg']['accuracy']:8.3f} {m['svm']['accuracy']:8.3f}")
    print(json.dumps(floors_, indent=2))
    return out


def face(work: Path, epochs: int) -> dict:
    """EEG-only, face-only and fused EEG + face on simulated subjects with simulated faces.

    The same settings as ``floors`` (12 subjects x 16 trials x 30 s, LOSO arousal), with the
    simulator's Face stream recorded. Facial measures leak into EEG in real recordings; here the
    comparison shows what each modality carries and that fusion is judged against face-only.
    """
    emt_kw = {"n_layers": 2, "K": 3, "heads": 4, "dim_head": 16, "dropout": 0.25}
    runs = {
        "emt": dict(model="emt", model_kwargs=emt_kw),
        "emt[face]": dict(model="emt", modalities=["face"],
                          model_kwargs={"fusion": {"modality_dropout": 0.0}}),
        "emt[eeg+face]": dict(model="emt", modalities=["eeg", "face"],
                              model_kwargs={**emt_kw, "fusion": {"modality_dropout": 0.2}}),
    }
    out = _sim_study(work, epochs, runs, face=True, tag="-face")
    out["settings"]["face_fps"] = 30
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory(work: Path, subjects: int) -> dict:
    from physioaffect.datasets.fixtures import write_deap
    from physioaffect.training import TrainConfig
    from physioaffect.training.data import prepare_data

    root = work / f"deap{subjects}"
    if not root.exists():
        write_deap(root, n_subjects=subjects, seconds=60.0, n_trials=40, seed=0)
    base = _rss_mb()
    cfg = TrainConfig(dataset="deap", root=str(root), model="eeg_deformer", protocol="loso",
                      target="arousal", window_s=4.0, cache_dir=str(work / "cache"),
                      baselines=["majority", "logreg"]).resolve()
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    prep_s = time.perf_counter() - t0
    after_prep = _rss_mb()
    raw_mb = data.raw.nbytes / 2**20
    # One fold of training (EEGNet, one epoch): normalised copies of the fold's windows.
    import dataclasses

    from physioaffect.training.runner import plan_folds, run_fold

    cfg1 = dataclasses.replace(cfg, model="eegnet", epochs=1)
    folds, y, _ = plan_folds(cfg1, data)
    t1 = time.perf_counter()
    import shutil

    run_dir = work / f"mem-run-{subjects}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a finished fold would be skipped, not measured
    run_fold(dataclasses.asdict(cfg1), folds[0], data, y, str(run_dir))
    fold_s = time.perf_counter() - t1
    after_fold = _rss_mb()
    res = {"subjects": subjects, "windows": len(data.meta), "raw_windows_mb": raw_mb,
           "peak_rss_mb_before": base, "peak_rss_mb_after_prepare": after_prep,
           "peak_rss_mb_after_one_fold": after_fold, "prepare_s": prep_s,
           "one_fold_one_epoch_eegnet_s": fold_s,
           "extrapolated_rss_mb_32_subjects": base + (after_fold - base) * 32 / subjects,
           "note": "peak RSS grows with the windows held in memory; extrapolated linearly "
                   "in subjects from this fixture"}
    print(json.dumps(res, indent=2))
    return res


def deap_gpu(work: Path, epochs: int) -> dict:
    import torch

    if not torch.cuda.is_available():
        print("deap-gpu: no CUDA device here; not measured")
        return {"measured": False, "reason": "no CUDA device on this machine"}
    from physioaffect.datasets.fixtures import write_deap
    from physioaffect.training import TrainConfig, train

    root = work / "deap32"
    if not root.exists():
        write_deap(root, n_subjects=32, seconds=60.0, n_trials=40, seed=0)
    samples: list[float] = []
    stop = threading.Event()

    def utilisation() -> float:
        try:
            return float(torch.cuda.utilization())
        except Exception:  # noqa: BLE001 - no pynvml: ask nvidia-smi
            import subprocess

            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=5).stdout
            return float(out.split()[0])

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append(utilisation())
            except Exception:  # noqa: BLE001 - neither pynvml nor nvidia-smi: no samples
                return
            time.sleep(0.5)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    run_dir = work / "runs" / "deap-deformer-gpu"
    t0 = time.perf_counter()
    train(TrainConfig(dataset="deap", root=str(root), model="eeg_deformer", protocol="loso",
                      target="arousal", window_s=4.0, epochs=epochs, patience=0,
                      batch_size=64, device="cuda", amp=True, cache_dir=str(work / "cache"),
                      baselines=["majority"]), out=run_dir, progress=False)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    folds = [json.loads(p.read_text()) for p in sorted((run_dir / "folds").glob("*/fold.json"))]
    busy = [s for s in samples if s > 0]
    res = {"measured": True, "wall_s": wall, "fold_seconds": [f["seconds"] for f in folds],
           "gpu_util_mean": sum(samples) / max(len(samples), 1),
           "gpu_util_mean_while_busy": sum(busy) / max(len(busy), 1),
           "device": torch.cuda.get_device_name(0)}
    print(json.dumps(res, indent=2))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="floors", choices=["floors", "face", "deap-gpu", "memory"])
    ap.add_argument("--work", default="/tmp/physioaffect-bench-training")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--subjects", type=int, default=4, help="memory mode: DEAP subjects")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.mode == "floors":
        res = floors(work, a.epochs)
    elif a.mode == "face":
        res = face(work, a.epochs)
    elif a.mode == "memory":
        res = memory(work, a.subjects)
    else:
        res = deap_gpu(work, a.epochs)
    res["machine"] = {"python": sys.version.split()[0], "note": "2 shared vCPU, no GPU, under "
                      "load from other sessions unless stated"}
    _save(a.mode, res)


if __name__ == "__main__":
    main()
