"""Viewer parts without a window: pixel decimation and rasterisation, neurofeedback targets,
the prediction -> valence/arousal mapping, and the metrics shown beside the traces."""

from __future__ import annotations

import numpy as np
import pytest

from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.viewer.feedback import FeedbackTarget, parse_targets, va_from_prediction
from physioaffect.viewer.metrics import eeg_metrics, peripheral_metrics
from physioaffect.viewer.raster import minmax_columns, rasterize


def test_minmax_columns_match_a_plain_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1003, 5)).astype(np.float32)
    lo, hi = minmax_columns(x, 97)
    for j in range(97):
        a, b = int(np.floor(j * 1003 / 97)), int(np.floor((j + 1) * 1003 / 97))
        np.testing.assert_array_equal(lo[j], x[a:b].min(axis=0))
        np.testing.assert_array_equal(hi[j], x[a:b].max(axis=0))
    # every sample belongs to exactly one column: the global extremes survive
    np.testing.assert_array_equal(lo.min(axis=0), x.min(axis=0))
    np.testing.assert_array_equal(hi.max(axis=0), x.max(axis=0))


def test_rasterize_draws_each_trace_in_its_lane_and_connected():
    n_cols, height = 200, 100
    t = np.linspace(0, 4 * np.pi, 4000)
    x = np.stack([np.sin(t), np.zeros_like(t)], axis=1)  # a sine and a flat line
    lo, hi = minmax_columns(x, n_cols)
    colors = np.array([0xFFFF0000, 0xFF00FF00], dtype=np.uint32)
    img = rasterize(lo, hi, offsets=np.array([1.0, 0.0]), gains=np.array([0.4, 0.4]),
                    height=height, y_range=(-0.5, 1.5), colors=colors)
    assert img.shape == (height, n_cols)
    rows = (np.arange(height) + 0.5) / height * 2.0 - 0.5  # plot y of each image row
    red = img == colors[0]
    green = img == colors[1]
    # the flat channel: one row at y = 0 in every column
    g_rows = np.flatnonzero(green.any(axis=1))
    assert np.all(np.abs(rows[g_rows]) < 2.0 / height * 1.5)
    assert green.any(axis=0).all()
    # the sine: spans y = 1 +- 0.4, every column drawn (connected), nothing outside its lane
    r_rows = np.flatnonzero(red.any(axis=1))
    assert rows[r_rows].min() == pytest.approx(0.6, abs=0.03)
    assert rows[r_rows].max() == pytest.approx(1.4, abs=0.03)
    assert red.any(axis=0).all()
    # NaN columns (no data yet) stay empty
    lo[:50] = np.nan
    hi[:50] = np.nan
    img = rasterize(lo, hi, np.array([1.0, 0.0]), np.array([0.4, 0.4]), height, (-0.5, 1.5),
                    colors)
    assert not img[:, :49].any() and img[:, 60:].any()


def test_targets_parse_and_judge():
    tg = parse_targets("faa>0.1, arousal<4")
    assert tg == [FeedbackTarget("faa", "increase", 0.1), FeedbackTarget("arousal", "decrease", 4)]
    assert tg[0].met(0.2) and not tg[0].met(0.05)
    assert tg[1].met(3.0) and not tg[1].met(6.0)
    assert tg[1].met(float("nan")) is None
    with pytest.raises(ValueError, match="metric>value"):
        parse_targets("faa=3")
    with pytest.raises(ValueError, match="not one of"):
        parse_targets("heart>3")


def test_prediction_to_valence_arousal():
    assert va_from_prediction(["valence", "arousal"], [3.0, 7.5]) == {"valence": 3.0,
                                                                      "arousal": 7.5}
    out = va_from_prediction(["arousal_low", "arousal_high"], [0.25, 0.75])
    assert out == {"arousal": pytest.approx(7.0)}
    assert va_from_prediction(["arousal_low", "arousal_high"], [0.5, 0.5])["arousal"] == 5.0


def test_heart_rate_and_eda_level_follow_the_simulator():
    cfg = SimConfig(rate=1000, eeg_channels=8, subjects=1)
    rec = simulate_subject(cfg, 0, duration=12)
    ecg = rec.signals["ECG"][2][:, 0]
    beats = rec.beats[rec.beats >= 2.0]
    true_hr = 60.0 / np.mean(np.diff(beats))
    assert peripheral_metrics("ECG", ecg[2000:], 1000.0)["heart_rate"] == pytest.approx(
        true_hr, abs=3)
    assert peripheral_metrics("PPG", rec.signals["PPG"][2][2000:, 0], 1000.0)[
        "pulse_rate"] == pytest.approx(true_hr, abs=4)
    eda = rec.signals["GSR"][2][2000:, 0]
    assert peripheral_metrics("GSR", eda, 1000.0)["tonic"] == pytest.approx(
        float(np.median(eda)), rel=0.15)


def test_rates_come_with_their_quality():
    """A rate is shown with its quality; an unusable signal gives no rate, the reason instead."""
    from physioaffect.viewer.metrics import quality_note

    rec = simulate_subject(SimConfig(rate=256, eeg_channels=1, subjects=1), 0, duration=12)
    good = peripheral_metrics("ECG", rec.signals["ECG"][2][:, 0], 256.0)
    assert np.isfinite(good["heart_rate"]) and good["quality"] >= 0.5
    assert quality_note(good).startswith(" \u00b7 quality ")
    flat = peripheral_metrics("ECG", np.full(256 * 10, -0.0236), 256.0)
    assert np.isnan(flat["heart_rate"]) and flat["quality"] == 0.0
    assert "LOW QUALITY" in quality_note(flat) and "flat" in quality_note(flat)


def test_band_power_and_faa_on_known_signals():
    fs = 250.0
    t = np.arange(int(4 * fs)) / fs
    rng = np.random.default_rng(1)
    labels = ["F3", "F4", "Cz"]
    x = 0.5 * rng.standard_normal((t.size, 3))
    x[:, 0] += 5 * np.sin(2 * np.pi * 10 * t)
    x[:, 1] += 10 * np.sin(2 * np.pi * 10 * t)  # twice the alpha amplitude on the right
    x[:, 2] += 5 * np.sin(2 * np.pi * 10 * t)
    m = eeg_metrics(x, fs, labels)
    names = [b[0] for b in m["bands"]]
    assert names[int(np.argmax([b[1] for b in m["bands"]]))] == "alpha"
    # ln P_alpha(F4) - ln P_alpha(F3) = ln(4) for a doubled amplitude
    assert m["faa"] == pytest.approx(np.log(4.0), abs=0.1)
    assert m["relative"][names.index("alpha")] > 0.9
