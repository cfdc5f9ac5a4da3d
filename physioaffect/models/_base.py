"""Shared pieces of the model zoo: the braindecode-style base class and the errors.

Every network here takes braindecode's signal arguments (``EEGModuleMixin``): ``n_outputs``,
``n_chans``, ``chs_info``, ``n_times``, ``input_window_seconds`` and ``sfreq``, by keyword. Any
consistent subset is enough and the rest is derived (``n_chans = len(chs_info)``,
``n_times = input_window_seconds * sfreq``, ``sfreq = n_times / input_window_seconds``);
arguments that disagree are refused with a one-line :class:`ModelConfigError`. The resolution
runs once, here, *before* a model's own ``__init__``: a subclass declares the plain
``(n_chans, n_outputs, n_times, sfreq, **hyper_params)`` and always receives concrete values
(``sfreq`` may be None when nothing gives it; a model that needs the rate says so).

Every model remembers its constructor arguments (``chs_info`` included, as JSON), so that
:mod:`physioaffect.models.io` can write them beside the weights and rebuild the model.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from physioaffect.errors import PhysioAffectError

__all__ = ["EEGModel", "ModelConfigError", "ModelInputError", "count_parameters",
           "resolve_signal_args", "SIGNAL_ARGS"]

#: braindecode's signal arguments, in braindecode's order.
SIGNAL_ARGS = ("n_outputs", "n_chans", "chs_info", "n_times", "input_window_seconds", "sfreq")


class ModelConfigError(PhysioAffectError, ValueError):
    """A model was asked for with arguments it cannot be built from (one-line message)."""


class ModelInputError(PhysioAffectError, ValueError):
    """A tensor given to a model has the wrong shape (one-line message)."""


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _positive_int(name: str, value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or int(value) != value or int(value) < 1:
        raise ModelConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(name: str, value: Any, owner: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or value <= 0:
        raise ModelConfigError(f"{owner}: {name} must be a positive number in {unit}, "
                               f"got {value!r}")
    return float(value)


def _json_value(value: Any) -> Any:
    """``value`` as plain JSON (numpy arrays as lists, MNE's named ints as ints, NaN as None)."""
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)  # also MNE's FIFF constants (int subclasses)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _check_chs_info(chs_info: Any, owner: str) -> list[dict[str, Any]]:
    """``chs_info`` as a JSON-able list of channel dicts (an ``mne.Info`` gives its ``chs``)."""
    if isinstance(chs_info, Mapping) and "chs" in chs_info:
        chs_info = chs_info["chs"]  # an mne.Info
    if isinstance(chs_info, str | bytes) or not isinstance(chs_info, Sequence) or not chs_info:
        raise ModelConfigError(f"{owner}: chs_info must be a non-empty list of channel dicts "
                               f"with a 'ch_name' (as mne Info['chs']), got {chs_info!r:.80}")
    out, seen = [], set()
    for i, ch in enumerate(chs_info):
        if not isinstance(ch, Mapping) or not isinstance(ch.get("ch_name"), str) \
                or not ch["ch_name"]:
            raise ModelConfigError(f"{owner}: chs_info[{i}] must be a dict with a non-empty "
                                   f"'ch_name' string, got {ch!r:.80}")
        if ch["ch_name"] in seen:
            raise ModelConfigError(f"{owner}: chs_info names channel {ch['ch_name']!r} twice")
        seen.add(ch["ch_name"])
        out.append(_json_value(ch))
    return out


def resolve_signal_args(
    owner: str = "model", *, n_outputs: Any = None, n_chans: Any = None, chs_info: Any = None,
    n_times: Any = None, input_window_seconds: Any = None, sfreq: Any = None,
) -> dict[str, Any]:
    """Complete braindecode's signal arguments from any consistent subset.

    Parameters
    ----------
    owner : str
        Name used in error messages (the model class).
    n_outputs : int
        Number of outputs (classes of a classifier, targets of a regressor); required.
    n_chans : int or None
        Number of EEG channels; derived from ``chs_info`` when None.
    chs_info : list of dict or mne.Info or None
        One dict per channel with at least ``"ch_name"`` (``mne.Info["chs"]``); stored as JSON.
    n_times : int or None
        Samples per input window; derived as ``input_window_seconds * sfreq`` when None.
    input_window_seconds : float or None
        Window length in seconds.
    sfreq : float or None
        Sampling rate in Hz; derived as ``n_times / input_window_seconds`` when None, else None
        (models that need the rate refuse to be built without it).

    Returns
    -------
    dict
        All six keys, resolved (``chs_info`` and ``sfreq``/``input_window_seconds`` may be None).

    Raises
    ------
    ModelConfigError
        A required argument missing, an invalid value, or arguments that disagree.
    """
    if n_outputs is None:
        raise ModelConfigError(f"{owner}: n_outputs is required (number of classes or targets)")
    n_outputs = _positive_int("n_outputs", n_outputs, owner)
    chs = None if chs_info is None else _check_chs_info(chs_info, owner)
    if n_chans is None:
        if chs is None:
            raise ModelConfigError(f"{owner}: give n_chans or chs_info (the EEG channels)")
        n_chans = len(chs)
    n_chans = _positive_int("n_chans", n_chans, owner)
    if chs is not None and len(chs) != n_chans:
        raise ModelConfigError(f"{owner}: n_chans={n_chans} but chs_info lists {len(chs)} "
                               "channels")
    if sfreq is not None:
        sfreq = _positive_float("sfreq", sfreq, owner, "Hz")
    if input_window_seconds is not None:
        input_window_seconds = _positive_float("input_window_seconds", input_window_seconds,
                                               owner, "s")
    if n_times is None:
        if input_window_seconds is None or sfreq is None:
            raise ModelConfigError(f"{owner}: give n_times, or input_window_seconds with sfreq "
                                   "(the length of one input window)")
        samples = input_window_seconds * sfreq
        if abs(samples - round(samples)) > 1e-6 * max(1.0, samples) or round(samples) < 1:
            raise ModelConfigError(
                f"{owner}: input_window_seconds={input_window_seconds:g} s at sfreq={sfreq:g} Hz "
                f"is {samples:g} samples, not a whole positive number; give n_times")
        n_times = int(round(samples))
    n_times = _positive_int("n_times", n_times, owner)
    if input_window_seconds is not None:
        if sfreq is None:
            sfreq = n_times / input_window_seconds
        elif abs(input_window_seconds * sfreq - n_times) > 1e-6 * max(1.0, n_times):
            raise ModelConfigError(
                f"{owner}: n_times={n_times} disagrees with input_window_seconds="
                f"{input_window_seconds:g} s at sfreq={sfreq:g} Hz "
                f"({input_window_seconds * sfreq:g} samples)")
    window = None if sfreq is None else n_times / sfreq
    return {"n_outputs": n_outputs, "n_chans": n_chans, "chs_info": chs, "n_times": n_times,
            "input_window_seconds": window, "sfreq": sfreq}


def _public_signature(cls: type) -> inspect.Signature:
    """The signature users call: the signal arguments optional, ``chs_info`` and
    ``input_window_seconds`` keyword-only where ``__init__`` does not declare them."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params):
        return inspect.Signature(params)
    names = {p.name for p in params}
    out = [p.replace(default=None) if p.name in SIGNAL_ARGS and p.default is p.empty else p
           for p in params if p.kind != p.VAR_KEYWORD]
    if any(p.default is p.empty for p in out):  # a required hyper-parameter after them
        return inspect.Signature(params)
    out += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None)
            for k in ("chs_info", "input_window_seconds") if k not in names]
    out += [p for p in params if p.kind == p.VAR_KEYWORD]
    return inspect.Signature(out)


class _SignalArgsResolver(type):
    """Metaclass of :class:`EEGModel`: resolves the signal arguments before ``__init__``.

    The subclass's ``__init__`` receives concrete ``n_chans``, ``n_outputs``, ``n_times`` and
    ``sfreq`` (None when unknown); ``chs_info`` and ``input_window_seconds`` are consumed here
    unless the subclass declares them itself. This is what lets every registered model (and
    one written by a user with the plain signature) be built from ``chs_info`` alone.
    """

    def __init__(cls, name: str, bases: tuple, namespace: dict, **kw: Any) -> None:
        super().__init__(name, bases, namespace, **kw)
        cls.__signature__ = _public_signature(cls)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params):
            return super().__call__(*args, **kwargs)  # unusual signature: left as written
        positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
        if len(args) > len(positional):
            return super().__call__(*args, **kwargs)  # Python's own TypeError
        for name, value in zip(positional, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            kwargs[name] = value
        declared = {p.name for p in params if p.kind != p.VAR_KEYWORD}
        var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
        given = {k: (kwargs.get(k) if k in declared else kwargs.pop(k, None))
                 for k in SIGNAL_ARGS}
        signal = resolve_signal_args(cls.__name__, **given)
        for k in SIGNAL_ARGS:
            # chs_info and the window length reach __init__ only where it declares them
            if k in declared or (var_keyword and k in ("n_outputs", "n_chans", "n_times",
                                                       "sfreq")):
                kwargs[k] = signal[k]
        model = super().__call__(**kwargs)
        model._set_signal_info(signal)
        return model


class EEGModel(nn.Module, metaclass=_SignalArgsResolver):
    """Base class with braindecode's signal arguments (see the module docstring).

    Parameters
    ----------
    n_chans : int
        Number of EEG channels (or give ``chs_info``).
    n_outputs : int
        Number of outputs (classes for a classifier, targets for a regressor).
    n_times : int
        Number of time samples of one input window (or give ``input_window_seconds`` and
        ``sfreq``).
    sfreq : float or None
        Sampling rate of the input in Hz (None: unknown; :attr:`sfreq` then raises).
    chs_info : list of dict, optional (keyword)
        Channel descriptions as ``mne.Info["chs"]`` (at least ``"ch_name"``); ``n_chans`` is
        its length. Kept as :attr:`chs_info` and saved with the model.
    input_window_seconds : float, optional (keyword)
        Window length in seconds (``n_times = input_window_seconds * sfreq``).

    Attributes
    ----------
    chs_info : list of dict or None
        The channels as JSON-able dicts (None when built from ``n_chans``).
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int,
                 sfreq: float | None = None) -> None:
        super().__init__()
        owner = type(self).__name__
        self.n_chans = _positive_int("n_chans", n_chans, owner)
        self.n_outputs = _positive_int("n_outputs", n_outputs, owner)
        self.n_times = _positive_int("n_times", n_times, owner)
        self._sfreq = None if sfreq is None else _positive_float("sfreq", sfreq, owner, "Hz")
        self.chs_info: list[dict[str, Any]] | None = None
        self._config: dict[str, Any] = {}

    @property
    def sfreq(self) -> float:
        """Sampling rate of the input in Hz (:class:`ModelConfigError` when not given)."""
        if self._sfreq is None:
            raise ModelConfigError(f"{type(self).__name__}: sfreq is unknown (built without it); "
                                   "give sfreq, or input_window_seconds with n_times")
        return self._sfreq

    @property
    def input_window_seconds(self) -> float:
        """Length of one input window in seconds (``n_times / sfreq``)."""
        return self.n_times / self.sfreq

    @property
    def ch_names(self) -> list[str] | None:
        """Channel names from :attr:`chs_info` (None when built from ``n_chans``)."""
        return None if self.chs_info is None else [c["ch_name"] for c in self.chs_info]

    def _set_signal_info(self, signal: Mapping[str, Any]) -> None:
        """Keep ``chs_info`` (and put it in the saved configuration)."""
        if signal.get("chs_info") is not None:
            self.chs_info = [dict(c) for c in signal["chs_info"]]
            if self._config:
                self._config["chs_info"] = [dict(c) for c in signal["chs_info"]]

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
        if config.get("chs_info") is not None:
            config["chs_info"] = _json_value(config["chs_info"])
        config.pop("input_window_seconds", None)  # derived from n_times and sfreq
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
