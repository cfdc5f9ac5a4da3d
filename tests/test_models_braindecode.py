"""braindecode weights: state dicts written with braindecode 1.8.1's key names and shapes load
into EEGNet / ShallowConvNet and predict what braindecode's forward computes with them, and our
weights export under those names.

braindecode itself does not import beside torch 2.13 (torchaudio), so the state dicts are made
here with the names and shapes of braindecode 1.8.1's ``EEGNet`` and ``ShallowFBCSPNet``
(``models/eegnet.py``, ``models/shallow_fbcsp.py``, ``modules/convolution.py``), and the
reference is braindecode's layer sequence written out with ``torch.nn.functional`` on those
tensors (Ensure4d + Rearrange, CombinedConv, the max-norm parametrization as ``renorm``), never
through our modules. ``benchmarks/check_braindecode.py`` repeats the comparison against the
real braindecode modules built from the wheel's source.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from physioaffect.models import (
    EEGNet,
    ModelFileError,
    ShallowConvNet,
    braindecode_state_dict,
    load_braindecode_state_dict,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bn(prefix: str, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": torch.randn(n, generator=g),
            f"{prefix}.bias": torch.randn(n, generator=g),
            f"{prefix}.running_mean": torch.randn(n, generator=g),
            f"{prefix}.running_var": torch.rand(n, generator=g) + 0.5,
            f"{prefix}.num_batches_tracked": torch.tensor(7)}


def eegnet_state(C: int, T: int, n_out: int, F1: int = 8, D: int = 2, k: int = 64,
                 k2: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """braindecode 1.8.1 ``EEGNet(n_chans=C, n_outputs=n_out, n_times=T).state_dict()`` names
    and shapes, random values (the spatial weight's max norm exceeded on purpose)."""
    g = torch.Generator().manual_seed(seed)
    F2 = F1 * D
    t1 = (T + 2 * (k // 2) - k + 1) // 4
    t2 = (t1 + 2 * (k2 // 2) - k2 + 1) // 8
    return {
        "conv_temporal.weight": torch.randn(F1, 1, 1, k, generator=g) * 0.1,
        **_bn("bnorm_temporal", F1, g),
        "conv_spatial.parametrizations.weight.original": torch.randn(F2, 1, C, 1, generator=g),
        **_bn("bnorm_1", F2, g),
        "conv_separable_depth.weight": torch.randn(F2, 1, 1, k2, generator=g) * 0.3,
        "conv_separable_point.weight": torch.randn(F2, F2, 1, 1, generator=g) * 0.3,
        **_bn("bnorm_2", F2, g),
        "final_layer.conv_classifier.weight": torch.randn(n_out, F2, 1, t2, generator=g) * 0.3,
        "final_layer.conv_classifier.bias": torch.randn(n_out, generator=g),
    }


def shallow_state(C: int, T: int, n_out: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """braindecode 1.8.1 ``ShallowFBCSPNet(n_chans=C, n_outputs=n_out, n_times=T)`` names and
    shapes (40 temporal filters of 25, 40 spatial, mean pool 75 / 15, classifier over the rest)."""
    g = torch.Generator().manual_seed(seed)
    L = (T - 25 + 1 - 75) // 15 + 1
    return {
        "conv_time_spat.conv_time.weight": torch.randn(40, 1, 25, 1, generator=g) * 0.2,
        "conv_time_spat.conv_time.bias": torch.randn(40, generator=g) * 0.1,
        "conv_time_spat.conv_spat.weight": torch.randn(40, 40, 1, C, generator=g) * 0.05,
        **_bn("bnorm", 40, g),
        "final_layer.conv_classifier.weight": torch.randn(n_out, 40, L, 1, generator=g) * 0.05,
        "final_layer.conv_classifier.bias": torch.randn(n_out, generator=g),
    }


def _bn_eval(x: torch.Tensor, s: dict, prefix: str, eps: float) -> torch.Tensor:
    return F.batch_norm(x, s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"],
                        s[f"{prefix}.weight"], s[f"{prefix}.bias"], False, 0.0, eps)


def braindecode_eegnet_forward(s: dict, x: torch.Tensor, F1: int = 8) -> torch.Tensor:
    """braindecode EEGNet in eval mode: Ensure4d, 'batch ch t 1 -> batch 1 ch t', then its
    layers in order (BN eps 1e-3, spatial weight renormed to 1 by the parametrization)."""
    k = s["conv_temporal.weight"].shape[-1]
    k2 = s["conv_separable_depth.weight"].shape[-1]
    x = x.unsqueeze(-1).permute(0, 3, 1, 2)
    x = F.conv2d(x, s["conv_temporal.weight"], padding=(0, k // 2))
    x = _bn_eval(x, s, "bnorm_temporal", 1e-3)
    w = s["conv_spatial.parametrizations.weight.original"].renorm(p=2, dim=0, maxnorm=1)
    x = F.elu(_bn_eval(F.conv2d(x, w, groups=F1), s, "bnorm_1", 1e-3))
    x = F.avg_pool2d(x, (1, 4))
    x = F.conv2d(x, s["conv_separable_depth.weight"], padding=(0, k2 // 2), groups=x.shape[1])
    x = F.conv2d(x, s["conv_separable_point.weight"])
    x = F.avg_pool2d(F.elu(_bn_eval(x, s, "bnorm_2", 1e-3)), (1, 8))
    x = F.conv2d(x, s["final_layer.conv_classifier.weight"], s["final_layer.conv_classifier.bias"])
    return x.permute(0, 1, 3, 2)[:, :, 0, 0]  # permute_back, SqueezeFinalOutput


def braindecode_shallow_forward(s: dict, x: torch.Tensor) -> torch.Tensor:
    """braindecode ShallowFBCSPNet in eval mode: 'batch C T 1 -> batch 1 T C', CombinedConv
    (its merged weight and bias), BN (eps 1e-5), square, mean pool (75, 1)/(15, 1), safe log,
    the classifier convolution."""
    wt, bt = s["conv_time_spat.conv_time.weight"], s["conv_time_spat.conv_time.bias"]
    ws = s["conv_time_spat.conv_spat.weight"]
    x = x.unsqueeze(-1).permute(0, 3, 2, 1)
    weight = (wt * ws.permute(1, 0, 2, 3)).sum(0).unsqueeze(1)
    bias = ws.squeeze().sum(-1).mm(bt.unsqueeze(-1)).squeeze()
    x = F.conv2d(x, weight, bias)
    x = _bn_eval(x, s, "bnorm", 1e-5).square()
    x = F.avg_pool2d(x, (75, 1), stride=(15, 1))
    x = torch.log(torch.clamp(x, min=1e-6))
    x = F.conv2d(x, s["final_layer.conv_classifier.weight"], s["final_layer.conv_classifier.bias"])
    return x[:, :, 0, 0]


@pytest.mark.parametrize("C, T, n_out", [(8, 256, 3), (14, 512, 2)])
def test_braindecode_keyed_eegnet_loads_and_predicts_equal_outputs(C, T, n_out):
    state = eegnet_state(C, T, n_out)
    model = load_braindecode_state_dict(EEGNet(n_chans=C, n_outputs=n_out, n_times=T,
                                               sfreq=None), state).eval()
    x = torch.randn(6, C, T, generator=torch.Generator().manual_seed(1)) * 10
    with torch.no_grad():
        ours, ref = model(x), braindecode_eegnet_forward(state, x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert ours.abs().max() > 0.1  # not a trivially equal output
    # and back: our weights under braindecode's names and shapes
    exported = braindecode_state_dict(model)
    assert {k: tuple(v.shape) for k, v in exported.items()} == {
        k: tuple(v.shape) for k, v in state.items()}
    with torch.no_grad():
        torch.testing.assert_close(braindecode_eegnet_forward(exported, x), ours,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("C, T, n_out", [(8, 256, 3), (22, 1000, 4)])
def test_braindecode_keyed_shallow_loads_and_predicts_equal_outputs(C, T, n_out):
    state = shallow_state(C, T, n_out)
    model = load_braindecode_state_dict(ShallowConvNet(n_chans=C, n_outputs=n_out, n_times=T,
                                                       sfreq=None), state).eval()
    x = torch.randn(6, C, T, generator=torch.Generator().manual_seed(2)) * 10
    with torch.no_grad():
        ours, ref = model(x), braindecode_shallow_forward(state, x)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert ours.abs().max() > 0.1
    exported = braindecode_state_dict(model)
    assert exported["final_layer.conv_classifier.weight"].shape == (
        n_out, 40, (T - 25 + 1 - 75) // 15 + 1, 1)
    assert {k: tuple(v.shape) for k, v in exported.items()} == {
        k: tuple(v.shape) for k, v in state.items()}
    # older braindecode names (its own ``mapping``) load too
    old = {k.replace("conv_time_spat.", "").replace("final_layer.", ""): v
           for k, v in state.items()}
    again = load_braindecode_state_dict(ShallowConvNet(n_chans=C, n_outputs=n_out, n_times=T,
                                                       sfreq=None), old).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), ours)


def test_eegnet_linear_head_and_refusals():
    C, T, n_out = 8, 256, 3
    state = eegnet_state(C, T, n_out)
    w = state.pop("final_layer.conv_classifier.weight")
    b = state.pop("final_layer.conv_classifier.bias")
    # braindecode EEGNet(final_layer_with_constraint=True): Flatten + max-norm Linear
    state["final_layer.linearconstraint.parametrizations.weight.original"] = w.reshape(n_out, -1) * 3
    state["final_layer.linearconstraint.bias"] = b
    model = load_braindecode_state_dict(EEGNet(n_chans=C, n_outputs=n_out, n_times=T,
                                               sfreq=None), state).eval()
    x = torch.randn(4, C, T, generator=torch.Generator().manual_seed(3)) * 10
    conv_state = {k: v for k, v in state.items() if "linearconstraint" not in k}
    lin = state["final_layer.linearconstraint.parametrizations.weight.original"].renorm(
        p=2, dim=0, maxnorm=0.25)
    conv_state["final_layer.conv_classifier.weight"] = lin.reshape(w.shape)
    conv_state["final_layer.conv_classifier.bias"] = b
    with torch.no_grad():
        torch.testing.assert_close(model(x), braindecode_eegnet_forward(conv_state, x),
                                   rtol=1e-5, atol=1e-5)
    # a state dict for another channel count is refused in one line, naming both shapes
    with pytest.raises(ModelFileError, match=r"conv_spatial.*\(16, 1, 14, 1\).*\(16, 1, 8, 1\)"):
        load_braindecode_state_dict(EEGNet(n_chans=C, n_outputs=n_out, n_times=T, sfreq=None),
                                    eegnet_state(14, T, n_out), source="w.pt")
    with pytest.raises(ModelFileError, match="no counterpart"):
        load_braindecode_state_dict(ShallowConvNet(n_chans=C, n_outputs=n_out, n_times=T,
                                                   sfreq=None), eegnet_state(C, T, n_out))
