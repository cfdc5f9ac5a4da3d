"""Save/load round trips, clear errors for bad model files, and the ``physioaffect models`` CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch

import physioaffect.models as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = {
    "eeg_deformer": (dict(n_chans=5, n_outputs=3, n_times=128, sfreq=64, depth=2),
                     lambda: torch.randn(4, 5, 128)),
    "emt": (dict(n_chans=6, n_outputs=3, n_times=1000, sfreq=100, K=3, n_layers=2),
            lambda: torch.rand(4, 7, 6, 7)),
    "emt_regression": (dict(n_chans=6, n_outputs=2, n_times=1000, sfreq=100),
                       lambda: torch.rand(4, 7, 6, 7)),
    "eegnet": (dict(n_chans=5, n_outputs=3, n_times=128, sfreq=64), lambda: torch.randn(4, 5, 128)),
    "shallow_convnet": (dict(n_chans=5, n_outputs=3, n_times=128, sfreq=64),
                        lambda: torch.randn(4, 5, 128)),
    "fusion": (dict(n_chans=5, n_outputs=3, n_times=128, sfreq=64, eeg_kwargs={"depth": 2},
                    n_peripheral_features=3), lambda: torch.randn(4, 5, 128)),
}


def test_registry_covers_every_model() -> None:
    assert set(SMALL) == set(M.REGISTRY)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_save_load_round_trip_gives_identical_outputs(name: str, tmp_path) -> None:
    kwargs, make_x = SMALL[name]
    torch.manual_seed(0)
    model = M.create(name, **kwargs)
    # One training step so that batch-norm statistics and weights differ from initialisation.
    x = make_x()
    model.train()
    out = model(x)
    out.float().pow(2).mean().backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.01 * p.grad
    model.eval()
    with torch.no_grad():
        expected = model(x)
    M.save_model(model, tmp_path / "m", extra={"channels": ["Fz"] * 5})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"] == name and config["n_parameters"] == M.count_parameters(model)
    torch.manual_seed(99)  # a fresh init with another seed must be overwritten by the weights
    loaded = M.load_model(tmp_path / "m")
    assert type(loaded) is type(model) and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_torch_state_dict_is_loaded_with_weights_only(tmp_path) -> None:
    kwargs, make_x = SMALL["eegnet"]
    model = M.create("eegnet", **kwargs).eval()
    d = M.save_model(model, tmp_path / "m")
    (d / "model.safetensors").unlink()
    torch.save(model.state_dict(), d / "model.pt")
    x = make_x()
    with torch.no_grad():
        assert torch.equal(M.load_model(d)(x), model(x))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_bad_files_give_clear_errors(tmp_path) -> None:
    kwargs, _ = SMALL["eeg_deformer"]
    d = M.save_model(M.create("eeg_deformer", **kwargs), tmp_path / "m")

    with pytest.raises(M.ModelFileError, match="no model configuration"):
        M.load_model(tmp_path / "nowhere")

    (d / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(M.ModelFileError, match=r"model\.safetensors: corrupt"):
        M.load_model(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(M.ModelFileError, match="no weights file"):
        M.load_model(d)

    # A pickle that would run code is refused by weights_only loading.
    with open(d / "model.pt", "wb") as fh:
        pickle.dump({"w": _Evil()}, fh, protocol=2)
    with pytest.raises(M.ModelFileError, match="weights_only=True"):
        M.load_model(d)
    (d / "model.pt").unlink()

    # Weights of another configuration: the shape mismatch is named.
    other = M.create("eeg_deformer", **{**kwargs, "n_chans": 6})
    M.save_model(other, tmp_path / "o")
    (tmp_path / "o" / "config.json").write_text((d / "config.json").read_text())
    with pytest.raises(M.ModelFileError, match=r"tensor 'conv_spat.weight' has shape"):
        M.load_model(tmp_path / "o")

    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text("{not json")
    with pytest.raises(M.ModelFileError, match="not valid JSON"):
        M.load_model(d)
    (d / "config.json").write_text(json.dumps({**cfg, "model": "gpt5"}))
    with pytest.raises(M.ModelFileError, match="field 'model'"):
        M.load_model(d)
    (d / "config.json").write_text(json.dumps({**cfg, "kwargs": {**cfg["kwargs"], "bogus": 1}}))
    with pytest.raises(M.ModelFileError, match="field 'kwargs' is invalid"):
        M.load_model(d)


def test_unknown_model_name_is_a_config_error() -> None:
    with pytest.raises(M.ModelConfigError, match="unknown model 'nope'"):
        M.create("nope", n_chans=1, n_outputs=1, n_times=10, sfreq=1)


def test_cli_lists_models_with_parameter_counts() -> None:
    cmd = [sys.executable, "-m", "physioaffect.cli.main", "models", "--n-chans", "30",
           "--n-times", "384", "--sfreq", "128", "--n-outputs", "2", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(M.REGISTRY) <= set(rows)
    # 30 ch x 384 samples at 128 Hz is the fatigue configuration of the paper.
    assert rows["eeg_deformer"]["parameters"] == 542_930
    assert rows["eegnet"]["parameters"] == M.count_parameters(
        M.create("eegnet", n_chans=30, n_outputs=2, n_times=384, sfreq=128))
    table = subprocess.run(cmd[:-1] + ["--presets"], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "703,530" in table.stdout and "2,052,062" in table.stdout


def test_cli_rejects_impossible_input() -> None:
    cmd = [sys.executable, "-m", "physioaffect.cli.main", "models", "--n-chans", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--n-chans" in proc.stderr and "Traceback" not in proc.stderr
