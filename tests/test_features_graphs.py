"""EmT graph features against an independent computation of the official definition.

The official ``bandpower`` (github.com/yi-ding-cs/EmT, ``classification/base/preprocessing.py``):
``welch(x, fs, nperseg=fs)``, bins with ``lo <= f <= hi``, ``simpson(psd[:, sel], dx=df)``
divided by ``simpson(psd, dx=df)``. It is restated here in a few lines of scipy and compared
with the package on known signals.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import simpson
from scipy.signal import welch

from physioaffect.features.graphs import (
    EMT_BANDS,
    emt_band_power,
    emt_graph_sequence,
    emt_sub_window_starts,
)
from physioaffect.preprocessing.quality import SignalInputError, SignalQualityWarning


def _official_relative_bandpower(x: np.ndarray, fs: int, bands) -> np.ndarray:
    freqs, psd = welch(x, fs, nperseg=fs)
    df = freqs[1] - freqs[0]
    total = simpson(psd, dx=df)
    return np.stack([simpson(psd[..., (freqs >= lo) & (freqs <= hi)], dx=df) / total
                     for lo, hi in bands], axis=-1)


def _edges(preset: str) -> list[tuple[float, float]]:
    return [(lo, hi) for _, lo, hi in EMT_BANDS[preset]]


def test_band_presets_are_the_official_ones() -> None:
    assert _edges("emt_seed") == [(1, 3), (4, 8), (8, 12), (12, 16), (16, 20), (20, 28), (30, 45)]
    assert _edges("emt_faced") == _edges("emt_thu_ep") == [(1, 4)] + _edges("emt_seed")[1:]
    assert _edges("emt_mahnob") == [(0.3, 4), (4, 8), (8, 12), (12, 18), (18, 30), (30, 45)]


@pytest.mark.parametrize(("fs", "preset"), [(200, "emt_seed"), (250, "emt_faced"),
                                            (256, "emt_mahnob")])
def test_band_power_equals_official_definition(fs: int, preset: str) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(2 * fs) / fs
    x = rng.standard_normal((3, 5, 2 * fs)) * 8 + 20 * np.sin(2 * np.pi * 10 * t)
    ours = emt_band_power(x, fs, preset)
    ref = _official_relative_bandpower(x, fs, _edges(preset))
    assert ours.shape == (3, 5, len(EMT_BANDS[preset]))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_ten_hz_sine_sits_in_alpha_and_twelve_hz_counts_in_both_neighbours() -> None:
    fs = 200
    t = np.arange(2 * fs) / fs
    alpha = emt_band_power(np.sin(2 * np.pi * 10 * t), fs, "emt_seed")
    assert alpha.argmax() == 2 and alpha[2] > 0.9
    # A 12 Hz sine: the 12 Hz bin is the last of 8-12 and the first of 12-16 (edges inclusive),
    # and its Hann leakage (11 and 13 Hz) is symmetric: both bands hold the same power.
    p12 = emt_band_power(np.sin(2 * np.pi * 12 * t), fs, "emt_seed")
    np.testing.assert_allclose(p12[2], p12[3], rtol=1e-6)
    assert p12[2] > 0.45 and p12[[0, 1, 4, 5, 6]].max() < 1e-6
    np.testing.assert_allclose(p12, _official_relative_bandpower(np.sin(2 * np.pi * 12 * t), fs,
                                                                _edges("emt_seed")), rtol=1e-12)
    # With the 12 Hz edge exclusive on one side (lo <= f < hi) 8-12 Hz would miss its peak bin.
    below = emt_band_power(np.sin(2 * np.pi * 12 * t), fs, [("a", 8, 11.5)])[0]
    assert below < 0.5 * p12[2]


def test_graph_sequence_is_band_power_of_each_official_sub_window() -> None:
    fs, n_times = 250, 20 * 250
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, n_times)) * 10
    g = emt_graph_sequence(x, fs, 4.0, 0.75, "emt_faced", dtype=np.float64)
    assert g.shape == (2, 16, 4, 7)  # FACED: 4 s sub-windows in a 20 s segment -> 16
    win, step = 1000, 250
    for s in (0, 7, 15):
        seg = x[:, :, s * step: s * step + win]
        np.testing.assert_allclose(g[:, s], _official_relative_bandpower(seg, fs,
                                                                         _edges("emt_faced")),
                                   rtol=1e-12)
    starts, w = emt_sub_window_starts(4000, 200, 2.0, 0.75)
    assert w == 400 and len(starts) == 36 and starts[-1] + w < 4000
    assert emt_graph_sequence(rng.standard_normal((1, 2, 4000)), 200).shape == (1, 36, 2, 7)


def test_unusable_channels_give_nan_nodes_and_one_warning() -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 1000))
    x[0, 1] = 0.0  # flat channel
    x[1, 2, 500] = np.nan
    with pytest.warns(SignalQualityWarning, match="emt_graph_sequence") as rec:
        g = emt_graph_sequence(x, 100, 2.0, 0.5, "emt_seed")
    assert len(rec) == 1
    assert np.isnan(g[0, :, 1]).all() and np.isfinite(g[0, :, [0, 2]]).all()
    bad = np.isnan(g[1, :, 2]).any(axis=-1)  # only sub-windows that contain sample 500
    assert bad.any() and not bad.all()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(SignalInputError, match="sub_window_s"):
        emt_graph_sequence(np.zeros((1, 2, 400)), 200, 2.0, 0.75)
    with pytest.raises(SignalInputError, match="unknown preset"):
        emt_band_power(np.zeros(400), 200, "emt_nope")
    with pytest.raises(SignalInputError, match="Nyquist"):
        emt_band_power(np.zeros(400), 80, "emt_seed")
