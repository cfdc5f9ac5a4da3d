"""What the online decoder needs from a trained checkpoint, and the checks against a live source.

A checkpoint is a model folder with its :class:`~physioaffect.models.CheckpointContract`
(``physioaffect train`` writes one per fold; :func:`save_bundle` writes one for a model trained
elsewhere). :func:`load_bundle` reads it into a :class:`DecoderBundle`: the model in eval mode
and the contract, which says which channels at which rate, through which preprocessing, in which
window, normalised how, and what the outputs mean.

:func:`match_streams` compares the bundle with the streams a source offers and raises
:class:`CheckpointMismatchError` naming the first thing that differs (missing channels, a
different sampling rate, no EEG stream at all), before any sample is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from physioaffect.errors import PhysioAffectError
from physioaffect.models import MultimodalFusion
from physioaffect.models.contract import (
    CheckpointContract,
    Standardisation,
    load_checkpoint,
    save_checkpoint,
)
from physioaffect.models.io import ModelFileError
from physioaffect.preprocessing import PipelineConfig
from physioaffect.streams import StreamInfo

__all__ = [
    "CheckpointMismatchError",
    "DecoderBundle",
    "DecoderError",
    "StreamMatch",
    "bundle_for_model",
    "load_bundle",
    "match_streams",
    "channel_scale",
    "save_bundle",
]


class DecoderError(PhysioAffectError, ValueError):
    """Live decoding cannot start or go on (bad option, unusable checkpoint, missing stream)."""


class CheckpointMismatchError(DecoderError):
    """The live streams do not fit the checkpoint (one-line message naming the mismatch)."""


@dataclass
class DecoderBundle:
    """A trained model with the contract that says how to feed it live data.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode.
    contract : CheckpointContract
    path : str
        Where the checkpoint came from (for messages and the prediction stream's metadata).
    """

    model: torch.nn.Module
    contract: CheckpointContract
    path: str = ""

    @property
    def pipeline(self) -> PipelineConfig:
        """Preprocessing used in training; applied causally live."""
        return self.contract.pipeline

    @property
    def ch_names(self) -> list[str]:
        """EEG channel labels in model-input order."""
        return list(self.contract.channels)

    @property
    def sfreq(self) -> float:
        """Rate (Hz) the EEG arrives at."""
        return self.contract.sfreq

    @property
    def model_sfreq(self) -> float:
        """Rate (Hz) of the model input (after the pipeline's decimation)."""
        return self.contract.model_sfreq

    @property
    def n_times(self) -> int:
        """Samples of one model input (at the model's rate)."""
        return self.contract.n_times

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return self.n_times / self.model_sfreq

    @property
    def task(self) -> str:
        return self.contract.task

    @property
    def target(self) -> str:
        return self.contract.target

    @property
    def outputs(self) -> list[str]:
        """One label per output: class names, or the decoded rating for a regressor."""
        return self.contract.output_names

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.contract.modalities)

    @property
    def is_fusion(self) -> bool:
        return isinstance(self.model, MultimodalFusion)

    def output_labels(self) -> list[str]:
        """Channel labels of the prediction stream (``arousal_high`` or ``valence``)."""
        if self.task == "classification":
            return [f"{self.target}_{c}" for c in self.outputs]
        return list(self.outputs)


def bundle_for_model(
    model: torch.nn.Module, pipeline: PipelineConfig, ch_names: Sequence[str], sfreq: float,
    n_times: int, task: str = "classification", target: str = "arousal",
    outputs: Sequence[str] = ("low", "high"), window_norm: str = "none", path: str = "",
) -> DecoderBundle:
    """A bundle for a raw-EEG network trained outside ``physioaffect train``.

    The contract records the pipeline, channels, rate and window, and an identity
    normalisation (the network takes the pipeline's output as it is, or z-scored per window
    with ``window_norm="zscore"``).
    """
    from physioaffect.models.registry import name_of

    contract = CheckpointContract(
        model=name_of(model), trained_as=name_of(model), label=name_of(model),
        modalities=("eeg",), task=task, target=target,
        class_names=tuple(outputs) if task == "classification" else (),
        channels=tuple(ch_names), sfreq=float(sfreq), pipeline=pipeline,
        n_times=int(n_times), input_kind="raw", window_norm=window_norm,
        window_s=n_times / (pipeline.resample_sfreq or float(sfreq)),
        normalisation={"eeg": Standardisation.identity((1,), (len(ch_names),))},
        target_scaling=None if task == "classification" else (0.0, 1.0),
        label_rule="unknown")
    model.eval()
    return DecoderBundle(model, contract, path)


def load_bundle(path: str | Path) -> DecoderBundle:
    """Read a checkpoint for live decoding (a checkpoint folder or a training fold folder).

    Raises
    ------
    ModelFileError
        Missing or malformed checkpoint, an unknown contract version, a field out of range (the
        message names the file and field).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: checkpoint not found")
    model, contract = load_checkpoint(path if path.is_dir() else path.parent)
    return DecoderBundle(model.eval(), contract, str(path))


def save_bundle(bundle: DecoderBundle, directory: str | Path) -> Path:
    """Write a bundle as a checkpoint folder (model + ``contract.json``)."""
    return save_checkpoint(bundle.model, directory, bundle.contract)


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
    scale : list of float or None
        Factor from each picked channel's unit to the checkpoint's EEG unit (``V`` -> ``uV``:
        1e6); None without EEG.
    """

    eeg: StreamInfo | None
    picks: list[int]
    peripheral: dict[str, StreamInfo] = field(default_factory=dict)
    face: StreamInfo | None = None
    scale: list[float] | None = None


def channel_scale(stream: StreamInfo, picks: Sequence[int], unit: str,
                  assume: str | None = None) -> list[float]:
    """Factors that turn the picked channels of ``stream`` into ``unit``.

    A channel that declares no unit takes ``assume`` (e.g. from ``decode --eeg-unit``); without
    it, or with a unit that is unknown or not a voltage, the stream is refused with one line
    naming it, the channel and the unit.
    """
    from physioaffect.streams.units import UnitError, si_unit, unit_factor

    out = []
    for i in picks:
        ch = stream.channels[i] if i < len(stream.channels) else None
        declared = (ch.unit if ch is not None else "") or ""
        given = declared if si_unit(declared) is not None else assume
        label = ch.label if ch is not None else str(i)
        if si_unit(given) is None:
            raise CheckpointMismatchError(
                f"stream {stream.name!r} channel {label} declares no unit ({declared!r}); the "
                f"checkpoint takes EEG in {unit}: declare it with --eeg-unit (e.g. uV)")
        try:
            out.append(unit_factor(given, unit, f"stream {stream.name!r} channel {label}"))
        except UnitError as err:
            raise CheckpointMismatchError(f"{err}; the checkpoint takes EEG in {unit}") from None
    return out


def match_streams(bundle: DecoderBundle, streams: Sequence[StreamInfo],
                  rate_tolerance: float = 0.01, eeg_unit: str | None = None) -> StreamMatch:
    """Check the live streams against the checkpoint; map channels by label and units.

    Parameters
    ----------
    bundle : DecoderBundle
    streams : sequence of StreamInfo
        What the source offers.
    rate_tolerance : float
        Relative difference of nominal rates still accepted.
    eeg_unit : str, optional
        Unit of EEG channels that declare none.

    Raises
    ------
    CheckpointMismatchError
        No EEG stream, a checkpoint channel missing from it, a different rate, or a channel
        whose unit is missing, unknown or not a voltage.
    """
    eegs = [s for s in streams if s.type.upper() == "EEG"]
    from physioaffect.streams.signals import canonical_signal

    peripheral = {s.type.upper(): s for s in streams if canonical_signal(s.type)}
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
        scale = channel_scale(eeg, picks, bundle.contract.eeg_unit, eeg_unit)
        return StreamMatch(eeg, picks, peripheral, face, scale)
    raise CheckpointMismatchError(f"{where}: " + "; ".join(errors))
