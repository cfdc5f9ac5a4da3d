"""From a session to MNE, EDF+/BDF+, FIF, BIDS, and to windows for the datasets layer.

- :func:`to_raw`: every regular stream on one time base, an ``mne.io.BaseRaw`` that reads
  its samples from the file when asked (:mod:`physioaffect.recording.raw`; SI units, MNE
  channel types, montage, markers and gaps as annotations).
- :func:`export_edf` (EDF+ or BDF+ through edfio, channel types in the labels),
  :func:`export_fif`, :func:`export_bids` (EEG through mne-bids with electrodes and typed
  events, the peripheral signals as ``_physio.tsv.gz`` + ``_physio.json``, one pair per
  sampling rate).

The streams are put on one grid by a :class:`~physioaffect.recording.plan.Plan` that knows
the channels but not the samples; it resamples about 10 s at a time from memory or from the
HDF5 file.
- :func:`marker_windows`: the stimulus intervals marked by onset/offset markers, and
  :func:`window_data` to cut every stream to one of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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
from physioaffect.recording.events import parse_marker
from physioaffect.recording.plan import (
    BLOCK_S,
    Plan,
    as_session,
    make_plan,
    meas_date,
    unique_names,
)
from physioaffect.recording.reader import Session, StreamData
from physioaffect.streams.units import unit_symbol


def edf_unit(unit: str) -> str:
    """EDF ``physical dimension`` of a stream's unit (8 ASCII characters: ``uV``, ``degC``)."""
    sym = str(unit_symbol(unit, "au")).replace("µ", "u").replace("°C", "degC")
    return sym.encode("ascii", "replace").decode()[:8]


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
           check: Callable[[Plan], None] | None = None) -> _Table:
    plan = make_plan(session, sfreq, streams, tmin, tmax)
    if check is not None:  # refusals that need the channels but not the samples
        check(plan)
    return _Table(plan.t0, plan.sfreq, plan.read(0, plan.n_times), plan.names, plan.ch_types,
                  plan.units, plan.streams, plan.bad_spans)



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
    markers : bool or {"events", "split", "text"}
        Add the markers as annotations (onset in s from the first sample):
        ``True``/``"events"`` (default) one annotation per event
        (:func:`~physioaffect.recording.events.marker_events`): a stimulus is one annotation
        ``stimulus`` from its onset marker with the duration to its offset marker, other JSON
        markers are named by their ``event`` (``rating``), plain-text markers by their text;
        each JSON marker's other fields (``trial``, ``stimulus``, ``valence`` ...) are
        ``annotations.extras``, so ``mne.events_from_annotations(raw)`` gives one event id per
        kind and ``mne.Epochs(raw, event_id={"stimulus": 1}, ...)`` gets them as
        ``epochs.metadata``. ``"split"``: every marker on its own (duration 0, described by its
        ``event``, fields in extras); ``"text"``: every marker described by its whole text.
    preload : bool
        Read every sample into memory now (default False, as MNE's readers).
    verbose : bool, str or None
        MNE's verbosity.

    Returns
    -------
    physioaffect.recording.raw.SessionRaw
        An ``mne.io.BaseRaw``. Data in SI units (EEG/ECG/EOG/EMG in V, EDA in S; other
        units unchanged; ``raw._orig_units`` keeps the recorded ones). Channel types: eeg,
        ecg, gsr, bio (PPG), resp, eog, emg, temperature, misc; a channel without a unit of its
        type's quantity (a PPG or ECG in a.u.) is ``misc`` with FIFF unit "none", a RESP
        without a unit ``resp`` with unit "none"
        (:func:`~physioaffect.recording.raw.mne_channel`). EEG channels whose labels the
        stream's montage or MNE's 10-05 template knows have positions (``raw.get_montage()``).
        Gaps and spans without data of a stream are ``BAD_gap_<stream>`` /
        ``BAD_no_data_<stream>`` annotations. ``raw.info["meas_date"]`` is the UTC time of
        the first sample; ``raw.info["device_info"]`` the EEG stream's device.
    """
    from physioaffect.recording.raw import SessionRaw

    return SessionRaw(session, sfreq=sfreq, streams=streams, markers=markers, preload=preload,
                      verbose=verbose)


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


def _edf_limits(path: Path) -> Callable[[Plan], None]:
    def check(plan: Plan) -> None:
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

    session = exportable_session(as_session(session, load_samples=False))
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
    labels = unique_names([_edf_label(nm, t) for nm, t in zip(tab.names, tab.ch_types, strict=False)])
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
    meas = meas_date(session, tab.t0)
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
    raw = to_raw(exportable_session(as_session(session, load_samples=False)), sfreq=sfreq)
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
                metadata: dict[str, dict[str, Any]] | None = None,
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
    session, root, eeg_format, line_freq, metadata :
        See :func:`_write_bids`.
    subject, task : str, optional
        Labels to use instead of the session's own.

    Returns
    -------
    dict
        ``{"eeg": [...], "physio": [...]}`` paths written (inside ``root``).
    """
    import mne_bids

    session = exportable_session(as_session(session, load_samples=False))
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
        written = _write_bids(session, stage, eeg_format, line_freq, metadata)
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
                line_freq: float | None = None,
                metadata: dict[str, dict[str, Any]] | None = None) -> dict[str, list[Path]]:
    """Write the session into a BIDS dataset at ``root`` (:func:`export_bids` stages it).

    EEG streams go through :func:`mne_bids.write_raw_bids`: the data file (BrainVision
    float32 by default, exactly the recorded samples and length; ``eeg_format="EDF"`` pads the
    last data record to a whole second, which MNE marks ``BAD_ACQ_SKIP``), ``_channels.tsv``,
    ``_electrodes.tsv`` + ``_coordsystem.json`` (positions from the stream's montage or MNE's
    10-05 template), ``_eeg.json`` with ``Manufacturer``/``ManufacturersModelName`` from the
    device profile, and ``_events.tsv`` + ``_events.json`` with the events of
    :func:`~physioaffect.recording.events.marker_events`: one row per stimulus with
    ``trial_type`` ``stimulus`` and its ``duration`` (onset to offset marker), other JSON
    markers as rows of their ``event``; each marker field (``trial``, ``stimulus``,
    ``valence``, ``arousal`` ...) a column. Every other regular stream goes to
    ``_recording-<label>_physio.tsv.gz`` + ``_physio.json``, one pair per sampling rate at that
    rate (no resampling; :mod:`physioaffect.recording.bids_physio`: reproducible gzip,
    ``PhysioType``, ``TaskName``, ``StartTime`` relative to the first EEG sample, units as BIDS
    writes them: ``mV``, ``µS``; ``n/a`` where the device states none).

    Parameters
    ----------
    session : Session or path
    root : path
        The BIDS dataset folder (created if missing; existing files are never overwritten).
    eeg_format : {"BrainVision", "EDF", "BDF"}
    line_freq : float, optional
        Power line frequency in Hz (default: the session's configuration, else 50).
    metadata : dict, optional
        What the recording cannot know, per sidecar: ``{"dataset_description": {"License":
        "CC0", "Authors": [...]}, "eeg": {"InstitutionName": ..., "CapManufacturer": ...,
        "HeadCircumference": 56}, "events": {"StimulusPresentation": {...}},
        "coordsystem": {...}, "physio": {...}}``; each section's fields are written into
        that sidecar (``physio`` into every ``_physio.json``), over the exported values.

    Returns
    -------
    dict
        ``{"eeg": [...], "physio": [...]}`` paths written.
    """
    import mne_bids

    from physioaffect.recording.bids_physio import write_physio

    metadata = {} if metadata is None else metadata
    unknown = sorted(set(metadata) - set(BIDS_METADATA_SECTIONS)) \
        if isinstance(metadata, dict) else ["<not an object>"]
    if unknown or not all(isinstance(v, dict) for v in metadata.values()):
        raise RecordingError(f"export_bids: metadata must map sidecars "
                             f"({', '.join(BIDS_METADATA_SECTIONS)}) to dicts of fields, got "
                             f"{unknown or list(metadata)}")
    session = as_session(session, load_samples=False)
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
        raw = to_raw(session, streams=eeg_streams, markers="events", preload=True)
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
                                      .strip(),
                  # BIDS's value for filters nobody recorded (the recording cannot know them)
                  "HardwareFilters": "n/a",
                  **metadata.get("eeg", {})}
        mne_bids.update_sidecar_json(sidecar, fields, verbose="error")
        events_json = bp.copy().update(suffix="events", extension=".json")
        if descriptions:
            levels = {d: _EVENT_LEVELS.get(d, f"marker {d!r}" if not d.startswith("BAD_")
                                           else "span without usable data (gap in a stream)")
                      for d in descriptions}
            mne_bids.update_sidecar_json(
                events_json,
                {"trial_type": {"Description": "The event: 'stimulus' from a stimulus_onset "
                                               "marker to its stimulus_offset marker (onset, "
                                               "duration), else a JSON marker's 'event' field "
                                               "or the marker text.", "Levels": levels},
                 **metadata.get("events", {})},
                verbose="error")
        for c in coords if metadata.get("coordsystem") else ():
            meta = json.loads(c.read_text(encoding="utf-8"))
            meta.update(metadata["coordsystem"])
            c.write_text(json.dumps(meta, indent=4, ensure_ascii=False), encoding="utf-8")
        if metadata.get("dataset_description"):
            desc = root / "dataset_description.json"
            meta = json.loads(desc.read_text(encoding="utf-8"))
            meta.update(metadata["dataset_description"])
            desc.write_text(json.dumps(meta, indent=4, ensure_ascii=False), encoding="utf-8")
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
        plan = make_plan(session, rate, [s.name for s in members])
        cols = plan.names
        units = {c: {"Units": bids_unit(u), "Description": f"{plan.ch_types[k]} channel from "
                                                           f"stream {plan.streams[k]}"}
                 for k, (c, u) in enumerate(zip(cols, plan.units, strict=True))}
        stem = f"{base}_recording-{label}_physio"
        tsv, side = folder / f"{stem}.tsv.gz", folder / f"{stem}.json"
        for p in (tsv, side):
            if p.exists():
                raise RecordingError(f"{p} already exists; never overwritten")
        step = max(1, int(BLOCK_S * rate))
        blocks = (plan.read(k, min(plan.n_times, k + step)).T
                  for k in range(0, plan.n_times, step))
        meta = {"SamplingFrequency": rate, "StartTime": plan.t0 - t_ref, "Columns": cols,
                "PhysioType": "generic", "TaskName": task,
                **_device_fields(dict(members[0].info.device)),
                "Sources": [s.name for s in members], **units, **metadata.get("physio", {})}
        write_physio(tsv, blocks, side, meta)
        written["physio"] += [tsv, side]
    return written


#: Sections of ``export_bids(metadata=...)``: the sidecars their fields go to.
BIDS_METADATA_SECTIONS = ("dataset_description", "eeg", "events", "coordsystem", "physio")

_EVENT_LEVELS = {
    "stimulus": "A stimulus, from its onset marker (onset) to its offset marker (onset + "
                "duration); its trial, stimulus and ratings in the other columns.",
    "stimulus_onset": "A stimulus whose offset marker was never recorded (the recording "
                      "stopped during it); duration 0.",
    "stimulus_offset": "An offset marker whose onset marker was not recorded.",
    "baseline": "A resting baseline, from its onset marker to its offset marker.",
    "rating": "The subject's ratings of a trial.",
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
    session = as_session(session)
    open_: dict[Any, tuple[float, dict[str, Any], str]] = {}
    out: list[MarkerWindow] = []
    for m in session.markers:
        d = parse_marker(m.text)
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
