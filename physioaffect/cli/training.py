"""``physioaffect train``, ``evaluate`` and ``report``: cross-subject training and reports."""

from __future__ import annotations

from pathlib import Path

import typer

from physioaffect.cli.errors import fail


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``evaluate`` and ``report`` commands to ``app``."""

    @app.command("train")
    def train_command(
        dataset: str = typer.Option(None, "--dataset",
                                    help="deap, seed, dreamer, faced, thu-ep, sessions or sim."),
        root: Path = typer.Option(None, "--root", help="Dataset folder (sim: written if absent)."),
        model: str = typer.Option(None, "--model",
                                  help="eeg_deformer, emt, eegnet, shallow_convnet, "
                                       "emt_regression, fusion."),
        preset: str = typer.Option(None, "--preset",
                                   help="Published configuration (emt_seed, emt_faced, "
                                        "emt_thu_ep, deformer_fatigue ...): model, "
                                        "hyper-parameters, EmT bands and segment length."),
        protocol: str = typer.Option(None, "--protocol",
                                     help="loso, lkso, lso, seed-9-6 or within."),
        target: str = typer.Option(None, "--target", help="valence, arousal, dominance, ..."),
        label_rule: str = typer.Option(None, "--label-rule",
                                       help="gt5, ge5, median, gt3, ge3, seed3, posneg, "
                                            "continuous (default per dataset)."),
        modalities: str = typer.Option(None, "--modalities",
                                       help="Comma list of eeg, peripheral, face."),
        face: Path = typer.Option(None, "--face", help="Folder of per-trial face videos or "
                                  "face-feature CSVs (DEAP's face_video; OpenFace, py-feat)."),
        face_trial_order: Path = typer.Option(None, "--face-trial-order",
                                              help="DEAP's participant_ratings.csv."),
        face_fps: float = typer.Option(None, "--face-fps",
                                       help="Frame rate behind py-feat CSVs."),
        face_offset: float = typer.Option(None, "--face-offset",
                                          help="Seconds from stimulus onset to a face file's "
                                               "first frame (default 0)."),
        config: Path = typer.Option(None, "--config", help="YAML/TOML/JSON config file "
                                    "(command-line options override it)."),
        out: Path = typer.Option(None, "--out", help="Run folder (must not exist unless "
                                 "--resume)."),
        executor: str = typer.Option(None, "--executor", help="serial (default) or ray."),
        ray_address: str = typer.Option(None, "--ray-address",
                                        help="Ray cluster address (default: local Ray)."),
        epochs: int = typer.Option(None, "--epochs", min=1, help="Maximum epochs per fold."),
        seed: int = typer.Option(None, "--seed", help="Master seed."),
        device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in "
                                    "--out."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Train a network on every fold of a protocol with baselines, and write a run folder."""
        from rich.console import Console

        from physioaffect.training import TrainConfig, TrainingError, load_config, train

        console = Console(stderr=False)
        try:
            fields = load_config(config) if config else {}
            given = {"dataset": dataset, "root": str(root) if root else None, "model": model,
                     "preset": preset,
                     "protocol": protocol, "target": target, "label_rule": label_rule,
                     "modalities": modalities, "seed": seed}
            fields.update({k: v for k, v in given.items() if v is not None})
            sections = {
                "optim": {"epochs": epochs}, "compute": {"device": device},
                "executor": {"kind": executor, "address": ray_address},
                "face": {"folder": str(face) if face else None,
                         "trial_order": str(face_trial_order) if face_trial_order else None,
                         "fps": face_fps, "offset_s": face_offset}}
            for section, values in sections.items():
                values = {k: v for k, v in values.items() if v is not None}
                if values:
                    fields[section] = {**(fields.get(section) or {}), **values}
            cfg = TrainConfig.from_dict(fields, where="options")
            if out is None and resume:
                raise TrainingError("--resume needs --out RUN_DIR")
            run_dir = train(cfg, out=out, resume=resume, progress=not quiet, console=console)
        except TrainingError as err:
            fail(err)
        typer.echo(f"run folder: {run_dir}")
        typer.echo(f"report: {run_dir / 'report.md'}")

    @app.command("evaluate")
    def evaluate_command(
        source: Path = typer.Argument(..., help="Run folder or fold checkpoint folder."),
        dataset: str = typer.Option(..., "--dataset", help="deap, seed, dreamer, sessions, sim."),
        root: Path = typer.Option(..., "--root", help="Dataset folder."),
        out: Path = typer.Option(..., "--out", help="Output folder (must not exist)."),
        target: str = typer.Option(None, "--target", help="Rating (default: the checkpoint's)."),
        label_rule: str = typer.Option(None, "--label-rule",
                                       help="Label rule (default: per dataset)."),
        face: Path = typer.Option(None, "--face", help="Face folder of the new data (face "
                                  "checkpoints; without it their face branch is masked)."),
        face_trial_order: Path = typer.Option(None, "--face-trial-order",
                                              help="DEAP's participant_ratings.csv."),
        face_fps: float = typer.Option(None, "--face-fps",
                                       help="Frame rate behind py-feat CSVs."),
    ) -> None:
        """Re-score trained checkpoints on other data (e.g. DEAP -> DREAMER, common channels)."""
        from physioaffect.training import TrainingError, evaluate

        try:
            path = evaluate(source, dataset, root, out, target=target, label_rule=label_rule,
                            face=face, face_trial_order=face_trial_order, face_fps=face_fps)
        except TrainingError as err:
            fail(err)
        typer.echo((path / "report.md").read_text())
        typer.echo(f"evaluation written to {path}")

    @app.command("report")
    def report_command(
        runs: list[Path] = typer.Argument(..., help="One or more run folders."),
        metric: str = typer.Option(None, "--metric", help="Only this metric."),
        rewrite: bool = typer.Option(False, "--rewrite",
                                     help="Rewrite each run's report.md from its predictions."),
    ) -> None:
        """Put several runs side by side (mean ± std over test subjects)."""
        from physioaffect.training import TrainingError, compare_runs, write_report
        from physioaffect.training.report import run_status

        try:
            if rewrite:
                for r in runs:
                    st = run_status(r)
                    if st["done"]:
                        write_report(r)
            typer.echo(compare_runs(runs, metric))
        except TrainingError as err:
            fail(err)
