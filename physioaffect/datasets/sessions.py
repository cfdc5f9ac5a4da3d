"""The package's own session files (``physioaffect record``) as a dataset.

A folder (searched recursively) of ``*_physio.h5`` session files is one dataset: subjects come
from each file's ``subject`` attribute, sessions are the files of a subject in order of
(``session``, ``run``, file name). Trials come from the markers the stimulus program sent, as
JSON text on a ``Markers`` stream::

    {"event": "stimulus_onset",  "trial": 3, "stimulus": "clip07", ...}
    {"event": "stimulus_offset", "trial": 3, "stimulus": "clip07", ...}
    {"event": "rating", "trial": 3, "valence": 6.5, "arousal": 4}

Markers are paired by :func:`physioaffect.recording.events.marker_events` (the same events
``to_raw`` and the BIDS export show). A trial keeps the markers' own ``trial`` number (the
simulator counts from 0; markers without an integer ``trial`` are numbered by onset order from
0). Every numeric field of the onset marker other than ``trial``/``stimulus`` (e.g. the built-in
simulator's nominal ``valence``/``arousal``) and of ``rating`` markers for that trial becomes a
rating (later markers win). The EEG stream (type ``EEG``) is cut from onset to offset; every
other regular stream (ECG, GSR, PPG, RESP ...) is cut at the same times on its own timestamps.

A recording stopped during a stimulus (``record --duration``, Ctrl-C) ends with an onset marker
and no offset, or with EEG that stops before the offset: such trials are left out with one
:class:`~physioaffect.datasets.base.TrialsDroppedWarning` per subject naming them, and every
completed trial is read.
The ``baseline_s`` seconds before onset are the trial's baseline (if recorded). A recorded
``Face`` stream (``physioaffect face``, or the simulator's ``face=1``) becomes the trials' face
features (from the baseline's start to the offset, times relative to the onset).

:func:`write_sim_sessions` writes a folder of such files from the built-in simulator
(``physioaffect datasets fake sim OUT --subjects 12``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from physioaffect.datasets.base import (
    DatasetError,
    DatasetReader,
    Signal,
    SubjectRecording,
    Trial,
    TrialsDroppedWarning,
    file_problem,
    natural_key,
    trial_name,
)
from physioaffect.log import progress_enabled, verbose

SUFFIX = "_physio.h5"


class SessionsReader(DatasetReader):
    """Own session files.

    Parameters
    ----------
    root : path
        Folder searched recursively for ``*_physio.h5``.
    baseline_s : float or None
        Seconds before each stimulus onset kept as the trial's baseline (None: none).
    """

    name = "sessions"

    def __init__(self, root: str | Path, *, validate: bool = True,
                 baseline_s: float | None = 3.0, **face) -> None:
        self.baseline_s = baseline_s
        self.has_baseline = bool(baseline_s)
        super().__init__(root, validate=validate, **face)

    def _discover(self) -> list[str]:
        from physioaffect.recording.errors import RecordingError
        from physioaffect.recording.events import parse_marker
        from physioaffect.recording.reader import read_session

        paths = sorted(self.root.rglob(f"*{SUFFIX}"))
        if not paths:
            raise DatasetError(f"{self.root}: no session files *{SUFFIX} here "
                               "(record some with `physioaffect record`)")
        by_subject: dict[str, list[tuple]] = {}
        for p in paths:
            problem = file_problem(p)
            if problem is not None:  # a link loop would otherwise be a deep OSError
                raise DatasetError(f"{p}: {problem}")
            try:
                s = read_session(p, streams=None, load_samples=False)
            except RecordingError as err:
                raise DatasetError(str(err)) from None
            subj = str(s.attrs.get("subject", ""))
            if not subj:
                raise DatasetError(f"{p}: session file has no 'subject' attribute")
            key = (str(s.attrs.get("session", "")), int(s.attrs.get("run", 0) or 0), p.name)
            by_subject.setdefault(subj, []).append((key, p))
            if not any(st.info.type == "EEG" for st in s.streams.values()):
                raise DatasetError(f"{p}: no EEG stream (streams: {', '.join(s.streams)})")
            if not any(parse_marker(m.text).get("event") == "stimulus_onset" for m in s.markers):
                raise DatasetError(f"{p}: no stimulus_onset markers (JSON markers "
                                   '{"event": "stimulus_onset", "trial": ...} delimit trials)')
        self._files = {k: [p for _, p in sorted(v)] for k, v in by_subject.items()}
        return sorted(self._files, key=natural_key)

    def files(self) -> list[Path]:
        return [p for s in self.subjects for p in self._files[s]]

    def validate(self, deep: bool = False) -> None:
        # Files were opened (headers, streams, markers) during discovery.
        if deep:
            for s in self.subjects:
                self.read_subject(s)

    def _read_subject(self, subject: str) -> SubjectRecording:
        from physioaffect.recording.errors import RecordingError
        from physioaffect.recording.reader import read_session

        self._check_subject(subject)
        trials: list[Trial] = []
        dropped: list[str] = []
        for sess, path in enumerate(self._files[subject], start=1):
            try:
                s = read_session(path)
            except RecordingError as err:
                raise DatasetError(str(err)) from None
            eeg = next(st for st in s.streams.values() if st.info.type == "EEG")
            scale = _microvolts(eeg.info.channels[0].unit)
            fs = float(eeg.info.nominal_srate)
            faces = [st for st in s.signal_streams if st.info.type == "Face"]
            others = [st for st in s.signal_streams if st is not eeg and st not in faces]
            found, cut = _marker_trials(s.markers)
            dropped += [trial_name("sessions", subject, sess, t, why) for t, why in cut]
            for tr in found:
                i0, i1 = np.searchsorted(eeg.timestamps, [tr["onset"], tr["offset"]])
                # EEG must cover the stimulus: a recording stopped just after the offset marker
                # can miss the last EEG chunk (it would shorten every epoch of to_epochs)
                if (i1 - i0 < 2 or eeg.timestamps[0] > tr["onset"] + 1.5 / fs
                        or eeg.timestamps[-1] < tr["offset"] - 1.5 / fs):
                    dropped.append(trial_name("sessions", subject, sess, tr["trial"],
                                              "the EEG does not cover the stimulus"))
                    continue
                x = eeg.samples[i0:i1].T.astype(np.float64) * scale
                base = None
                if self.baseline_s:
                    b0 = np.searchsorted(eeg.timestamps, tr["onset"] - self.baseline_s)
                    if eeg.timestamps.size and tr["onset"] - self.baseline_s >= eeg.timestamps[0]:
                        base = eeg.samples[b0:i0].T.astype(np.float64) * scale
                per, per_b = {}, {}
                for st in others:
                    j0, j1 = np.searchsorted(st.timestamps, [tr["onset"], tr["offset"]])
                    names = [c.label for c in st.info.channels]
                    unit = str(st.info.channels[0].unit)
                    per[st.info.type] = Signal(st.samples[j0:j1].T, st.info.nominal_srate, unit,
                                               names)
                    if base is not None:
                        k0 = np.searchsorted(st.timestamps, tr["onset"] - self.baseline_s)
                        per_b[st.info.type] = Signal(st.samples[k0:j0].T, st.info.nominal_srate,
                                                     unit, names)
                face = None
                if faces:  # the first Face stream (one camera per session is the norm)
                    face = _face_track(faces[0], tr["onset"] - (self.baseline_s or 0.0),
                                       tr["offset"], tr["onset"], path)
                trials.append(Trial(
                    eeg=x, sfreq=float(eeg.info.nominal_srate),
                    ch_names=[c.label for c in eeg.info.channels], dataset="sessions",
                    subject=subject, session=sess, trial=tr["trial"], stimulus=tr["stimulus"],
                    ratings=tr["ratings"], baseline=base, peripheral=per, peripheral_baseline=per_b,
                    face=face,
                ))
        if dropped:
            warnings.warn(TrialsDroppedWarning(f"sessions subject {subject}", dropped),
                          stacklevel=3)
        return SubjectRecording("sessions", subject, trials,
                                {"files": [str(p) for p in self._files[subject]],
                                 "dropped_trials": dropped})


def _face_track(stream, t0: float, t1: float, onset: float, path: Path):
    """The recorded ``Face`` stream between ``t0`` and ``t1`` as a FaceTrack (times from onset)."""
    from physioaffect.datasets.face import FaceTrack

    j0, j1 = np.searchsorted(stream.timestamps, [t0, t1])
    return FaceTrack(times=np.asarray(stream.timestamps[j0:j1], dtype=float) - onset,
                     values=np.asarray(stream.samples[j0:j1], dtype=float),
                     names=[c.label for c in stream.info.channels],
                     source=f"{path}:{stream.info.name}")


def _microvolts(unit: str) -> float:
    """Factor from the EEG stream's unit to microvolts (1 where it states no voltage)."""
    from physioaffect.streams.units import UnitError, si_unit, unit_factor

    if si_unit(unit) is None:
        return 1.0  # no unit stated: taken as microvolts, as every reader holds EEG
    try:
        return unit_factor(unit, "uV")
    except UnitError:
        return 1.0  # a unit that is not a voltage (device counts): the values as recorded


def _marker_trials(markers: list) -> tuple[list[dict], list[tuple[object, str]]]:
    """Stimulus events as trials (onset, offset, trial, stimulus, ratings), in onset order,
    and the (trial, why) of stimuli left out because their offset marker is missing."""
    from physioaffect.recording.events import marker_events

    events = marker_events(markers)
    ratings: dict = {}
    for ev in events:
        if ev.name == "rating":
            ratings.setdefault(_trial_key(ev.trial), {}).update(_numeric(ev.fields))
    out, cut = [], []
    for order, ev in enumerate(e for e in events if e.name in ("stimulus", "stimulus_onset")):
        number = _trial_number(ev.trial, order)
        if not ev.complete:
            cut.append((number, "no stimulus_offset marker: the recording stopped during it"))
            continue
        r = _numeric(ev.fields)
        r.update(ratings.get(_trial_key(ev.trial), {}))
        out.append({"onset": ev.onset, "offset": ev.onset + ev.duration, "trial": number,
                    "stimulus": str(ev.fields.get("stimulus", number)), "ratings": r})
    return out, cut


def _numeric(fields: dict) -> dict[str, float]:
    return {k: float(v) for k, v in fields.items()
            if k not in ("event", "trial", "stimulus") and isinstance(v, int | float)
            and not isinstance(v, bool)}


def _trial_key(tid: object) -> str:
    return json.dumps(tid)


def _trial_number(tid: object, order: int) -> int:
    """The marker's trial number (an integer, or text of one), else the onset order."""
    if isinstance(tid, int) and not isinstance(tid, bool):
        return tid
    if isinstance(tid, float) and tid.is_integer():
        return int(tid)
    if isinstance(tid, str) and tid.strip().lstrip("-").isdigit():
        return int(tid)
    return order


@verbose
def write_sim_sessions(out: str | Path, n_subjects: int = 12, seconds: float = 30.0,
                       n_trials: int = 16, rate: int = 128, eeg_channels: int = 32,
                       seed: int = 0, rest_seconds: float = 10.0,
                       progress: bool = False, face: bool = False,
                       config=None, *, verbose: bool | str | int | None = None) -> list[Path]:
    """Simulate ``n_subjects`` with the built-in simulator and write one session file each.

    Files are ``sub-NN_task-sim_physio.h5`` (complete session files with EEG, ECG, GSR, PPG,
    RESP and the simulator's stimulus markers, which carry the nominal valence/arousal 1-9);
    with ``face`` also the simulator's ``Face`` stream (facial features driven by the same
    affect, 30 frames/s). ``config`` (a :class:`~physioaffect.sources.sim.SimConfig`) replaces
    the keyword settings when given (its ``subjects`` is the number of subjects). ``progress``
    draws a bar per subject when INFO messages are shown; ``verbose`` sets the package log level
    for this call (:func:`physioaffect.set_log_level`).
    """
    from physioaffect.recording.naming import bids_basename
    from physioaffect.recording.writer import SessionWriter
    from physioaffect.sources.sim import SimConfig, simulate_subject, stream_infos
    from physioaffect.streams.info import Chunk

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if config is not None:
        import dataclasses

        cfg = dataclasses.replace(config, face=bool(config.face or face))
        n_subjects = cfg.subjects
    else:
        cfg = SimConfig(subjects=n_subjects, eeg_channels=eeg_channels, rate=rate, seed=seed,
                        n_trials=n_trials, stimulus_seconds=seconds, rest_seconds=rest_seconds,
                        baseline_seconds=rest_seconds, **({"face": True} if face else {}))
    paths = []
    it = range(n_subjects)
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        it = tqdm(it, desc="simulating sessions", unit="subject")
    for s in it:
        rec = simulate_subject(cfg, subject=s)
        label = f"{s + 1:02d}"
        path = out / (bids_basename(label, "sim") + SUFFIX)
        if path.exists():
            raise DatasetError(f"{path}: exists; session files are never overwritten")
        clock = {"unix_start": 0.0, "lsl_clock_start": 0.0, "unix_to_lsl_offset": 0.0,
                 "utc_start": "1970-01-01T00:00:00Z"}
        w = SessionWriter(path, subject=label, task="sim", journal=False, clock=clock,
                          config={"source": "sim", "seed": seed, "n_trials": n_trials,
                                  "stimulus_seconds": seconds, "face": face},
                          attrs={"simulated": True})
        try:
            for _kind, (info, ts, x) in rec.signals.items():
                w.add_stream(info)
                w.append(Chunk(info.name, ts, x))
            minfo = stream_infos(cfg, "sim", s)["Markers"]
            w.add_stream(minfo)
            if rec.markers:
                times = np.array([t for t, _ in rec.markers])
                texts = np.empty((len(rec.markers), 1), dtype=object)
                texts[:, 0] = [m for _, m in rec.markers]
                w.append(Chunk(minfo.name, times, texts))
            w.close()
        except Exception:
            w.abort()
            raise
        paths.append(path)
    return paths
