"""Baselines every report carries: trivial, classical (scikit-learn) and deep (EEGNet, Shallow).

Deep baselines
--------------
:class:`EEGNet` (Lawhern et al., J. Neural Eng. 2018, doi:10.1088/1741-2552/aace8c) and
:class:`ShallowConvNet` (Schirrmeister et al., Hum. Brain Mapp. 2017, doi:10.1002/hbm.23730)
are written here in braindecode's signature and layer layout (braindecode 1.8 ``EEGNet`` and
``ShallowFBCSPNet`` defaults; for the same input they have the same parameter counts) instead of
being imported from braindecode, because braindecode does not install cleanly here: it requires
``torchaudio``, whose only available wheel (2.11.0) is built against torch 2.11 and fails to load
its C++ library beside torch 2.13 (``OSError: Could not load this library: _torchaudio.abi3.so``),
and it pulls in 14 further packages. Both take raw EEG ``(batch, n_chans, n_times)``.

Feature baselines
-----------------
:func:`make_majority`, :func:`make_logistic_regression` and :func:`make_linear_svm` return
scikit-learn estimators for band-power or differential-entropy features. They accept either a
2-D ``(n_windows, n_features)`` matrix or a 3-D ``(n_windows, n_chans, n_bands)`` array (flattened
by :class:`FlattenFeatures`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from physioaffect.models._base import EEGModel, ModelConfigError
from physioaffect.models.deformer import max_norm_

__all__ = [
    "EEGNet",
    "ShallowConvNet",
    "FlattenFeatures",
    "make_majority",
    "make_logistic_regression",
    "make_linear_svm",
]


class ShallowConvNet(EEGModel):
    """Shallow ConvNet (Schirrmeister et al. 2017), braindecode ``ShallowFBCSPNet`` layout.

    Temporal conv (``n_filters_time`` x ``filter_time_length``, bias) and spatial conv over all
    channels (no bias), batch norm, square, mean pool (``pool_time_length`` / stride
    ``pool_time_stride``), safe log, dropout, and a final convolution over the remaining time
    steps. Input ``(batch, n_chans, n_times)``; output ``(batch, n_outputs)`` logits. The two
    first convolutions are contracted into one kernel per forward pass (as braindecode's
    ``CombinedConv``).

    Parameters
    ----------
    n_chans, n_outputs, n_times, sfreq
        braindecode signature (channels, outputs, samples, Hz).
        Give any consistent subset of braindecode's signal arguments, ``chs_info`` and
        ``input_window_seconds`` included (see :class:`~physioaffect.models.EEGModel`).
    n_filters_time, filter_time_length, n_filters_spat, pool_time_length, pool_time_stride : int
        Paper / braindecode defaults 40, 25, 40, 75, 15 (for 250 Hz data).
    drop_prob : float
        Dropout before the classifier (0.5).
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        sfreq: float | None,
        n_filters_time: int = 40,
        filter_time_length: int = 25,
        n_filters_spat: int = 40,
        pool_time_length: int = 75,
        pool_time_stride: int = 15,
        drop_prob: float = 0.5,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq)
        self._remember_config(locals())
        n_conv = n_times - filter_time_length + 1
        if n_conv < pool_time_length:
            raise ModelConfigError(
                f"ShallowConvNet: n_times={n_times} is too short; need at least "
                f"{filter_time_length + pool_time_length - 1} samples"
            )
        self.conv_time = nn.Conv2d(1, n_filters_time, (filter_time_length, 1))
        self.conv_spat = nn.Conv2d(n_filters_time, n_filters_spat, (1, n_chans), bias=False)
        self.bnorm = nn.BatchNorm1d(n_filters_spat, momentum=0.1)
        self.pool_time_length = pool_time_length
        self.pool_time_stride = pool_time_stride
        self.drop = nn.Dropout(drop_prob)
        final_len = (n_conv - pool_time_length) // pool_time_stride + 1
        self.conv_classifier = nn.Conv1d(n_filters_spat, n_outputs, final_len)
        for w in (self.conv_time.weight, self.conv_spat.weight, self.conv_classifier.weight):
            nn.init.xavier_uniform_(w)
        nn.init.zeros_(self.conv_time.bias)
        nn.init.zeros_(self.conv_classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` for raw EEG ``(B, n_chans, n_times)``."""
        self._check_input(x, (None, self.n_chans, self.n_times), "(batch, n_chans, n_times)")
        w_t = self.conv_time.weight[:, 0, :, 0]  # (F_t, k)
        w_s = self.conv_spat.weight[:, :, 0, :]  # (F_s, F_t, C)
        weight = torch.einsum("oic,ik->ock", w_s, w_t)
        bias = w_s.sum(dim=2) @ self.conv_time.bias
        x = F.conv1d(x, weight, bias)
        x = self.bnorm(x).square()
        x = F.avg_pool1d(x, self.pool_time_length, self.pool_time_stride)
        x = self.drop(torch.log(torch.clamp(x, min=1e-6)))
        return self.conv_classifier(x)[:, :, 0]


class EEGNet(EEGModel):
    """EEGNet (Lawhern et al. 2018), braindecode ``EEGNet`` (v4) layout and defaults.

    Temporal conv (``F1`` x ``kernel_length``), depthwise spatial conv (depth multiplier ``D``,
    max-norm 1), separable conv (``depthwise_kernel_length``), average pools of 4 and 8, ELU,
    dropout, and a final convolution over the remaining time steps. Input
    ``(batch, n_chans, n_times)``; output ``(batch, n_outputs)`` logits.

    Parameters
    ----------
    n_chans, n_outputs, n_times, sfreq
        braindecode signature (channels, outputs, samples, Hz).
        Give any consistent subset of braindecode's signal arguments, ``chs_info`` and
        ``input_window_seconds`` included (see :class:`~physioaffect.models.EEGModel`).
    F1, D, F2 : int
        Temporal filters, depth multiplier, pointwise filters (8, 2, ``F1 * D``).
    kernel_length, depthwise_kernel_length : int
        Temporal kernel lengths (64 and 16 samples; the paper uses sfreq/2 for the first).
    drop_prob : float
        Dropout (0.25).
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        sfreq: float | None,
        F1: int = 8,
        D: int = 2,
        F2: int | None = None,
        kernel_length: int = 64,
        depthwise_kernel_length: int = 16,
        drop_prob: float = 0.25,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq)
        F2 = F1 * D if F2 is None else F2
        self._remember_config(locals())
        t1 = (n_times + 2 * (kernel_length // 2) - kernel_length + 1) // 4
        t2 = (t1 + 2 * (depthwise_kernel_length // 2) - depthwise_kernel_length + 1) // 8
        if t1 < 1 or t2 < 1:
            raise ModelConfigError(f"EEGNet: n_times={n_times} is too short (need >= 32 samples)")
        bn = {"momentum": 0.01, "eps": 1e-3}
        self.conv_temporal = nn.Conv2d(
            1, F1, (1, kernel_length), bias=False, padding=(0, kernel_length // 2)
        )
        self.bnorm_temporal = nn.BatchNorm2d(F1, **bn)
        self.conv_spatial = nn.Conv2d(F1, F1 * D, (n_chans, 1), groups=F1, bias=False)
        self.bnorm_1 = nn.BatchNorm2d(F1 * D, **bn)
        self.drop_1 = nn.Dropout(drop_prob)
        self.conv_separable_depth = nn.Conv2d(
            F1 * D, F1 * D, (1, depthwise_kernel_length), bias=False, groups=F1 * D,
            padding=(0, depthwise_kernel_length // 2),
        )
        self.conv_separable_point = nn.Conv2d(F1 * D, F2, 1, bias=False)
        self.bnorm_2 = nn.BatchNorm2d(F2, **bn)
        self.drop_2 = nn.Dropout(drop_prob)
        self.conv_classifier = nn.Conv2d(F2, n_outputs, (1, t2))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` for raw EEG ``(B, n_chans, n_times)``."""
        self._check_input(x, (None, self.n_chans, self.n_times), "(batch, n_chans, n_times)")
        max_norm_(self.conv_spatial.weight, 1.0)
        x = self.bnorm_temporal(self.conv_temporal(x.unsqueeze(1)))
        x = F.elu(self.bnorm_1(self.conv_spatial(x)))
        x = self.drop_1(F.avg_pool2d(x, (1, 4)))
        x = self.conv_separable_point(self.conv_separable_depth(x))
        x = F.elu(self.bnorm_2(x))
        x = self.drop_2(F.avg_pool2d(x, (1, 8)))
        return self.conv_classifier(x)[:, :, 0, 0]


class FlattenFeatures(TransformerMixin, BaseEstimator):
    """Flatten ``(n_windows, n_chans, n_bands)`` features to ``(n_windows, n_chans * n_bands)``.

    Optionally takes ``log`` first (band powers are log-normally distributed; DE is already a
    log). Stateless; 2-D input passes through.

    Parameters
    ----------
    log : bool
        Apply ``log(max(x, 1e-12))`` before flattening.
    """

    def __init__(self, log: bool = False) -> None:
        self.log = log

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> FlattenFeatures:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim < 2:
            raise ModelConfigError(f"FlattenFeatures: expected 2-D or 3-D features, got {X.shape}")
        if self.log:
            X = np.log(np.maximum(X, 1e-12))
        return X.reshape(X.shape[0], -1)


def make_majority() -> DummyClassifier:
    """Trivial baseline: always predicts the majority class of the training fold."""
    return DummyClassifier(strategy="most_frequent")


def make_logistic_regression(C: float = 1.0, log: bool = False) -> Pipeline:
    """Flatten, z-score with training statistics, L2 logistic regression (``C`` = inverse
    regularisation strength)."""
    return Pipeline(
        [
            ("flatten", FlattenFeatures(log=log)),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=C, max_iter=2000)),
        ]
    )


def make_linear_svm(C: float = 1.0, log: bool = False) -> Pipeline:
    """Flatten, z-score with training statistics, linear SVM (``C`` = inverse regularisation)."""
    return Pipeline(
        [
            ("flatten", FlattenFeatures(log=log)),
            ("scale", StandardScaler()),
            ("clf", LinearSVC(C=C, max_iter=10000)),
        ]
    )
