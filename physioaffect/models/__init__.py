"""Networks for affective decoding from physiology (pure PyTorch, braindecode signature).

Every model takes braindecode's signal arguments by keyword (``n_outputs``, ``n_chans``,
``chs_info``, ``n_times``, ``input_window_seconds``, ``sfreq``; any consistent subset, e.g.
``EEGDeformer(chs_info=info["chs"], n_outputs=2, input_window_seconds=4, sfreq=128)``) plus its
own hyper-parameters:

* :class:`EEGDeformer` — EEG-Deformer (Ding et al., JBHI 2024), raw EEG ``(B, C, T)``;
* :class:`EmT` / :class:`EmTRegressor` — EmT (Ding et al., TNNLS 2025), band-power graph
  sequences ``(B, S, C, F)``;
* :class:`EEGNet`, :class:`ShallowConvNet` — deep baselines, raw EEG ``(B, C, T)``;
* :class:`MultimodalFusion` — EEG + peripheral + face with modality mask and dropout;
* scikit-learn feature baselines: :func:`make_majority`, :func:`make_logistic_regression`,
  :func:`make_linear_svm`.

Use :func:`create` / :func:`create_preset` to build by name and :func:`save_model` /
:func:`load_model` to persist (config JSON + safetensors).
"""

from physioaffect.models._base import (
    EEGModel,
    ModelConfigError,
    ModelInputError,
    count_parameters,
    resolve_signal_args,
)
from physioaffect.models.baselines import (
    EEGNet,
    FlattenFeatures,
    ShallowConvNet,
    make_linear_svm,
    make_logistic_regression,
    make_majority,
)
from physioaffect.models.braindecode_io import (
    braindecode_state_dict,
    load_braindecode_state_dict,
)
from physioaffect.models.contract import (
    CheckpointContract,
    ContractError,
    Standardisation,
    load_checkpoint,
    read_contract,
    save_checkpoint,
)
from physioaffect.models.deformer import EEGDeformer, deformer_temporal_kernel
from physioaffect.models.emt import EmT, EmTRegressor, emt_n_sub_windows
from physioaffect.models.fusion import MODALITIES, MultimodalFusion
from physioaffect.models.inputs import GRAPHS, INPUT_KINDS, RAW, InputKind, input_kind
from physioaffect.models.io import ModelFileError, load_model, read_config, save_model
from physioaffect.models.registry import (
    PRESETS,
    REGISTRY,
    ModelSpec,
    create,
    create_preset,
    get_spec,
    list_models,
    name_of,
    register_model,
)

__all__ = [
    "EEGModel", "ModelConfigError", "ModelInputError", "ModelFileError", "count_parameters",
    "resolve_signal_args",
    "EEGDeformer", "deformer_temporal_kernel", "EmT", "EmTRegressor", "emt_n_sub_windows",
    "EEGNet", "ShallowConvNet", "FlattenFeatures", "make_majority", "make_logistic_regression",
    "make_linear_svm", "MultimodalFusion", "MODALITIES", "create", "create_preset",
    "list_models", "name_of", "register_model", "ModelSpec", "REGISTRY", "PRESETS", "get_spec",
    "InputKind", "INPUT_KINDS", "RAW", "GRAPHS", "input_kind",
    "save_model", "load_model", "read_config", "braindecode_state_dict",
    "load_braindecode_state_dict", "CheckpointContract", "ContractError",
    "Standardisation", "load_checkpoint", "read_contract", "save_checkpoint",
]
