"""The models learn a planted signal on CPU in seconds, and training is deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import physioaffect.models as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _planted_raw(n: int, n_chans: int, n_times: int, sfreq: float, seed: int):
    """Class 1 carries a 10 Hz sine (random phase) in channel 2; class 0 is noise only."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, n_chans, n_times, generator=gen)
    t = torch.arange(n_times) / sfreq
    phase = torch.rand(n, 1, generator=gen) * 2 * math.pi
    x[:, 2] += 1.5 * y[:, None] * torch.sin(2 * math.pi * 10 * t[None] + phase)
    return x, y


def _planted_graphs(n: int, seq: int, n_chans: int, seed: int):
    """Class 1 has raised band-3 power on channel 4 in every sub-window."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, seq, n_chans, 7, generator=gen)
    x[:, :, 4, 3] += 0.8 * y[:, None]
    return x, y


def _train(model, x, y, steps: int, lr: float, batch: int = 32):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _accuracy(model, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_deformer_learns_planted_rhythm() -> None:
    torch.manual_seed(0)
    x, y = _planted_raw(192, 6, 128, 64.0, seed=1)
    xt, yt = _planted_raw(128, 6, 128, 64.0, seed=2)
    model = M.EEGDeformer(6, 2, 128, 64.0, depth=2, heads=4, dim_head=8, mlp_dim=8, dropout=0.1)
    losses = _train(model, x, y, steps=40, lr=1e-3)
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])
    assert _accuracy(model, xt, yt) > 0.8  # chance is 0.5


def test_emt_learns_planted_band_power() -> None:
    torch.manual_seed(0)
    x, y = _planted_graphs(192, 5, 8, seed=1)
    xt, yt = _planted_graphs(128, 5, 8, seed=2)
    model = M.EmT(8, 2, 1000, 200, n_sub_windows=5, K=2, n_layers=1, heads=4, dim_head=8,
                  dropout=0.1)
    losses = _train(model, x, y, steps=40, lr=3e-3)
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])
    assert _accuracy(model, xt, yt) > 0.8


def test_feature_baselines_on_planted_features() -> None:
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random(n) < 0.7).astype(int)  # imbalanced: 70 % class 1
    X = rng.normal(size=(n, 6, 5))
    X[:, 1, 2] += 1.5 * y
    tr, te = slice(0, 200), slice(200, None)
    maj = M.make_majority().fit(X[tr].reshape(200, -1), y[tr])
    assert np.all(maj.predict(X[te].reshape(100, -1)) == np.bincount(y[tr]).argmax())
    for est in (M.make_logistic_regression(), M.make_linear_svm()):
        acc = (est.fit(X[tr], y[tr]).predict(X[te]) == y[te]).mean()
        assert acc > max(np.mean(y[te]), 1 - np.mean(y[te])) + 0.1


def test_training_is_deterministic_under_a_seed() -> None:
    x, y = _planted_raw(64, 5, 96, 64.0, seed=3)

    def run():
        torch.manual_seed(123)
        model = M.create("eeg_deformer", n_chans=5, n_outputs=2, n_times=96, sfreq=64,
                         depth=2, heads=2, dim_head=4, mlp_dim=4)
        _train(model, x, y, steps=3, lr=1e-3, batch=16)
        model.eval()
        with torch.no_grad():
            return model(x[:8]), model.state_dict()

    (a, sa), (b, sb) = run(), run()
    assert torch.equal(a, b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # A different seed gives a different model (the check above is not vacuous).
    torch.manual_seed(7)
    other = M.create("eeg_deformer", n_chans=5, n_outputs=2, n_times=96, sfreq=64, depth=2,
                     heads=2, dim_head=4, mlp_dim=4)
    assert not torch.equal(other.pos_embedding, sa["pos_embedding"])


def test_emt_regressor_tracks_a_planted_continuous_target() -> None:
    """Per-sub-window target = a band power of one channel (smoothed in time): CCC-style fit."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(160, 6, 8, 7, generator=gen)
    target = x[:, :, 3, 2:3] * 2.0 - 1.0  # (B, S, 1)
    model = M.EmTRegressor(8, 1, 1000, 200, n_sub_windows=6, K=2, n_layers=1, dim_head=16,
                           dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        idx = torch.randint(0, 120, (32,), generator=gen)
        loss = torch.nn.functional.mse_loss(model(x[idx]), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x[120:]).flatten()
    r = np.corrcoef(pred.numpy(), target[120:].flatten().numpy())[0, 1]
    assert r > 0.8
