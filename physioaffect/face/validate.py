"""Check the camera pulse against a contact sensor recorded in the same session.

The reference rate comes from NeuroKit2 (``ecg_process`` / ``ppg_process``: beat detection,
then the instantaneous rate interpolated per sample). Because the face ``pulse_rate`` is the
dominant rate over the last ``window`` seconds, the reference is averaged over the same
trailing window before the two are compared, on the face frames' own LSL times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from physioaffect.face.errors import FaceError

if TYPE_CHECKING:
    from physioaffect.face.synthetic import DegradedCase


@dataclass
class PulseAgreement:
    """Camera pulse vs contact-sensor pulse.

    Attributes
    ----------
    times : ndarray, shape (n,)
        LSL seconds of the compared frames (both rates finite).
    face_bpm, reference_bpm : ndarray, shape (n,)
        The two rates at those times (bpm).
    mean_abs_error : float
        bpm.
    bias : float
        Mean of face minus reference, bpm.
    within_3bpm : float
        Fraction of frames with |difference| < 3 bpm.
    """

    times: np.ndarray
    face_bpm: np.ndarray
    reference_bpm: np.ndarray
    mean_abs_error: float
    bias: float
    within_3bpm: float

    @property
    def n(self) -> int:
        return int(self.times.size)


def reference_pulse_rate(
    signal: np.ndarray, sampling_rate: float, kind: str = "ecg"
) -> np.ndarray:
    """Instantaneous heart rate per sample of an ECG or PPG (bpm), by NeuroKit2.

    Parameters
    ----------
    signal : ndarray, shape (n_samples,)
        ECG (any unit) or PPG.
    sampling_rate : float
        Hz.
    kind : {"ecg", "ppg"}

    Returns
    -------
    ndarray, shape (n_samples,)
        bpm.
    """
    import neurokit2 as nk

    x = np.asarray(signal, dtype=float).reshape(-1)
    if kind == "ecg":
        table, _ = nk.ecg_process(x, sampling_rate=int(round(sampling_rate)))
        return table["ECG_Rate"].to_numpy()
    if kind == "ppg":
        table, _ = nk.ppg_process(x, sampling_rate=int(round(sampling_rate)))
        return table["PPG_Rate"].to_numpy()
    raise FaceError(f"reference_pulse_rate: kind must be 'ecg' or 'ppg', got {kind!r}")


def compare_pulse(
    face_times: np.ndarray,
    face_bpm: np.ndarray,
    reference_times: np.ndarray,
    reference_bpm: np.ndarray,
    window: float = 10.0,
) -> PulseAgreement:
    """Compare the face ``pulse_rate`` with a reference rate on the face frames' times.

    Parameters
    ----------
    face_times, face_bpm : ndarray, shape (n_frames,)
        LSL seconds and ``pulse_rate`` of the face stream (NaN rows are skipped).
    reference_times, reference_bpm : ndarray, shape (n_samples,)
        LSL seconds and rate of the contact sensor (e.g. from :func:`reference_pulse_rate`).
    window : float
        The face estimate's window (s); the reference is averaged over the same trailing
        window.

    Returns
    -------
    PulseAgreement
        Frames outside the reference recording (or whose window is not fully inside it) are
        left out.
    """
    ft = np.asarray(face_times, dtype=float)
    fb = np.asarray(face_bpm, dtype=float)
    rt = np.asarray(reference_times, dtype=float)
    rb = np.asarray(reference_bpm, dtype=float)
    if ft.shape != fb.shape or rt.shape != rb.shape:
        raise FaceError("compare_pulse: times and rates must have the same length")
    # trailing mean of the reference over `window` via its cumulative integral
    ok = np.isfinite(rb)
    rt, rb = rt[ok], rb[ok]
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rb[1:] + rb[:-1]) * np.diff(rt))])
    inside = np.isfinite(fb) & (ft - window >= rt[0]) & (ft <= rt[-1])
    t = ft[inside]
    ref = (np.interp(t, rt, cum) - np.interp(t - window, rt, cum)) / window
    diff = fb[inside] - ref
    if diff.size == 0:
        nan = float("nan")
        return PulseAgreement(t, fb[inside], ref, nan, nan, nan)
    return PulseAgreement(
        times=t,
        face_bpm=fb[inside],
        reference_bpm=ref,
        mean_abs_error=float(np.mean(np.abs(diff))),
        bias=float(np.mean(diff)),
        within_3bpm=float(np.mean(np.abs(diff) < 3.0)),
    )


def degraded_colours(case: DegradedCase, workdir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Frame times and skin colours of one video of
    :func:`~physioaffect.face.synthetic.degraded_set`, as a face tracker would read them.

    The video is written with its codec and read back (OpenCV), and the mean skin colour of
    every frame taken where the face was one frame earlier: the whole skin and its three parts
    (upper face, image-left and image-right cheek).

    Returns
    -------
    times : ndarray, shape (n_frames,)
        s.
    colours : ndarray, shape (n_frames, 4, 3)
        R, G, B of the whole skin (``[:, 0]``) and of the parts (``[:, 1:]``); NaN where the
        face is covered.
    """
    from physioaffect.face.video import decode_frames

    video = case.video
    if case.fourcc is None:
        frames = video.frames()
    else:
        ext = ".avi" if case.fourcc == "MJPG" else ".mp4"
        path = video.write(Path(workdir) / f"{case.name}_{video.pulse_bpm:g}{ext}", case.fourcc,
                           case.quality)
        frames = decode_frames(path)
    return video.times, video.skin_means(frames, parts=True)


def track_degraded(
    times: np.ndarray, colours: np.ndarray, step: float = 1.0, parts: bool = True,
    skin_pixels: float | None = None, **tracker_options: float,
) -> dict:
    """A :class:`~physioaffect.face.rppg.PulseTracker` over :func:`degraded_colours`, its
    estimate read every ``step`` seconds once it holds a full window.

    Parameters
    ----------
    times, colours : ndarray
        From :func:`degraded_colours`.
    step : float
        s between the estimates read.
    parts : bool
        Give the tracker the parts' colours too (its forehead/cheek check acts, as in video
        analysis).
    skin_pixels : float, optional
        The skin region's pixel count, given to the tracker (its size check acts, as in video
        analysis); None: not given, the size check does not act and the signal checks are
        what is measured.
    **tracker_options
        :class:`~physioaffect.face.rppg.PulseTracker` options.

    Returns
    -------
    dict
        ``times`` (s), ``rates`` (bpm, NaN where the tracker did not report), ``snr`` (dB),
        ``reasons`` (a key of ``PULSE_REASON_CODES`` per time).
    """
    from physioaffect.face.rppg import PulseTracker, SkinSample

    tracker = PulseTracker(**tracker_options)
    out_t, rates, snrs, reasons = [], [], [], []
    next_t = tracker.window
    for t, c in zip(times, colours, strict=True):
        sample = None
        if np.all(np.isfinite(c[0])):
            sample = SkinSample(c[0], pixels=int(skin_pixels or 0), regions=c[1:] if parts else None)
        est = tracker.update(float(t), sample)
        if t + 1e-9 >= next_t:
            out_t.append(float(t))
            rates.append(est.rate)
            snrs.append(est.snr)
            reasons.append(est.reason)
            next_t += step
    return {"times": np.array(out_t), "rates": np.array(rates), "snr": np.array(snrs),
            "reasons": reasons}


def pulse_on_degraded_video(
    case: DegradedCase, workdir: str | Path, step: float = 1.0, parts: bool = True,
    **tracker_options: float,
) -> dict:
    """Run the camera pulse (:class:`~physioaffect.face.rppg.PulseTracker`) on one video of
    :func:`~physioaffect.face.synthetic.degraded_set` (:func:`degraded_colours`, then
    :func:`track_degraded` without a pixel count: the signal checks are what is measured).

    Returns
    -------
    dict
        ``times`` (s), ``rates`` (bpm, NaN where the tracker did not report), ``snr`` (dB),
        ``reasons`` (str per time), ``truth`` (bpm, NaN for a video without a pulse),
        ``skin_px`` (side of the skin region's area).
    """
    times, colours = degraded_colours(case, workdir)
    out = track_degraded(times, colours, step, parts, **tracker_options)
    out["truth"] = case.video.pulse_bpm if case.has_pulse else float("nan")
    out["skin_px"] = case.video.skin_side_px()
    return out
