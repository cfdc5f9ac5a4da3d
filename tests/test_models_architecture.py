"""Architecture facts of the model zoo: parameter counts, shapes, maths of the graph operator,
and equivalence with minimal re-implementations of the published reference forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import reference_models

import physioaffect.models as M
from physioaffect.models.emt import chebyshev_basis, scaled_laplacian

pytestmark = pytest.mark.usefixtures("one_torch_thread")



# Counts printed by the public reference implementations for 2 classes (MODELS.md).
@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("deformer_fatigue", 542_930),
        ("deformer_workload", 1_983_430),
        ("deformer_attention", 2_052_062),
        ("emt_seed", 703_530),
        ("emt_thu_ep", 353_826),
        ("emt_faced", 353_826),
        # Official MAHNOB-HCI regression: 6 bands, dropout 0.5 (regression/experiment.py).
        ("emt_mahnob_regression", 151_809),
    ],
)
def test_reference_parameter_counts(preset: str, expected: int) -> None:
    assert M.count_parameters(M.create_preset(preset)) == expected


# Counts of braindecode 1.8.1 EEGNet / ShallowFBCSPNet (4 outputs), measured with braindecode.
@pytest.mark.parametrize(
    ("n_chans", "n_times", "shallow", "eegnet"),
    [(22, 1000, 46_084, 3_444), (30, 384, 52_324, 2_356), (7, 129, 12_804, 1_476)],
)
def test_baseline_counts_match_braindecode(n_chans, n_times, shallow, eegnet) -> None:
    kw = dict(n_chans=n_chans, n_outputs=4, n_times=n_times, sfreq=250)
    assert M.count_parameters(M.create("shallow_convnet", **kw)) == shallow
    assert M.count_parameters(M.create("eegnet", **kw)) == eegnet


@pytest.mark.parametrize(("sfreq", "k"), [(128, 13), (200, 21), (500, 51), (256, 25), (100, 11)])
def test_deformer_temporal_kernel_rule(sfreq: float, k: int) -> None:
    assert M.deformer_temporal_kernel(sfreq) == k
    assert k % 2 == 1 and abs(k - 0.1 * sfreq) <= 1


@pytest.mark.parametrize(("n_chans", "n_times"), [(7, 129), (13, 301), (1, 101), (33, 257)])
def test_raw_eeg_models_output_shapes_for_odd_sizes(n_chans: int, n_times: int) -> None:
    for name, kw in [("eeg_deformer", {"depth": 2}), ("eegnet", {}), ("shallow_convnet", {})]:
        model = M.create(name, n_chans=n_chans, n_outputs=3, n_times=n_times, sfreq=100, **kw)
        model.eval()
        out = model(torch.randn(5, n_chans, n_times))
        assert out.shape == (5, 3), name
        assert torch.isfinite(out).all(), name


def test_deformer_head_size_formula() -> None:
    for n_times, depth in [(384, 4), (129, 2), (1001, 3)]:
        m = M.EEGDeformer(5, 2, n_times, 128, depth=depth)
        assert m.head.in_features == 64 * ((n_times // 2) // 2**depth) + 64 * depth


@pytest.mark.parametrize(("n_chans", "seq"), [(5, 1), (11, 7), (62, 37)])
def test_emt_output_shapes(n_chans: int, seq: int) -> None:
    cls = M.EmT(n_chans, 3, 2000, 200, K=3, n_layers=2).eval()
    assert cls(torch.rand(4, seq, n_chans, 7)).shape == (4, 3)
    reg = M.EmTRegressor(n_chans, 2, 2000, 200).eval()
    assert reg(torch.rand(4, seq, n_chans, 7)).shape == (4, seq, 2)


def _official_sliding_window_count(n: int, window: int, overlap: float) -> int:
    # EmT's prepare_data.sliding_window, loop as published: stops before end == n.
    start, end, step, count = 0, window, int(window * (1 - overlap)), 0
    while end < n:
        count += 1
        start += step
        end = start + window
    return count


def test_emt_sequence_length_rule() -> None:
    # 20 s at 200 Hz, 2 s sub-windows at 0.75 overlap: starts every 0.5 s, and the window ending
    # exactly at 20 s is not taken -> 36 (37 would count it). FACED: 4 s at 250 Hz -> 16.
    assert M.emt_n_sub_windows(4000, 200, 2.0, 0.75) == 36
    assert M.emt_n_sub_windows(5000, 250, 4.0, 0.75) == 16
    assert M.EmT(62, 2, 4000, 200).n_sub_windows == 36
    assert M.create_preset("emt_faced").n_sub_windows == 16
    for n, win, ov in [(4000, 400, 0.75), (5000, 1000, 0.75), (4001, 400, 0.75),
                       (5120, 512, 0.875), (1000, 300, 0.8), (999, 100, 0.0)]:
        sfreq = 100.0
        assert M.emt_n_sub_windows(n, sfreq, win / sfreq, ov) == \
            _official_sliding_window_count(n, win, ov), (n, win, ov)
    with pytest.raises(M.ModelConfigError, match="sub-window"):
        M.emt_n_sub_windows(400, 200, 2.0, 0.75)  # one window ending exactly at the end: none


def test_wrong_input_shape_is_a_clear_error() -> None:
    m = M.EEGDeformer(8, 2, 128, 128, depth=2)
    with pytest.raises(M.ModelInputError, match=r"expected input .*8x128"):
        m(torch.randn(2, 9, 128))
    e = M.EmT(8, 2, 1000, 100, K=2, n_layers=1)
    with pytest.raises(M.ModelInputError, match="n_features"):
        e(torch.rand(2, 3, 8, 5))
    with pytest.raises(M.ModelConfigError, match="too short"):
        M.EEGDeformer(8, 2, 20, 128)


def test_scaled_laplacian_spectrum_in_chebyshev_range() -> None:
    # -D^-1/2 A D^-1/2 = 2 L_norm / 2 - I: eigenvalues of L_norm in [0, 2] -> [-1, 1].
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 20, 20, generator=gen, dtype=torch.float64)
    for a in torch.relu(w + w.transpose(1, 2)):
        ev = np.linalg.eigvalsh(scaled_laplacian(a).numpy())
        assert ev.min() >= -1 - 1e-6 and ev.max() <= 1 + 1e-6
        # And it is the rescaled normalised Laplacian with lambda_max = 2.
        d = 1.0 / (np.sqrt(a.sum(1).numpy()) + 1e-5)
        lap = np.eye(20) - d[:, None] * a.numpy() * d[None, :]
        np.testing.assert_allclose(scaled_laplacian(a).numpy(), lap - np.eye(20), atol=1e-12)


def test_chebyshev_basis_matches_numpy_chebyshev_polynomials() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(9, 9, generator=gen, dtype=torch.float64)
    lap = scaled_laplacian(torch.relu(w + w.T))
    basis = chebyshev_basis(lap, 5).numpy()
    ev, vec = np.linalg.eigh(lap.numpy())
    for k in range(1, 5):
        tk = np.polynomial.chebyshev.Chebyshev.basis(k)(ev)
        np.testing.assert_allclose(basis[k - 1], (vec * tk) @ vec.T, atol=1e-10)


def test_emt_forward_never_calls_an_eigendecomposition(monkeypatch) -> None:
    def boom(*a, **k):
        raise AssertionError("eigendecomposition in forward")

    for name in ("eigh", "eigvalsh", "eig", "eigvals"):
        monkeypatch.setattr(torch.linalg, name, boom)
    m = M.EmT(10, 2, 1000, 100, K=3, n_layers=1)
    m(torch.rand(2, 4, 10, 7)).sum().backward()


@pytest.mark.parametrize("which", ["deformer", "emt"])
def test_same_function_as_reference_forward(which: str) -> None:
    """With the same weights, package and reference forward/backward agree (eval and grads)."""
    ref_mod = reference_models()
    torch.manual_seed(0)
    if which == "deformer":
        ours = M.EEGDeformer(12, 3, 256, 128, depth=3)
        ref = ref_mod.RefDeformer(12, 256, 13, num_classes=3, depth=3, dropout=0.5)
        x = torch.randn(6, 12, 256)
    else:
        ours = M.EmT(16, 3, 2000, 200, K=4, n_layers=2)
        ref = ref_mod.RefEmT(num_chan=16, layers_transformer=2, num_class=3)
        x = torch.rand(6, 9, 16, 7)
    ref_mod.copy_weights(ours, ref)
    ours.eval()
    ref.eval()
    a, b = ours(x), ref(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    for (na, pa), (_, pb) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-3, atol=1e-5, msg=na)
