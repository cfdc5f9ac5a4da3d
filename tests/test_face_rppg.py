"""rPPG: the methods (POS, CHROM, green) against independent computations of their published
definitions, the spectral pulse rate and the tracker's gates on colour traces with a known pulse
(numpy only), and the animated astronaut video (needs the ``face`` extra). The real video is in
test_face_rppg_real.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from physioaffect.face.rppg import (
    PULSE_BAND_HZ,
    PulseTracker,
    SkinSample,
    analyse_window,
    chrom,
    estimate_pulse,
    green,
    pos,
    pulse_rate,
    snr_gate,
)
from physioaffect.streams.face_layout import PULSE_REASON_CODES

FS = 30.0


def _trace(bpm: float, seconds: float = 12.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean skin colour with a pulse in the blood-volume direction, buried under a much larger
    intensity change (motion/illumination: the same factor on R, G and B) and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    skin = np.array([180.0, 120.0, 100.0])
    pulse = 0.004 * np.sin(2 * np.pi * bpm / 60 * t)[:, None] * np.array([0.33, 0.77, 0.53])
    intensity = 1 + 0.05 * np.sin(2 * np.pi * 0.9 * t + 1.0) + 0.03 * np.sin(2 * np.pi * 0.3 * t)
    rgb = skin * (1 + pulse) * intensity[:, None] + rng.normal(0, 0.05, (t.size, 3))
    return t, rgb


@pytest.mark.parametrize("bpm", [48.0, 75.0, 130.0])
def test_pos_recovers_pulse_under_larger_intensity_changes(bpm: float) -> None:
    t, rgb = _trace(bpm)
    rate, snr = pulse_rate(pos(rgb, FS), FS)
    assert abs(rate - bpm) < 1.0
    assert snr > 0
    # the raw green channel is dominated by the 0.9 Hz (54 bpm) intensity change: POS is what
    # removes it (a property of the method, so a broken projection fails here)
    green_rate, _ = pulse_rate(rgb[:, 1], FS)
    assert abs(green_rate - 54.0) < 1.5


def test_pulse_rate_of_pure_sine_and_degenerate_input() -> None:
    t = np.arange(300) / FS
    rate, _ = pulse_rate(np.sin(2 * np.pi * 1.5 * t), FS)
    assert rate == pytest.approx(90.0, abs=0.3)
    assert np.isnan(pulse_rate(np.zeros(300), FS)[0])
    assert np.isnan(pulse_rate(np.array([1.0, np.nan] * 50), FS)[0])
    assert np.all(np.isnan(pos(np.ones((10, 3)), FS)))  # shorter than one POS window


# --- independent computations, written from the papers (loops, scipy's (b, a) filters) ---


def _pos_paper(rgb: np.ndarray, fs: float) -> np.ndarray:
    """Wang et al. 2017, Algorithm 1, literally: for every n, the window C[m..n]."""
    c = rgb.T  # 3 x N
    n_total = c.shape[1]
    l_win = int(round(1.6 * fs))
    h_out = np.zeros(n_total)
    for n in range(n_total):
        m = n - l_win + 1
        if m < 0:
            continue
        cn = c[:, m : n + 1] / c[:, m : n + 1].mean(axis=1, keepdims=True)
        s = np.array([[0, 1, -1], [-2, 1, 1]]) @ cn
        h = s[0] + (s[0].std() / s[1].std()) * s[1]
        h_out[m : n + 1] += h - h.mean()
    return h_out


def _chrom_paper(rgb: np.ndarray, fs: float) -> np.ndarray:
    """de Haan & Jeanne 2013: per window (half-window hop, last one at the end) normalise,
    X = 3R - 2G, Y = 1.5R + G - 1.5B, band-pass both, S = Xf - (sd Xf / sd Yf) Yf, Hann,
    overlap-add."""
    n_total = rgb.shape[0]
    win = int(round(1.6 * fs))
    win += win % 2
    b, a = sps.butter(2, PULSE_BAND_HZ, btype="bandpass", fs=fs)
    out = np.zeros(n_total)
    starts = list(range(0, n_total - win + 1, win // 2))
    if starts[-1] != n_total - win:
        starts.append(n_total - win)
    for st in starts:
        r, g, bl = (rgb[st : st + win] / rgb[st : st + win].mean(axis=0)).T
        xf = sps.filtfilt(b, a, 3 * r - 2 * g)
        yf = sps.filtfilt(b, a, 1.5 * r + g - 1.5 * bl)
        out[st : st + win] += (xf - xf.std() / yf.std() * yf) * np.hanning(win)
    return out


def test_method_definitions_match_independent_computations() -> None:
    """POS, CHROM and green equal loop implementations of the published definitions on a
    synthetic trace (to rounding), and each finds the pulse of a clean trace."""
    _, rgb = _trace(83.0, seconds=8.0, seed=4)
    np.testing.assert_allclose(pos(rgb, FS), _pos_paper(rgb, FS), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chrom(rgb, FS), _chrom_paper(rgb, FS), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(green(rgb, FS), -(rgb[:, 1] / rgb[:, 1].mean() - 1), rtol=1e-12)
    # a pulse without the intensity change (which green does not cancel): every method finds it
    t = np.arange(int(10 * FS)) / FS
    clean = np.array([180.0, 120.0, 100.0]) * (
        1 + 0.004 * np.sin(2 * np.pi * 83 / 60 * t)[:, None] * np.array([0.33, 0.77, 0.53]))
    for method in ("pos", "chrom", "green"):
        _, rate, snr = analyse_window(clean, FS, method)
        assert abs(rate - 83.0) < 1.0 and snr > snr_gate(10.0, method), method


def test_tracker_warms_up_reports_and_restarts_after_gap() -> None:
    t, rgb = _trace(80.0, seconds=20.0)
    tr = PulseTracker(window=10.0, min_window=6.0, max_gap=0.25)
    est = [tr.update(ti, ci) for ti, ci in zip(t[:300], rgb[:300], strict=True)]
    rates = np.array([e.rate for e in est])
    assert np.all(np.isnan(rates[: int(6 * FS) - 1]))  # less than 6 s of history: no rate
    assert {e.reason for e in est[: int(6 * FS) - 1]} == {"warming_up"}
    assert est[-1].reason == "ok" and est[-1].detail == "" and abs(rates[-1] - 80.0) < 1.5
    assert est[-1].reason_code == PULSE_REASON_CODES["ok"]
    # a frame without a face gives NaN and says so; a 1 s hole restarts the warm-up
    lost = tr.update(t[300], None)
    assert np.isnan(lost.rate) and lost.reason == "face_lost"
    after = [tr.update(ti, ci) for ti, ci in zip(t[330:], rgb[330:], strict=True)]
    assert all(e.reason == "warming_up" for e in after[: int(6 * FS) - 1])
    assert after[-1].reason == "ok" and abs(after[-1].rate - 80.0) < 1.5


def test_noise_gives_no_rate_and_says_why() -> None:
    """Skin colour without a pulse (noise and intensity changes only): the spectrum still has a
    peak, but no rate is reported, and the reason says why."""
    t = np.arange(int(10 * FS)) / FS
    for seed in range(5):
        rng = np.random.default_rng(seed)
        intensity = 1 + 0.03 * np.sin(2 * np.pi * 0.3 * t + seed)
        rgb = np.array([180.0, 120.0, 100.0]) * intensity[:, None] + rng.normal(0, 0.3, (t.size, 3))
        assert np.isfinite(pulse_rate(pos(rgb, FS), FS)[0])  # the ungated peak: a confident-looking number
        rate, snr, reason = estimate_pulse(rgb, FS)
        assert np.isnan(rate) and reason == "low_snr", (seed, snr)
    # a real pulse under the same noise is reported, with an SNR above the gate
    _, rgb = _trace(75.0, seconds=10.0)
    rate, snr, reason = estimate_pulse(rgb, FS)
    assert abs(rate - 75.0) < 1.0 and snr > snr_gate(10.0) and reason == "ok"


def test_gate_keeps_pulse_free_windows_out() -> None:
    """The calibrated gate's promise, checked on fresh noise (other seeds than the
    calibration's): at most ~0.5 % of pulse-free windows pass; here 300 windows of 8 s of
    white sensor noise, so a gate set far too low (a few % passing) fails."""
    rng = np.random.default_rng(12345)
    n = int(8 * FS)
    passed = 0
    for _ in range(300):
        rgb = np.array([180.0, 120.0, 100.0]) * (1 + 0.003 * rng.standard_normal((n, 3)))
        passed += np.isfinite(estimate_pulse(rgb, FS)[0])
    assert passed <= 4, passed
    # a gate is higher for shorter windows (fewer spectral bins, higher chance peaks)
    assert snr_gate(6.0) > snr_gate(8.0) > snr_gate(10.0) > 0


def _skin(rgb: np.ndarray, pixels: int = 5000, luma: float = 150.0, centre=(320.0, 200.0)) -> SkinSample:
    return SkinSample(rgb, pixels=pixels, luma=luma, centre=centre)


def test_size_darkness_and_motion_withhold_the_rate_with_their_reason() -> None:
    t, rgb = _trace(70.0, seconds=8.0)
    size = np.sqrt(5000)

    def last(samples) -> object:
        tr = PulseTracker()
        out = None
        for ti, s in zip(t, samples, strict=True):
            out = tr.update(ti, s)
        return out

    assert last([_skin(c) for c in rgb]).reason == "ok"
    small = last([_skin(c, pixels=25 * 25) for c in rgb])
    assert np.isnan(small.rate) and small.reason == "too_small" and "625 skin pixels" in small.detail
    dark = last([_skin(c, luma=12.0) for c in rgb])
    assert np.isnan(dark.rate) and dark.reason == "too_dark"
    # the skin region nods by 10 % of its size at 1.3 Hz (inside the pulse band)
    nod = 0.1 * size * np.sin(2 * np.pi * 1.3 * t)
    moving = last([_skin(c, centre=(320.0, 200.0 + d)) for c, d in zip(rgb, nod, strict=True)])
    assert np.isnan(moving.rate) and moving.reason == "motion"
    # slow sway (0.2 Hz, below the band) of the same size is not pulse-band motion
    sway = 0.1 * size * np.sin(2 * np.pi * 0.2 * t)
    assert last([_skin(c, centre=(320.0 + d, 200.0)) for c, d in zip(rgb, sway, strict=True)]).reason == "ok"


def test_a_peak_must_be_found_again_in_two_parts_of_the_skin() -> None:
    """The combined skin colour carries a clear 90 bpm peak, but only the forehead has it
    while the cheeks hold independent noise: not a pulse of the face, no rate. With the pulse
    in every part, the rate is reported."""
    rng = np.random.default_rng(7)
    t = np.arange(int(9 * FS)) / FS
    skin = np.array([180.0, 120.0, 100.0])
    pulse = 1 + 0.006 * np.sin(2 * np.pi * 1.5 * t)[:, None] * np.array([0.33, 0.77, 0.53])

    def noisy() -> np.ndarray:
        return skin * (1 + 0.004 * rng.standard_normal((t.size, 3)))

    def run(parts: list[np.ndarray]):
        tr = PulseTracker()
        est = None
        for k, ti in enumerate(t):
            regions = np.array([p[k] for p in parts])
            # the combined colour shows the pulse cleanly, whatever the parts show
            est = tr.update(ti, SkinSample(skin * pulse[k], pixels=5000, luma=150.0, regions=regions))
        return est

    forehead_only = run([skin * pulse, noisy(), noisy()])
    assert np.isnan(forehead_only.rate) and forehead_only.reason == "low_snr"
    assert "not found again" in forehead_only.detail
    everywhere = run([skin * pulse + 0.2 * rng.standard_normal((t.size, 3)) for _ in range(3)])
    assert everywhere.reason == "ok" and abs(everywhere.rate - 90.0) < 1.5
    # without parts the check is skipped (a bare colour trace): the clean peak is reported
    tr = PulseTracker()
    bare = [tr.update(ti, skin * pulse[k]) for k, ti in enumerate(t)][-1]
    assert bare.reason == "ok"


@pytest.mark.slow
def test_degraded_face_videos_right_or_no_rate(tmp_path) -> None:
    """The degradation set, small: a clean video, a 25 x 25 px face in MJPEG at quality 5, and
    a video with every degradation and no pulse. Every reported rate is within 5 bpm of the
    truth, the clean video has a rate in at least 80 % of its windows, and the video without a
    pulse reports none (benchmarks/bench_face.py runs the full set)."""
    pytest.importorskip("cv2", reason="needs the 'face' extra (opencv-python-headless)")
    pytest.importorskip("skimage", reason="needs scikit-image for the astronaut photograph")
    from physioaffect.face.synthetic import degraded_set
    from physioaffect.face.validate import pulse_on_degraded_video

    cases = {c.name: c for c in degraded_set(rates=(83.0,), duration=14.0, fps=20.0)}
    for name in ("clean", "mjpeg_q5", "no_pulse"):
        r = pulse_on_degraded_video(cases[name], tmp_path)
        rates = r["rates"]
        assert rates.size >= 4
        reported = np.isfinite(rates)
        if name == "no_pulse":
            assert not reported.any(), rates
            assert all(reason in ("low_snr", "motion") for reason in r["reasons"]), r["reasons"]
            continue
        assert np.all(np.abs(rates[reported] - 83.0) <= 5.0), (name, rates)
        if name == "clean":
            assert reported.mean() >= 0.8
        else:
            assert r["skin_px"] < 30  # the small condition is small


def test_rppg_on_animated_astronaut_video() -> None:
    """Pulse within 3 bpm of the truth on the moving real-face video (two rates; the
    benchmark sweeps 50-120 bpm)."""
    pytest.importorskip("cv2", reason="needs the 'face' extra (opencv-python-headless)")
    pytest.importorskip("skimage", reason="needs scikit-image for the astronaut photograph")
    import neurokit2 as nk

    from physioaffect.face.analysis import FaceAnalyzer
    from physioaffect.face.synthetic import SyntheticFaceVideo
    from physioaffect.face.validate import compare_pulse, reference_pulse_rate

    for bpm in (58.0, 104.0):
        video = SyntheticFaceVideo(pulse_bpm=bpm, duration=8.0, fps=30.0, seed=int(bpm))
        with FaceAnalyzer() as fa:
            rows = [fa.process(frame, t) for t, frame in zip(video.times, video.frames(), strict=True)]
        rates = np.array([r["pulse_rate"] for r in rows])
        assert np.all(np.isnan(rates[:179]))  # < 6 s of history: warming up
        assert {r.pulse.reason for r in rows[:179]} == {"warming_up"}
        valid = rates[np.isfinite(rates)]
        assert valid.size > 40
        assert np.all(np.abs(valid - bpm) < 3.0), (bpm, valid.min(), valid.max())

        # the same check a session makes against its ECG: an ECG at the true rate, recorded
        # from 20 s before the video on the same clock, beat-detected by NeuroKit2
        fs_ecg = 250.0
        ecg = nk.ecg_simulate(duration=30, sampling_rate=int(fs_ecg), heart_rate=bpm,
                              heart_rate_std=0, method="simple", random_state=0)
        ecg_t = -20.0 + np.arange(ecg.size) / fs_ecg
        agreement = compare_pulse(video.times, rates, ecg_t, reference_pulse_rate(ecg, fs_ecg, "ecg"))
        assert agreement.n == valid.size
        assert agreement.mean_abs_error < 3.0 and agreement.within_3bpm == 1.0


def test_compare_pulse_averages_reference_over_the_face_window() -> None:
    from physioaffect.face.validate import compare_pulse

    # reference steps from 60 to 90 bpm at t = 20 s; a face estimator with a 10 s window
    # would read the trailing mean: 75 bpm at t = 25 s
    rt = np.arange(0, 40, 0.01)
    rb = np.where(rt < 20, 60.0, 90.0)
    ft = np.array([5.0, 15.0, 25.0, 35.0, 45.0])
    fb = np.array([60.0, 60.0, 75.0, 90.0, 90.0])
    a = compare_pulse(ft, fb, rt, rb, window=10.0)
    np.testing.assert_allclose(a.times, [15.0, 25.0, 35.0])  # 5 s: window before the reference; 45 s: after it
    np.testing.assert_allclose(a.reference_bpm, [60.0, 75.0, 90.0], atol=0.05)
    assert a.mean_abs_error < 0.05 and a.within_3bpm == 1.0
