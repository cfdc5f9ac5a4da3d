"""``physioaffect datasets``: fake dataset folders, folder checks, windows into the HDF5 cache."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from physioaffect.cli.errors import EXIT_PROBLEMS, error_line, fail

datasets_app = typer.Typer(
    help="Public datasets (DEAP, SEED, DREAMER, FACED, THU-EP) and own sessions: fake folders, "
         "checks, windows.",
    no_args_is_help=True,
)

_FAKE = ("deap", "seed", "dreamer", "faced", "thu-ep", "sim")


FACE_HELP = ("Folder of per-trial face videos or face-feature CSVs (OpenFace, py-feat, "
             "physioaffect), e.g. DEAP's face_video (docs/datasets.md).")
ORDER_HELP = "DEAP's participant_ratings.csv (its face videos are in presentation order)."


def open_with_face(dataset: str, root: Path, face: Path | None, trial_order: Path | None = None,
                   offset_s: float = 0.0, fps: float | None = None, detector: str = "auto"):
    """Open a dataset reader, with a face folder when one is given (the CLI's one place)."""
    from physioaffect.datasets import open_dataset

    kwargs: dict = {}
    if face is not None:
        kwargs = {"face": face, "face_options": {"offset_s": offset_s, "fps": fps,
                                                 "detector": detector}}
        if dataset.lower() == "deap":
            kwargs["face_trial_order"] = trial_order
    return open_dataset(dataset, root, **kwargs)


@datasets_app.command("fake")
def fake(
    dataset: str = typer.Argument(..., help="deap, seed, dreamer, faced, thu-ep or sim "
                                  "(simulator sessions)."),
    out: Path = typer.Argument(..., help="Folder to write (data_preprocessed_python, "
                               "Preprocessed_EEG, the folder of DREAMER.mat, the FACED or THU-EP "
                               "folder, or session files)."),
    subjects: int = typer.Option(4, "--subjects", min=1, help="Number of subjects."),
    seconds: float = typer.Option(10.0, "--seconds", min=1.0,
                                  help="Stimulus length per trial in seconds (SEED: longest trial)."),
    trials: int = typer.Option(0, "--trials", min=0,
                               help="Trials per subject (0: the dataset's own count)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same files)."),
    face: bool = typer.Option(False, "--face", help="sim: also record the simulator's Face "
                              "stream (facial features driven by the same affect)."),
) -> None:
    """Write a fake DATASET folder in the exact published on-disk format (for trying things out)."""
    from physioaffect.datasets.base import DatasetError

    name = dataset.lower()
    if name not in _FAKE:
        fail(f"unknown dataset {dataset!r} (expected one of {', '.join(_FAKE)})")
    t0 = time.perf_counter()
    try:
        if name == "deap":
            from physioaffect.datasets.fixtures import write_deap

            write_deap(out, subjects, seconds, trials or 40, seed, progress=True)
        elif name == "seed":
            from physioaffect.datasets.fixtures import write_seed

            if subjects > 15:
                fail("SEED has at most 15 subjects (variable prefixes are per subject)")
            write_seed(out, subjects, seconds, n_trials=trials or 15, seed=seed, progress=True)
        elif name == "dreamer":
            from physioaffect.datasets.fixtures import write_dreamer

            write_dreamer(out, subjects, seconds, trials or 18, seed=seed, progress=True)
        elif name == "faced":
            from physioaffect.datasets.fixtures import write_faced

            write_faced(out, subjects, seconds, trials or 28, seed=seed, progress=True)
        elif name == "thu-ep":
            from physioaffect.datasets.fixtures import write_thu_ep

            write_thu_ep(out, subjects, seconds, trials or 28, seed=seed, progress=True)
        else:
            from physioaffect.datasets.sessions import write_sim_sessions

            write_sim_sessions(out, subjects, seconds, trials or 16, seed=seed, progress=True,
                               face=face)
    except DatasetError as err:
        fail(err)
    typer.echo(f"wrote fake {name} ({subjects} subjects) to {out} in "
               f"{time.perf_counter() - t0:.1f} s")


@datasets_app.command("info")
def info(
    dataset: str = typer.Argument(..., help="deap, seed, dreamer, faced, thu-ep, sessions "
                                  "(or sim)."),
    root: Path = typer.Option(..., "--root", help="Dataset folder."),
    deep: bool = typer.Option(False, "--deep", help="Load every file to check shapes."),
    face: Path = typer.Option(None, "--face", help=FACE_HELP),
    face_trial_order: Path = typer.Option(None, "--face-trial-order", help=ORDER_HELP),
    face_fps: float = typer.Option(None, "--face-fps", help="Frame rate behind py-feat CSVs."),
) -> None:
    """Check a dataset folder and describe it (subjects, trials, channels, rates, ratings)."""
    from physioaffect.datasets.base import DatasetError

    try:
        reader = open_with_face(dataset, root, face, face_trial_order, fps=face_fps)
        if deep:
            reader.validate(deep=True)
        rec = reader.read_subject(reader.subjects[0])
    except DatasetError as err:
        fail(err)
    tr = rec.trials[0]
    typer.echo(f"{reader.name}: {len(reader.subjects)} subjects ({', '.join(reader.subjects)})")
    typer.echo(f"subject {rec.subject}: {len(rec.trials)} trials; EEG {tr.eeg.shape[0]} channels "
               f"at {tr.sfreq:g} Hz ({', '.join(tr.ch_names)})")
    typer.echo(f"first trial: {tr.duration:.1f} s, stimulus {tr.stimulus}, baseline "
               f"{'none' if tr.baseline is None else f'{tr.baseline.shape[1] / tr.sfreq:.1f} s'}")
    for name, sig in tr.peripheral.items():
        typer.echo(f"  peripheral {name}: {', '.join(sig.ch_names)} at {sig.sfreq:g} Hz [{sig.unit}]")
    typer.echo(f"ratings: {', '.join(f'{k}={v:g}' for k, v in tr.ratings.items())}")
    with_face = [t for t in rec.trials if t.face is not None]
    if with_face:
        f = with_face[0].face
        typer.echo(f"face: {len(with_face)} of {len(rec.trials)} trials of {rec.subject}; "
                   f"{f.values.shape[1]} features per frame from {f.source}")
    elif face is not None:
        typer.echo(f"face: no trial of {rec.subject} has a face file in {face}")
    if reader.face is not None:
        typer.echo(f"face folder: subjects with face files: "
                   f"{', '.join(reader.face.subjects_with_face())}")
        if reader.face.unmatched:
            typer.echo(f"face folder: {len(reader.face.unmatched)} file(s) match no subject, "
                       f"e.g. {reader.face.unmatched[0]}")
    typer.echo("folder OK" + (" (every file loaded)" if deep else ""))


@datasets_app.command("face-features")
def face_features(
    dataset: str = typer.Argument(..., help="deap, seed, dreamer, sessions."),
    root: Path = typer.Option(..., "--root", help="Dataset folder."),
    face: Path = typer.Option(..., "--face", help=FACE_HELP),
    face_trial_order: Path = typer.Option(None, "--face-trial-order", help=ORDER_HELP),
    detector: str = typer.Option("auto", "--detector", help="auto, facemesh or haar."),
) -> None:
    """Analyse every face video of a dataset once and cache its features (training reads them).

    Videos already analysed (same name, size and modification time) are skipped, so an
    interrupted run continues where it stopped.
    """
    from tqdm.auto import tqdm

    from physioaffect.datasets.base import DatasetError
    from physioaffect.datasets.face import CSV_SUFFIX

    try:
        reader = open_with_face(dataset, root, face, face_trial_order, detector=detector)
    except DatasetError as err:
        fail(err)
    videos = [p for files in reader.face.files.values() for p in sorted(files.values())
              if p.suffix.lower() != CSV_SUFFIX]
    todo = [p for p in videos if not reader.face.cache_path(p).is_file()]
    typer.echo(f"{len(videos)} face videos, {len(videos) - len(todo)} already analysed; "
               f"features go to {reader.face.cache_dir}")
    t0, frames, failed = time.perf_counter(), 0, []
    for p in tqdm(todo, desc="face videos", unit="video"):
        try:
            frames += len(reader.face.load(p).times)
        except DatasetError as err:  # one broken video must not stop the others
            failed.append(str(err))
    dt = time.perf_counter() - t0
    typer.echo(f"analysed {len(todo) - len(failed)} videos ({frames} frames) in {dt:.1f} s; "
               f"cache: {reader.face.cache_dir}")
    for msg in failed:
        typer.echo(error_line(msg), err=True)
    if failed:
        raise typer.Exit(EXIT_PROBLEMS)


@datasets_app.command("prepare")
def prepare_cmd(
    dataset: str = typer.Argument(..., help="deap, seed, dreamer, faced, thu-ep, sessions "
                                  "(or sim)."),
    root: Path = typer.Option(..., "--root", help="Dataset folder."),
    window: float = typer.Option(1.0, "--window", help="Window length, s."),
    step: float = typer.Option(0.0, "--step", help="Hop between windows, s (0: = window)."),
    baseline: str = typer.Option("none", "--baseline", help="none, keep or subtract."),
    features: str = typer.Option("de", "--features", help="de, band_power or raw."),
    bands: str = typer.Option("torcheeg4", "--bands", help="Band preset of physioaffect.features."),
    de_mode: str = typer.Option("ln", "--de-mode", help="ln (nats) or torcheeg (TorchEEG-exact)."),
    compat: bool = typer.Option(False, "--torcheeg-compat",
                                help="TorchEEG DEAPDataset + BandDifferentialEntropy values "
                                     "(sets --features de --de-mode torcheeg --baseline keep)."),
    cache: Path = typer.Option(Path("physioaffect-cache"), "--cache", help="Cache folder."),
    label_rule: str = typer.Option("", "--label-rule",
                                   help="Also report labels under this rule (gt5, ge5, median, "
                                        "gt3, ge3, emt_gt3, seed3, posneg, continuous)."),
    target: str = typer.Option("valence", "--target", help="Rating used with --label-rule."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Filter threads per subject (same values)."),
    figure: bool = typer.Option(True, "--figure/--no-figure",
                                help="Save a PNG of windows per subject (and classes) next to the cache."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Validate the folder, then cut and featurise windows one subject at a time into the cache."""
    from physioaffect.datasets import open_dataset
    from physioaffect.datasets.base import DatasetError
    from physioaffect.datasets.cache import prepare, read_info, read_meta
    from physioaffect.datasets.windows import WindowConfig

    t0 = time.perf_counter()
    reused: list[str] = []
    try:
        if compat:
            cfg = WindowConfig.torcheeg_compat(window)
        else:
            cfg = WindowConfig(window_s=window, step_s=step or None, baseline=baseline,
                               features=features, bands=bands, de_mode=de_mode)
        reader = open_dataset(dataset, root)
        path = prepare(reader, cfg, cache, progress=not quiet, n_jobs=jobs,
                       on_subject=lambda s, r: reused.append(s) if r else None)
        meta = read_meta(path)
        n_bad = sum(read_info(path)["n_nonfinite"].values())
        report = None
        y = keep = None
        if label_rule:
            from physioaffect.datasets.labels import make_labels

            y, keep, report = make_labels(meta, label_rule, target)
        png = None
        if figure:
            from physioaffect.datasets.report import windows_figure

            title = f"{reader.name}: {len(meta)} windows" + (
                f", {label_rule} on {target}" if label_rule else "")
            png = windows_figure(meta, path.with_suffix(".png"), y, keep, title)
    except DatasetError as err:
        fail(err)
    typer.echo(f"{len(meta)} windows of {meta['subject'].nunique()} subjects "
               f"({len(reused)} reused from cache) in {time.perf_counter() - t0:.1f} s")
    if n_bad:
        typer.echo(f"{n_bad} windows have NaN features (unusable signal: flat, clipped or NaN); "
                   "they are kept in the cache, drop them before training")
    if report:
        typer.echo(f"labels {report['rule']} on {report['target']}: {report.get('class_counts')}; "
                   f"dropped {report['dropped_nan']} NaN, {report['dropped_by_rule']} by rule")
    if png is not None:
        typer.echo(f"figure written to {png}")
    typer.echo(f"windows written to {path}")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add the ``datasets`` command group to ``app``."""
    app.add_typer(datasets_app, name="datasets")
