"""Channels of several streams of a session on one time base, without their samples.

A :class:`Plan` knows every channel (name, MNE type, original unit, stream, device) and the
grid ``t0 + k / sfreq`` they are put on; :meth:`Plan.read` resamples about :data:`BLOCK_S`
seconds at a time from memory or from the HDF5 file (linear interpolation on each stream's own
timestamps, faster streams low-pass filtered first). Both the lazily read MNE Raw
(:mod:`physioaffect.recording.raw`) and the exports (:mod:`physioaffect.recording.export`)
are built on it.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.recording.errors import RecordingError
from physioaffect.recording.reader import Session, StreamData, read_session

__all__ = ["BLOCK_S", "MNE_TYPES", "Plan", "PlanPart", "as_session", "make_plan", "meas_date",
           "mne_type", "unique_names"]

#: MNE channel type per LSL/physioaffect type (lower-cased).
MNE_TYPES = {
    "eeg": "eeg", "ecg": "ecg", "gsr": "gsr", "eda": "gsr", "ppg": "bio", "bio": "bio",
    "resp": "resp", "eog": "eog", "emg": "emg", "temp": "temperature",
    "temperature": "temperature", "misc": "misc", "stim": "stim",
}

def mne_type(channel_type: str, stream_type: str) -> str:
    """MNE channel type for a channel (its own type first, then its stream's)."""
    for t in (channel_type, stream_type):
        key = (t or "").strip().lower()
        if key in MNE_TYPES:
            return MNE_TYPES[key]
    return "misc"

def as_session(session: Session | str | os.PathLike[str], load_samples: bool = True) -> Session:
    """``session`` itself, or the session file at that path (samples read when asked)."""
    if isinstance(session, Session):
        return session
    return read_session(session, load_samples=load_samples)


def _has_samples(s: StreamData) -> bool:
    return s.samples.shape[0] == s.n_samples

BLOCK_S = 10.0


@dataclass
class PlanPart:
    """One stream's channels in a table (rows ``rows``), read in memory or from the file."""

    name: str
    timestamps: np.ndarray
    srate: float
    rows: slice
    samples: np.ndarray | None  # in memory; None: read from group ``key`` of the file
    key: str | None = None
    sos: np.ndarray | None = None  # anti-alias low-pass for streams faster than the table
    out_rate: float = 1.0  # Hz of the table

    @property
    def margin(self) -> int:
        """Extra source samples read on each side of a block (filter settling, interpolation).

        The order-8 low-pass at 0.45 x the table rate settles within a few dozen periods of
        its cut-off; 40 of them leave block edges well below float32 resolution.
        """
        if self.sos is None:
            return 2
        return int(max(64, 40 * self.srate / (0.45 * self.out_rate)))


@dataclass
class Plan:
    """Channels of several streams on one time base, without their samples.

    Sample ``k`` of the table is at LSL time ``t0 + k / sfreq``; every stream is put on that
    grid by linear interpolation on its own timestamps (faster streams low-pass filtered first).
    """

    path: Path
    t0: float
    sfreq: float
    n_times: int
    parts: list[PlanPart]
    names: list[str]
    ch_types: list[str]  # MNE types
    units: list[str]  # original unit strings
    streams: list[str]  # stream of each channel
    devices: list[dict[str, str]]  # device of each channel's stream
    bad_spans: list[tuple[float, float, str]] = field(default_factory=list)  # LSL times

    def read(self, start: int, stop: int, rows: np.ndarray | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Samples ``start:stop`` of the table in original units, ``(n_rows, stop - start)``.

        ``rows`` picks channels (default all); only the streams they belong to are read.
        """
        rows = np.arange(len(self.names)) if rows is None else np.asarray(rows, dtype=int)
        n = stop - start
        if out is None:
            out = np.empty((rows.size, n))
        where = {int(r): i for i, r in enumerate(rows)}
        wanted = [p for p in self.parts if any(r in where for r in range(p.rows.start, p.rows.stop))]
        if not wanted or n <= 0:
            return out
        h5 = None
        try:
            if any(p.samples is None for p in wanted):
                from physioaffect.recording.reader import open_session_h5

                h5 = open_session_h5(self.path)
            step = max(1, int(BLOCK_S * self.sfreq))
            for a in range(start, stop, step):
                b = min(stop, a + step)
                grid = self.t0 + np.arange(a, b) / self.sfreq
                for p in wanted:
                    block = _resample_part(p, grid, h5)
                    for c, r in enumerate(range(p.rows.start, p.rows.stop)):
                        if r in where:
                            out[where[r], a - start:b - start] = block[:, c]
        finally:
            if h5 is not None:
                h5.close()
        return out


def _resample_part(p: PlanPart, grid: np.ndarray, h5: Any) -> np.ndarray:
    """Samples of one stream at the times ``grid`` (float64, ``(n_grid, n_ch)``)."""
    ts = p.timestamps
    n = ts.shape[0]
    j0 = int(np.searchsorted(ts, grid[0], side="right")) - 1 - p.margin
    j1 = int(np.searchsorted(ts, grid[-1], side="left")) + 1 + p.margin
    j0, j1 = max(0, min(j0, n - 1)), min(n, max(j1, 1))
    j1 = max(j1, j0 + 1)
    if p.samples is not None:
        x = np.asarray(p.samples[j0:j1], dtype=np.float64)
    else:
        try:
            x = np.asarray(h5["streams"][p.key]["samples"][j0:j1], dtype=np.float64)
        except (KeyError, OSError, ValueError) as err:
            raise RecordingError(f"{h5.filename}: cannot read stream {p.name!r} "
                                 f"({str(err).splitlines()[0]})") from None
    if p.sos is not None and x.shape[0] > 3 * (2 * p.sos.shape[0] + 1):
        from scipy.signal import sosfiltfilt

        x = sosfiltfilt(p.sos, x, axis=0)
    t = ts[j0:j1]
    out = np.empty((grid.shape[0], x.shape[1]))
    for c in range(x.shape[1]):
        out[:, c] = np.interp(grid, t, x[:, c])
    return out


def _antialias(s: StreamData, sfreq: float) -> np.ndarray | None:
    if s.info.nominal_srate > sfreq * 1.0001 and s.n_samples > 30:
        from scipy.signal import butter

        return butter(8, 0.45 * sfreq, fs=s.info.nominal_srate, output="sos")
    return None


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        base = n
        k = seen.get(base, 0)
        while n in seen:
            k += 1
            n = f"{base}-{k}"
        seen[base] = k
        seen[n] = 0
        out.append(n)
    return out


def _group_keys(path: Path) -> dict[str, str]:
    """Stream name -> HDF5 group key under ``/streams``."""
    from physioaffect.recording.reader import open_session_h5

    with open_session_h5(path) as f:
        return {str(_attr_str(f["streams"][k].attrs.get("name", k))): k for k in f["streams"]}


def _attr_str(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def make_plan(session: Session, sfreq: float | None, streams: Iterable[str] | None,
          tmin: float | None = None, tmax: float | None = None) -> Plan:
    chosen = [s for s in session.signal_streams if s.n_samples > 1]
    if streams is not None:
        wanted = set(streams)
        chosen = [s for s in chosen if s.name in wanted]
    if not chosen:
        raise RecordingError(f"{session.path}: no regular-rate stream with samples to export")
    if sfreq is None:
        eeg = [s.info.nominal_srate for s in chosen if s.info.type.upper() == "EEG"]
        sfreq = max(eeg) if eeg else max(s.info.nominal_srate for s in chosen)
    sfreq = float(sfreq)
    t0 = min(float(s.timestamps[0]) for s in chosen) if tmin is None else tmin
    t1 = max(float(s.timestamps[-1]) for s in chosen) if tmax is None else tmax
    n = int(np.floor((t1 - t0) * sfreq + 1e-6)) + 1
    keys = {} if all(_has_samples(s) for s in chosen) else _group_keys(session.path)
    parts, names, types, units, owners, devices = [], [], [], [], [], []
    bad: list[tuple[float, float, str]] = []
    for s in chosen:
        row0 = len(names)
        for ch in s.info.channels:
            names.append(ch.label)
            types.append(mne_type(ch.type, s.info.type))
            units.append(ch.unit)
            owners.append(s.name)
            devices.append(dict(s.info.device))
        in_memory = _has_samples(s)
        part = PlanPart(s.name, s.timestamps, float(s.info.nominal_srate), slice(row0, len(names)),
                     s.samples if in_memory else None, None if in_memory else keys[s.name],
                     _antialias(s, sfreq), sfreq)
        parts.append(part)
        first, last = float(s.timestamps[0]), float(s.timestamps[-1])
        if first > t0 + 1.5 / sfreq:
            bad.append((t0, first, f"BAD_no_data_{s.name}"))
        if last < t1 - 1.5 / sfreq:
            bad.append((last, t1, f"BAD_no_data_{s.name}"))
        for g in s.gaps:
            bad.append((float(g["start"]), float(g["end"]), f"BAD_gap_{s.name}"))
    return Plan(Path(session.path), t0, sfreq, n, parts, unique_names(names), types, units,
                 owners, devices, bad)

def meas_date(session: Session, t_lsl: float) -> _dt.datetime | None:
    """UTC time of LSL time ``t_lsl`` (s) from the session's clock offset (None: not recorded)."""
    a = session.attrs
    if "unix_to_lsl_offset" not in a:
        return None
    unix = t_lsl - float(a["unix_to_lsl_offset"])
    return _dt.datetime.fromtimestamp(unix, tz=_dt.UTC)
