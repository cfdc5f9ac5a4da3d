"""What a network takes as input, and how that input is built from preprocessed EEG windows.

Every registered model declares an :class:`InputKind` (see
:func:`physioaffect.models.register_model`). Training, evaluation and live decoding ask the
model's input kind to turn EEG windows ``(n, n_chans, n_times)`` in microvolts into the
network's input, and which axes keep their own normalisation statistics; none of them branches
on model names. A new kind of input is one more :class:`InputKind`.

Input kinds defined here:

* :data:`RAW` — the windows themselves ``(n, C, T)``; statistics per channel.
* :data:`GRAPHS` — EmT graph sequences ``(n, S, C, F)``: relative Welch band power of ``S``
  sub-windows per window, per channel, as EmT's official preparation code computes it
  (:mod:`physioaffect.features.graphs`); statistics per channel and band.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physioaffect.models._base import ModelConfigError

__all__ = ["InputKind", "RAW", "GRAPHS", "INPUT_KINDS", "input_kind"]


@dataclass(frozen=True)
class InputKind:
    """How one kind of network input is built from EEG windows.

    Attributes
    ----------
    name : str
        Stored in checkpoints (``raw``, ``graphs``).
    description : str
        Shape and meaning, for ``physioaffect models``.
    norm_axes : tuple of int
        Axes of the batched input that keep their own normalisation statistics.
    build : callable
        ``build(windows, sfreq, params) -> ndarray``: windows ``(n, C, T)`` in microvolts at
        ``sfreq`` Hz, ``params`` the kind's settings (:attr:`defaults` overridden by the run).
    model_kwargs : callable
        ``model_kwargs(params, built) -> dict``: constructor arguments the network needs to
        fit this input (e.g. the number of band features).
    defaults : dict
        The kind's settings and their defaults (the only keys ``params`` may hold).
    """

    name: str
    description: str
    norm_axes: tuple[int, ...]
    build: Callable[[np.ndarray, float, Mapping[str, Any]], np.ndarray]
    model_kwargs: Callable[[Mapping[str, Any], np.ndarray], dict[str, Any]] = \
        field(default=lambda params, built: {})
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The kind's settings: defaults overridden by ``given`` (unknown keys refused)."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise ModelConfigError(f"input {self.name!r}: unknown setting(s) {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(self.defaults)) or 'none'})")
        return {**self.defaults, **given}


def _raw(windows: np.ndarray, sfreq: float, params: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(windows, dtype=np.float32)


def _graphs(windows: np.ndarray, sfreq: float, params: Mapping[str, Any]) -> np.ndarray:
    """EmT graph sequences ``(n, S, C, F)`` as the official preparation code makes them
    (:func:`physioaffect.features.graphs.emt_graph_sequence`)."""
    from physioaffect.features.graphs import EMT_BANDS, emt_graph_sequence

    bands = params["bands"]
    if isinstance(bands, str) and bands not in EMT_BANDS:
        from physioaffect.features.eeg import BANDS

        if bands in BANDS:  # a band preset of checkpoints written before the EmT presets
            bands = [tuple(b) for b in BANDS[bands]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unusable nodes are NaN (zero after normalisation)
        return emt_graph_sequence(windows, sfreq, float(params["sub_window_s"]),
                                  float(params["sub_overlap"]), bands)


def _graph_kwargs(params: Mapping[str, Any], built: np.ndarray) -> dict[str, Any]:
    return {"sub_window_s": float(params["sub_window_s"]),
            "sub_overlap": float(params["sub_overlap"]), "n_features": int(built.shape[-1])}


RAW = InputKind("raw", "(batch, n_chans, n_times) EEG in microvolts", (1,), _raw)
GRAPHS = InputKind(
    "graphs", "(batch, n_sub_windows, n_chans, n_bands) relative band power per sub-window",
    (2, 3), _graphs, _graph_kwargs,
    defaults={"sub_window_s": 2.0, "sub_overlap": 0.5, "bands": "emt_faced"})

#: Input kinds by name (checkpoints store the name).
INPUT_KINDS: dict[str, InputKind] = {k.name: k for k in (RAW, GRAPHS)}


def input_kind(name: str) -> InputKind:
    """The :class:`InputKind` called ``name``."""
    if name not in INPUT_KINDS:
        raise ModelConfigError(f"unknown input kind {name!r} (known: {', '.join(INPUT_KINDS)})")
    return INPUT_KINDS[name]
