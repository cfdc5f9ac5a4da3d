"""Weights to and from braindecode: :class:`EEGNet` <-> ``braindecode.models.EEGNet`` and
:class:`ShallowConvNet` <-> ``braindecode.models.ShallowFBCSPNet`` (braindecode 1.8).

The networks have the same layers and parameter counts as braindecode's (see
:mod:`physioaffect.models.baselines`); only some state-dict names and shapes differ. This module
translates them, written from braindecode 1.8.1's source (``models/eegnet.py``,
``models/shallow_fbcsp.py``, ``modules/convolution.py``) since braindecode itself does not
import beside torch 2.13 here:

=================================== =================================================== =====
ours                                braindecode 1.8.1                                   shape
=================================== =================================================== =====
EEGNet ``conv_spatial.weight``      ``conv_spatial.parametrizations.weight.original``   same
EEGNet ``conv_classifier.*``        ``final_layer.conv_classifier.*``                   same
Shallow ``conv_time.*``             ``conv_time_spat.conv_time.*``                      same
Shallow ``conv_spat.weight``        ``conv_time_spat.conv_spat.weight``                 same
Shallow ``conv_classifier.weight``  ``final_layer.conv_classifier.weight``              + 1
Shallow ``conv_classifier.bias``    ``final_layer.conv_classifier.bias``                same
=================================== =================================================== =====

Every other key (batch norms, EEGNet's temporal and separable convolutions) is the same.
"Shape + 1": braindecode's Shallow classifier is a ``Conv2d`` with kernel ``(L, 1)``, ours a
``Conv1d`` with kernel ``L`` (the same numbers). braindecode 1.8 keeps EEGNet's max-norm
spatial weight as a parametrization (the stored ``original`` is renormed in each forward); ours
renorms the weight itself in each forward: loading ``original`` gives the same outputs.

Import also takes the names of older braindecode versions (``conv_spatial.weight``, the
classifier as ``conv_classifier.*``, Shallow's ``conv_time.*``/``conv_spat.*`` without
``conv_time_spat``: braindecode's own ``mapping``) and EEGNet's max-norm linear head
(``final_layer.linearconstraint.*`` of ``final_layer_with_constraint=True``: its renormed
weight becomes the convolution's, the same function).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from physioaffect.models._base import EEGModel, ModelConfigError
from physioaffect.models.baselines import EEGNet, ShallowConvNet
from physioaffect.models.io import ModelFileError

__all__ = ["braindecode_state_dict", "load_braindecode_state_dict", "braindecode_key_map"]

#: Our key -> braindecode 1.8.1's, per model class (keys not listed are the same).
_RENAMES: dict[type, dict[str, str]] = {
    EEGNet: {
        "conv_spatial.weight": "conv_spatial.parametrizations.weight.original",
        "conv_classifier.weight": "final_layer.conv_classifier.weight",
        "conv_classifier.bias": "final_layer.conv_classifier.bias",
    },
    ShallowConvNet: {
        "conv_time.weight": "conv_time_spat.conv_time.weight",
        "conv_time.bias": "conv_time_spat.conv_time.bias",
        "conv_spat.weight": "conv_time_spat.conv_spat.weight",
        "conv_classifier.weight": "final_layer.conv_classifier.weight",
        "conv_classifier.bias": "final_layer.conv_classifier.bias",
    },
}
def _kind(model: EEGModel) -> type:
    for cls in (EEGNet, ShallowConvNet):
        if isinstance(model, cls):
            return cls
    raise ModelConfigError(f"braindecode weights exist for EEGNet and ShallowConvNet; got "
                           f"{type(model).__name__}")


def braindecode_key_map(model: EEGModel) -> dict[str, str]:
    """Our state-dict key -> braindecode 1.8.1's, for every tensor of ``model``."""
    renames = _RENAMES[_kind(model)]
    return {k: renames.get(k, k) for k in model.state_dict()}


def braindecode_state_dict(model: EEGModel) -> dict[str, torch.Tensor]:
    """``model``'s weights under braindecode 1.8.1's names and shapes.

    ``braindecode.models.EEGNet(n_chans, n_outputs, n_times)`` (or ``ShallowFBCSPNet``) built
    with the same hyper-parameters loads it with ``load_state_dict(..., strict=True)``.
    """
    key_map = braindecode_key_map(model)
    out = {}
    for ours, tensor in model.state_dict().items():
        t = tensor.detach().cpu().clone()
        if isinstance(model, ShallowConvNet) and ours == "conv_classifier.weight":
            t = t.unsqueeze(-1)  # Conv1d (out, in, L) -> braindecode's Conv2d (out, in, L, 1)
        out[key_map[ours]] = t
    return out


def load_braindecode_state_dict(model: EEGModel, state: Mapping[str, torch.Tensor],
                                source: str = "<state dict>", norm_rate: float = 0.25,
                                ) -> EEGModel:
    """Load weights saved from braindecode's ``EEGNet``/``ShallowFBCSPNet`` into ``model``.

    Parameters
    ----------
    model : EEGNet or ShallowConvNet
        Built with the configuration the weights were trained with (channels, outputs,
        samples, kernel sizes).
    state : mapping of str to Tensor
        ``braindecode_model.state_dict()`` (1.8 names, or older ones, see the module
        docstring; a ``module.`` prefix of ``DataParallel`` is dropped).
    source : str
        Names the weights in error messages (a file path).
    norm_rate : float
        The max norm of braindecode EEGNet's linear head (its ``norm_rate``, default 0.25),
        used only for weights of ``final_layer_with_constraint=True``.

    Raises
    ------
    ModelFileError
        One line naming ``source`` and the first tensor that is missing, unexpected, or of
        another shape (both shapes given). Nothing is loaded then.
    """
    cls = _kind(model)
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    # older braindecode versions stored our names (braindecode's own ``mapping`` renames them)
    state = {_RENAMES[cls].get(k, k): v for k, v in state.items()}
    if cls is EEGNet and "final_layer.linearconstraint.parametrizations.weight.original" in state:
        state = _linear_head_as_conv(model, state, norm_rate, source)
    key_map = braindecode_key_map(model)
    theirs = {v: k for k, v in key_map.items()}
    unexpected = [k for k in state if k not in theirs]
    if unexpected:
        raise ModelFileError(f"{source}: tensor {unexpected[0]!r} has no counterpart in "
                             f"{type(model).__name__} ({len(unexpected)} such; another "
                             "braindecode model or configuration?)")
    missing = [k for k in theirs if k not in state]
    if missing:
        raise ModelFileError(f"{source}: no tensor {missing[0]!r} ({len(missing)} missing); "
                             f"expected a braindecode {_NAMES[cls]} state dict")
    ours = model.state_dict()
    converted = {}
    for key, tensor in state.items():
        target = theirs[key]
        t = torch.as_tensor(tensor)
        if cls is ShallowConvNet and target == "conv_classifier.weight" and t.ndim == 4 \
                and t.shape[-1] == 1:
            t = t[..., 0]
        if tuple(t.shape) != tuple(ours[target].shape):
            raise ModelFileError(f"{source}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                                 f"{type(model).__name__} expects "
                                 f"{_their_shape(cls, target, ours[target].shape)} (another "
                                 "n_chans, n_times, n_outputs or kernel size?)")
        converted[target] = t.to(ours[target].dtype)
    model.load_state_dict(converted, strict=True)
    return model


_NAMES = {EEGNet: "EEGNet", ShallowConvNet: "ShallowFBCSPNet"}


def _their_shape(cls: type, target: str, shape: torch.Size) -> tuple[int, ...]:
    if cls is ShallowConvNet and target == "conv_classifier.weight":
        return (*shape, 1)
    return tuple(shape)


def _linear_head_as_conv(model: EEGNet, state: dict[str, torch.Tensor], norm_rate: float,
                         source: str) -> dict:
    """braindecode EEGNet's max-norm linear head (``final_layer_with_constraint=True``) as the
    convolutional head: the renormed weight, reshaped (nn.Flatten is filter-major)."""
    state = dict(state)
    w = torch.as_tensor(state.pop("final_layer.linearconstraint.parametrizations.weight.original"))
    b = torch.as_tensor(state.pop("final_layer.linearconstraint.bias"))
    conv = model.conv_classifier.weight
    if w.ndim != 2 or w.shape[1] != conv.shape[1] * conv.shape[3]:
        raise ModelFileError(f"{source}: linear head of shape {tuple(w.shape)}, EEGNet's "
                             f"classifier takes {conv.shape[1] * conv.shape[3]} features")
    w = torch.renorm(w, p=2, dim=0, maxnorm=norm_rate)  # what braindecode's forward uses
    state["final_layer.conv_classifier.weight"] = w.reshape(conv.shape)
    state["final_layer.conv_classifier.bias"] = b
    return state
