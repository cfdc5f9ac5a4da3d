"""From a session to MNE, EDF+/BDF+, FIF, BIDS, and to windows for the datasets layer.

- :func:`to_raw`: every regular stream on one time base, an ``mne.io.BaseRaw`` that reads
  its samples from the file when asked (:mod:`physioaffect.recording.raw`; SI units, MNE
  channel types, montage, markers and gaps as annotations).
- :func:`export_edf` (EDF+ or BDF+ through edfio, channel types in the labels),
  :func:`export_fif`, :func:`export_bids` (EEG through mne-bids with electrodes and typed
  events, the peripheral signals as ``_physio.tsv.gz`` + ``_physio.json``, one pair per
  sampling rate).

The streams are put on one grid by a :class:`_Plan` that knows the channels but not the
samples; it resamples about 10 s at a time from memory or from the HDF5 file.
- :func:`marker_windows`: the stimulus intervals marked by onset/offset markers, and
  :func:`window_data` to cut every stream to one of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import gzip
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.log import logger
from physioaffect.recording.errors import RecordingError
from physioaffect.recording.reader import Session, StreamData, read_session
from physioaffect.streams.units import unit_symbol

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


def edf_unit(unit: str) -> str:
    """EDF ``physical dimension`` of a stream's unit (8 ASCII characters: ``uV``, ``degC``)."""
    sym = str(unit_symbol(unit, "au")).replace("µ", "u").replace("°C", "degC")
    return sym.encode("ascii", "replace").decode()[:8]


def mne_type(channel_type: str, stream_type: str) -> str:
    """MNE channel type for a channel (its own type first, then its stream's)."""
    for t in (channel_type, stream_type):
        key = (t or "").strip().lower()
        if key in MNE_TYPES:
            return MNE_TYPES[key]
    return "misc"


def _as_session(session: Session | str | os.PathLike[str], load_samples: bool = True) -> Session:
    if isinstance(session, Session):
        return session
    return read_session(session, load_samples=load_samples)


def _has_samples(s: StreamData) -> bool:
    return s.samples.shape[0] == s.n_samples


#: Seconds of signal resampled at once: bounds the memory of one block.
_BLOCK_S = 10.0


@dataclass
class _Part:
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
class _Plan:
    """Channels of several streams on one time base, without their samples.

    Sample ``k`` of the table is at LSL time ``t0 + k / sfreq``; every stream is put on that
    grid by linear interpolation on its own timestamps (faster streams low-pass filtered first).
    """

    path: Path
    t0: float
    sfreq: float
    n_times: int
    parts: list[_Part]
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
            step = max(1, int(_BLOCK_S * self.sfreq))
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


def _resample_part(p: _Part, grid: np.ndarray, h5: Any) -> np.ndarray:
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


def _group_keys(path: Path) -> dict[str, str]:
    """Stream name -> HDF5 group key under ``/streams``."""
    from physioaffect.recording.reader import open_session_h5

    with open_session_h5(path) as f:
        return {str(_attr_str(f["streams"][k].attrs.get("name", k))): k for k in f["streams"]}


def _attr_str(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _plan(session: Session, sfreq: float | None, streams: Iterable[str] | None,
          tmin: float | None = None, tmax: float | None = None) -> _Plan:
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
        part = _Part(s.name, s.timestamps, float(s.info.nominal_srate), slice(row0, len(names)),
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
    return _Plan(Path(session.path), t0, sfreq, n, parts, _unique_names(names), types, units,
                 owners, devices, bad)


@dataclass
class _Table:
    """Channels of several streams on one time base, in their original units (dense)."""

    t0: float
    sfreq: float
    data: np.ndarray  # (n_channels, n_times), original units
    names: list[str]
    ch_types: list[str]  # MNE types
    units: list[str]  # original unit strings
    streams: list[str]  # stream of each channel
    bad_spans: list[tuple[float, float, str]] = field(default_factory=list)  # LSL times


def _table(session: Session, sfreq: float | None, streams: Iterable[str] | None,
           tmin: float | None = None, tmax: float | None = None,
           check: Callable[[_Plan], None] | None = None) -> _Table:
    plan = _plan(session, sfreq, streams, tmin, tmax)
    if check is not None:  # refusals that need the channels but not the samples
        check(plan)
    return _Table(plan.t0, plan.sfreq, plan.read(0, plan.n_times), plan.names, plan.ch_types,
                  plan.units, plan.streams, plan.bad_spans)


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
    markers: bool | str = True,
    preload: bool = False,
    verbose: str | bool | None = "error",
):
    """An ``mne.io.Raw`` of every regular stream on one time base, read lazily.

    Parameters
    ----------
    session : Session or path
        A path is opened without loading samples: they are read from the file when MNE asks
        (``preload=False``), so an hour of 64 channels at 1 kHz does not become one dense array.
    sfreq : float, optional
        Sampling rate of the result in Hz (default: the EEG rate, else the highest rate).
        Slower streams are interpolated linearly; faster ones are low-pass filtered first.
    streams : iterable of str, optional
        Stream names to include (default: all regular numeric streams).
    markers : bool or {"text", "split"}
        Add the markers as annotations (onset in s from the first sample, duration 0):
        ``True``/``"text"`` with the marker text as description, ``"split"`` with a JSON
        marker's ``event`` as description and its other fields in ``annotations.extras``.
    preload : bool
        Read every sample into memory now (default False, as MNE's readers).
    verbose : bool, str or None
        MNE's verbosity.

    Returns
    -------
    physioaffect.recording.raw.SessionRaw
        An ``mne.io.BaseRaw``. Data in SI units (EEG/ECG/EOG/EMG in V, EDA in S; other
        units unchanged; ``raw._orig_units`` keeps the recorded ones). Channel types: eeg,
        ecg, gsr, bio (PPG), resp, eog, emg, temperature, misc. EEG channels whose labels the
        stream's montage or MNE's 10-05 template knows have positions (``raw.get_montage()``).
        Gaps and spans without data of a stream are ``BAD_gap_<stream>`` /
        ``BAD_no_data_<stream>`` annotations. ``raw.info["meas_date"]`` is the UTC time of
        the first sample; ``raw.info["device_info"]`` the EEG stream's device.
    """
    from physioaffect.recording.raw import SessionRaw

    return SessionRaw(session, sfreq=sfreq, streams=streams, markers=markers, preload=preload,
                      verbose=verbose)


def marker_annotation_fields(text: str) -> tuple[str, dict[str, Any]]:
    """Description and extra fields of one marker for MNE annotations / BIDS events.

    A JSON object marker ``{"event": "stimulus_onset", "trial": 3, "valence": 6.5}`` gives
    ``("stimulus_onset", {"trial": 3, "valence": 6.5})`` (nested values as JSON text); any
    other text is its own description with no fields.
    """
    d = _parse_marker(text)
    if set(d) == {"text"}:
        return text, {}
    desc = str(d.get("event", "marker"))
    fields: dict[str, Any] = {}
    for k, v in d.items():
        if k == "event":
            continue
        if isinstance(v, bool):
            v = int(v)
        elif not isinstance(v, (int, float, str)) and v is not None:
            v = json.dumps(v)
        fields[str(k)] = v
    return desc, fields


def valid_text(text: str) -> str:
    """``text`` with lone UTF-16 surrogates made valid: a high/low pair is joined into its
    character, any other surrogate becomes U+FFFD (file formats store UTF-8, which has none)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def exportable_session(session: Session) -> Session:
    """``session`` with every marker text encodable as UTF-8 (said once when one was altered).

    A marker with lone surrogates (a program sent half a UTF-16 pair) is kept exactly in the
    session file; exports write it with U+FFFD in place of what cannot be encoded, so the
    session stays exportable.
    """
    altered = 0
    streams = dict(session.streams)
    for name, s in session.streams.items():
        if s.info.channel_format != "string" and s.info.type != "Markers":
            continue
        if s.samples.dtype != object or not s.samples.size:
            continue
        clean = np.frompyfunc(lambda t: valid_text(t) if isinstance(t, str) else t, 1, 1)(
            s.samples)
        changed = int(np.count_nonzero(clean != s.samples))
        if changed:
            altered += changed
            streams[name] = dataclasses.replace(s, samples=clean.astype(object))
    if not altered:
        return session
    logger.warning(f"{session.path}: {altered} marker(s) hold text that is not valid Unicode "
                   "(lone surrogates); exported with U+FFFD in their place (the session file "
                   "keeps them as recorded)")
    return dataclasses.replace(session, streams=streams)


# -- EDF+ / BDF+ -----------------------------------------------------------------------

#: EDF's header gives the number of signals 4 characters: at most 9999, one of them the
#: EDF+ annotations.
EDF_MAX_SIGNALS = 9999
#: Characters of a marker kept in an EDF+ annotation (every data record reserves room for
#: the longest one, so a 1 MB marker would make every second of the file 1 MB).
EDF_MARKER_CHARS = 200


def _edf_limits(path: Path) -> Callable[[_Plan], None]:
    def check(plan: _Plan) -> None:
        n = len(plan.names)
        if n > EDF_MAX_SIGNALS - 1:
            raise RecordingError(
                f"{path}: {n} channels do not fit an EDF+/BDF+ file (at most "
                f"{EDF_MAX_SIGNALS - 1} signals besides the annotations); export --to fif or "
                "--to bids instead")
        if plan.sfreq >= 1e8:
            raise RecordingError(f"{path}: {plan.sfreq:g} Hz does not fit EDF's 8-character "
                                 "samples-per-record field; choose a lower --sfreq")
    return check


def _edf_field(text: str) -> str:
    """An EDF header subfield: ASCII, no spaces (edfio refuses both)."""
    return text.encode("ascii", "replace").decode().replace(" ", "_") or "X"


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

    Labels are ``"<TYPE> <label>"`` (``EEG Fp1``, ``ECG ECG``, ``BIO EDA``, ``RESP RESP``,
    ``TEMP ...``), the prefixes MNE's EDF reader maps to channel types: read back with
    ``mne.io.read_raw_edf(path, infer_types=True)`` the names lose the prefix and get their
    type. (With MNE's default ``infer_types=False`` every channel is EEG and keeps the prefix
    in its name; EDF has no field for channel types or positions.) EDF stores whole 1 s data
    records: a recording that does not end on a whole second has its last record padded with
    the last value, marked by a ``BAD_ACQ_SKIP`` annotation.
    """
    import edfio

    session = exportable_session(_as_session(session, load_samples=False))
    out = Path(out)
    _refuse_existing(out)
    tab = _table(session, sfreq, streams, check=_edf_limits(Path(session.path)))
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
        dim = edf_unit(unit)
        signals.append(Signal(row, tab.sfreq, label=label, physical_dimension=dim,
                              physical_range=(lo, hi)))
    annotations = [edfio.EdfAnnotation(max(0.0, s - tab.t0), max(0.0, e - s), text[:200])
                   for s, e, text in tab.bad_spans]
    if n_pad:  # the padded end of the last record is not data (MNE's own EDF export does the same)
        annotations.append(edfio.EdfAnnotation(n / tab.sfreq, n_pad / tab.sfreq, "BAD_ACQ_SKIP"))
    kept = [m for m in session.markers if tab.t0 <= m.time <= tab.t0 + n / tab.sfreq]
    annotations += [edfio.EdfAnnotation(m.time - tab.t0, None, m.text[:EDF_MARKER_CHARS])
                    for m in kept]
    cut = sum(len(m.text) > EDF_MARKER_CHARS for m in kept)
    if cut:
        logger.warning(f"{session.path}: {cut} marker(s) longer than {EDF_MARKER_CHARS} "
                       f"characters cut to {EDF_MARKER_CHARS} in the EDF+ annotations of {out} "
                       "(the session file keeps the full text)")
    meas = _meas_date(session, tab.t0)
    a = session.attrs
    Container = edfio.Bdf if bdf else edfio.Edf
    kwargs: dict[str, Any] = {}
    if meas is not None:
        kwargs["starttime"] = meas.time().replace(microsecond=0, tzinfo=None)
        kwargs["recording"] = edfio.Recording(startdate=meas.date())
    kwargs["patient"] = edfio.Patient(code=_edf_field(str(a.get("subject", "X"))))
    edf = Container(signals, data_record_duration=1.0, annotations=annotations, **kwargs)
    tmp = out.with_name(out.name + ".part")
    with _cleaned_up(tmp, out):
        edf.write(tmp)
        os.replace(tmp, out)
    return out


def export_fif(session: Session | str | os.PathLike[str], out: str | os.PathLike[str],
               sfreq: float | None = None) -> Path:
    """Write ``to_raw(session)`` as a FIF file (name should end in ``_raw.fif``)."""
    out = Path(out)
    _refuse_existing(out)
    raw = to_raw(exportable_session(_as_session(session, load_samples=False)), sfreq=sfreq)
    tmp = out.with_name(".part-" + out.name)  # keeps MNE's ``_raw.fif`` ending
    with _cleaned_up(tmp, out):
        raw.save(tmp, overwrite=False, verbose="error")
        os.replace(tmp, out)
    return out


def _disk_full(err: OSError, folder: Path) -> bool:
    """Whether ``err`` means the disk of ``folder`` is full (numpy's ``tofile`` says only
    "N requested and M written", without an errno)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


@contextlib.contextmanager
def _cleaned_up(tmp: Path, out: Path):
    """Remove the temporary file of an export that failed; say a full disk plainly."""
    try:
        yield
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if _disk_full(err, out.parent):
            raise RecordingError(f"disk full while writing {out}; nothing was written (free "
                                 "space and export again)") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _refuse_existing(out: Path) -> None:
    if out.exists():
        raise RecordingError(f"{str(out)!r} already exists; it is never overwritten")
    if not out.parent.exists():
        raise RecordingError(f"output folder {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise RecordingError(f"output folder {str(out.parent)!r} is not writable")


# -- BIDS ------------------------------------------------------------------------------

#: Descriptions of the marker fields the simulator and stimulus programs send (events.json).
_EVENT_FIELDS = {
    "trial": "Trial number within the session, from the marker.",
    "stimulus": "Identifier of the stimulus shown (same id = same clip across subjects).",
    "valence": "Valence of the trial as the marker states it (self-report or the stimulus's "
               "nominal value; scale as sent by the stimulus program, 1-9 for the simulator).",
    "arousal": "Arousal of the trial as the marker states it (scale as sent, 1-9 for the "
               "simulator).",
    "dominance": "Dominance rating as the marker states it.",
    "liking": "Liking rating as the marker states it.",
    "emotion": "Emotion label as the marker states it.",
}


def bids_unit(unit: str) -> str:
    """The BIDS spelling of a stream's unit (``millivolts`` -> ``mV``, none stated -> ``n/a``,
    degrees Celsius as CMIXF's ``oC``; unknown spellings kept as they are)."""
    return str(unit_symbol(unit, "n/a")).replace("°C", "oC")


def _device_fields(device: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, field_name in (("manufacturer", "Manufacturer"), ("model", "ManufacturersModelName"),
                            ("serial", "DeviceSerialNumber")):
        if device.get(key):
            out[field_name] = str(device[key])
    return out


def bids_label(value: Any, entity: str, where: str) -> str:
    """A BIDS label (letters and digits) from a session's ``subject``/``task``/``session``.

    Other characters are dropped with one warning line (``a_b`` -> ``ab``, ``../../evil`` ->
    ``evil``); a value left empty is refused, saying how to give one.
    """
    text = valid_text("" if value is None else str(value))
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    if not label:
        raise RecordingError(f"{where}: {entity} {text!r} holds no letter or digit for a BIDS "
                             f"label; give one with export --{entity} LABEL")
    if label != text:
        logger.warning(f"{where}: {entity} {text!r} is not a BIDS label (letters and digits "
                       f"only); exported as {label!r}")
    return label


def _bids_entities(session: Session, subject: str | None, task: str | None) -> dict[str, Any]:
    """Session attributes ``subject``, ``task``, ``session``, ``run`` as valid BIDS entities."""
    a, where = session.attrs, str(session.path)
    out = {"subject": bids_label(a.get("subject") if subject is None else subject, "subject",
                                 where),
           "task": bids_label(a.get("task") if task is None else task, "task", where)}
    ses = a.get("session")
    out["session"] = bids_label(ses, "session", where) if str(ses or "") else None
    try:
        out["run"] = int(a.get("run") or 0) or None
    except (TypeError, ValueError):
        raise RecordingError(f"{where}: run {a.get('run')!r} is not a whole number (BIDS "
                             "runs are)") from None
    return out


#: Files beside the data that mne-bids updates in place (merged, not written anew).
_BIDS_SHARED = ("dataset_description.json", "participants.tsv", "participants.json", "README",
                "CHANGES", ".bidsignore")


def export_bids(session: Session | str | os.PathLike[str], root: str | os.PathLike[str],
                eeg_format: str = "BrainVision", line_freq: float | None = None,
                subject: str | None = None, task: str | None = None) -> dict[str, list[Path]]:
    """Write the session into a BIDS dataset at ``root``, all or nothing.

    Everything is first written into a folder beside ``root`` (holding copies of the files
    mne-bids merges: ``participants.tsv``, ``dataset_description.json``, the subject's
    ``_scans.tsv`` ...) and moved into ``root`` only once complete, new files first, then the
    merged ones (each move a rename). A failure (a full disk, an interruption) leaves ``root``
    as it was, so the export can simply be run again. Subject, task and session must be BIDS
    labels: other characters are dropped with one warning line; an empty subject is refused.

    Parameters
    ----------
    session, root, eeg_format, line_freq :
        See :func:`_write_bids`.
    subject, task : str, optional
        Labels to use instead of the session's own.

    Returns
    -------
    dict
        ``{"eeg": [...], "physio": [...]}`` paths written (inside ``root``).
    """
    import mne_bids

    session = exportable_session(_as_session(session, load_samples=False))
    root = Path(root)
    ids = _bids_entities(session, subject, task)
    session = dataclasses.replace(session, attrs={**session.attrs, **ids})
    bp = mne_bids.BIDSPath(subject=ids["subject"], session=ids["session"], task=ids["task"],
                           run=ids["run"], root=root, datatype="eeg")
    if list(Path(bp.directory).glob(f"{bp.basename}_eeg.*")):
        raise RecordingError(f"{bp.basename}_eeg already exists in the BIDS dataset "
                             f"{root}; never overwritten")
    root.resolve().parent.mkdir(parents=True, exist_ok=True)  # root itself only on success
    stage = Path(tempfile.mkdtemp(prefix=f".{root.resolve().name}.export-",
                                  dir=root.resolve().parent))
    try:
        shared = _stage_shared(root, stage, ids)
        written = _write_bids(session, stage, eeg_format, line_freq)
        _commit_stage(stage, root, shared)
    except OSError as err:
        what = "disk full" if _disk_full(err, stage.parent) else \
            f"cannot write ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        raise RecordingError(f"{what} while exporting {session.path} to the BIDS dataset "
                             f"{root}; nothing was written there (free space or fix the "
                             "folder, then export again)") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return {k: [root / Path(p).relative_to(stage) for p in v] for k, v in written.items()}


def _stage_shared(root: Path, stage: Path, ids: dict[str, Any]) -> set[Path]:
    """Copy the files mne-bids merges into ``stage``; returns their paths relative to it."""
    sub = f"sub-{ids['subject']}"
    folders = [Path("."), Path(sub)]
    if ids["session"]:
        folders.append(Path(sub) / f"ses-{ids['session']}")
    copied = set()
    for rel_dir in folders:
        src_dir = root / rel_dir
        if not src_dir.is_dir():
            continue
        for src in src_dir.iterdir():
            if src.is_file() and (src.name in _BIDS_SHARED or src.name.endswith(
                    ("_scans.tsv", "_scans.json"))):
                rel = rel_dir / src.name
                (stage / rel_dir).mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, stage / rel)
                copied.add(rel)
    return copied


def _commit_stage(stage: Path, root: Path, shared: set[Path]) -> None:
    """Move every file of ``stage`` into ``root``: new files (never over an existing one)
    first, then the merged ones, each by one rename."""
    files = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    new = [rel for rel in files if rel not in shared]
    taken = [rel for rel in new if (root / rel).exists()]
    if taken:
        raise RecordingError(f"{root / taken[0]} already exists; never overwritten")
    for rel in new + [rel for rel in files if rel in shared]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, root / rel)


def _write_bids(session: Session, root: Path, eeg_format: str = "BrainVision",
                line_freq: float | None = None) -> dict[str, list[Path]]:
    """Write the session into a BIDS dataset at ``root`` (:func:`export_bids` stages it).

    EEG streams go through :func:`mne_bids.write_raw_bids`: the data file (BrainVision
    float32 by default, exactly the recorded samples and length; ``eeg_format="EDF"`` pads the
    last data record to a whole second, which MNE marks ``BAD_ACQ_SKIP``), ``_channels.tsv``,
    ``_electrodes.tsv`` + ``_coordsystem.json`` (positions from the stream's montage or MNE's
    10-05 template), ``_eeg.json`` with ``Manufacturer``/``ManufacturersModelName`` from the
    device profile, and ``_events.tsv`` + ``_events.json``: a JSON marker's ``event`` is the
    ``trial_type`` and each of its other fields (``trial``, ``stimulus``, ``valence``,
    ``arousal`` ...) a column. Every other regular stream goes to
    ``_recording-<label>_physio.tsv.gz`` + ``_physio.json``, one pair per sampling rate at that
    rate (no resampling), ``StartTime`` relative to the first EEG sample, units as BIDS
    writes them (``mV``, ``µS``; ``n/a`` where the device states none).

    Parameters
    ----------
    session : Session or path
    root : path
        The BIDS dataset folder (created if missing; existing files are never overwritten).
    eeg_format : {"BrainVision", "EDF", "BDF"}
    line_freq : float, optional
        Power line frequency in Hz (default: the session's configuration, else 50).

    Returns
    -------
    dict
        ``{"eeg": [...], "physio": [...]}`` paths written.
    """
    import mne_bids

    session = _as_session(session, load_samples=False)
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
    if list(Path(bp.directory).glob(f"{bp.basename}_eeg.*")):
        raise RecordingError(f"{bp.basename}_eeg already exists in the BIDS dataset "
                             f"{root}; never overwritten")
    if line_freq is None:
        cfg = a.get("configuration")
        line_freq = float(cfg.get("line_freq", 50.0)) if isinstance(cfg, dict) else 50.0
    if eeg_streams:
        raw = to_raw(session, streams=eeg_streams, markers="split", preload=True)
        t_ref = float(min(session.streams[n].timestamps[0] for n in eeg_streams))
        raw.info["line_freq"] = float(line_freq)
        descriptions = sorted(set(raw.annotations.description))
        event_id = {d: i + 1 for i, d in enumerate(descriptions)}
        columns = sorted({k for e in (raw.annotations.extras or []) for k in (e or {})})
        column_text = {c: _EVENT_FIELDS.get(c, f"Field {c!r} of the JSON marker.")
                       for c in columns}
        out = mne_bids.write_raw_bids(raw, bp, format=eeg_format, allow_preload=True,
                                      event_id=event_id or None,
                                      extra_columns_descriptions=column_text or None,
                                      overwrite=False, verbose="error")
        written["eeg"].append(Path(out.fpath))
        coords = list(Path(bp.directory).glob(f"sub-{sub}*_coordsystem.json"))
        for c in coords:  # say what the positions are: a template, not a digitisation
            meta = json.loads(c.read_text(encoding="utf-8"))
            text = meta.get("EEGCoordinateSystemDescription", "")
            if "template" not in text:
                meta["EEGCoordinateSystemDescription"] = (
                    f"{text} Electrode positions are template positions for the channel labels "
                    "(the stream's montage, else MNE's 10-05 template), not digitised."
                ).strip()
                c.write_text(json.dumps(meta, indent=4, ensure_ascii=False), encoding="utf-8")
        device = session.streams[eeg_streams[0]].info.device
        sidecar = bp.copy().update(suffix="eeg", extension=".json")
        fields = {**_device_fields(dict(device)),
                  "SoftwareVersions": f"physioaffect "
                                      f"{(a.get('software_versions') or {}).get('physioaffect', '')}"
                                      .strip()}
        mne_bids.update_sidecar_json(sidecar, fields, verbose="error")
        if descriptions:
            events_json = bp.copy().update(suffix="events", extension=".json")
            levels = {d: _EVENT_LEVELS.get(d, f"marker {d!r}" if not d.startswith("BAD_")
                                           else "span without usable data (gap in a stream)")
                      for d in descriptions}
            mne_bids.update_sidecar_json(
                events_json,
                {"trial_type": {"Description": "The event: a JSON marker's 'event' field, "
                                               "else the marker text.", "Levels": levels}},
                verbose="error")
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
        plan = _plan(session, rate, [s.name for s in members])
        cols = plan.names
        units = {c: {"Units": bids_unit(u), "Description": f"{plan.ch_types[k]} channel from "
                                                           f"stream {plan.streams[k]}"}
                 for k, (c, u) in enumerate(zip(cols, plan.units, strict=True))}
        stem = f"{base}_recording-{label}_physio"
        tsv, side = folder / f"{stem}.tsv.gz", folder / f"{stem}.json"
        for p in (tsv, side):
            if p.exists():
                raise RecordingError(f"{p} already exists; never overwritten")
        step = max(1, int(_BLOCK_S * rate))
        with gzip.open(tsv, "wt", encoding="utf-8") as fh:
            for k in range(0, plan.n_times, step):
                np.savetxt(fh, plan.read(k, min(plan.n_times, k + step)).T, delimiter="\t",
                           fmt="%.7g")
        meta = {"SamplingFrequency": rate, "StartTime": plan.t0 - t_ref, "Columns": cols,
                **_device_fields(dict(members[0].info.device)),
                "Sources": [s.name for s in members], **units}
        side.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
        written["physio"] += [tsv, side]
    return written


_EVENT_LEVELS = {
    "stimulus_onset": "A stimulus starts (its trial, stimulus and ratings in the other columns).",
    "stimulus_offset": "The stimulus of that trial ends.",
    "rating": "The subject's ratings of a trial.",
    "baseline_onset": "A resting baseline starts.",
    "baseline_offset": "The resting baseline ends.",
}


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
