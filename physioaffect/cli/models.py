"""``physioaffect models``: list the registered networks with their parameter counts;
``physioaffect models import``: convert weights saved by the official EmT code."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to ``app``."""
    models_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                             help="List the registered networks; import official EmT weights.")
    app.add_typer(models_app, name="models")

    @models_app.command("import")
    def import_command(
        official: Path = typer.Argument(..., help="State dict saved by the official EmT code "
                                        "(torch.save(model.state_dict()), .pth/.pt)."),
        preset: str = typer.Option(..., "--preset", help="Configuration it was trained with: "
                                   "emt_seed, emt_thu_ep, emt_faced, emt_mahnob_regression."),
        out: Path = typer.Option(..., "--out", help="Model folder to write (config.json + "
                                 "model.safetensors)."),
        n_outputs: int = typer.Option(0, "--n-outputs", min=0,
                                      help="Classes of the official model (0: the preset's)."),
    ) -> None:
        """Convert official EmT weights into a model folder that load_model/decode read.

        Every tensor is mapped by name (the official token mixer's weight_g/weight_v included);
        a missing, extra or differently shaped tensor is refused with its name and shapes.
        The file is read with torch.load(weights_only=True): it cannot run code.
        """
        from physioaffect.models import count_parameters, load_model
        from physioaffect.models.io import import_official

        overrides = {"n_outputs": n_outputs} if n_outputs else {}
        path = import_official(official, preset, out, **overrides)
        model = load_model(path)
        typer.echo(f"imported {official} as {preset} ({count_parameters(model):,} parameters) "
                   f"into {path}")

    @models_app.callback()
    def models_command(
        ctx: typer.Context,
        n_chans: int = typer.Option(32, "--n-chans", min=1, help="EEG channels."),
        n_times: int = typer.Option(512, "--n-times", min=1, help="Samples per window (EmT: segment)."),
        sfreq: float = typer.Option(128.0, "--sfreq", help="Sampling rate in Hz."),
        n_outputs: int = typer.Option(2, "--n-outputs", min=1, help="Classes or regression targets."),
        presets: bool = typer.Option(
            False, "--presets", help="List the published reference configurations instead."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List registered models and their parameter counts for the given input."""
        if ctx.invoked_subcommand is not None:
            return
        if not sfreq > 0:
            raise typer.BadParameter(f"must be a positive rate in Hz, got {sfreq}",
                                     param_hint="--sfreq")
        from rich.console import Console
        from rich.table import Table

        from physioaffect.models import PRESETS, ModelConfigError, count_parameters, create
        from physioaffect.models import list_models as _list

        rows = []
        if presets:
            for preset, (name, kwargs) in PRESETS.items():
                model = create(name, **kwargs)
                rows.append({"name": preset, "model": name, "parameters": count_parameters(model),
                             "input": _describe_input(model), "description": str(kwargs)})
        else:
            for spec in _list():
                try:
                    model = create(spec.name, n_chans=n_chans, n_outputs=n_outputs,
                                   n_times=n_times, sfreq=sfreq, **spec.defaults)
                    params: int | str = count_parameters(model)
                    layout = _describe_input(model)
                except ModelConfigError as exc:
                    params, layout = "-", f"not buildable: {exc}"
                rows.append({"name": spec.name, "model": spec.name, "parameters": params,
                             "input": layout, "description": spec.description})
            for name, desc in [
                ("majority", "training-fold majority class (sklearn DummyClassifier)"),
                ("logistic_regression", "flatten + z-score + logistic regression (sklearn)"),
                ("linear_svm", "flatten + z-score + linear SVM (sklearn)"),
            ]:
                rows.append({"name": name, "model": name, "parameters": "-",
                             "input": "(n_windows, n_features) or (n_windows, n_chans, n_bands)",
                             "description": desc})
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        title = "Reference configurations" if presets else (
            f"Models for {n_chans} ch x {n_times} samples at {sfreq:g} Hz, {n_outputs} outputs")
        table = Table(title=title)
        for col in ("name", "parameters", "input", "description"):
            table.add_column(col, justify="right" if col == "parameters" else "left")
        for r in rows:
            p = r["parameters"]
            table.add_row(r["name"], f"{p:,}" if isinstance(p, int) else p, r["input"],
                          r["description"])
        Console(width=160).print(table)


def _describe_input(model: object) -> str:
    from physioaffect.models import EmT, MultimodalFusion

    if isinstance(model, MultimodalFusion):
        return "eeg + peripheral (B,T,16) + face (B,T,17), each optional"
    if isinstance(model, EmT):
        return f"(B, {model.n_sub_windows}, {model.n_chans}, {model.n_features})"
    return f"(B, {model.n_chans}, {model.n_times})"
