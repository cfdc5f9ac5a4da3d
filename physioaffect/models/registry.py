"""Registry of the networks: name -> constructor and one-line description.

``create(name, n_chans=..., n_outputs=..., n_times=..., sfreq=..., **hyper_params)`` (or
braindecode's ``chs_info=``/``input_window_seconds=`` in place of ``n_chans``/``n_times``) builds
any registered model; :mod:`physioaffect.models.io` uses the same names to rebuild saved models.
``PRESETS`` holds the published reference configurations of EEG-Deformer and EmT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from physioaffect.models._base import EEGModel, ModelConfigError
from physioaffect.models.baselines import EEGNet, ShallowConvNet
from physioaffect.models.deformer import EEGDeformer
from physioaffect.models.emt import EmT, EmTRegressor
from physioaffect.models.fusion import MultimodalFusion
from physioaffect.models.inputs import GRAPHS, RAW, InputKind

__all__ = ["ModelSpec", "REGISTRY", "PRESETS", "MULTIMODAL", "EMT_PRESET_BANDS", "create", "create_preset",
           "list_models", "name_of", "register_model", "get_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its constructor, a description and what it takes as input.

    Attributes
    ----------
    name : str
        Registry name (``physioaffect train --model NAME``; stored in checkpoints).
    constructor : callable
        The class, built as ``constructor(n_chans=, n_outputs=, n_times=, sfreq=, **kwargs)``.
    description : str
    input_layout : str
        Shape of the input, for ``physioaffect models``.
    input_kind : InputKind or None
        How its EEG input is built from windows (:mod:`physioaffect.models.inputs`); None
        for a model whose input depends on its hyper-parameters (see ``input_for``).
    defaults : dict
        Hyper-parameters used when none are given.
    fusion_encoder : str or None
        Name of this network as the EEG encoder of :class:`MultimodalFusion` (None: it cannot
        be one).
    input_for : callable or None
        ``input_for(kwargs) -> InputKind or None`` for models whose input depends on their
        hyper-parameters (the fusion network: its EEG encoder's input, None without EEG).
    named_inputs : bool
        The network takes named modalities (``model(eeg=, peripheral=, face=, mask=)``) rather
        than one EEG tensor; it can mask a modality that is missing in a window.
    tasks : tuple of str
        The tasks it can be trained for (``classification``, ``regression``).
    """

    name: str
    constructor: Callable[..., EEGModel]
    description: str
    input_layout: str
    input_kind: InputKind | None = RAW
    defaults: dict[str, Any] = field(default_factory=dict)
    fusion_encoder: str | None = None
    input_for: Callable[[dict[str, Any]], InputKind | None] | None = None
    named_inputs: bool = False
    tasks: tuple[str, ...] = ("classification", "regression")

    def eeg_input(self, kwargs: dict[str, Any] | None = None) -> InputKind | None:
        """The input kind of this model built with ``kwargs``."""
        if self.input_for is not None:
            return self.input_for(dict(kwargs or {}))
        return self.input_kind


REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> None:
    """Add ``spec`` to the registry (names are unique).

    A new network is one module with an :class:`~physioaffect.models.EEGModel` subclass plus
    this call; training, evaluation, checkpoints and live decoding find it here.
    """
    if spec.name in REGISTRY:
        raise ModelConfigError(f"model {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model."""
    if name not in REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _fusion_input(kwargs: dict[str, Any]) -> InputKind | None:
    enc = kwargs.get("eeg_encoder") or (kwargs.get("fusion") or {}).get("eeg_encoder") \
        or "deformer"
    for spec in REGISTRY.values():
        if spec.fusion_encoder == enc:
            return spec.input_kind
    return None  # "none": no EEG branch


register_model(ModelSpec(
    "eeg_deformer", EEGDeformer,
    "EEG-Deformer (Ding et al. 2024): shallow CNN + coarse-to-fine transformer + DIP",
    "(batch, n_chans, n_times) raw EEG", RAW, fusion_encoder="deformer"))
register_model(ModelSpec(
    "emt", EmT,
    "EmT classifier (Ding et al. 2025): multi-view Chebyshev GCN + temporal transformer",
    "(batch, n_sub_windows, n_chans, n_features) band-power graphs", GRAPHS,
    fusion_encoder="emt"))
register_model(ModelSpec(
    "emt_regression", EmTRegressor,
    "EmT regression variant: GRU token mixer, one prediction per sub-window",
    "(batch, n_sub_windows, n_chans, n_features) -> (batch, n_sub_windows, n_outputs)", GRAPHS,
    tasks=("regression",)))
register_model(ModelSpec(
    "eegnet", EEGNet, "EEGNet (Lawhern et al. 2018), braindecode layout",
    "(batch, n_chans, n_times) raw EEG", RAW))
register_model(ModelSpec(
    "shallow_convnet", ShallowConvNet,
    "Shallow ConvNet (Schirrmeister et al. 2017), braindecode ShallowFBCSPNet layout",
    "(batch, n_chans, n_times) raw EEG", RAW))
register_model(ModelSpec(
    "fusion", MultimodalFusion,
    "EEG + peripheral + face token fusion with modality mask and modality dropout",
    "eeg (as backbone) + peripheral (batch, T, F_p) + face (batch, T, F_f), each optional",
    None, defaults={"n_peripheral_features": 16, "n_face_features": 17},
    input_for=_fusion_input, named_inputs=True))


#: The network that fuses named modalities around any registered EEG encoder (training builds
#: it for a multimodal run of a model that is not one itself).
MULTIMODAL = "fusion"


# Published reference configurations (2 classes). Values from the papers' public code.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "deformer_fatigue": ("eeg_deformer", dict(
        n_chans=30, n_outputs=2, n_times=384, sfreq=128, heads=16, dim_head=16, mlp_dim=16,
        dropout=0.5)),
    "deformer_workload": ("eeg_deformer", dict(
        n_chans=19, n_outputs=2, n_times=2000, sfreq=500, heads=16, dim_head=16, mlp_dim=16,
        dropout=0.25)),
    "deformer_attention": ("eeg_deformer", dict(
        n_chans=28, n_outputs=2, n_times=800, sfreq=200, heads=32, dim_head=32, mlp_dim=32,
        dropout=0.5)),
    "emt_seed": ("emt", dict(
        n_chans=62, n_outputs=2, n_times=4000, sfreq=200, K=4, n_layers=8, alpha=0.25)),
    "emt_thu_ep": ("emt", dict(
        n_chans=32, n_outputs=2, n_times=5000, sfreq=250, K=3, n_layers=4, alpha=0.1)),
    "emt_faced": ("emt", dict(
        n_chans=32, n_outputs=2, n_times=5000, sfreq=250, K=3, n_layers=4, alpha=0.4,
        sub_window_s=4.0)),
    # Official MAHNOB-HCI regression: 6 band powers of 2 s windows every 0.25 s, dropout 0.5.
    "emt_mahnob_regression": ("emt_regression", dict(
        n_chans=32, n_outputs=1, n_times=5120, sfreq=256, K=3, n_layers=2, heads=32,
        n_features=6, dropout=0.5, sub_window_s=2.0, sub_overlap=0.875)),
}

#: Node-feature bands (:data:`physioaffect.features.graphs.EMT_BANDS`) of each EmT preset, as
#: the official preparation code of that dataset computes them.
EMT_PRESET_BANDS: dict[str, str] = {
    "emt_seed": "emt_seed", "emt_thu_ep": "emt_thu_ep", "emt_faced": "emt_faced",
    "emt_mahnob_regression": "emt_mahnob",
}


def create(
    name: str, *, n_chans: int | None = None, n_outputs: int | None = None,
    n_times: int | None = None, sfreq: float | None = None, chs_info: Any = None,
    input_window_seconds: float | None = None, **kwargs: Any,
) -> EEGModel:
    """Build the registered model ``name`` with braindecode's signal arguments.

    Any consistent subset of the signal arguments is enough (see
    :func:`~physioaffect.models.resolve_signal_args`): e.g. ``chs_info`` (``mne.Info["chs"]``
    or an ``mne.Info``) with ``n_outputs`` and ``n_times``, or with ``input_window_seconds``
    and ``sfreq``. Models whose layers depend on the rate (EEG-Deformer's kernel, EmT's
    sub-windows) need ``sfreq`` (given or derived).

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY` (see :func:`list_models`).
    n_chans, n_outputs, n_times, sfreq, chs_info, input_window_seconds
        Channels, outputs, samples per window (segment for EmT), sampling rate in Hz, channel
        descriptions, window length in seconds.
    **kwargs
        The model's own hyper-parameters.

    Raises
    ------
    ModelConfigError
        Unknown name or hyper-parameter, missing or disagreeing signal arguments.
    """
    if name not in REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name]
    try:
        return spec.constructor(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times,
                                sfreq=sfreq, chs_info=chs_info,
                                input_window_seconds=input_window_seconds, **kwargs)
    except TypeError as exc:  # unknown hyper-parameter name
        raise ModelConfigError(f"model {name!r}: {exc}") from None


def create_preset(preset: str, **overrides: Any) -> EEGModel:
    """Build a published reference configuration from :data:`PRESETS` (with overrides)."""
    if preset not in PRESETS:
        raise ModelConfigError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    name, kwargs = PRESETS[preset]
    return create(name, **{**kwargs, **overrides})


def list_models() -> list[ModelSpec]:
    """Registered models, in registration order."""
    return list(REGISTRY.values())


def name_of(model: nn.Module) -> str:
    """Registry name of ``model``'s class."""
    for spec in REGISTRY.values():
        if type(model) is spec.constructor:
            return spec.name
    raise ModelConfigError(f"{type(model).__name__} is not a registered model class")
