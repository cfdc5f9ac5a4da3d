"""The feature figures say what they show: axis labels with units, one labelled colour bar per
band, legends beside (not over) the data. Checked on the matplotlib objects of the saved
figure, not on pixels."""

from __future__ import annotations

import numpy as np
from conftest import write_truth_session
from matplotlib.backends.backend_agg import FigureCanvasAgg

from physioaffect.cli.features import load_source
from physioaffect.features.figures import plot_band_topomaps, plot_peripheral, plot_psd_groups
from physioaffect.sources.sim import SimConfig, simulate_subject

NAMES = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "T7", "T8", "P3", "P4", "O1", "O2", "Oz", "Cz"]


def _legend_clear_of_data(fig, ax) -> bool:
    FigureCanvasAgg(fig).draw()
    legend = ax.get_legend()
    return legend is not None and not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_psd_axes_have_units_and_the_legend_is_beside_the_plot(tmp_path):
    x = np.random.default_rng(0).standard_normal((len(NAMES), 128 * 10))
    fig = plot_psd_groups(x, 128, NAMES, tmp_path / "psd.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "frequency (Hz)" and "µV²/Hz" in ax.get_ylabel()
    assert _legend_clear_of_data(fig, ax)


def test_topomaps_have_one_colour_bar_with_unit_per_band(tmp_path):
    rng = np.random.default_rng(1)
    # four bands on scales decades apart: each needs its own bar
    values = rng.random((len(NAMES), 4)) * np.array([1.0, 10.0, 100.0, 1000.0])
    bands = ["theta", "alpha", "beta", "gamma"]
    fig = plot_band_topomaps(values, NAMES, bands, tmp_path / "topo.png", unit="µV²")
    bars = [ax for ax in fig.axes if ax.get_xlabel() == "µV²" or ax.get_ylabel() == "µV²"]
    assert len(bars) == 4
    for k, bar in enumerate(bars):  # each bar spans its own band's values
        lo, hi = sorted(bar.get_xlim()) if bar.get_xlabel() else sorted(bar.get_ylim())
        assert np.isclose(lo, values[:, k].min())
        assert np.isclose(hi, values[:, k].max())
    assert {ax.get_title() for ax in fig.axes} >= set(bands)


def test_peripheral_figure_takes_units_from_the_session_file(tmp_path):
    truth = simulate_subject(SimConfig(eeg_channels=4, rate=128, seed=5), 0, duration=12,
                             t0=100.0)
    path = write_truth_session(tmp_path / "sub-1_task-x_physio.h5", truth, 100.0,
                               subject="1", task="x")
    data = load_source(str(path))
    recorded = {k: v for k, v in data["peripheral_units"].items()}
    assert recorded["ECG"] == "millivolts" and recorded["EDA"] == "microsiemens"
    sig = {k: (v[0], v[1]) for k, v in data["peripherals"].items()}
    fig = plot_peripheral(sig, tmp_path / "p.png", units=data["peripheral_units"])
    labels = {ax.get_ylabel().split(" ")[0]: ax.get_ylabel() for ax in fig.axes}
    assert labels["ECG"] == "ECG (mV)" and labels["EDA"] == "EDA (µS)"
    assert labels["PPG"] == "PPG (a.u.)"  # the simulator states no unit for PPG
    assert fig.axes[-1].get_xlabel() == "time (s)"
    ecg_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("ECG"))
    texts = [t.get_text() for t in ecg_ax.get_legend().get_texts()]
    assert texts[0] == "cleaned signal" and texts[1].startswith("R peaks (")
    assert all(_legend_clear_of_data(fig, ax) for ax in fig.axes)
