"""The cross-subject training recipe, piece by piece, against independent computations:
per-subject adaptation (z-score, Euclidean alignment), Fourier-surrogate augmentation, precise
batch-norm statistics, and the config rules on test-subject data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from physioaffect.preprocessing.alignment import (
    AdaptationError,
    EuclideanAlignment,
    SubjectAdaptation,
    SubjectStandardiser,
)
from physioaffect.training import TrainConfig, TrainingError
from physioaffect.training.augment import fourier_surrogate
from physioaffect.training.engine import recalibrate_batchnorm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _subjects(seed: int = 0):
    """Three subjects, each its own random channel mixing and scale (n, 4, 256)."""
    rng = np.random.default_rng(seed)
    xs, groups = [], []
    for s in range(3):
        mix = rng.normal(size=(4, 4)) * (1 + 3 * s)
        src = rng.normal(size=(20, 4, 256))
        xs.append(np.einsum("cd,ndt->nct", mix, src) + 5.0 * s)
        groups += [f"s{s}"] * 20
    return np.concatenate(xs), np.array(groups)


def test_euclidean_alignment_makes_each_subjects_mean_covariance_the_identity():
    x, g = _subjects()
    ea = EuclideanAlignment(shrinkage=0.0).fit(x, groups=g)
    out = ea.transform(x, g)
    for s in np.unique(g):
        w = out[g == s].astype(np.float64)
        w = w - w.mean(axis=2, keepdims=True)
        # independent: numpy's covariance of every window, averaged
        mean_cov = np.mean([np.cov(win, bias=True) for win in w], axis=0)
        np.testing.assert_allclose(mean_cov, np.eye(4), atol=1e-4)
    # before alignment they were far from it (the check is not vacuous)
    raw = x[g == "s2"] - x[g == "s2"].mean(axis=2, keepdims=True)
    assert np.abs(np.mean([np.cov(win, bias=True) for win in raw], axis=0) - np.eye(4)).max() > 1
    with pytest.raises(AdaptationError, match="no matrix for subject"):
        ea.transform(x[:2], ["s9", "s9"])
    # in place (training's way of keeping one copy of a DEAP-sized array) gives the same
    x32 = x.astype(np.float32)
    same = ea.transform(x32, g, chunk=7, out=x32)
    assert same is x32
    np.testing.assert_allclose(x32, ea.transform(x.astype(np.float32), g), rtol=1e-5, atol=1e-5)


def test_subject_zscore_equals_numpy_per_subject_and_channel():
    x, g = _subjects(1)
    out = SubjectStandardiser((1,)).fit(x, groups=g).transform(x, g)
    for s in np.unique(g):
        sub = x[g == s]
        ref = (sub - sub.mean(axis=(0, 2), keepdims=True)) / sub.std(axis=(0, 2), keepdims=True)
        np.testing.assert_allclose(out[g == s], ref, rtol=1e-4, atol=1e-4)


def test_subject_adaptation_of_graph_inputs_is_a_log_zscore_per_channel_and_band():
    rng = np.random.default_rng(2)
    x = rng.lognormal(size=(30, 5, 4, 3))  # (n, sub-windows, channels, bands)
    g = np.repeat(["a", "b"], 15)
    out = SubjectAdaptation("subject_zscore", "graphs").fit({"eeg": x}, g).transform({"eeg": x}, g)
    lx = np.log(x[g == "b"])
    ref = (lx - lx.mean(axis=(0, 1), keepdims=True)) / lx.std(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(out["eeg"][g == "b"], ref, rtol=1e-4, atol=1e-4)


def test_fourier_surrogate_keeps_each_channels_spectrum_and_changes_the_waveform():
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(256) / 128.0
    x = torch.randn(8, 3, 256, generator=gen)
    x[:, 1] += 3 * torch.sin(2 * torch.pi * 10 * t)
    for independent in (False, True):
        out = fourier_surrogate(x, prob=1.0, channel_independent=independent,
                                generator=torch.Generator().manual_seed(1))
        assert out.shape == x.shape and out.dtype == x.dtype
        fx, fo = np.fft.rfft(x.numpy(), axis=-1), np.fft.rfft(out.numpy(), axis=-1)
        np.testing.assert_allclose(np.abs(fo), np.abs(fx), rtol=1e-3, atol=1e-3)
        assert float((out - x).abs().mean()) > 0.5 * float(x.abs().mean())  # a new waveform
        # shared phases keep every cross-channel phase difference; per-channel phases do not
        cross_x, cross_o = fx[:, 0] * np.conj(fx[:, 1]), fo[:, 0] * np.conj(fo[:, 1])
        same = np.allclose(cross_o, cross_x, rtol=1e-3, atol=1e-2)
        assert same != independent
    assert torch.equal(fourier_surrogate(x, prob=0.0), x)
    half = fourier_surrogate(x.repeat(50, 1, 1), prob=0.5, generator=torch.Generator().manual_seed(2))
    changed = (half != x.repeat(50, 1, 1)).flatten(1).any(1).float().mean()
    assert 0.35 < changed < 0.65


class _DropBN(nn.Module):
    """Dropout in front of batch norm, as EEG-Deformer's fine branch has it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 5)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn(self.drop(self.conv(x))).mean(-1)


def test_precise_bn_statistics_are_the_plain_average_over_training_windows():
    torch.manual_seed(0)
    model = _DropBN()
    x = torch.randn(40, 3, 64) * 2 + 1
    model.train()
    for _ in range(5):  # running averages from training batches, inflated by dropout
        model(x[:16])
    assert recalibrate_batchnorm(model, "raw", {"eeg": x}, batch_size=16,
                                 device=torch.device("cpu"), amp=False, max_windows=1000)
    assert not model.training
    with torch.no_grad():
        h = model.conv(x)  # the batch norm's input with dropout off
    mean = h.mean(dim=(0, 2))
    # cumulative average of per-batch unbiased variances (batches of 16, 16, 8 windows)
    var = torch.stack([h[i:i + 16].var(dim=(0, 2), unbiased=True) for i in (0, 16, 32)])
    means = torch.stack([h[i:i + 16].mean(dim=(0, 2)) for i in (0, 16, 32)])
    torch.testing.assert_close(model.bn.running_mean, means.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.bn.running_mean, mean, rtol=0.05, atol=0.05)
    torch.testing.assert_close(model.bn.running_var, var.mean(0), rtol=1e-4, atol=1e-5)
    assert model.bn.momentum == 0.1  # restored
    no_bn = nn.Sequential(nn.Conv1d(3, 2, 3))
    assert not recalibrate_batchnorm(no_bn, "raw", {"eeg": x}, 16, torch.device("cpu"), False)


def test_adaptation_on_test_subjects_must_be_allowed_and_is_named_transductive():
    with pytest.raises(TrainingError, match="transductive"):
        TrainConfig(dataset="sim", root="unused", model="eeg_deformer",
                    adaptation={"method": "euclidean", "transductive": False}).resolve()
    cfg = TrainConfig(dataset="sim", root="unused", model="eeg_deformer").resolve()
    # auto: chosen per fold on validation subjects among none and the input's method
    assert cfg.adaptation.method == "auto"
    assert cfg.adaptation.candidate("raw") == "euclidean"
    assert cfg.adaptation.candidate("graphs") == "subject_zscore"
    cfg = TrainConfig(dataset="sim", root="unused", model="eeg_deformer",
                      adaptation={"transductive": False}).resolve()
    assert cfg.adaptation.method == "none"
    with pytest.raises(TrainingError, match="euclidean aligns raw EEG"):
        TrainConfig(dataset="sim", root="unused", model="emt", adaptation={"method": "euclidean"}).resolve()


def test_de_of_aligned_windows_from_band_covariances_equals_de_of_the_mixed_samples():
    """The evidence for aligning raw EEG computes the DE of M x from the band covariances of
    x (filtering commutes with the spatial mix): equal to filtering M x itself."""
    from physioaffect.features.eeg import band_covariances, differential_entropy
    from physioaffect.training.evidence import aligned_de

    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5, 512)) * 20
    m = np.eye(5) + 0.3 * rng.standard_normal((5, 5))
    direct = differential_entropy(np.einsum("cd,ndt->nct", m, x), 128.0)
    via_cov = aligned_de(band_covariances(x, 128.0), m)
    np.testing.assert_allclose(via_cov, direct, atol=1e-4)
    np.testing.assert_allclose(aligned_de(band_covariances(x, 128.0), None),
                               differential_entropy(x, 128.0), atol=1e-4)
