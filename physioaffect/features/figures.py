"""Figures for a recording or an epoch set, saved as PNG (matplotlib, rendered with Agg).

* :func:`plot_psd_groups`: Welch PSD averaged per channel group (frontal, central, temporal,
  parietal, occipital by 10-20 label), log scale, bands shaded.
* :func:`plot_band_topomaps`: one MNE topomap per band of a per-channel feature (band power,
  DE ...).
* :func:`plot_peripheral`: ECG/EDA/PPG/RESP traces (cleaned) with the detected peaks.

Each function returns the :class:`matplotlib.figure.Figure` and writes ``path`` when given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np  # noqa: E402

# Figures are built on matplotlib.figure.Figure, not pyplot: no GUI backend, no global state
# (safe in threads and in notebooks, which keep their own backend), nothing to close.
from matplotlib.figure import Figure
from scipy import signal  # noqa: E402

from physioaffect.features import peripheral  # noqa: E402
from physioaffect.features.eeg import resolve_bands  # noqa: E402
from physioaffect.preprocessing.quality import SignalInputError, as_signal_array, check_sfreq  # noqa: E402
from physioaffect.streams.units import unit_symbol as _unit_symbol  # noqa: E402

__all__ = ["channel_groups", "plot_psd_groups", "plot_band_topomaps", "plot_peripheral"]

_GROUP_PATTERNS = [
    ("frontal", r"^(fp|af|f)(z|\d+)$"),
    ("central", r"^(fc|c|cp)(z|\d+)$"),
    ("temporal", r"^(ft|t|tp)(z|\d+)$"),
    ("parietal", r"^p(z|\d+)$"),
    ("occipital", r"^(po|o|i)(z|\d+)$"),
]


def channel_groups(ch_names: Sequence[str]) -> dict[str, list[int]]:
    """Channel indices per scalp region from 10-20/10-10 labels (unknown labels: "other")."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(ch_names):
        label = name.strip().lower()
        region = next((g for g, pat in _GROUP_PATTERNS if re.match(pat, label)), "other")
        groups.setdefault(region, []).append(i)
    return groups


def _save(fig: Any, path: str | Path | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")


def plot_psd_groups(
    x: object,
    sfreq: float,
    ch_names: Sequence[str],
    path: str | Path | None = None,
    *,
    fmax: float = 50.0,
    bands: str | Sequence = "seed5",
    title: str = "EEG power spectral density by region",
) -> Any:
    """Welch PSD (2 s segments) averaged over the channels of each region.

    Parameters
    ----------
    x : array_like, shape (n_chans, n_times) or (n_epochs, n_chans, n_times)
        EEG in microvolts (epochs are averaged in the PSD).
    sfreq : float
        Hz.
    ch_names : list of str
    path : path, optional
        PNG to write.
    fmax : float
        Highest frequency shown, Hz.
    bands : str or list
        Bands shaded in the background.
    """
    arr = as_signal_array(x, "x", min_ndim=2, max_ndim=3)
    fs = check_sfreq(sfreq)
    if arr.shape[-2] != len(ch_names):
        raise SignalInputError(f"ch_names: {len(ch_names)} labels for {arr.shape[-2]} channels")
    arr = np.where(np.isfinite(arr), arr, 0.0)
    freqs, psd = signal.welch(arr, fs, nperseg=min(arr.shape[-1], int(2 * fs)), axis=-1)
    psd = psd.reshape(-1, len(ch_names), freqs.size).mean(axis=0)
    keep = freqs <= min(fmax, fs / 2)
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    for k, (name, lo, hi) in enumerate(resolve_bands(bands)):
        if lo < fmax:
            ax.axvspan(lo, min(hi, fmax), color=f"C{k}", alpha=0.08, lw=0)
            ax.text(
                (lo + min(hi, fmax)) / 2,
                1.0,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    for region, idx in channel_groups(ch_names).items():
        ax.semilogy(freqs[keep], psd[idx][:, keep].mean(axis=0), label=f"{region} ({len(idx)})")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (µV²/Hz)")
    ax.set_title(title, pad=14)
    _legend_outside(ax, title="region (channels)")
    ax.grid(alpha=0.3)
    _save(fig, path)
    return fig


def plot_band_topomaps(
    values: object,
    ch_names: Sequence[str],
    band_names: Sequence[str],
    path: str | Path | None = None,
    *,
    montage: Any | None = None,
    unit: str = "",
    title: str = "",
) -> Any:
    """One scalp map per band (MNE ``plot_topomap``).

    Parameters
    ----------
    values : array_like, shape (n_chans, n_bands)
        A per-channel feature, e.g. mean band power or DE.
    ch_names : list of str
    band_names : list of str
    path : path, optional
    montage : mne.channels.DigMontage, optional
        Channel positions; default MNE's standard 10-05 template (labels must be known).
    """
    import mne

    if len(ch_names) < 3:  # a scalp map interpolates between 3 or more located channels
        raise SignalInputError(f"ch_names: a topomap needs 3 or more channels, got {len(ch_names)}")
    vals = as_signal_array(values, "values", min_ndim=2, max_ndim=2)
    if vals.shape != (len(ch_names), len(band_names)):
        raise SignalInputError(
            f"values: expected shape (n_chans={len(ch_names)}, n_bands={len(band_names)}), got {vals.shape}"
        )
    info = mne.create_info(list(ch_names), 100.0, "eeg")
    if montage is None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            montage = mne.channels.make_standard_montage("standard_1005")
    try:
        info.set_montage(montage, match_case=False, on_missing="raise", verbose=False)
    except ValueError as err:
        raise SignalInputError(f"ch_names: no positions for some channels ({err})") from None
    fig = Figure(figsize=(2.5 * len(band_names), 2.8), layout="constrained")
    axes = fig.subplots(1, len(band_names), squeeze=False)
    for k, name in enumerate(band_names):
        ax = axes[0, k]
        v = vals[:, k]
        lim = (float(np.nanmin(v)), float(np.nanmax(v)))  # MNE would start positive data at 0
        im, _ = mne.viz.plot_topomap(
            v, info, axes=ax, show=False, cmap="viridis", contours=4, vlim=lim
        )
        ax.set_title(name, fontsize=9)
        # one bar per band: bands differ by orders of magnitude, a shared scale would flatten
        # all but the strongest; each bar says its unit
        cb = fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.06, pad=0.04)
        cb.ax.tick_params(labelsize=6)
        cb.set_label(unit or "value (unit not given)", fontsize=7)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def unit_symbol(unit: str | None) -> str:
    """``"millivolts"`` -> ``"mV"``; no unit stated -> ``"a.u."`` (arbitrary units)."""
    return str(_unit_symbol(unit, "a.u."))


#: What the detected peaks of each modality are (legend text).
_PEAK_NAMES = {"ECG": "R peaks", "EDA": "SCR peaks", "GSR": "SCR peaks",
               "PPG": "pulse peaks", "RESP": "breath peaks", "RSP": "breath peaks"}


def _legend_outside(ax: Any, **kwargs: Any) -> None:
    """A legend beside the axes (right), never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7,
              frameon=False, **kwargs)


def plot_peripheral(
    signals: Mapping[str, tuple],
    path: str | Path | None = None,
    *,
    units: Mapping[str, str] | None = None,
    seconds: float | None = 60.0,
    title: str = "Peripheral signals with detected events",
) -> Any:
    """Cleaned peripheral traces with their detected peaks.

    Parameters
    ----------
    signals : mapping modality -> (signal (n_times,), sampling_rate[, unit])
        E.g. ``{"ECG": (ecg, 256, "millivolts"), "EDA": (eda, 256, "microsiemens")}``.
    path : path, optional
    units : mapping modality -> unit, optional
        Units of the signals (a session file stores them per channel); wins over a unit in
        the tuple. Without one the axis says ``a.u.``.
    seconds : float or None
        Show the first ``seconds`` only (None: everything).
    """
    units = dict(units or {})
    fig = Figure(figsize=(9, 1.9 * len(signals)), layout="constrained")
    axes = fig.subplots(len(signals), 1, sharex=True, squeeze=False)
    for ax, (modality, spec) in zip(axes[:, 0], signals.items(), strict=True):
        sig, fs = spec[0], spec[1]
        unit = units.get(modality, spec[2] if len(spec) > 2 else None)
        events, reasons = peripheral.process(modality, sig, fs)
        x = np.asarray(sig, dtype=float).reshape(-1)
        n = x.size if seconds is None else min(x.size, int(seconds * fs))
        t = np.arange(n) / fs
        if not events:
            ax.plot(t, x[:n], lw=0.6, color="0.5", label="raw signal (not analysable)")
            # the reason above the axes, not over the trace
            ax.text(0.0, 1.02, "; ".join(reasons), transform=ax.transAxes, fontsize=7,
                    color="C3", va="bottom")
            _legend_outside(ax)
        else:
            y = events["cleaned"][:n]
            ax.plot(t, y, lw=0.6, color="C0", label="cleaned signal")
            pk = events.get("peaks", np.zeros(0, dtype=int))
            pk = pk[pk < n]
            what = _PEAK_NAMES.get(modality.upper(), "detected peaks")
            ax.plot(pk / fs, y[pk], "v", color="C3", ms=4, label=f"{what} ({pk.size})")
            _legend_outside(ax)
        ax.set_ylabel(f"{modality} ({unit_symbol(unit)})")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title)
    _save(fig, path)
    return fig
