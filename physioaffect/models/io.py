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
from physioaffect.models.registry import REGISTRY, create, create_preset, name_of

__all__ = ["ModelFileError", "save_model", "load_model", "read_config", "FORMAT_VERSION",
           "CONFIG_NAME", "WEIGHTS_NAME", "load_official_state_dict", "import_official"]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TORCH_WEIGHTS_NAME = "model.pt"
#: Largest ``config.json`` read (ours are about 1 KB; contracts with statistics a few 100 KB).
MAX_JSON_BYTES = 8 << 20


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


def read_json(path: Path, error: type[Exception], what: str) -> Any:
    """A checkpoint's JSON file, read within bounds (:mod:`physioaffect.safeload`: at most
    :data:`MAX_JSON_BYTES`, UTF-8, 64 levels); anything else is ``error`` naming the file."""
    from physioaffect.safeload import loads_json, read_text

    text = read_text(path, max_bytes=MAX_JSON_BYTES, error=error, what=what)
    return loads_json(text, str(path), error=error)


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read and validate ``config.json`` of a saved model."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ModelFileError(f"{path}: no model configuration file found")
    config = read_json(path, ModelFileError, "model configuration")
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


def _torch_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a ``torch.save`` file, never unpickling anything else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad/unsafe pickles
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{path}: cannot be loaded with weights_only=True ({msg})") from None
    if isinstance(state, dict):
        for wrapper in ("state_dict", "model_state_dict", "model"):  # common checkpoint dicts
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: expected a state dict of tensors")
    return state


def _read_state(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    st, pt = directory / WEIGHTS_NAME, directory / TORCH_WEIGHTS_NAME
    if st.is_file():
        try:
            return st, load_file(str(st))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"{st}: corrupt safetensors file ({exc})") from None
    if pt.is_file():
        return pt, _torch_state(pt)
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
    where = directory / CONFIG_NAME
    # The network is first built on the meta device (shapes, no memory): hyper-parameters
    # that ask for a 16 TB tensor are refused by comparing with the weights actually stored.
    skeleton = _build(config["model"], kwargs, where, meta=True)
    path, state = _read_state(directory)
    _check_state(skeleton, state, path)
    model = _build(config["model"], kwargs, where, meta=False)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def _build(name: str, kwargs: dict[str, Any], where: Path, meta: bool) -> EEGModel:
    """The registry's network from ``config.json`` fields, on the meta device when ``meta``."""
    try:
        if meta:
            with torch.device("meta"):
                return create(name, **kwargs)
        return create(name, **kwargs)
    except (ModelConfigError, TypeError, ValueError, OverflowError, MemoryError,
            RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{where}: field 'kwargs' is invalid ({msg})") from None


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights whose names or shapes differ from ``model``'s (which may be on meta)."""
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
            n_model = sum(t.numel() for t in expected.values())
            n_file = sum(t.numel() for t in state.values())
            raise ModelFileError(
                f"{path}: tensor {key!r} has shape {tuple(state[key].shape)}, the configured "
                f"model ({path.parent / CONFIG_NAME}) expects {tuple(tensor.shape)} "
                f"({n_model:,} parameters configured, {n_file:,} stored)"
            )


def load_official_state_dict(model: EEGModel, state: dict[str, torch.Tensor],
                             source: str = "<state dict>") -> EEGModel:
    """Load a state dict saved by the official EmT code into ``model`` (EmT or EmTRegressor).

    Every key is translated by :func:`physioaffect.models.emt.official_key_map` (the official
    token mixer's old ``weight_norm`` keys ``weight_g``/``weight_v`` become our parametrization's
    ``original0``/``original1``; a ``module.`` prefix of ``DataParallel`` is dropped). Nothing
    is loaded unless every tensor has its counterpart with the same shape.

    Raises
    ------
    ModelFileError
        One line naming ``source`` and the first key that is missing, unexpected, or of another
        shape (with both shapes).
    """
    from physioaffect.models.emt import EmT, official_key_map

    if not isinstance(model, EmT):
        raise ModelConfigError(f"official state dicts are EmT's; got {type(model).__name__}")
    key_map = official_key_map(model)
    state = {_official_alias(k): v for k, v in state.items()}
    unexpected = [k for k in state if k not in key_map]
    if unexpected:
        raise ModelFileError(
            f"{source}: tensor {unexpected[0]!r} has no counterpart in {type(model).__name__} "
            f"({len(unexpected)} such; another layer count, adjacency count or encoder type?)")
    missing = [k for k in key_map if k not in state]
    if missing:
        raise ModelFileError(f"{source}: no tensor {missing[0]!r} ({len(missing)} missing); "
                             f"expected an official EmT state dict of this configuration")
    ours = model.state_dict()
    for key, target in key_map.items():
        got, want = tuple(state[key].shape), tuple(ours[target].shape)
        if got != want:
            raise ModelFileError(f"{source}: tensor {key!r} has shape {got}, the model expects "
                                 f"{want} (as {target!r})")
    model.load_state_dict({key_map[k]: v for k, v in state.items()}, strict=True)
    return model


def _official_alias(key: str) -> str:
    if key.startswith("module."):
        key = key[len("module."):]
    # The official regression code names its GRU token mixer ``token_mixer`` (EmT_Reg.py at
    # the repository's top) or ``lstm`` (regression/model/EmT.py): one tensor, two names.
    key = key.replace(".fn.token_mixer.", ".fn.lstm.")
    # An official model built with the newer parametrized weight_norm saves these names.
    return (key.replace("STA.1.parametrizations.weight.original0", "STA.1.weight_g")
               .replace("STA.1.parametrizations.weight.original1", "STA.1.weight_v"))


def import_official(path: str | Path, preset: str, out: str | Path,
                    **overrides: Any) -> Path:
    """Convert a state dict saved by the official EmT code into a model folder.

    Parameters
    ----------
    path : str or Path
        The official ``.pth``/``.pt`` file (``torch.save(model.state_dict())``), read with
        ``torch.load(weights_only=True)``.
    preset : str
        The configuration it was trained with (``emt_seed``, ``emt_thu_ep``, ``emt_faced``,
        ``emt_mahnob_regression``), see :data:`~physioaffect.models.registry.PRESETS`.
    out : str or Path
        Folder to write (``config.json`` + ``model.safetensors``, :func:`save_model`).
    **overrides
        Constructor arguments that differ from the preset (e.g. ``n_outputs=3``).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ModelFileError
        Unreadable file, or tensors that do not fit the preset (named, with both shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    model = create_preset(preset, **overrides)
    load_official_state_dict(model, _torch_state(path), str(path))
    return save_model(model.eval(), out, extra={"imported_from": str(path), "preset": preset,
                                                "overrides": overrides})
