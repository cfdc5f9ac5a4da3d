"""Shared pieces of the model zoo: the braindecode-style base class and the errors.

Every network here is built as ``Model(n_chans, n_outputs, n_times, sfreq, **hyper_params)``
(the signature of braindecode's ``EEGModuleMixin``) and remembers its constructor arguments, so
that :mod:`physioaffect.models.io` can write them beside the weights and rebuild the model.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from physioaffect.errors import PhysioAffectError

__all__ = ["EEGModel", "ModelConfigError", "ModelInputError", "count_parameters"]


class ModelConfigError(PhysioAffectError, ValueError):
    """A model was asked for with arguments it cannot be built from (one-line message)."""


class ModelInputError(PhysioAffectError, ValueError):
    """A tensor given to a model has the wrong shape (one-line message)."""


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _positive_int(name: str, value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ModelConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ModelConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class EEGModel(nn.Module):
    """Base class with the braindecode signature ``(n_chans, n_outputs, n_times, sfreq)``.

    Parameters
    ----------
    n_chans : int
        Number of EEG channels.
    n_outputs : int
        Number of outputs (classes for a classifier, targets for a regressor).
    n_times : int
        Number of time samples of one input window.
    sfreq : float
        Sampling rate of the input in Hz.
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float) -> None:
        super().__init__()
        owner = type(self).__name__
        self.n_chans = _positive_int("n_chans", n_chans, owner)
        self.n_outputs = _positive_int("n_outputs", n_outputs, owner)
        self.n_times = _positive_int("n_times", n_times, owner)
        if not isinstance(sfreq, int | float) or not math.isfinite(sfreq) or sfreq <= 0:
            raise ModelConfigError(f"{owner}: sfreq must be a positive number in Hz, got {sfreq!r}")
        self.sfreq = float(sfreq)
        self._config: dict[str, Any] = {}

    def _remember_config(self, frame_locals: dict[str, Any]) -> None:
        """Store the constructor arguments (taken from ``locals()`` of ``__init__``)."""
        sig = inspect.signature(type(self).__init__)
        config = {}
        for name, param in sig.parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = frame_locals[name]
            if isinstance(value, tuple):
                value = list(value)
            config[name] = value
        self._config = config

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this model (JSON-serialisable)."""
        return dict(self._config)

    def _check_input(self, x: torch.Tensor, expected: tuple[int | None, ...], what: str) -> None:
        """Raise :class:`ModelInputError` if ``x`` does not match ``expected`` (None = any)."""
        if x.ndim != len(expected) or any(
            e is not None and s != e for s, e in zip(x.shape, expected, strict=True)
        ):
            shape = "x".join("B" if e is None else str(e) for e in expected)
            raise ModelInputError(
                f"{type(self).__name__}: expected input {what} of shape {shape}, "
                f"got {tuple(x.shape)}"
            )
