"""The live ``sim`` source: the simulator paced by the LSL clock.

It publishes ``<prefix>-EEG``, ``-ECG``, ``-EDA``, ``-PPG``, ``-RESP``, ``-Markers`` and, with
``face=1``, ``-Face`` (facial features per video frame at ``face_rate`` frames/s).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from physioaffect.sources.base import Source, SourceSpec, SourceSpecError
from physioaffect.sources.sim.model import SimConfig, SubjectModel, stream_infos, subject_params
from physioaffect.streams import Chunk, local_clock

#: Options of ``sim?...`` beyond the SimConfig fields.
_EXTRA_OPTIONS = {"subject", "speed", "prefix", "chunk_ms"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool_param(spec: SourceSpec, key: str, default: bool) -> bool:
    """A yes/no option: 1/0, true/false, yes/no, on/off (any case)."""
    value = spec.param(key)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise SourceSpecError(f"source {spec.text!r}: parameter {key}={value!r} must be 1/0, true/false, "
                     "yes/no or on/off")


class SimSource(Source):
    """Streams one virtual subject in real time (or ``speed`` times faster).

    Samples are released when their timestamp comes due on the LSL clock, so
    the source behaves like a device; with ``speed=0`` it releases a block per
    read, as fast as the consumer takes them. Timestamps are
    ``start + n / rate``: with ``speed`` other than 1 they run ahead of the clock.

    Parameters
    ----------
    config : SimConfig
    subject : int
        Which virtual subject to stream.
    speed : float
        Data seconds per clock second (1 = real time, 0 = unpaced).
    prefix : str
        Stream-name prefix (``<prefix>-EEG``, ...), to run several simulators at once.
        With ``config.face`` a ``<prefix>-Face`` stream is published too, its frames
        timestamped ``start + k / face_rate`` like the other streams' samples.
    chunk_ms : float
        Smallest chunk released, in milliseconds.
    """

    description = "sim"

    def __init__(
        self, config: SimConfig | None = None, subject: int = 0, speed: float = 1.0,
        prefix: str = "sim", chunk_ms: float = 10.0,
    ):
        super().__init__()
        self.config = config or SimConfig()
        if not (math.isfinite(speed) and 0 <= speed <= 1000):  # NaN fails too
            raise SourceSpecError(f"sim: speed must be 0 (unpaced) to 1000, got {speed}")
        if not (math.isfinite(chunk_ms) and 0.1 <= chunk_ms <= 10_000):
            raise SourceSpecError(f"sim: chunk_ms must be 0.1-10000, got {chunk_ms}")
        subject_params(self.config, subject)  # refuses a subject outside the population
        self.subject = subject
        self.speed = speed
        self.prefix = prefix
        self.chunk_s = chunk_ms / 1000.0
        self.description = f"sim (subject {subject}, seed {self.config.seed})"
        self._infos = stream_infos(self.config, prefix, subject)
        self.streams = list(self._infos.values())

    @classmethod
    def from_spec(cls, spec: SourceSpec) -> SimSource:
        fields = {f.name: f for f in dataclasses.fields(SimConfig)}
        spec.check_known(set(fields) | _EXTRA_OPTIONS)
        kwargs = {}
        for key in spec.params:
            if key in fields:
                default = fields[key].default
                if isinstance(default, bool):  # before int: bool is an int subclass
                    kwargs[key] = _bool_param(spec, key, default)
                elif key == "periph_rate" or isinstance(default, int):
                    kwargs[key] = spec.int_param(key, 0)
                else:
                    kwargs[key] = spec.float_param(key, 0.0)
        return cls(
            SimConfig(**kwargs),
            subject=spec.int_param("subject", 0),
            speed=spec.float_param("speed", 1.0),
            prefix=spec.param("prefix", "sim") or "sim",
            chunk_ms=spec.float_param("chunk_ms", 10.0),
        )

    def _start(self) -> None:
        self._model = SubjectModel(self.config, self.subject)
        self._t_start = local_clock()
        self._pending: dict[str, list[np.ndarray]] = {k: [] for k in self._infos if k != "Markers"}
        self._released = {k: 0 for k in self._pending}  # samples released per type
        self._generated_s = 0.0
        self._markers: list[tuple[float, str]] = []

    def _data_time_due(self) -> float:
        if self.speed == 0:
            return self._generated_s + self.config.block_seconds  # one more block per read
        return (local_clock() - self._t_start) * self.speed

    def _generate_until(self, t_due: float) -> None:
        while self._generated_s < t_due:
            block = self._model.next_block()
            for kind, data in block.signals.items():
                self._pending[kind].append(data)
            self._markers += block.markers
            self._generated_s += self.config.block_seconds

    def _read(self, timeout: float) -> list[Chunk]:
        t_due = self._data_time_due()
        if self.speed > 0:
            # Sleep until the last sample of the next chunk comes due (never past the
            # timeout), so a chunk leaves the moment its newest sample's time arrives.
            eeg_rate = self._infos["EEG"].nominal_srate
            last_index = self._released["EEG"] + max(1, round(self.chunk_s * eeg_rate)) - 1
            wait = (last_index / eeg_rate - t_due) / self.speed
            if wait > 0:
                time.sleep(min(wait, timeout))
                t_due = self._data_time_due()
        self._generate_until(t_due)
        chunks = []
        for kind, parts in self._pending.items():
            info = self._infos[kind]
            fs = info.nominal_srate
            # samples whose timestamp (index / fs) is not in the future
            n_due = int(np.floor(t_due * fs + 1e-9)) + 1 - self._released[kind]
            if n_due <= 0 or not parts:
                continue
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            n_due = min(n_due, data.shape[0])
            first = self._released[kind]
            ts = self._t_start + (first + np.arange(n_due)) / fs
            chunks.append(Chunk(info.name, ts, data[:n_due]))
            rest = data[n_due:]
            self._pending[kind] = [rest] if rest.shape[0] else []
            self._released[kind] += n_due
        due_markers = [m for m in self._markers if m[0] <= t_due]
        if due_markers:
            self._markers = self._markers[len(due_markers):]
            info = self._infos["Markers"]
            ts = np.array([self._t_start + t for t, _ in due_markers])
            samples = np.array([[text] for _, text in due_markers], dtype=object)
            chunks.append(Chunk(info.name, ts, samples))
        return chunks

    def _stop(self) -> None:
        self._pending = {}
