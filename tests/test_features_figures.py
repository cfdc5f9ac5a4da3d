"""Figures: written as PNG and showing what they claim (peaks where the signal has them)."""

from __future__ import annotations

import numpy as np
import pytest

from physioaffect.features.figures import (
    channel_groups,
    plot_band_topomaps,
    plot_peripheral,
    plot_psd_groups,
)
from physioaffect.features.peripheral import ecg_rpeaks
from physioaffect.preprocessing.quality import SignalInputError

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "T7", "T8", "P3", "P4", "O1", "O2", "Oz", "Cz"]


def test_channel_groups():
    g = channel_groups(NAMES + ["EXG1"])
    assert [NAMES[i] for i in g["frontal"]] == ["Fp1", "Fp2", "F3", "F4"]
    assert [NAMES[i] for i in g["occipital"]] == ["O1", "O2", "Oz"]
    assert g["other"] == [len(NAMES)]


def test_psd_figure_peaks_at_10hz_in_occipital(tmp_path):
    fs = 128
    t = np.arange(20 * fs) / fs
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(NAMES), t.size)) * 5
    occ = [i for i, n in enumerate(NAMES) if n.startswith("O")]
    x[occ] += 30 * np.sin(2 * np.pi * 10 * t)
    out = tmp_path / "psd.png"
    fig = plot_psd_groups(x, fs, NAMES, out)
    assert out.read_bytes()[:8] == PNG
    lines = {ln.get_label().split(" ")[0]: ln for ln in fig.axes[0].get_lines()}
    f, p = lines["occipital"].get_data()
    assert f[np.argmax(p)] == pytest.approx(10.0, abs=0.5)
    assert p.max() > 10 * lines["frontal"].get_data()[1].max()


def test_topomaps_one_per_band(tmp_path):
    values = np.random.default_rng(1).random((len(NAMES), 3))
    out = tmp_path / "topo.png"
    fig = plot_band_topomaps(values, NAMES, ["theta", "alpha", "beta"], out, unit="µV²")
    assert out.read_bytes()[:8] == PNG
    titles = [ax.get_title() for ax in fig.axes]
    assert {"theta", "alpha", "beta"} <= set(titles)
    with pytest.raises(SignalInputError, match="shape"):
        plot_band_topomaps(values[:, :2], NAMES, ["theta", "alpha", "beta"])
    with pytest.raises(SignalInputError, match="positions"):
        plot_band_topomaps(values, NAMES[:-1] + ["XYZ9"], ["theta", "alpha", "beta"])


def test_peripheral_figure_marks_the_detected_peaks(tmp_path):
    from physioaffect.sources.sim import SimConfig, simulate_subject

    rec = simulate_subject(SimConfig(eeg_channels=1, rate=128, seed=4, n_trials=1), 0, duration=30)
    ecg = rec.signals["ECG"][2][:, 0]
    out = tmp_path / "periph.png"
    fig = plot_peripheral(
        {
            "ECG": (ecg, 128),
            "RESP": (rec.signals["RESP"][2][:, 0], 128),
            "PPG": (np.zeros(10), 128),
        },
        out,
    )
    assert out.read_bytes()[:8] == PNG
    marker_line = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "v"][0]
    assert np.allclose(marker_line.get_xdata(), ecg_rpeaks(ecg, 128) / 128)
    # Unusable input is drawn raw with its reason, not an exception.
    assert any("too short" in t.get_text() for t in fig.axes[2].texts)
