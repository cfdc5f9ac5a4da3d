"""The simulator's optional Face stream: layout, timing, planted affect, pulse, dropouts,
live == offline, and no change to the other streams."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from physioaffect.sources import open_source
from physioaffect.sources.sim import (
    SimConfig,
    SimSource,
    face_params,
    simulate_subject,
    stream_infos,
)
from physioaffect.streams.face_layout import (
    FEATURE_CHANNELS,
    FEATURE_LABELS,
    PULSE_REASON_CODES,
    STATUS_CODES,
)

COL = {label: i for i, label in enumerate(FEATURE_LABELS)}
NO_FACE = STATUS_CODES["no_face"]
# 16 trials of 8 s: a 298 s scenario per subject, about 0.4 s to simulate
CFG = SimConfig(eeg_channels=4, rate=128, seed=11, n_trials=16, stimulus_seconds=8,
                face=True, face_rate=30)


@pytest.fixture(scope="module")
def recordings():
    return [simulate_subject(CFG, s) for s in range(4)]


def _trial_means(rec):
    """Per trial: (valence, arousal, nan-mean of every Face channel from 3 s after the onset)."""
    _, ts, x = rec.signals["Face"]
    rows = []
    for tr in rec.trials:
        # affect follows the stimulus with a 2 s time constant: skip the first 3 s
        sel = (ts >= tr["onset"] + 3) & (ts < tr["offset"])
        rows.append((tr["valence"], tr["arousal"], np.nanmean(x[sel], axis=0)))
    v = np.array([r[0] for r in rows])
    a = np.array([r[1] for r in rows])
    m = np.array([r[2] for r in rows])
    return v, a, m


def test_layout_rate_and_spec_options():
    cfg = SimConfig(eeg_channels=4, rate=128, face=True, face_rate=25, seed=3)
    infos = stream_infos(cfg, "simX", 2)
    face, eeg = infos["Face"], infos["EEG"]
    assert (face.name, face.type, face.nominal_srate) == ("simX-Face", "Face", 25.0)
    assert [(c.label, c.unit) for c in face.channels] == list(FEATURE_CHANNELS)
    assert face.channel_format == "float32"
    assert face.device == eeg.device
    assert face.source_id == eeg.source_id.replace("-eeg", "-face") != eeg.source_id
    assert "Face" not in stream_infos(SimConfig(eeg_channels=4, rate=128))

    rec = simulate_subject(cfg, 0, duration=6, t0=100.0)
    _, ts, x = rec.signals["Face"]
    assert x.shape == (150, len(FEATURE_LABELS)) and x.dtype == np.float32
    np.testing.assert_allclose(ts, 100.0 + np.arange(150) / 25.0)
    # a rate that does not divide the block: frames k / rate before the end, none lost
    rec = simulate_subject(SimConfig(eeg_channels=4, rate=128, face=True, face_rate=29.97), 0,
                           duration=10)
    _, ts, x = rec.signals["Face"]
    assert len(ts) == 300 and ts[-1] < 10 and np.allclose(np.diff(ts), 1 / 29.97)

    src = open_source("sim?face=1&face_rate=25&eeg_channels=4&rate=128")
    assert src.config.face is True and src.config.face_rate == 25.0
    assert src.stream("sim-Face").nominal_srate == 25.0
    assert open_source("sim?face=true").config.face is True
    assert open_source("sim?face=off").config.face is False
    assert "sim-Face" not in [s.name for s in open_source("sim").streams]
    with pytest.raises(ValueError, match="face='maybe' must be 1/0, true/false"):
        open_source("sim?face=maybe")
    with pytest.raises(ValueError, match="face_rate must be 5-120"):
        open_source("sim?face=1&face_rate=200")


def test_other_streams_identical_with_face_on_or_off():
    base = dict(eeg_channels=8, rate=128, seed=5, stimulus_seconds=4, rest_seconds=2,
                baseline_seconds=2, n_trials=4)
    off = simulate_subject(SimConfig(**base), 1, duration=20)
    on = simulate_subject(SimConfig(**base, face=True, face_rate=24), 1, duration=20)
    assert set(on.signals) == set(off.signals) | {"Face"}
    for kind in off.signals:
        np.testing.assert_array_equal(on.signals[kind][1], off.signals[kind][1])
        np.testing.assert_array_equal(on.signals[kind][2], off.signals[kind][2])
    np.testing.assert_array_equal(on.beats, off.beats)
    assert on.markers == off.markers and on.trials == off.trials


def _z(x):
    return (x - x.mean()) / x.std()


VALENCE_CHANNELS = ("lip_corner_pull", "mouth_width", "brow_furrow")
AROUSAL_CHANNELS = ("eye_open_l", "eye_open_r", "brow_raise_l", "brow_raise_r", "motion_energy",
                    "landmark_speed")


def test_planted_affect_shows_in_expression_and_movement(recordings):
    """Per-trial means follow the trial's ground-truth affect: smile and relaxed brows with
    valence, wide eyes, raised brows and movement with arousal; noisy enough that trials
    are not perfectly separable."""
    r = {k: [] for k in ("valence", "arousal", *VALENCE_CHANNELS, *AROUSAL_CHANNELS)}
    score_v, true_v = [], []
    for rec in recordings:
        v, a, m = _trial_means(rec)
        for k in VALENCE_CHANNELS:
            r[k].append(stats.spearmanr(v, m[:, COL[k]])[0])
        for k in AROUSAL_CHANNELS:
            r[k].append(stats.spearmanr(a, m[:, COL[k]])[0])
        # composite scores, standardised within the subject (a subject's own baseline)
        sv = sum(_z(m[:, COL[k]]) for k in VALENCE_CHANNELS)
        sa = sum(_z(m[:, COL[k]]) for k in AROUSAL_CHANNELS)
        r["valence"].append(stats.spearmanr(v, sv)[0])
        r["arousal"].append(stats.spearmanr(a, sa)[0])
        score_v.append(sv)
        true_v.append(v)
    mean_r = {k: float(np.mean(x)) for k, x in r.items()}
    # no channel runs against the planted effect (brow_furrow, the weakest cue, only responds
    # to negative valence); the composites clearly (seeds 0-15 gave >= 0.42)
    assert all(x > -0.1 for x in mean_r.values()), mean_r
    assert mean_r["valence"] > 0.35 and mean_r["arousal"] > 0.35, mean_r
    # a median split of the valence score: well above chance, not perfect
    acc = np.mean((np.concatenate(score_v) > 0) == (np.concatenate(true_v) > 5))
    assert 0.6 < acc < 0.95, acc


def test_effect_scales_the_face_gains_only():
    """SimConfig.effect scales every affect gain of the face and nothing else."""
    full, half = face_params(SimConfig(seed=4), 3), face_params(SimConfig(seed=4, effect=0.5), 3)
    gains = [k for k in full if k.endswith(("_arousal", "_valence"))]
    assert len(gains) == 8
    for k in full:
        assert half[k] == pytest.approx(full[k] * (0.5 if k in gains else 1.0)), k


def test_pulse_rate_and_rppg_follow_the_true_heart_rate(recordings):
    for rec in recordings[:2]:
        _, ts, x = rec.signals["Face"]
        ok = x[:, COL["status"]] == STATUS_CODES["ok"]
        hr = np.interp(ts, rec.state["time"], rec.state["heart_rate_bpm"])
        err = x[ok, COL["pulse_rate"]] - hr[ok]
        assert np.median(np.abs(err)) < 3.0 and abs(np.mean(err)) < 1.0
        for tr in rec.trials:
            sel = ok & (ts >= tr["onset"]) & (ts < tr["offset"])
            assert abs(np.mean(x[sel, COL["pulse_rate"]]) - np.mean(hr[sel])) < 5.0
        # the rPPG waveform's spectral peak is the heart rate (10 s windows without dropout, as
        # the face analyser estimates it)
        n_win, errors = 10 * 30, []
        for start in range(0, len(ts) - n_win, n_win):
            win = slice(start, start + n_win)
            if not ok[win].all():
                continue
            seg = x[win, COL["rppg"]]
            spec = np.abs(np.fft.rfft((seg - seg.mean()) * np.hanning(n_win), 8 * n_win))
            f = np.fft.rfftfreq(8 * n_win, 1 / 30.0)
            band = (f > 0.7) & (f < 4)
            errors.append(60 * f[band][np.argmax(spec[band])] - np.mean(hr[win]))
        assert len(errors) >= 8 and np.median(np.abs(errors)) < 2.5, errors
        assert 2 < np.nanmedian(x[:, COL["pulse_snr"]]) < 8


def test_dropouts_are_short_rare_and_never_filled(recordings):
    total, gone_frames, bursts = 0, 0, []
    for rec in recordings:
        _, _, x = rec.signals["Face"]
        status = x[:, COL["status"]]
        gone = status == NO_FACE
        ok = status == STATUS_CODES["ok"]
        assert np.all(gone | ok)
        # no face: nothing measured, every other channel NaN; the pulse's reason says so
        assert np.all(x[gone, COL["n_faces"]] == 0)
        assert np.all(x[gone, COL["pulse_reason"]] == PULSE_REASON_CODES["face_lost"])
        assert np.all(x[ok, COL["pulse_reason"]] == PULSE_REASON_CODES["ok"])
        kept = (COL["status"], COL["n_faces"], COL["pulse_reason"])
        others = [i for i in range(x.shape[1]) if i not in kept]
        assert np.all(np.isnan(x[np.ix_(gone, others)]))
        # a face: one face, every channel measured
        assert np.all(x[ok, COL["n_faces"]] == 1) and not np.isnan(x[ok]).any()
        edges = np.flatnonzero(np.diff(np.concatenate([[0], gone.astype(int), [0]])))
        bursts += list(edges[1::2] - edges[::2])
        total += len(status)
        gone_frames += int(gone.sum())
    assert 0.005 < gone_frames / total < 0.05
    assert len(bursts) >= 5 and max(bursts) <= 1.8 * 30  # bursts of 0.3-1.7 s


def test_live_source_emits_the_offline_face_frames():
    """Unpaced live source == simulate_subject, with a frame rate that does not divide the
    0.5 s block (12.5 frames per block): no frame lost or repeated at block edges."""
    cfg = SimConfig(eeg_channels=4, rate=128, seed=2, baseline_seconds=1, stimulus_seconds=2,
                    rest_seconds=1, n_trials=2, face=True, face_rate=25, block_seconds=0.5)
    seconds = 6
    offline = simulate_subject(cfg, 1, duration=seconds)
    _, ts_off, x_off = offline.signals["Face"]
    src = SimSource(cfg, subject=1, speed=0)
    parts, stamps, eeg = [], [], []
    src.start()
    try:
        while sum(len(p) for p in parts) < len(ts_off):
            for ch in src.read():
                if ch.stream == "sim-Face":
                    parts.append(ch.samples)
                    stamps.append(ch.timestamps)
                elif ch.stream == "sim-EEG":
                    eeg.append(ch.samples)
    finally:
        src.stop()
    got = np.concatenate(parts)[: len(ts_off)]
    ts = np.concatenate(stamps)[: len(ts_off)]
    np.testing.assert_array_equal(got, x_off)  # NaN rows (dropouts) compare equal too
    np.testing.assert_allclose(ts - ts[0], np.arange(len(ts_off)) / 25.0, atol=1e-9)
    n_eeg = seconds * 128
    np.testing.assert_array_equal(np.concatenate(eeg)[:n_eeg], offline.signals["EEG"][2])
