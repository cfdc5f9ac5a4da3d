"""Stream descriptions and timestamped chunks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physioaffect.errors import PhysioAffectError

#: Nominal rate of a stream without a regular rate (markers), as in LSL.
IRREGULAR_RATE = 0.0

#: Stream types used by physioaffect, named as LSL names them (``GSR`` is EDA).
STREAM_TYPES = (
    "EEG",
    "ECG",
    "GSR",
    "PPG",
    "RESP",
    "TEMP",
    "EOG",
    "EMG",
    "ACC",
    "Markers",
    "Face",
    "Prediction",
    "Misc",
)


class StreamError(PhysioAffectError, ValueError):
    """A stream description, chunk or buffer request is invalid (one-line message)."""


class UnknownStreamError(StreamError, KeyError):
    """No stream of that name."""


@dataclass(frozen=True)
class ChannelInfo:
    """One channel of a stream.

    Parameters
    ----------
    label : str
        Channel name, e.g. ``"Fp1"`` or ``"ECG"``.
    type : str
        Channel type as LSL names it (``"EEG"``, ``"ECG"``, ``"GSR"``, ...).
    unit : str
        Unit of the samples, e.g. ``"microvolts"``, ``"microsiemens"``, ``"bpm"``.
    """

    label: str
    type: str
    unit: str

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "type": self.type, "unit": self.unit}


@dataclass(frozen=True)
class StreamInfo:
    """Everything that describes a stream apart from its samples.

    Parameters
    ----------
    name : str
        Stream name, unique within a session (e.g. ``"sim-EEG"``).
    type : str
        Stream type (see :data:`STREAM_TYPES`).
    channels : tuple of ChannelInfo
        One entry per channel, in sample-column order.
    nominal_srate : float
        Nominal sampling rate in Hz; :data:`IRREGULAR_RATE` (0) for markers.
    channel_format : str
        ``"float32"``, ``"float64"`` or ``"string"`` (markers).
    source_id : str
        Identifier that stays the same when the device reconnects.
    device : mapping
        Device metadata: ``manufacturer``, ``model``, ``serial``, ``board_id``, ...
    """

    name: str
    type: str
    channels: tuple[ChannelInfo, ...]
    nominal_srate: float
    channel_format: str = "float32"
    source_id: str = ""
    device: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise StreamError("StreamInfo.name must not be empty")
        if not self.nominal_srate >= 0:  # NaN too
            raise StreamError(
                f"stream {self.name!r}: nominal_srate must be >= 0 Hz, got {self.nominal_srate}"
            )
        if self.channel_format not in ("float32", "float64", "string"):
            raise StreamError(
                f"stream {self.name!r}: channel_format must be float32, float64 or string, "
                f"got {self.channel_format!r}"
            )
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "device", {str(k): str(v) for k, v in dict(self.device).items()})

    @classmethod
    def from_labels(
        cls,
        name: str,
        type: str,
        labels: Sequence[str],
        nominal_srate: float,
        unit: str | Sequence[str],
        channel_types: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> StreamInfo:
        """Build a StreamInfo from parallel lists (a single unit/type applies to all)."""
        n = len(labels)
        units = [unit] * n if isinstance(unit, str) else list(unit)
        if channel_types is None:
            ctypes = [type] * n
        elif isinstance(channel_types, str):
            ctypes = [channel_types] * n
        else:
            ctypes = list(channel_types)
        if not (len(units) == len(ctypes) == n):
            raise StreamError(
                f"stream {name!r}: {n} labels but {len(units)} units and {len(ctypes)} types"
            )
        chans = tuple(ChannelInfo(lab, t, u) for lab, t, u in zip(labels, ctypes, units, strict=True))
        return cls(name=name, type=type, channels=chans, nominal_srate=nominal_srate, **kwargs)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.channels]

    @property
    def units(self) -> list[str]:
        return [c.unit for c in self.channels]

    @property
    def channel_types(self) -> list[str]:
        return [c.type for c in self.channels]

    @property
    def is_regular(self) -> bool:
        return self.nominal_srate > 0

    @property
    def dtype(self) -> np.dtype:
        if self.channel_format == "string":
            return np.dtype(object)
        return np.dtype(self.channel_format)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-able description (used by session files and LSL ``desc``)."""
        return {
            "name": self.name,
            "type": self.type,
            "nominal_srate": float(self.nominal_srate),
            "channel_format": self.channel_format,
            "source_id": self.source_id,
            "device": dict(self.device),
            "channels": [c.to_dict() for c in self.channels],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StreamInfo:
        try:
            chans = tuple(ChannelInfo(**c) for c in d["channels"])
            return cls(
                name=d["name"],
                type=d["type"],
                channels=chans,
                nominal_srate=float(d["nominal_srate"]),
                channel_format=d.get("channel_format", "float32"),
                source_id=d.get("source_id", ""),
                device=d.get("device", {}),
            )
        except (KeyError, TypeError) as err:
            raise StreamError(f"invalid stream description: missing or malformed {err}") from err

    def with_name(self, name: str) -> StreamInfo:
        return StreamInfo(
            name=name,
            type=self.type,
            channels=self.channels,
            nominal_srate=self.nominal_srate,
            channel_format=self.channel_format,
            source_id=self.source_id,
            device=self.device,
        )


@dataclass
class Chunk:
    """Consecutive samples of one stream with their timestamps.

    Parameters
    ----------
    stream : str
        Name of the stream (:attr:`StreamInfo.name`) the samples belong to.
    timestamps : ndarray, shape (n_samples,)
        LSL-clock seconds, one per sample.
    samples : ndarray, shape (n_samples, n_channels)
        Values in the units of the stream's channels; ``object`` dtype for markers.
    dropped : int
        Samples the device lost immediately before this chunk (e.g. from
        package-counter gaps). They are not in ``samples``.
    """

    stream: str
    timestamps: np.ndarray
    samples: np.ndarray
    dropped: int = 0

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        samples = np.asarray(self.samples)
        if samples.ndim == 1:
            samples = samples.reshape(-1, 1)
        self.samples = samples
        if samples.shape[0] != self.timestamps.shape[0]:
            raise StreamError(
                f"chunk of stream {self.stream!r}: {samples.shape[0]} samples but "
                f"{self.timestamps.shape[0]} timestamps"
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @staticmethod
    def concatenate(chunks: Iterable[Chunk]) -> Chunk:
        """Join chunks of one stream in order (summing their ``dropped`` counts)."""
        chunks = list(chunks)
        if not chunks:
            raise StreamError("no chunks to concatenate")
        names = {c.stream for c in chunks}
        if len(names) != 1:
            raise StreamError(f"cannot concatenate chunks of several streams: {sorted(names)}")
        return Chunk(
            stream=chunks[0].stream,
            timestamps=np.concatenate([c.timestamps for c in chunks]),
            samples=np.concatenate([c.samples for c in chunks], axis=0),
            dropped=sum(c.dropped for c in chunks),
        )


#: More channels than this in one stream is refused (the largest EEG/ECoG systems have a
#: few thousand; a larger count is a broken or hostile description).
MAX_CHANNELS = 16384
#: A nominal rate above this (Hz) is refused.
MAX_RATE_HZ = 1_000_000.0


def shape_problem(name: str, type: str, n_channels: int, nominal_srate: float) -> str | None:
    """Why a stream with this many channels and this rate cannot be acquired (``None`` when
    it can), in words for the operator; checked before anything is allocated for it."""
    what = f"stream {name!r} ({type or 'no type'})"
    if n_channels < 1:
        return f"{what} has {n_channels} channels"
    if n_channels > MAX_CHANNELS:
        return f"{what} declares {n_channels} channels; at most {MAX_CHANNELS} are accepted"
    if not (math.isfinite(nominal_srate) and 0 <= nominal_srate <= MAX_RATE_HZ):
        return (f"{what} declares a rate of {nominal_srate!r} Hz; expected 0 (irregular) to "
                f"{MAX_RATE_HZ:g} Hz")
    return None


def stream_problem(info: StreamInfo) -> str | None:
    """:func:`shape_problem` of a :class:`StreamInfo`."""
    return shape_problem(info.name, info.type, info.n_channels, info.nominal_srate)
