"""A session file as an ``mne.io.Raw`` that reads its samples on demand.

:class:`SessionRaw` is an :class:`mne.io.BaseRaw` like MNE's own file readers: with
``preload=False`` (the default) only timestamps and metadata are in memory, and
``raw.get_data(start=..., stop=...)``, ``raw.crop(...).load_data()``, ``raw.save(...)`` or
``raw.plot()`` read the samples they need from the HDF5 file (``_read_segment_file``), about
10 s of source samples at a time. An hour of 64 channels at 1 kHz thus costs the timestamps
(8 bytes per sample and stream) instead of a 1.8 GB dense array.

Built by :func:`physioaffect.recording.to_raw`; see there for units and channel types.

Units at the MNE boundary (:func:`mne_channel`): MNE holds EEG, ECG, EOG, EMG, BIO and RESP in
volts, GSR in siemens, temperature in degrees Celsius and draws each type at its own default
scale (``bio`` at 1 µV, ``ecg`` at 0.5 mV per division). A channel is given its MNE type only
where its unit is that type's quantity (converted to SI through
:func:`physioaffect.streams.units.si_unit`); a channel whose device states no unit, or another
quantity (a PPG or ECG in arbitrary units, a heart rate in bpm), becomes ``misc`` with FIFF unit
"none" (MNE draws misc channels with ``scalings="auto"``: 2.26 a.u. are never taken for 2.26
V). A respiration channel without a unit stays ``resp`` with unit "none" (MNE draws resp at 1
unit per division).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import mne
import numpy as np
from mne.io.constants import FIFF

from physioaffect.recording.events import marker_annotation_fields, marker_events
from physioaffect.recording.plan import Plan, as_session, make_plan, meas_date
from physioaffect.recording.reader import Session
from physioaffect.streams.montage import dig_montage
from physioaffect.streams.units import si_unit, unit_symbol

__all__ = ["MARKER_MODES", "SessionRaw", "mne_channel"]

#: The quantity MNE holds each channel type in (SI symbol), and its FIFF unit code.
_TYPE_QUANTITY = {"gsr": "S", "temperature": "°C"}
_FIFF_UNITS = {"V": FIFF.FIFF_UNIT_V, "S": FIFF.FIFF_UNIT_S, "°C": FIFF.FIFF_UNIT_CEL}
#: ``markers=`` of :func:`~physioaffect.recording.to_raw`.
MARKER_MODES = ("events", "split", "text")


def mne_channel(ch_type: str, unit: str) -> tuple[str, int, float]:
    """MNE channel type, FIFF unit code and factor to SI for one channel.

    Parameters
    ----------
    ch_type : str
        The channel's MNE type from its stream (``eeg``, ``ecg``, ``bio``, ``resp``,
        ``gsr``, ``temperature``, ``misc`` ...).
    unit : str
        Its recorded unit (any spelling :func:`~physioaffect.streams.units.unit_symbol`
        knows).

    Returns
    -------
    (str, int, float)
        The type (``misc`` where MNE could not hold the unit as the type's quantity, see the
        module docstring), the FIFF unit (``FIFF_UNIT_V``, ``_S``, ``_CEL`` or ``_NONE``) and
        the factor from the recorded unit to that SI unit (1 for units without one).
    """
    si = si_unit(unit)
    if ch_type == "stim":
        return "stim", FIFF.FIFF_UNIT_NONE, 1.0
    want = _TYPE_QUANTITY.get(ch_type, "V")
    if si is not None and si[1] == want:
        return ch_type, _FIFF_UNITS[want], si[0]
    if si is None:
        # a respiration belt in arbitrary units is drawn right as resp (1 unit per division)
        return ("resp" if ch_type == "resp" else "misc"), FIFF.FIFF_UNIT_NONE, 1.0
    return "misc", _FIFF_UNITS.get(si[1], FIFF.FIFF_UNIT_NONE), si[0]


class SessionRaw(mne.io.BaseRaw):
    """Every regular stream of a session file on one time base, read lazily.

    Parameters
    ----------
    session : Session or path
        A path is opened without loading samples; a :class:`Session` read with samples
        serves them from memory.
    sfreq : float, optional
        Sampling rate in Hz (default: the EEG rate, else the highest rate).
    streams : iterable of str, optional
        Stream names to include (default: all regular numeric streams).
    markers : bool or {"events", "split", "text"}
        Markers as annotations: ``True``/``"events"`` (default) one annotation per event of
        :func:`~physioaffect.recording.events.marker_events` (a stimulus from its onset to its
        offset marker, described ``stimulus``; its fields in ``annotations.extras``);
        ``"split"`` one zero-duration annotation per marker described by its ``event`` (fields
        in extras); ``"text"`` one per marker described by its whole text; False none.
    preload : bool
        Read every sample now (as MNE's readers do; default False).
    verbose : bool, str or None
        MNE's verbosity.
    """

    def __init__(self, session: Session | str | os.PathLike[str], sfreq: float | None = None,
                 streams: Iterable[str] | None = None, markers: bool | str = True,
                 preload: bool = False, verbose: str | bool | None = None) -> None:
        if markers is not True and markers is not False and markers not in MARKER_MODES:
            raise ValueError(f"to_raw: markers must be True, False or one of {MARKER_MODES}, "
                             f"got {markers!r}")
        session = as_session(session, load_samples=False)
        plan = make_plan(session, sfreq, streams)
        types, fiff_units, factors = zip(*(mne_channel(t, u) for t, u in
                                           zip(plan.ch_types, plan.units, strict=True)),
                                         strict=True)
        scale = np.array(factors, dtype=np.float64)
        info = mne.create_info(plan.names, plan.sfreq, list(types), verbose=verbose)
        with info._unlock():
            for ch, code in zip(info["chs"], fiff_units, strict=True):
                ch["unit"] = code
        eeg_rows = [i for i, t in enumerate(types) if t == "eeg"]
        device = plan.devices[eeg_rows[0]] if eeg_rows else plan.devices[0]
        with info._unlock():
            info["device_info"] = {k: v for k, v in (("type", device.get("manufacturer")),
                                                      ("model", device.get("model")),
                                                      ("serial", device.get("serial")))
                                   if v}
            a = session.attrs
            info["subject_info"] = {"his_id": str(a.get("subject", ""))}
            info["description"] = (
                f"physioaffect session sub-{a.get('subject')} ses-{a.get('session') or '-'} "
                f"task-{a.get('task')} run-{a.get('run') or '-'}; first sample at LSL "
                f"{plan.t0:.6f} s")
            cfg = a.get("configuration")
            if isinstance(cfg, dict) and cfg.get("line_freq"):
                info["line_freq"] = float(cfg["line_freq"])
        orig_units = {n: unit_symbol(u, "n/a")
                      for n, u in zip(plan.names, plan.units, strict=True)}
        super().__init__(
            info, preload=preload, first_samps=(0,), last_samps=(plan.n_times - 1,),
            filenames=(str(plan.path),), raw_extras=[{"plan": plan, "scale": scale}],
            orig_format="double", orig_units=orig_units, verbose=verbose,
        )
        montage = dig_montage([plan.names[i] for i in eeg_rows], device.get("montage"))
        if montage is not None:
            self.set_montage(montage, on_missing="ignore", verbose="error")
        meas = meas_date(session, plan.t0)
        if meas is not None:
            self.set_meas_date(meas)
        self.set_annotations(_annotations(session, plan, markers, self.info["meas_date"]))

    @property
    def plan(self) -> Plan:
        """The channel table (streams, rows, original units, time base)."""
        return self._raw_extras[0]["plan"]

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):  # noqa: D401
        """Read samples ``start:start + data.shape[1]`` of the channels ``idx`` in SI units."""
        extras = self._raw_extras[fi]
        plan: Plan = extras["plan"]
        scale: np.ndarray = extras["scale"]
        n = data.shape[1]
        every = np.arange(len(plan.names))
        rows = every if mult is not None else every[idx]
        block = plan.read(start, start + n, rows)
        block *= scale[rows][:, None]
        if mult is not None:
            data[:] = mult @ block[idx]
        else:
            data[:] = block * np.asarray(cals).reshape(-1, 1)


def _annotations(session: Session, plan: Plan, markers: bool | str,
                 orig_time: object) -> mne.Annotations:
    onsets, durations, texts, extras = [], [], [], []
    for start, end, text in plan.bad_spans:
        onsets.append(start - plan.t0)
        durations.append(max(0.0, end - start))
        texts.append(text)
        extras.append({})
    if markers is True or markers == "events":
        for ev in marker_events(session.markers):
            onsets.append(ev.onset - plan.t0)
            durations.append(ev.duration)
            texts.append(ev.name)
            extras.append(ev.fields)
    elif markers:
        for m in session.markers:
            onsets.append(m.time - plan.t0)
            durations.append(0.0)
            desc, fields = (marker_annotation_fields(m.text) if markers == "split"
                            else (m.text, {}))
            texts.append(desc)
            extras.append(fields)
    kwargs = {"extras": extras} if any(extras) else {}
    return mne.Annotations(onsets, durations, texts, orig_time=orig_time, **kwargs)


def events_and_metadata(raw: mne.io.BaseRaw, kinds: str | Iterable[str] = "stimulus",
                        ) -> tuple[np.ndarray, dict[str, int], object]:
    """MNE events of the annotations named ``kinds``, and their fields as a metadata table.

    ``mne.Epochs(raw, events, event_id, metadata=metadata, ...)`` then has one epoch per event
    with the marker's fields (``trial``, ``stimulus``, ``valence`` ...) in ``epochs.metadata``
    (MNE's own ``mne.Epochs(raw, event_id=...)`` copies annotation extras only when every
    annotation is of a selected kind). Works on any Raw whose annotations carry extras:
    :func:`~physioaffect.recording.to_raw`'s, a FIF file's, ``mne_bids.read_raw_bids``'s.

    Parameters
    ----------
    raw : mne.io.BaseRaw
    kinds : str or iterable of str
        Annotation descriptions to keep (default the stimuli).

    Returns
    -------
    events : ndarray, shape (n_events, 3)
    event_id : dict
        Description -> event code (1, 2 ... in the order of ``kinds``).
    metadata : pandas.DataFrame
        One row per event: ``event``, ``onset`` (s, as in the annotations), ``duration`` (s)
        and every field. Events outside the recorded data are left out.
    """
    import pandas as pd

    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    ann = raw.annotations
    found = [k for k in kinds if k in set(ann.description)]
    if not found:
        raise ValueError(f"events_and_metadata: no annotation named {kinds} (found "
                         f"{sorted(set(ann.description))})")
    event_id = {k: i + 1 for i, k in enumerate(found)}
    # sample of each annotation, as mne.events_from_annotations computes it
    samples = raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time) \
        + raw.first_samp
    keep = [i for i, d in enumerate(ann.description)
            if d in event_id and raw.first_samp <= samples[i] <= raw.last_samp]
    extras = ann.extras
    rows = [{"event": ann.description[i], "onset": float(ann.onset[i]),
             "duration": float(ann.duration[i]), **dict(extras[i] or {})} for i in keep]
    events = np.column_stack([samples[keep], np.zeros(len(keep), dtype=int),
                              [event_id[ann.description[i]] for i in keep]]).astype(int)
    return events.reshape(-1, 3), event_id, pd.DataFrame(rows)
