"""Save and load models: ``config.json`` (registry name + constructor arguments) beside
``model.safetensors`` (the state dict).

Loading never unpickles: weights come from safetensors, or, for a ``model.pt`` written by
``torch.save(state_dict)``, from ``torch.load(..., weights_only=True)``. Anything missing, corrupt
or incompatible raises :class:`ModelFileError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from physioaffect.errors import PhysioAffectError
from physioaffect.models._base import EEGModel, ModelConfigError, count_parameters
from physioaffect.models.registry import REGISTRY, create, name_of

__all__ = ["ModelFileError", "save_model", "load_model", "read_config", "FORMAT_VERSION",
           "CONFIG_NAME", "WEIGHTS_NAME"]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TORCH_WEIGHTS_NAME = "model.pt"


class ModelFileError(PhysioAffectError, RuntimeError):
    """A saved model could not be read (one-line message naming the file and the problem)."""


def save_model(model: EEGModel, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``directory`` (created) as ``config.json`` + ``model.safetensors``.

    Parameters
    ----------
    model : EEGModel
        A model built by :func:`physioaffect.models.create` (any registered class).
    directory : str or Path
        Output folder.
    extra : dict or None
        JSON-serialisable metadata stored under ``"extra"`` (e.g. channel names, training info).

    Returns
    -------
    Path
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "model": name_of(model),
        "kwargs": model.get_config(),
        "n_parameters": count_parameters(model),
        "extra": extra or {},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read and validate ``config.json`` of a saved model."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ModelFileError(f"{path}: no model configuration file found")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: field 'format_version' is {config.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}"
        )
    if config.get("model") not in REGISTRY:
        raise ModelFileError(
            f"{path}: field 'model' is {config.get('model')!r}, expected one of "
            f"{', '.join(sorted(REGISTRY))}"
        )
    if not isinstance(config.get("kwargs"), dict):
        raise ModelFileError(f"{path}: field 'kwargs' must be an object of constructor arguments")
    return config


def _read_state(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    st, pt = directory / WEIGHTS_NAME, directory / TORCH_WEIGHTS_NAME
    if st.is_file():
        try:
            return st, load_file(str(st))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"{st}: corrupt safetensors file ({exc})") from None
    if pt.is_file():
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad/unsafe pickles
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(f"{pt}: cannot be loaded with weights_only=True ({msg})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ModelFileError(f"{pt}: expected a state dict of tensors")
        return pt, state
    raise ModelFileError(f"{directory}: no weights file ({WEIGHTS_NAME} or {TORCH_WEIGHTS_NAME})")


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> EEGModel:
    """Rebuild a model saved by :func:`save_model` and load its weights (in eval mode).

    Raises
    ------
    ModelFileError
        If a file is missing, corrupt, or the weights do not fit the configured model.
    """
    directory = Path(directory)
    config = read_config(directory)
    kwargs = dict(config["kwargs"])
    try:
        model = create(config["model"], **kwargs)
    except (ModelConfigError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{directory / CONFIG_NAME}: field 'kwargs' is invalid ({exc})") from None
    path, state = _read_state(directory)
    _check_state(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: weights do not match the configured model "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelFileError(
                f"{path}: tensor {key!r} has shape {tuple(state[key].shape)}, the configured "
                f"model expects {tuple(tensor.shape)}"
            )
