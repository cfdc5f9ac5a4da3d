"""A session file as an ``mne.io.Raw`` that reads its samples on demand.

:class:`SessionRaw` is an :class:`mne.io.BaseRaw` like MNE's own file readers: with
``preload=False`` (the default) only timestamps and metadata are in memory, and
``raw.get_data(start=..., stop=...)``, ``raw.crop(...).load_data()``, ``raw.save(...)`` or
``raw.plot()`` read the samples they need from the HDF5 file (``_read_segment_file``), about
10 s of source samples at a time. An hour of 64 channels at 1 kHz thus costs the timestamps
(8 bytes per sample and stream) instead of a 1.8 GB dense array.

Built by :func:`physioaffect.recording.to_raw`; see there for units and channel types.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import mne
import numpy as np

from physioaffect.recording.export import (
    UNIT_SCALE,
    _as_session,
    _meas_date,
    _Plan,
    _plan,
    marker_annotation_fields,
)
from physioaffect.recording.reader import Session
from physioaffect.streams.montage import dig_montage
from physioaffect.streams.units import unit_symbol

__all__ = ["SessionRaw"]

def si_scale(units: Iterable[str]) -> np.ndarray:
    """Factor from each unit spelling to SI (1 where the unit is not a known V/S multiple)."""
    return np.array([UNIT_SCALE.get(str(u).strip().lower(), (1.0, u))[0] for u in units])


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
    markers : bool or {"text", "split"}
        Markers as annotations: ``True``/``"text"`` keeps each marker's text as the
        description; ``"split"`` uses a JSON marker's ``event`` as the description and its
        other fields (``trial``, ``stimulus``, ``valence`` ...) as ``annotations.extras``.
    preload : bool
        Read every sample now (as MNE's readers do; default False).
    verbose : bool, str or None
        MNE's verbosity.
    """

    def __init__(self, session: Session | str | os.PathLike[str], sfreq: float | None = None,
                 streams: Iterable[str] | None = None, markers: bool | str = True,
                 preload: bool = False, verbose: str | bool | None = None) -> None:
        session = _as_session(session, load_samples=False)
        plan = _plan(session, sfreq, streams)
        scale = si_scale(plan.units)
        info = mne.create_info(plan.names, plan.sfreq, plan.ch_types, verbose=verbose)
        eeg_rows = [i for i, t in enumerate(plan.ch_types) if t == "eeg"]
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
        meas = _meas_date(session, plan.t0)
        if meas is not None:
            self.set_meas_date(meas)
        self.set_annotations(_annotations(session, plan, markers, self.info["meas_date"]))

    @property
    def plan(self) -> _Plan:
        """The channel table (streams, rows, original units, time base)."""
        return self._raw_extras[0]["plan"]

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):  # noqa: D401
        """Read samples ``start:start + data.shape[1]`` of the channels ``idx`` in SI units."""
        extras = self._raw_extras[fi]
        plan: _Plan = extras["plan"]
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


def _annotations(session: Session, plan: _Plan, markers: bool | str,
                 orig_time: object) -> mne.Annotations:
    onsets, durations, texts, extras = [], [], [], []
    for start, end, text in plan.bad_spans:
        onsets.append(start - plan.t0)
        durations.append(max(0.0, end - start))
        texts.append(text)
        extras.append({})
    if markers:
        split = markers == "split"
        for m in session.markers:
            onsets.append(m.time - plan.t0)
            durations.append(0.0)
            if split:
                desc, fields = marker_annotation_fields(m.text)
                texts.append(desc)
                extras.append(fields)
            else:
                texts.append(m.text)
                extras.append({})
    kwargs = {"extras": extras} if any(extras) else {}
    return mne.Annotations(onsets, durations, texts, orig_time=orig_time, **kwargs)
