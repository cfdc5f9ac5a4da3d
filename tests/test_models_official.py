"""State dicts saved by the official EmT code load into ours and give the same outputs.

``benchmarks/_reference_models.py`` re-creates the official EmT classifier and regressor with
the official module names and the old ``torch.nn.utils.weight_norm`` (keys ``weight_g`` and
``weight_v``), so its ``state_dict()`` has the keys an official ``.pth`` has. The file is written
with ``torch.save`` and imported as a user would (function and CLI).
"""

from __future__ import annotations

import subprocess

import pytest
import torch
from conftest import cli, reference_models

import physioaffect.models as M
from physioaffect.models.io import ModelFileError, import_official, load_official_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def faced_pth(tmp_path_factory):
    """An official-layout FACED classifier (32 ch, K 3, 4 layers, alpha 0.4) and its .pth."""
    torch.manual_seed(1)
    ref = reference_models().RefEmT(num_chan=32, layers_transformer=4, K=3, alpha=0.4).eval()
    with torch.no_grad():  # non-trivial g, so that g and v cannot be swapped unnoticed
        for layer in ref.transformer.layers:
            layer[0].fn.STA[1].weight_g.mul_(torch.linspace(0.5, 2.0, 16).view(16, 1, 1, 1))
    path = tmp_path_factory.mktemp("official") / "candidate.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


def test_official_keys_are_the_old_weight_norm_ones(faced_pth) -> None:
    keys = set(torch.load(faced_pth[1], weights_only=True))
    assert "transformer.layers.0.0.fn.STA.1.weight_g" in keys
    assert "transformer.layers.3.0.fn.STA.1.weight_v" in keys
    assert {"GE1.encoder.0.filter_weight", "GE2.encoder.1.filter_bias", "adjs",
            "to_GNN_out.weight", "MLP.0.weight"} <= keys


def test_imported_classifier_gives_the_official_outputs(faced_pth, tmp_path) -> None:
    ref, path = faced_pth
    out = import_official(path, "emt_faced", tmp_path / "model")
    ours = M.load_model(out)
    x = torch.rand(5, 16, 32, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)
    # The weight norm really moved over: g of the first mixer is the official one.
    g = ours.layers[0].mixer.mixer[1].parametrizations.weight.original0
    torch.testing.assert_close(g, ref.transformer.layers[0][0].fn.STA[1].weight_g)


def test_imported_regressor_gives_the_official_outputs() -> None:
    torch.manual_seed(2)
    ref = reference_models().RefEmTRegressor().eval()  # MAHNOB: 6 bands, K 3, 2 GRU layers, dropout 0.5
    assert M.count_parameters(ref) == 151_809
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}  # DataParallel prefix
    ours = load_official_state_dict(M.create_preset("emt_mahnob_regression"), state).eval()
    x = torch.rand(3, 72, 32, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


def test_regressor_saved_with_the_token_mixer_name_loads(tmp_path) -> None:
    """The official regression code's top-level EmT_Reg.py calls its GRU ``token_mixer``
    (``transformer.layers.N.0.fn.token_mixer.weight_ih_l0`` ...): such a file imports and gives
    the official outputs."""
    torch.manual_seed(3)
    ref = reference_models().RefEmTRegressor().eval()
    state = {k.replace(".fn.lstm.", ".fn.token_mixer."): v for k, v in ref.state_dict().items()}
    assert any(".fn.token_mixer.weight_ih_l0" in k for k in state)
    assert not any(".fn.lstm." in k for k in state)
    path = tmp_path / "official_regression.pth"
    torch.save(state, path)
    out = import_official(path, "emt_mahnob_regression", tmp_path / "model")
    ours = M.load_model(out)
    x = torch.rand(2, 72, 32, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)


def test_shape_mismatch_is_refused_by_name(tmp_path) -> None:
    torch.manual_seed(0)
    ref = reference_models().RefEmT(num_chan=32, layers_transformer=4, K=4)  # K 4, the preset has K 3
    path = tmp_path / "k4.pth"
    torch.save(ref.state_dict(), path)
    with pytest.raises(ModelFileError) as e:
        import_official(path, "emt_thu_ep", tmp_path / "out")
    msg = str(e.value)
    assert "k4.pth" in msg and "GE1.encoder.0.filter_weight" in msg
    assert "(4, 1, 7, 32)" in msg and "(3, 1, 7, 32)" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()  # nothing written for a refused file
    with pytest.raises(ModelFileError, match="transformer.layers.4.0.norm.weight"):
        import_official(path, "emt_seed", tmp_path / "out")  # 62 ch, 8 layers: missing layers


def test_cli_import(faced_pth, tmp_path) -> None:
    ref, path = faced_pth
    run = subprocess.run(cli("models", "import", str(path), "--preset", "emt_faced",
                             "--out", str(tmp_path / "m")), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "353,826 parameters" in run.stdout and str(tmp_path / "m") in run.stdout
    x = torch.rand(2, 16, 32, 7)
    with torch.no_grad():
        torch.testing.assert_close(M.load_model(tmp_path / "m")(x), ref(x), rtol=0, atol=1e-6)
