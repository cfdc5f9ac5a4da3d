"""Multimodal fusion: every subset of modalities works and an absent modality has no influence."""

from __future__ import annotations

import itertools

import pytest
import torch

import physioaffect.models as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(eeg_encoder: str = "deformer", **kw) -> M.MultimodalFusion:
    torch.manual_seed(0)
    eeg_kwargs = {"depth": 2, "heads": 2, "dim_head": 8, "mlp_dim": 8}
    n_times = 128
    if eeg_encoder == "emt":
        eeg_kwargs = {"K": 2, "n_layers": 1, "heads": 2, "dim_head": 8, "n_sub_windows": 4}
        n_times = 1000
    return M.create("fusion", n_chans=5, n_outputs=3, n_times=n_times, sfreq=100,
                    eeg_encoder=eeg_encoder, eeg_kwargs=eeg_kwargs, n_peripheral_features=6,
                    n_face_features=4, d_model=16, heads=2, **kw)


def _inputs(b: int = 6, eeg_encoder: str = "deformer", seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    eeg = (torch.randn(b, 5, 128, generator=gen) if eeg_encoder == "deformer"
           else torch.rand(b, 4, 5, 7, generator=gen))
    return {"eeg": eeg, "peripheral": torch.randn(b, 10, 6, generator=gen),
            "face": torch.randn(b, 15, 4, generator=gen)}


@pytest.mark.parametrize("eeg_encoder", ["deformer", "emt"])
def test_every_subset_of_modalities_runs(eeg_encoder: str) -> None:
    model = _model(eeg_encoder).eval()
    x = _inputs(eeg_encoder=eeg_encoder)
    outs = {}
    for r in (1, 2, 3):
        for subset in itertools.combinations(M.MODALITIES, r):
            out = model(**{k: (v if k in subset else None) for k, v in x.items()})
            assert out.shape == (6, 3) and torch.isfinite(out).all()
            outs[subset] = out
    # The modalities carry information: different subsets give different outputs.
    assert not torch.allclose(outs[("eeg",)], outs[("face",)])
    assert not torch.allclose(outs[("eeg", "peripheral", "face")], outs[("eeg",)])


@pytest.mark.parametrize("missing", M.MODALITIES)
@pytest.mark.parametrize("train", [False, True])
def test_masked_modality_values_do_not_matter(missing: str, train: bool) -> None:
    """Outputs are invariant to the contents of a masked modality (NaN included)."""
    model = _model(modality_dropout=0.0 if train else 0.25).train(train)
    x = _inputs()
    mask = torch.ones(6, 3, dtype=torch.bool)
    mask[::2, M.MODALITIES.index(missing)] = False  # missing in half of the samples
    garbage = dict(x)
    garbage[missing] = torch.full_like(x[missing], float("nan"))
    garbage[missing][1::2] = x[missing][1::2]  # present samples unchanged
    torch.manual_seed(5)
    a = model(**x, mask=mask)
    torch.manual_seed(5)
    b = model(**garbage, mask=mask)
    assert torch.isfinite(b).all()
    assert torch.equal(a, b)
    # Not vacuous: when the modality is present its values do change the output.
    model.eval()
    changed = dict(x)
    changed[missing] = x[missing] + torch.randn_like(x[missing])
    assert not torch.allclose(model(**x), model(**changed))


def test_none_equals_masked_out() -> None:
    model = _model().eval()
    x = _inputs()
    for name in M.MODALITIES:
        mask = M.MultimodalFusion.make_mask(6, [m for m in M.MODALITIES if m != name])
        by_mask = model(**x, mask=mask)
        by_none = model(**{k: (None if k == name else v) for k, v in x.items()})
        torch.testing.assert_close(by_mask, by_none)


def test_modality_dropout_only_in_training() -> None:
    model = _model(modality_dropout=0.5)
    x = _inputs(b=32)
    model.eval()
    assert torch.equal(model(**x), model(**x))
    model.train()
    present = torch.ones(2000, 3, dtype=torch.bool)
    torch.manual_seed(0)
    kept = model._drop_modalities(present)
    assert kept.any(dim=1).all()  # never drops every modality of a sample
    frac = kept.float().mean().item()
    # Each entry survives with p = 0.5; the 1/8 of rows that lost all three keep all three:
    # expected kept per row = 3 * 0.5 + 3 * 0.125 -> fraction 0.625.
    assert abs(frac - 0.625) < 0.03
    # Absent modalities are never resurrected by the fallback.
    partial = present.clone()
    partial[:, 2] = False
    assert not model._drop_modalities(partial)[:, 2].any()


def test_fusion_learns_from_whichever_modality_carries_the_label() -> None:
    """Label planted only in the face stream: face-only and fused beat chance, EEG-only not."""
    torch.manual_seed(0)
    model = _model(modality_dropout=0.3)
    gen = torch.Generator().manual_seed(1)
    n = 160
    y = torch.arange(n) % 3
    x = _inputs(b=n, seed=2)
    x["face"] = torch.randn(n, 15, 4, generator=gen) + 1.5 * torch.nn.functional.one_hot(
        y, 4)[:, None, :].float()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        idx = torch.randint(0, 120, (32,), generator=gen)
        loss = torch.nn.functional.cross_entropy(
            model(**{k: v[idx] for k, v in x.items()}), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    te = slice(120, None)
    with torch.no_grad():
        acc_face = (model(face=x["face"][te]).argmax(1) == y[te]).float().mean()
        acc_fused = (model(**{k: v[te] for k, v in x.items()}).argmax(1) == y[te]).float().mean()
        acc_eeg = (model(eeg=x["eeg"][te]).argmax(1) == y[te]).float().mean()
    assert acc_face > 0.8 and acc_fused > 0.8
    assert acc_eeg < 0.6  # EEG carries no label here


def test_bad_fusion_inputs_are_clear_errors() -> None:
    model = _model()
    x = _inputs()
    with pytest.raises(M.ModelInputError, match="no modality"):
        model()
    with pytest.raises(M.ModelInputError, match="no present modality"):
        model(**x, mask=torch.zeros(6, 3, dtype=torch.bool))
    with pytest.raises(M.ModelInputError, match=r"face must have shape \(batch, T, 4\)"):
        model(face=torch.randn(6, 10, 5))
    with pytest.raises(M.ModelInputError, match="batch size"):
        model(eeg=x["eeg"], face=x["face"][:3])
    only_eeg = M.create("fusion", n_chans=5, n_outputs=2, n_times=128, sfreq=100,
                        eeg_kwargs={"depth": 2})
    with pytest.raises(M.ModelInputError, match="no 'face' branch"):
        only_eeg(face=x["face"])
