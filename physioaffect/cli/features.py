"""``physioaffect features``: windowed feature table and figures for a recording.

SOURCE is a session file (``.h5``), any file MNE reads (EDF, BDF, FIF, ...), or the simulator
(``sim``, ``sim?seed=3&eeg_channels=14``). Writes to ``--out``: ``features.csv`` (one row per
window), ``pipeline.json`` (the preprocessing that was applied), ``psd.png``,
``topomap.png`` (with 3 or more located EEG channels) and ``peripheral.png``.

Window times in ``features.csv`` (``start_s``, ``stop_s``) are seconds from the session start,
like the figures; ``start_lsl_s`` is the window start on the LSL clock (session files and the
simulator; files without an LSL clock start at 0 already). Every signal has a quality column
(0-1) and its reasons; features of windows below quality 0.5 are NaN.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import typer

from physioaffect.cli.errors import fail
from physioaffect.errors import PhysioAffectError
from physioaffect.streams.signals import PERIPHERAL_SIGNALS, SIGNAL_ALIASES, canonical_signal


def _to_uv(unit: str) -> float:
    """Factor from an EEG stream's unit to microvolts (an unknown or missing unit: taken as
    microvolts, the package's EEG unit)."""
    from physioaffect.streams.units import UnitError, unit_factor

    try:
        return unit_factor(unit, "µV")
    except UnitError:
        return 1.0


class FeaturesInputError(PhysioAffectError, ValueError):
    """The source given to ``physioaffect features`` cannot be used; the message says why."""


def load_source(source: str, duration: float | None = None) -> dict[str, Any]:
    """Read EEG and peripheral signals from a session file, an MNE-readable file or ``sim``.

    Returns
    -------
    dict
        ``eeg`` (n_chans, n_times) in microvolts or None, ``eeg_ts`` (n_times,), ``sfreq``,
        ``ch_names``, ``line_freq``, ``peripherals`` modality -> (signal, rate, timestamps),
        ``origin``: the session start on the LSL clock (None for files without one: their
        times already start at 0),
        ``peripheral_units`` modality -> unit of the signal as recorded.
    """
    if source.split("?")[0].split(":")[0].lower() == "sim":
        from physioaffect.sources.base import SourceSpec
        from physioaffect.sources.sim import SimSource, simulate_subject

        try:
            src = SimSource.from_spec(SourceSpec.parse(source))
        except PhysioAffectError as err:
            raise FeaturesInputError(str(err)) from None
        rec = simulate_subject(src.config, src.subject, duration=duration)
        streams = {k: v for k, v in rec.signals.items()}
        line = src.config.line_freq
        origin = None
    else:
        path = Path(source)
        if not path.exists():
            raise FeaturesInputError(
                f"{source}: no such file (expected a session .h5, an EDF/BDF/FIF file, or 'sim')"
            )
        if path.suffix.lower() in (".h5", ".hdf5"):
            from physioaffect.recording.reader import read_session

            session = read_session(path)
            streams = {
                s.info.type.upper(): (s.info, s.timestamps, s.samples)
                for s in session.signal_streams
            }
            line = 50.0
            origin = session.lsl_start if "lsl_clock_start" in session.attrs else None
        else:
            return _load_mne(path, duration)
    out: dict[str, Any] = {
        "eeg": None,
        "eeg_ts": None,
        "sfreq": None,
        "ch_names": [],
        "line_freq": line,
        "peripherals": {},
        "origin": origin,
        "peripheral_units": {},
    }
    for kind, (info, ts, samples) in streams.items():
        ts = np.asarray(ts, dtype=float)
        if duration is not None and ts.size:
            keep = ts < ts[0] + duration
            ts, samples = ts[keep], samples[keep]
        if kind == "EEG":
            scale = _to_uv(str(info.channels[0].unit)) if info.channels else 1.0
            out.update(
                eeg=np.asarray(samples, dtype=float).T * scale,
                eeg_ts=ts,
                sfreq=float(info.nominal_srate),
                ch_names=[c.label for c in info.channels],
            )
        elif canonical_signal(kind):
            out["peripherals"][canonical_signal(kind)] = (
                np.asarray(samples[:, 0], dtype=float),
                float(info.nominal_srate),
                ts,
            )
            out["peripheral_units"][canonical_signal(kind)] = (
                str(info.channels[0].unit) if info.channels else "")
    if out["eeg"] is None and not out["peripherals"]:
        raise FeaturesInputError(
            f"{source}: no EEG, ECG, EDA, PPG, respiration or temperature stream found"
        )
    if out["origin"] is None:  # the earliest sample of any stream starts the session
        firsts = [t[0] for t in [out["eeg_ts"], *(p[2] for p in out["peripherals"].values())]
                  if t is not None and len(t)]
        out["origin"] = float(min(firsts)) if firsts else 0.0
    return out


def _load_mne(path: Path, duration: float | None) -> dict[str, Any]:
    import mne

    try:
        raw = mne.io.read_raw(path, preload=True, verbose=False)
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad input file
        raise FeaturesInputError(
            f"{path}: MNE cannot read it ({type(err).__name__}: {err})"
        ) from None
    if duration is not None:
        raw.crop(tmax=min(duration, raw.times[-1]))
    picks = mne.pick_types(raw.info, eeg=True)
    fs = float(raw.info["sfreq"])
    per, units = {}, {}
    # MNE holds SI units: ECG back to mV and EDA to µS (the scales these signals are read in)
    by_type = {"ecg": ("ECG", 1e3, "mV"), "gsr": ("EDA", 1e6, "µS"), "resp": ("RESP", 1.0, None),
               "temperature": ("TEMP", 1.0, None)}
    for kind in ("ecg", "gsr", "bio", "resp", "temperature", "misc"):
        for i in mne.pick_types(raw.info, meg=False, **{kind: True}):
            name = raw.ch_names[i].upper()
            mod, scale, unit = by_type.get(kind, (None, 1.0, None))
            if mod is None:
                mod = next((canonical_signal(k) for k in (*PERIPHERAL_SIGNALS, *SIGNAL_ALIASES)
                            if k in name), None)
                scale, unit = (1e3, "mV") if mod == "ECG" else (1.0, None)
            if mod and mod not in per:
                per[mod] = (raw.get_data(picks=[i])[0] * scale, fs, raw.times)
                units[mod] = unit or (getattr(raw, "_orig_units", None) or {}).get(
                    raw.ch_names[i], "")
    return {
        "eeg": raw.get_data(picks=picks) * 1e6 if picks.size else None,
        "eeg_ts": raw.times,
        "sfreq": fs,
        "ch_names": [raw.ch_names[i] for i in picks],
        "line_freq": float(raw.info.get("line_freq") or 50.0),
        "peripherals": per,
        "origin": None,  # raw.times start at 0; there is no LSL clock
        "relative_only": True,
        "peripheral_units": units,
    }


def register(app: typer.Typer) -> None:
    """Add the ``features`` command to ``app``."""

    @app.command("features")
    def features_command(
        source: str = typer.Argument(
            ..., help="Session .h5, EDF/BDF/FIF file, or 'sim[?key=value...]'."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
        window: float = typer.Option(10.0, "--window", help="Window length in seconds."),
        step: float | None = typer.Option(
            None, "--step", help="Hop in seconds (default: no overlap)."
        ),
        feature: str = typer.Option("de", "--eeg-feature", help="de, bandpower, relpower or none."),
        bands: str = typer.Option(
            "torcheeg4", "--bands", help="Band preset: seed5, torcheeg4, emt7."
        ),
        duration: float | None = typer.Option(
            None, "--duration", help="Use only the first N seconds."
        ),
        preprocess: bool = typer.Option(
            True, "--preprocess/--no-preprocess", help="Band-pass, notch, average reference first."
        ),
    ) -> None:
        """Windowed feature table (CSV) and figures (PNG) for one recording."""
        from rich.console import Console

        from physioaffect.features.eeg import band_power, resolve_bands
        from physioaffect.features.figures import (
            plot_band_topomaps,
            plot_peripheral,
            plot_psd_groups,
        )
        from physioaffect.features.windows import feature_table
        from physioaffect.preprocessing import PipelineConfig, SignalInputError, preprocess_array

        console = Console(stderr=True, soft_wrap=True)
        try:
            with console.status("reading source ..."):
                data = load_source(source, duration)
            out.mkdir(parents=True, exist_ok=True)
            eeg, fs, names = data["eeg"], data["sfreq"], data["ch_names"]
            if eeg is not None and preprocess:
                # an average reference of fewer than 3 channels subtracts the signal itself
                # (one channel: zero everywhere); keep such recordings as they were referenced
                reference = "average" if len(names) >= 3 else "none"
                if reference == "none":
                    console.print(f"[yellow]note:[/] {len(names)} EEG channel(s): no average "
                                  "reference (it needs 3 or more)")
                cfg = PipelineConfig(h_freq=min(45.0, 0.45 * fs), notch_freq=data["line_freq"],
                                     reference=reference)
                with (
                    console.status("preprocessing EEG ..."),
                    warnings.catch_warnings(record=True) as caught,
                ):
                    warnings.simplefilter("always")
                    eeg, report = preprocess_array(eeg, fs, names, cfg)
                for w in caught:
                    console.print(f"[yellow]warning:[/] {w.message}")
                (out / "pipeline.json").write_text(
                    json.dumps(
                        {
                            "config": cfg.to_dict(),
                            "config_hash": cfg.config_hash(),
                            "report": report,
                        },
                        indent=2,
                        default=str,
                    )
                )
            with (
                console.status("computing features ..."),
                warnings.catch_warnings(record=True) as caught,
            ):
                warnings.simplefilter("always")
                table = feature_table(
                    eeg,
                    fs or 1.0,
                    window,
                    step,
                    eeg_timestamps=data["eeg_ts"],
                    ch_names=names or None,
                    peripherals=data["peripherals"],
                    eeg_feature=feature if eeg is not None else "none",
                    bands=bands,
                    time_origin=None if data.get("relative_only") else data["origin"],
                )
            for w in caught:
                console.print(f"[yellow]warning:[/] {w.message}")
            table.to_csv(out / "features.csv")
            written = [out / "features.csv"]
            with console.status("drawing figures ..."):
                if eeg is not None:
                    plot_psd_groups(eeg, fs, names, out / "psd.png")
                    written.append(out / "psd.png")
                    band_list = resolve_bands(bands, fs)
                    win = min(eeg.shape[1], int(fs * 60))
                    bp = band_power(eeg[:, :win], fs, band_list)
                    try:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            logbp = np.log10(bp)
                        plot_band_topomaps(
                            logbp,
                            names,
                            [b[0] for b in band_list],
                            out / "topomap.png",
                            unit="log10 µV²",
                        )
                        written.append(out / "topomap.png")
                    except SignalInputError as err:
                        console.print(f"[yellow]no topomap:[/] {err}")
                if data["peripherals"]:
                    sig = {k: (v[0], v[1]) for k, v in data["peripherals"].items()}
                    plot_peripheral(sig, out / "peripheral.png",
                                    units=data.get("peripheral_units"))
                    written.append(out / "peripheral.png")
        except (PhysioAffectError, OSError) as err:
            fail(err)
        typer.echo(f"{len(table)} windows x {table.shape[1] - 2} features")
        for path in written:
            typer.echo(f"wrote {path}")
