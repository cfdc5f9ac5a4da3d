"""From a session to MNE, EDF+/BDF+, FIF, BIDS, and to windows for the datasets layer.

- :func:`to_raw`: every regular stream on one time base (SI units, MNE channel types,
  markers and gaps as annotations).
- :func:`export_edf` (EDF+ or BDF+ through edfio), :func:`export_fif`, :func:`export_bids`
  (EEG through mne-bids, the peripheral signals as ``_physio.tsv.gz`` + ``_physio.json``,
  one pair per sampling rate, events in ``_events.tsv``).
- :func:`marker_windows`: the stimulus intervals marked by onset/offset markers, and
  :func:`window_data` to cut every stream to one of them.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.recording.errors import RecordingError
from physioaffect.recording.reader import Session, StreamData, read_session

#: MNE channel type per LSL/physioaffect type (lower-cased).
MNE_TYPES = {
    "eeg": "eeg", "ecg": "ecg", "gsr": "gsr", "eda": "gsr", "ppg": "bio", "bio": "bio",
    "resp": "resp", "eog": "eog", "emg": "emg", "temp": "temperature",
    "temperature": "temperature", "misc": "misc", "stim": "stim",
}

#: Factor to SI and the SI unit, per unit spelling found in streams.
UNIT_SCALE = {
    "microvolts": (1e-6, "V"), "microvolt": (1e-6, "V"), "uv": (1e-6, "V"), "µv": (1e-6, "V"),
    "μv": (1e-6, "V"), "millivolts": (1e-3, "V"), "millivolt": (1e-3, "V"), "mv": (1e-3, "V"),
    "volts": (1.0, "V"), "volt": (1.0, "V"), "v": (1.0, "V"),
    "microsiemens": (1e-6, "S"), "us": (1e-6, "S"), "µs": (1e-6, "S"), "μs": (1e-6, "S"),
    "siemens": (1.0, "S"), "s": (1.0, "S"),
}

#: EDF ``physical dimension`` per unit spelling (8 ASCII characters at most).
EDF_UNITS = {
    "microvolts": "uV", "microvolt": "uV", "uv": "uV", "µv": "uV", "μv": "uV",
    "millivolts": "mV", "millivolt": "mV", "mv": "mV", "volts": "V", "v": "V",
    "microsiemens": "uS", "us": "uS", "µs": "uS", "μs": "uS", "siemens": "S",
    "celsius": "degC", "degc": "degC", "bpm": "bpm",
}


def mne_type(channel_type: str, stream_type: str) -> str:
    """MNE channel type for a channel (its own type first, then its stream's)."""
    for t in (channel_type, stream_type):
        key = (t or "").strip().lower()
        if key in MNE_TYPES:
            return MNE_TYPES[key]
    return "misc"


def _as_session(session: Session | str | os.PathLike[str]) -> Session:
    return session if isinstance(session, Session) else read_session(session)


def _resample_stream(s: StreamData, grid: np.ndarray, sfreq: float) -> np.ndarray:
    """Samples of ``s`` at the times ``grid`` (linear interpolation on its own timestamps).

    Streams faster than ``sfreq`` are low-pass filtered (zero phase, 0.45 x sfreq)
    first so that the new rate does not alias. Returns float64, shape (n_grid, n_ch).
    """
    x = np.asarray(s.samples, dtype=np.float64)
    ts = s.timestamps
    if s.info.nominal_srate > sfreq * 1.0001 and x.shape[0] > 30:
        from scipy.signal import butter, sosfiltfilt

        sos = butter(8, 0.45 * sfreq, fs=s.info.nominal_srate, output="sos")
        x = sosfiltfilt(sos, x, axis=0)
    out = np.empty((grid.shape[0], x.shape[1]))
    for c in range(x.shape[1]):
        out[:, c] = np.interp(grid, ts, x[:, c])
    return out


def _unique_names(names: list[str]) -> list[str]:
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


@dataclass
class _Table:
    """Channels of several streams on one time base, in their original units."""

    t0: float
    sfreq: float
    data: np.ndarray  # (n_channels, n_times), original units
    names: list[str]
    ch_types: list[str]  # MNE types
    units: list[str]  # original unit strings
    streams: list[str]  # stream of each channel
    bad_spans: list[tuple[float, float, str]] = field(default_factory=list)  # LSL times


def _table(session: Session, sfreq: float | None, streams: Iterable[str] | None,
           tmin: float | None = None, tmax: float | None = None) -> _Table:
    chosen = [s for s in session.signal_streams if s.n_samples > 1]
    if streams is not None:
        wanted = set(streams)
        chosen = [s for s in chosen if s.name in wanted]
    if not chosen:
        raise RecordingError(f"{session.path}: no regular-rate stream with samples to export")
    if sfreq is None:
        eeg = [s.info.nominal_srate for s in chosen if s.info.type.upper() == "EEG"]
        sfreq = max(eeg) if eeg else max(s.info.nominal_srate for s in chosen)
    t0 = min(float(s.timestamps[0]) for s in chosen) if tmin is None else tmin
    t1 = max(float(s.timestamps[-1]) for s in chosen) if tmax is None else tmax
    n = int(np.floor((t1 - t0) * sfreq + 1e-6)) + 1
    grid = t0 + np.arange(n) / sfreq
    rows, names, types, units, owners = [], [], [], [], []
    bad: list[tuple[float, float, str]] = []
    for s in chosen:
        rows.append(_resample_stream(s, grid, sfreq).T)
        for ch in s.info.channels:
            names.append(ch.label)
            types.append(mne_type(ch.type, s.info.type))
            units.append(ch.unit)
            owners.append(s.name)
        first, last = float(s.timestamps[0]), float(s.timestamps[-1])
        if first > t0 + 1.5 / sfreq:
            bad.append((t0, first, f"BAD_no_data_{s.name}"))
        if last < t1 - 1.5 / sfreq:
            bad.append((last, t1, f"BAD_no_data_{s.name}"))
        for g in s.gaps:
            bad.append((float(g["start"]), float(g["end"]), f"BAD_gap_{s.name}"))
    return _Table(t0, float(sfreq), np.concatenate(rows, axis=0), _unique_names(names), types,
                  units, owners, bad)


def _meas_date(session: Session, t_lsl: float) -> _dt.datetime | None:
    a = session.attrs
    if "unix_to_lsl_offset" not in a:
        return None
    unix = t_lsl - float(a["unix_to_lsl_offset"])
    return _dt.datetime.fromtimestamp(unix, tz=_dt.UTC)


def to_raw(
    session: Session | str | os.PathLike[str],
    sfreq: float | None = None,
    streams: Iterable[str] | None = None,
    markers: bool = True,
    verbose: str | bool | None = "error",
):
    """An ``mne.io.RawArray`` with every regular stream on one time base.

    Parameters
    ----------
    session : Session or path
    sfreq : float, optional
        Sampling rate of the result in Hz (default: the EEG rate, else the highest rate).
        Slower streams are interpolated linearly; faster ones are low-pass filtered first.
    streams : iterable of str, optional
        Stream names to include (default: all regular numeric streams).
    markers : bool
        Add the markers as annotations (onset in s from the first sample, duration 0).

    Returns
    -------
    mne.io.RawArray
        Data in SI units (EEG/ECG in V, EDA in S; other units unchanged). Channel
        types: eeg, ecg, gsr, bio (PPG), resp, eog, emg, temperature, misc. Gaps and
        spans without data of a stream are ``BAD_gap_<stream>`` / ``BAD_no_data_<stream>``
        annotations. ``raw.info["meas_date"]`` is the UTC time of the first sample.
    """
    import mne

    session = _as_session(session)
    tab = _table(session, sfreq, streams)
    scale = np.array([UNIT_SCALE.get(u.strip().lower(), (1.0, u))[0] for u in tab.units])
    info = mne.create_info(tab.names, tab.sfreq, tab.ch_types, verbose=verbose)
    raw = mne.io.RawArray(tab.data * scale[:, None], info, verbose=verbose)
    meas = _meas_date(session, tab.t0)
    if meas is not None:
        raw.set_meas_date(meas)
    a = session.attrs
    raw.info["subject_info"] = {"his_id": str(a.get("subject", ""))}
    raw.info["description"] = (
        f"physioaffect session sub-{a.get('subject')} ses-{a.get('session') or '-'} "
        f"task-{a.get('task')} run-{a.get('run') or '-'}; first sample at LSL {tab.t0:.6f} s"
    )
    onsets, durations, texts = [], [], []
    for start, end, text in tab.bad_spans:
        onsets.append(start - tab.t0)
        durations.append(max(0.0, end - start))
        texts.append(text)
    if markers:
        for m in session.markers:
            onsets.append(m.time - tab.t0)
            durations.append(0.0)
            texts.append(m.text)
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, durations, texts,
                                            orig_time=raw.info["meas_date"]))
    return raw


# -- EDF+ / BDF+ -----------------------------------------------------------------------

def _edf_label(label: str, ch_type: str) -> str:
    """EDF+ label ``"<type> <label>"`` (16 ASCII characters); MNE reads the type from it."""
    # the type words MNE's EDF reader maps back to channel types (EDA and PPG are BIO)
    kind = {"eeg": "EEG", "ecg": "ECG", "gsr": "BIO", "bio": "BIO", "resp": "RESP",
            "eog": "EOG", "emg": "EMG", "temperature": "TEMP", "misc": "MISC"}.get(ch_type, "")
    clean = label.encode("ascii", "replace").decode()
    full = f"{kind} {clean}" if kind else clean
    return full[:16]


def export_edf(
    session: Session | str | os.PathLike[str],
    out: str | os.PathLike[str],
    bdf: bool = False,
    sfreq: float | None = None,
    streams: Iterable[str] | None = None,
) -> Path:
    """Write an EDF+ (16 bit) or BDF+ (24 bit) file through edfio.

    Every regular stream is put on one rate (see :func:`to_raw`), in its original
    units (EEG in uV, ECG in mV, EDA in uS; EDF ``physical dimension``); markers and
    gaps become EDF+ annotations. The file must not exist.
    """
    import edfio

    session = _as_session(session)
    out = Path(out)
    _refuse_existing(out)
    tab = _table(session, sfreq, streams)
    n = tab.data.shape[1]
    # EDF stores whole data records; use 1 s records and pad the last with its last value
    per_record = tab.sfreq
    if abs(per_record - round(per_record)) > 1e-9:
        raise RecordingError(f"EDF export needs an integer sampling rate, got {tab.sfreq} Hz")
    per_record = int(round(per_record))
    n_pad = (-n) % per_record
    data = np.pad(tab.data, ((0, 0), (0, n_pad)), mode="edge") if n_pad else tab.data
    Signal = edfio.BdfSignal if bdf else edfio.EdfSignal
    labels = _unique_names([_edf_label(nm, t) for nm, t in zip(tab.names, tab.ch_types, strict=False)])
    signals = []
    for row, label, unit in zip(data, labels, tab.units, strict=False):
        lo, hi = float(np.min(row)), float(np.max(row))
        if not np.isfinite(lo) or not np.isfinite(hi):
            raise RecordingError(f"{session.path}: channel {label!r} has non-finite values")
        if hi - lo < 1e-9:
            lo, hi = lo - 1.0, hi + 1.0
        dim = EDF_UNITS.get(unit.strip().lower(), unit.encode("ascii", "replace").decode()[:8])
        signals.append(Signal(row, tab.sfreq, label=label, physical_dimension=dim,
                              physical_range=(lo, hi)))
    annotations = [edfio.EdfAnnotation(max(0.0, s - tab.t0), max(0.0, e - s), text[:200])
                   for s, e, text in tab.bad_spans]
    annotations += [edfio.EdfAnnotation(m.time - tab.t0, None, m.text[:200])
                    for m in session.markers if tab.t0 <= m.time <= tab.t0 + n / tab.sfreq]
    meas = _meas_date(session, tab.t0)
    a = session.attrs
    Container = edfio.Bdf if bdf else edfio.Edf
    kwargs: dict[str, Any] = {}
    if meas is not None:
        kwargs["starttime"] = meas.time().replace(microsecond=0, tzinfo=None)
        kwargs["recording"] = edfio.Recording(startdate=meas.date())
    kwargs["patient"] = edfio.Patient(code=str(a.get("subject", "X")) or "X")
    edf = Container(signals, data_record_duration=1.0, annotations=annotations, **kwargs)
    tmp = out.with_name(out.name + ".part")
    edf.write(tmp)
    os.replace(tmp, out)
    return out


def export_fif(session: Session | str | os.PathLike[str], out: str | os.PathLike[str],
               sfreq: float | None = None) -> Path:
    """Write ``to_raw(session)`` as a FIF file (name should end in ``_raw.fif``)."""
    out = Path(out)
    _refuse_existing(out)
    raw = to_raw(session, sfreq=sfreq)
    raw.save(out, overwrite=False, verbose="error")
    return out


def _refuse_existing(out: Path) -> None:
    if out.exists():
        raise RecordingError(f"{str(out)!r} already exists; it is never overwritten")
    if not out.parent.exists():
        raise RecordingError(f"output folder {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise RecordingError(f"output folder {str(out.parent)!r} is not writable")


# -- BIDS ------------------------------------------------------------------------------

def export_bids(session: Session | str | os.PathLike[str], root: str | os.PathLike[str],
                eeg_format: str = "EDF") -> dict[str, list[Path]]:
    """Write the session into a BIDS dataset at ``root``.

    EEG streams go through :func:`mne_bids.write_raw_bids` (``_eeg.edf``, ``_channels.tsv``,
    ``_events.tsv`` from the markers, sidecars). Every other regular stream goes to
    ``_recording-<label>_physio.tsv.gz`` + ``_physio.json``, one pair per sampling rate at
    that rate (no resampling), with ``StartTime`` relative to the first EEG sample.

    Returns
    -------
    dict
        ``{"eeg": [...], "physio": [...]}`` paths written.
    """
    import mne_bids

    session = _as_session(session)
    a = session.attrs
    root = Path(root)
    sub, task = str(a.get("subject")), str(a.get("task"))
    ses = str(a.get("session") or "") or None
    run = int(a.get("run") or 0) or None
    eeg_streams = [s.name for s in session.signal_streams
                   if s.info.type.upper() == "EEG" and s.n_samples > 1]
    written: dict[str, list[Path]] = {"eeg": [], "physio": []}
    bp = mne_bids.BIDSPath(subject=sub, session=ses, task=task, run=run, root=root,
                           datatype="eeg")
    if bp.fpath.exists():
        raise RecordingError(f"{bp.fpath} already exists in the BIDS dataset; never overwritten")
    if eeg_streams:
        raw = to_raw(session, streams=eeg_streams)
        t_ref = float(min(session.streams[n].timestamps[0] for n in eeg_streams))
        raw.info["line_freq"] = float(session.attrs.get("configuration", {}).get("line_freq", 50.0)) \
            if isinstance(session.attrs.get("configuration"), dict) else 50.0
        mne_bids.write_raw_bids(raw, bp, format=eeg_format, allow_preload=True,
                                overwrite=False, verbose="error")
        written["eeg"].append(Path(bp.fpath))
    else:
        t_ref = min(float(s.timestamps[0]) for s in session.signal_streams if s.n_samples)
    # peripheral streams, grouped by rate
    groups: dict[float, list[StreamData]] = {}
    for s in session.signal_streams:
        if s.name in eeg_streams or s.n_samples < 2:
            continue
        groups.setdefault(float(s.info.nominal_srate), []).append(s)
    folder = Path(bp.directory)
    folder.mkdir(parents=True, exist_ok=True)
    base = bp.copy().update(datatype=None, suffix=None, extension=None).basename
    used: set[str] = set()
    for rate, members in sorted(groups.items()):
        label = re.sub(r"[^A-Za-z0-9]", "", members[0].info.type) if len(members) == 1 \
            else f"{rate:g}Hz".replace(".", "p")
        while label in used:
            label += "x"
        used.add(label)
        t0 = min(float(s.timestamps[0]) for s in members)
        t1 = max(float(s.timestamps[-1]) for s in members)
        n = int(np.floor((t1 - t0) * rate + 1e-6)) + 1
        grid = t0 + np.arange(n) / rate
        cols, units, data = [], {}, []
        for s in members:
            data.append(_resample_stream(s, grid, rate))
            for ch in s.info.channels:
                cols.append(ch.label)
        cols = _unique_names(cols)
        k = 0
        for s in members:
            for ch in s.info.channels:
                units[cols[k]] = {"Units": ch.unit, "Description": f"{ch.type} from stream {s.name}"}
                k += 1
        matrix = np.concatenate(data, axis=1)
        stem = f"{base}_recording-{label}_physio"
        tsv, side = folder / f"{stem}.tsv.gz", folder / f"{stem}.json"
        for p in (tsv, side):
            if p.exists():
                raise RecordingError(f"{p} already exists; never overwritten")
        with gzip.open(tsv, "wt", encoding="utf-8") as fh:
            np.savetxt(fh, matrix, delimiter="\t", fmt="%.7g")
        meta = {"SamplingFrequency": rate, "StartTime": t0 - t_ref, "Columns": cols,
                "Sources": [s.name for s in members], **units}
        side.write_text(json.dumps(meta, indent=2))
        written["physio"] += [tsv, side]
    return written


# -- windows for the datasets layer -------------------------------------------------------

@dataclass
class MarkerWindow:
    """An interval between an onset marker and its offset marker.

    Attributes
    ----------
    start, end : float
        LSL-clock seconds.
    label : dict
        What the onset marker said (parsed JSON, or ``{"text": ...}``).
    onset_text, offset_text : str
    """

    start: float
    end: float
    label: dict[str, Any]
    onset_text: str
    offset_text: str

    @property
    def duration(self) -> float:
        return self.end - self.start


def _parse_marker(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _event_of(d: dict[str, Any]) -> str:
    return str(d.get("event", d.get("text", "")))


def marker_windows(
    session: Session | str | os.PathLike[str],
    onset: str = "onset",
    offset: str = "offset",
    key: str = "trial",
) -> list[MarkerWindow]:
    """Pair onset and offset markers into windows.

    A marker is an onset when its ``event`` (JSON marker) or text ends with ``onset``
    (e.g. ``{"event": "stimulus_onset", "trial": 3, ...}``), an offset likewise. An onset
    is closed by the next offset with the same ``key`` value (JSON markers) or simply the
    next offset (plain text). Unclosed onsets are dropped.
    """
    session = _as_session(session)
    open_: dict[Any, tuple[float, dict[str, Any], str]] = {}
    out: list[MarkerWindow] = []
    for m in session.markers:
        d = _parse_marker(m.text)
        ev = _event_of(d)
        k = d.get(key) if key in d else None
        if ev.endswith(onset):
            open_[k] = (m.time, d, m.text)
        elif ev.endswith(offset) and k in open_:
            t0, d0, txt = open_.pop(k)
            out.append(MarkerWindow(t0, m.time, d0, txt, m.text))
    return sorted(out, key=lambda w: w.start)


def window_data(session: Session, window: MarkerWindow,
                streams: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cut every (or the named) regular stream to ``window``.

    Returns
    -------
    dict
        Stream name -> (timestamps (n,), samples (n, n_channels)) in original units.
    """
    out = {}
    for s in session.signal_streams:
        if streams is not None and s.name not in streams:
            continue
        i0, i1 = np.searchsorted(s.timestamps, [window.start, window.end])
        out[s.name] = (s.timestamps[i0:i1], s.samples[i0:i1])
    return out
