"""The evidence ``adaptation: {method: auto, evidence: baseline}`` weighs with.

Whether a network should be adapted to each subject is decided, per fold, on the validation
subjects with a classical model that is adapted *the way the network would be*:

- a network on **raw EEG** would get Euclidean alignment: the evidence is logistic regression on
  the differential entropy of the aligned windows. Alignment is a spatial mix ``M x`` and
  band-pass filtering commutes with it, so the band variance of an aligned window is
  ``diag(M C_b M^T)`` with ``C_b`` the window's band covariance
  (:func:`~physioaffect.features.eeg.band_covariances`): no second pass over the samples, and
  the live reference is the decoder's own (:class:`AlignedBandVariance`);
- a network on **band-power graphs** (EmT) would get a per-subject z-score of log band power:
  the evidence is logistic regression on per-subject z-scored DE (the classical baseline's own
  adaptation, :func:`physioaffect.training.fold`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physioaffect.features.eeg import gaussian_de
from physioaffect.preprocessing.alignment import OnlineAdaptation

__all__ = ["AlignedBandVariance", "aligned_de"]


def aligned_de(bandcov: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """DE ``(n, C, B)`` (nats) of windows mixed by ``matrix`` from their band covariances
    ``(n, B, C, C)`` (``matrix`` None: unmixed)."""
    if matrix is None:
        var = np.diagonal(bandcov, axis1=2, axis2=3)
    else:
        var = np.einsum("cd,nbde,ce->nbc", matrix, bandcov, matrix, optimize=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        de = gaussian_de(np.where(var > 0, var, np.nan))
    return np.ascontiguousarray(np.swapaxes(de, 1, 2), dtype=np.float32)


class AlignedBandVariance(OnlineAdaptation):
    """The decoder's live Euclidean alignment, applied to band covariances.

    Updated with the raw windows (``"eeg"``) exactly as
    :class:`~physioaffect.preprocessing.alignment.OnlineAdaptation` is; transforms
    ``"bandcov"`` ``(n, B, C, C)`` into the aligned windows' DE ``"de"`` ``(n, C, B)``.
    """

    def __init__(self, half_life_s: float | None = None, online: bool = True) -> None:
        super().__init__("euclidean", "raw", half_life_s, online)

    def update(self, window: dict[str, np.ndarray | None], t_end: float) -> None:
        super().update({"eeg": window["eeg"]}, t_end)

    def transform(self, arrays: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"de": aligned_de(arrays["bandcov"], self.refs_["eeg"].matrix())}
