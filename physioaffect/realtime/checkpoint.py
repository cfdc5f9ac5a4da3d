"""What the online decoder needs from a trained checkpoint, and the checks against a live source.

A checkpoint is read with the training stage's ``load_checkpoint(path) -> (model,
pipeline_config, meta)`` when that stage is installed; a folder written by
:func:`physioaffect.models.save_model` whose ``extra`` holds the same metadata (``pipeline``,
``ch_names``, ``sfreq``, ...) is read directly. Either way the result is a
:class:`DecoderBundle`: the model in eval mode, the declared preprocessing, the EEG channel
labels and rate the model was trained on, the window length, and what its outputs mean.

:func:`match_streams` compares the bundle with the streams a source offers and raises
:class:`CheckpointMismatchError` naming the first thing that differs (missing channels, a
different sampling rate, no EEG stream at all), before any sample is decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physioaffect.errors import PhysioAffectError
from physioaffect.models import MultimodalFusion, load_model, save_model
from physioaffect.models.io import ModelFileError
from physioaffect.preprocessing import PipelineConfig
from physioaffect.streams import StreamInfo

__all__ = [
    "CheckpointMismatchError",
    "DecoderBundle",
    "StreamMatch",
    "load_bundle",
    "match_streams",
    "save_bundle",
]


class DecoderError(PhysioAffectError, ValueError):
    """Live decoding cannot start or go on (bad option, unusable checkpoint, missing stream)."""


class CheckpointMismatchError(DecoderError):
    """The live streams do not fit the checkpoint (one-line message naming the mismatch)."""


@dataclass
class DecoderBundle:
    """A trained model with everything needed to feed it live data.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode; input ``(1, n_chans, n_times)`` EEG in microvolts after ``pipeline``
        (a :class:`~physioaffect.models.MultimodalFusion` takes it as ``eeg=``).
    pipeline : PipelineConfig
        Preprocessing used in training; applied causally live.
    ch_names : list of str
        EEG channel labels in model-input order.
    sfreq : float
        Rate (Hz) the EEG arrives at; the model sees ``pipeline.resample_sfreq`` if set.
    n_times : int
        Samples of one model input (at the model's rate).
    task : {"classification", "regression"}
    target : str
        What is decoded, e.g. ``"arousal"`` or ``"valence_arousal"``.
    outputs : list of str
        One label per model output: class names (``"low"``, ``"high"``) for classification,
        target names (``"valence"``, ``"arousal"``) for regression.
    modalities : tuple of str
        Modalities the model has branches for (``("eeg",)`` for an EEG network).
    window_norm : {"none", "zscore"}
        Per-window, per-channel normalisation applied after preprocessing (as in training).
    path : str
        Where the checkpoint came from (for messages).
    training_meta : dict or None
        The training stage's metadata when the checkpoint comes from ``physioaffect train``:
        inputs are then built and scored by its ``build_inputs``/``predict`` (the same
        normalisation, graph features and target scaling as in training).
    """

    model: torch.nn.Module
    pipeline: PipelineConfig
    ch_names: list[str]
    sfreq: float
    n_times: int
    task: str = "classification"
    target: str = "arousal"
    outputs: list[str] = field(default_factory=lambda: ["low", "high"])
    modalities: tuple[str, ...] = ("eeg",)
    window_norm: str = "none"
    path: str = ""
    training_meta: dict[str, Any] | None = None

    @property
    def model_sfreq(self) -> float:
        """Rate (Hz) of the model input."""
        return float(self.pipeline.resample_sfreq or self.sfreq)

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return self.n_times / self.model_sfreq

    @property
    def is_fusion(self) -> bool:
        return isinstance(self.model, MultimodalFusion)

    def output_labels(self) -> list[str]:
        """Channel labels of the prediction stream (``arousal_high`` or ``valence``)."""
        if self.task == "classification":
            return [f"{self.target}_{c}" for c in self.outputs]
        return list(self.outputs)


def _meta_get(meta: Mapping[str, Any], keys: Sequence[str], path: str, want: str) -> Any:
    for key in keys:
        if key in meta and meta[key] is not None:
            return meta[key]
    raise ModelFileError(f"{path}: checkpoint metadata has no field {keys[0]!r} ({want})")


def bundle_from_parts(
    model: torch.nn.Module, pipeline: PipelineConfig | Mapping[str, Any] | None,
    meta: Mapping[str, Any], path: str = "",
) -> DecoderBundle:
    """Build a :class:`DecoderBundle` from ``(model, pipeline_config, meta)``.

    ``meta`` keys read (alternatives in brackets): ``ch_names`` [``channels``], ``sfreq``
    [``source_sfreq``, ``raw_sfreq``], ``task`` (else inferred: a ``classes`` list means
    classification), ``target``, ``classes`` or ``outputs``, ``window_norm``.
    """
    if pipeline is None:
        pipeline = meta.get("pipeline")
    if pipeline is None:
        raise ModelFileError(f"{path}: checkpoint has no preprocessing pipeline")
    if not isinstance(pipeline, PipelineConfig):
        pipeline = PipelineConfig.from_dict(dict(pipeline))
    ch_names = [str(c) for c in _meta_get(meta, ("ch_names", "channels"), path, "EEG labels")]
    model_sfreq = float(getattr(model, "sfreq", 0.0) or 0.0)
    sfreq = float(meta.get("sfreq") or meta.get("source_sfreq") or meta.get("raw_sfreq")
                  or model_sfreq)
    if sfreq <= 0:
        raise ModelFileError(f"{path}: checkpoint metadata has no field 'sfreq' (EEG rate, Hz)")
    n_times = int(meta.get("n_times") or getattr(model, "n_times", 0))
    if n_times <= 0:
        raise ModelFileError(f"{path}: checkpoint metadata has no field 'n_times'")
    classes = meta.get("classes") or meta.get("class_names")
    task = str(meta.get("task") or ("classification" if classes else "regression"))
    if task not in ("classification", "regression"):
        raise ModelFileError(f"{path}: field 'task' is {task!r}, expected classification or "
                             "regression")
    target = str(meta.get("target", "arousal"))
    n_out = int(getattr(model, "n_outputs", 0) or 0)
    if task == "classification":
        outputs = [str(c) for c in (classes or meta.get("outputs")
                                    or ([f"class{i}" for i in range(n_out)]))]
    else:
        outputs = [str(c) for c in (meta.get("outputs") or meta.get("targets")
                                    or target.split("_"))]
    if n_out and len(outputs) != n_out and "normalisation" not in meta:
        raise ModelFileError(f"{path}: metadata names {len(outputs)} outputs {outputs}, the "
                             f"model has {n_out}")
    if isinstance(model, MultimodalFusion):
        modalities = tuple(model.modalities)
    else:
        modalities = tuple(meta.get("modalities") or ("eeg",))
    window_norm = str(meta.get("window_norm", "none"))
    if window_norm not in ("none", "zscore"):
        raise ModelFileError(f"{path}: field 'window_norm' is {window_norm!r}, expected none or "
                             "zscore")
    n_chans = int(getattr(model, "n_chans", len(ch_names)))
    if "eeg" in modalities and n_chans != len(ch_names):
        raise ModelFileError(f"{path}: metadata lists {len(ch_names)} channels, the model takes "
                             f"{n_chans}")
    training_meta = dict(meta) if "normalisation" in meta else None
    if training_meta is not None and task == "regression":
        outputs = [target]  # training predicts one target on its rating scale
    model.eval()
    return DecoderBundle(model=model, pipeline=pipeline, ch_names=ch_names, sfreq=sfreq,
                         n_times=n_times, task=task, target=target, outputs=outputs,
                         modalities=modalities, window_norm=window_norm, path=path,
                         training_meta=training_meta)


def load_bundle(path: str | Path) -> DecoderBundle:
    """Read a checkpoint for live decoding.

    A checkpoint of ``physioaffect train`` (a fold's ``checkpoint`` folder, or the fold folder)
    is read with the training stage's ``load_checkpoint``; a folder written by
    :func:`save_bundle` (a :func:`physioaffect.models.save_model` folder whose ``extra``
    carries the metadata, see :func:`bundle_from_parts`) is read directly.

    Raises
    ------
    ModelFileError
        Missing or malformed checkpoint (the message names the file and field).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: checkpoint not found")
    from physioaffect.models.io import read_config

    folder = path if path.is_dir() else path.parent
    if not (folder / "config.json").is_file() and (folder / "checkpoint").is_dir():
        folder = folder / "checkpoint"  # a training fold folder
    config = read_config(folder)
    extra = dict(config.get("extra") or {})
    if "normalisation" in extra:  # written by physioaffect train
        try:
            from physioaffect.training.checkpoint import load_checkpoint
        except ImportError as err:
            raise ModelFileError(f"{folder}: a training checkpoint, but the training stage "
                                 f"cannot be imported ({err})") from None
        try:
            model, pipeline, meta = load_checkpoint(folder)
        except Exception as err:  # TrainingError and friends: one line naming the file
            raise ModelFileError(str(err)) from None
        return bundle_from_parts(model, pipeline, dict(meta or {}), str(folder))
    model = load_model(folder)
    return bundle_from_parts(model, None, extra, str(folder))


def save_bundle(bundle: DecoderBundle, directory: str | Path) -> Path:
    """Write a bundle as a model folder with the decoder metadata in ``extra``.

    This is the format :func:`load_bundle` reads without the training stage (a
    ``decoder.json`` marker says so); training runs write their own checkpoints.
    """
    directory = Path(directory)
    extra = {
        "pipeline": bundle.pipeline.to_dict(), "ch_names": list(bundle.ch_names),
        "sfreq": bundle.sfreq, "n_times": bundle.n_times, "task": bundle.task,
        "target": bundle.target,
        ("classes" if bundle.task == "classification" else "outputs"): list(bundle.outputs),
        "modalities": list(bundle.modalities), "window_norm": bundle.window_norm,
    }
    save_model(bundle.model, directory, extra=extra)  # type: ignore[arg-type]
    (directory / "decoder.json").write_text('{"format": "physioaffect-decoder", "version": 1}\n')
    return directory


@dataclass
class StreamMatch:
    """How the checkpoint's inputs map onto live streams.

    Attributes
    ----------
    eeg : StreamInfo or None
        The EEG stream used.
    picks : list of int
        Column of each checkpoint channel in the EEG stream.
    peripheral : dict
        Stream type -> StreamInfo for ECG, GSR, PPG, RESP streams present.
    face : StreamInfo or None
    """

    eeg: StreamInfo | None
    picks: list[int]
    peripheral: dict[str, StreamInfo] = field(default_factory=dict)
    face: StreamInfo | None = None


def match_streams(bundle: DecoderBundle, streams: Sequence[StreamInfo],
                  rate_tolerance: float = 0.01) -> StreamMatch:
    """Check the live streams against the checkpoint; map channels by label.

    Parameters
    ----------
    bundle : DecoderBundle
    streams : sequence of StreamInfo
        What the source offers.
    rate_tolerance : float
        Relative difference of nominal rates still accepted.

    Raises
    ------
    CheckpointMismatchError
        No EEG stream, a checkpoint channel missing from it, or a different rate.
    """
    eegs = [s for s in streams if s.type.upper() == "EEG"]
    peripheral = {s.type.upper(): s for s in streams
                  if s.type.upper() in ("ECG", "GSR", "EDA", "PPG", "RESP")}
    face = next((s for s in streams if s.type == "Face"), None)
    if "eeg" not in bundle.modalities:
        return StreamMatch(None, [], peripheral, face)
    where = bundle.path or "checkpoint"
    if not eegs:
        seen = ", ".join(f"{s.name} ({s.type})" for s in streams) or "none"
        raise CheckpointMismatchError(
            f"{where} decodes EEG but the source has no EEG stream; streams: {seen}")
    errors = []
    for eeg in eegs:
        labels = [c.lower() for c in eeg.labels]
        missing = [c for c in bundle.ch_names if c.lower() not in labels]
        if missing:
            errors.append(
                f"stream {eeg.name!r} lacks channel(s) {', '.join(missing[:8])}"
                f"{' ...' if len(missing) > 8 else ''} of the {len(bundle.ch_names)} the "
                f"checkpoint was trained on (stream has {len(labels)}: "
                f"{', '.join(eeg.labels[:6])}{' ...' if len(labels) > 6 else ''})")
            continue
        if abs(eeg.nominal_srate - bundle.sfreq) > rate_tolerance * bundle.sfreq:
            errors.append(f"stream {eeg.name!r} runs at {eeg.nominal_srate:g} Hz, the checkpoint "
                          f"expects {bundle.sfreq:g} Hz")
            continue
        picks = [labels.index(c.lower()) for c in bundle.ch_names]
        return StreamMatch(eeg, picks, peripheral, face)
    raise CheckpointMismatchError(f"{where}: " + "; ".join(errors))
