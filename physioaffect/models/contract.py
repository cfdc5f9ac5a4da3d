"""The checkpoint contract: everything needed to feed a trained network, in one versioned record.

A checkpoint is a model folder (:func:`physioaffect.models.save_model`: ``config.json`` with the
network's class and hyper-parameters, ``model.safetensors`` with its weights) plus
``contract.json``, the :class:`CheckpointContract`: the EEG channels, rate and unit the network
was trained on, the preprocessing pipeline, the window, what kind of input the network takes and
its settings, the normalisation statistics, the peripheral and face feature names, the task and
class names, and the versions of the package and of the contract. Training writes it; evaluation,
live decoding, the viewer and the notebooks read it, and nothing else.

Every field is validated when a contract is read (types, ranges, finite numbers, shapes that
agree with each other and with the network), so a tampered or truncated file is refused with a
one-line :class:`ContractError` naming the file and the field, before any data reaches the
network. A contract of an unknown version is refused by name; checkpoints written before the
contract existed (training checkpoints with ``extra.format ==
"physioaffect-training-checkpoint/1"`` and decoder bundles with ``decoder.json``) are converted
on load (:func:`load_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physioaffect.models._base import ModelConfigError
from physioaffect.models.inputs import INPUT_KINDS, input_kind
from physioaffect.models.io import ModelFileError, load_model, read_config, read_json, save_model
from physioaffect.preprocessing.alignment import ADAPTATION_METHODS
from physioaffect.preprocessing.pipeline import (
    PipelineConfig,
    decimation_factor,
    design_sos,
    live_problems,
)
from physioaffect.preprocessing.standardise import NormalisationError, Standardisation

__all__ = ["CheckpointContract", "ContractError", "Standardisation", "CONTRACT_VERSION",
           "CONTRACT_NAME", "save_checkpoint", "load_checkpoint", "read_contract",
           "is_checkpoint", "find_checkpoint_dir"]

#: Version written by this package; :data:`READABLE_VERSIONS` are read (1 = converted legacy).
CONTRACT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONTRACT_NAME = "contract.json"
LEGACY_TRAINING_FORMAT = "physioaffect-training-checkpoint/1"
MODALITIES = ("eeg", "peripheral", "face")
TASKS = ("classification", "regression")
WINDOW_NORMS = ("none", "zscore")


class ContractError(ModelFileError):
    """A checkpoint's contract is missing, of an unknown version, or has an invalid field."""


def _package_version() -> str:
    from physioaffect import __version__

    return __version__


# ------------------------------------------------------------------------------ validation
class _Check:
    """Field checks that raise :class:`ContractError` naming ``where`` and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, name: str, want: str, got: Any) -> ContractError:
        shown = repr(got)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return ContractError(f"{self.where}: field {name!r} must be {want}, got {shown}")

    def number(self, name: str, v: Any, *, positive: bool = True, allow_zero: bool = False,
               lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.fail(name, "a finite number", v)
        if positive and (v < 0 or (v == 0 and not allow_zero)):
            raise self.fail(name, "a number > 0" if not allow_zero else "a number >= 0", v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(name, f"a number in [{lo}, {hi}]", v)
        return float(v)

    def integer(self, name: str, v: Any, lo: int = 1) -> int:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or int(v) != v or v < lo:
            raise self.fail(name, f"an integer >= {lo}", v)
        return int(v)

    def text(self, name: str, v: Any, choices: Sequence[str] | None = None) -> str:
        if not isinstance(v, str) or not v:
            raise self.fail(name, "a non-empty string", v)
        if choices is not None and v not in choices:
            raise self.fail(name, f"one of {', '.join(choices)}", v)
        return v

    def names(self, name: str, v: Any, *, unique: bool = True, allow_empty: bool = True,
              choices: Sequence[str] | None = None) -> tuple[str, ...]:
        if not isinstance(v, list | tuple) or not all(isinstance(c, str) and c for c in v):
            raise self.fail(name, "a list of non-empty strings", v)
        if unique and len(set(v)) != len(v):
            raise self.fail(name, "a list without repeats", v)
        if not allow_empty and not v:
            raise self.fail(name, "a non-empty list", v)
        if choices is not None and any(c not in choices for c in v):
            raise self.fail(name, f"a list of {', '.join(choices)}", v)
        return tuple(v)

    def mapping(self, name: str, v: Any) -> dict:
        if not isinstance(v, Mapping):
            raise self.fail(name, "an object", v)
        return dict(v)

    def standardisation(self, name: str, v: Any) -> Standardisation:
        try:
            return Standardisation.from_dict(dict(self.mapping(name, v)), name)
        except NormalisationError as err:
            raise ContractError(f"{self.where}: {err}") from None


@dataclass(frozen=True)
class CheckpointContract:
    """What a trained network needs to be fed, and what its outputs mean.

    Attributes
    ----------
    model : str
        Registry name of the network class (as in ``config.json``).
    trained_as : str
        The model the run asked for (``emt`` even when the network is the fusion network
        with an EmT encoder).
    label : str
        Name of the network in result tables (``emt``, ``emt[eeg+peripheral]``).
    modalities : tuple of str
        Inputs the network has branches for, in :data:`MODALITIES` order.
    task : {"classification", "regression"}
    target : str
        The rating decoded (``arousal``).
    label_rule : str
        How ratings became classes (``gt5``) or ``continuous``.
    class_names : tuple of str
        One per output of a classifier; empty for regression.
    channels : tuple of str
        EEG channel labels in input order (empty without EEG).
    sfreq : float
        Rate (Hz) of the EEG the pipeline takes (a live stream must run at it).
    eeg_unit : str
        Unit of the EEG samples (``uV``).
    pipeline : PipelineConfig
        Preprocessing applied to each recording before windowing (offline) or to the stream
        (live, when causal).
    window_s, step_s : float, float or None
        Window length and hop, s.
    n_times : int
        Samples per window after the pipeline (at :attr:`model_sfreq`).
    input_kind : str or None
        :mod:`physioaffect.models.inputs` kind of the EEG input (None without EEG).
    input_params : dict
        Settings of that kind (e.g. ``sub_window_s``, ``sub_overlap``, ``bands``).
    window_norm : {"none", "zscore"}
        Per-window, per-channel z-score of the EEG before the input is built.
    normalisation : dict of str -> Standardisation
        Statistics of each input (``eeg``, ``peripheral``, ``face``), fitted on the training
        subjects of the fold only.
    peripheral_signals, peripheral_features : tuple of str
        Dataset signals (``ECG``, ``GSR`` ...) and feature columns, in input order.
    face_features : tuple of str
    face_min_valid : float
        Least fraction of frames with a face for a window to have face features.
    target_scaling : tuple (mean, std) or None
        Regression targets were standardised with these (rating scale).
    subject_adaptation : dict
        How each subject's data were adapted before the network
        (:mod:`physioaffect.preprocessing.alignment`): ``method``, ``transductive`` (whether
        the test subject's own unlabelled data were used), ``calibration_s`` (seconds of a new
        subject's data the live decoder adapts on before its first decision), ``online``
        (whether the decoder's reference keeps updating after the calibration) and
        ``half_life_s`` (its forgetting; None: none). ``chosen`` says how the run chose it.
    quality_gate : dict
        ``threshold`` and ``action`` of the training's signal-quality settings (the live
        decoder gates peripheral features the same way).
    provenance : dict
        Dataset, fold, train/validation/test subjects, seed, epochs.
    package_version : str
    contract_version : int
    """

    model: str
    modalities: tuple[str, ...]
    task: str
    target: str
    class_names: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    sfreq: float = 0.0
    eeg_unit: str = "uV"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    window_s: float = 0.0
    step_s: float | None = None
    n_times: int = 0
    input_kind: str | None = None
    input_params: Mapping[str, Any] = field(default_factory=dict)
    window_norm: str = "none"
    normalisation: Mapping[str, Standardisation] = field(default_factory=dict)
    peripheral_signals: tuple[str, ...] = ()
    peripheral_features: tuple[str, ...] = ()
    face_features: tuple[str, ...] = ()
    face_min_valid: float = 0.5
    target_scaling: tuple[float, float] | None = None
    label_rule: str = ""
    trained_as: str = ""
    label: str = ""
    subject_adaptation: Mapping[str, Any] = field(
        default_factory=lambda: {"method": "none", "transductive": False, "online": False,
                                 "half_life_s": None})
    quality_gate: Mapping[str, Any] = field(
        default_factory=lambda: {"threshold": 0.5, "action": "mask"})
    provenance: Mapping[str, Any] = field(default_factory=dict)
    package_version: str = field(default_factory=_package_version)
    contract_version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        # names that default to the network's own
        for name in ("trained_as", "label"):
            if not getattr(self, name):
                object.__setattr__(self, name, self.model)
        if not self.label_rule:
            object.__setattr__(self, "label_rule", "unknown")

    # ---------------------------------------------------------------------------- derived
    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" else 1

    @property
    def model_sfreq(self) -> float:
        """Rate (Hz) of the network's input (after the pipeline's resampling)."""
        if not self.sfreq:
            return 0.0
        if self.pipeline.resample_sfreq:
            return float(self.pipeline.resample_sfreq)
        return self.sfreq / decimation_factor(self.pipeline, self.sfreq)

    @property
    def output_names(self) -> list[str]:
        """One label per output: class names, or the target of a regressor."""
        return list(self.class_names) if self.task == "classification" else [self.target]

    def live_problems(self) -> list[str]:
        """Why the training pipeline cannot be reproduced on live streams (empty: it can)."""
        return live_problems(self.pipeline) if "eeg" in self.modalities else []

    # ----------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "pipeline":
                v = v.to_dict()
            elif f.name == "normalisation":
                v = {k: s.to_dict() for k, s in v.items()}
            elif isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            d[f.name] = v
        return d

    def save(self, directory: str | Path) -> Path:
        """Write ``contract.json`` into ``directory`` (atomically)."""
        path = Path(directory) / CONTRACT_NAME
        data = self.to_dict()
        CheckpointContract.from_dict(data, str(path))  # never write what could not be read
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = CONTRACT_NAME) -> CheckpointContract:
        """Validate every field of a contract read from a file.

        Raises
        ------
        ContractError
            Unknown version, a missing, unknown or out-of-range field (the message names it).
        """
        c = _Check(where)
        d = c.mapping("contract", data)
        version = d.get("contract_version")
        if version not in READABLE_VERSIONS:
            raise ContractError(f"{where}: contract version {version!r} is not one this "
                                f"physioaffect ({_package_version()}) reads (versions "
                                f"{', '.join(map(str, READABLE_VERSIONS))}); update physioaffect "
                                "or retrain")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ContractError(f"{where}: unknown field(s) {', '.join(unknown)} for contract "
                                f"version {version}")
        required = ("model", "modalities", "task", "target")
        for key in required:
            if key not in d:
                raise ContractError(f"{where}: field {key!r} is missing")
        from physioaffect.models.registry import REGISTRY

        model = c.text("model", d["model"], choices=list(REGISTRY))
        modalities = c.names("modalities", d["modalities"], allow_empty=False,
                             choices=MODALITIES)
        modalities = tuple(m for m in MODALITIES if m in modalities)
        task = c.text("task", d["task"], choices=TASKS)
        kw: dict[str, Any] = {"model": model, "modalities": modalities, "task": task,
                              "target": c.text("target", d["target"])}
        class_names = c.names("class_names", d.get("class_names", []))
        if task == "classification" and len(class_names) < 2:
            raise c.fail("class_names", "at least two class names for a classifier", class_names)
        if task == "regression" and class_names:
            raise c.fail("class_names", "empty for a regressor", class_names)
        kw["class_names"] = class_names
        norms_raw = c.mapping("normalisation", d.get("normalisation", {}))
        unknown_norm = sorted(set(norms_raw) - set(modalities))
        if unknown_norm:
            raise c.fail("normalisation", f"statistics of the modalities {list(modalities)} only",
                         unknown_norm)
        norms = {k: c.standardisation(f"normalisation.{k}", v)
                 for k, v in norms_raw.items()}
        for m in modalities:
            if m not in norms:
                raise ContractError(f"{where}: field 'normalisation.{m}' is missing")
        kw["normalisation"] = norms
        if "eeg" in modalities:
            kw["channels"] = c.names("channels", d.get("channels"), allow_empty=False)
            kw["sfreq"] = c.number("sfreq", d.get("sfreq"), hi=1e5)
            kw["eeg_unit"] = c.text("eeg_unit", d.get("eeg_unit", "uV"), choices=("uV",))
            try:
                kw["pipeline"] = PipelineConfig.from_dict(c.mapping("pipeline",
                                                                    d.get("pipeline")))
                decimation_factor(kw["pipeline"], kw["sfreq"])
                design_sos(kw["pipeline"], kw["sfreq"])  # every cut-off below Nyquist
            except ContractError:
                raise
            except Exception as err:  # noqa: BLE001 - PipelineConfig's own one-line message
                raise ContractError(f"{where}: field 'pipeline' is invalid "
                                    f"({str(err).splitlines()[0]})") from None
            kw["window_s"] = c.number("window_s", d.get("window_s"), hi=3600)
            step = d.get("step_s")
            kw["step_s"] = None if step is None else c.number("step_s", step, hi=3600)
            kw["n_times"] = c.integer("n_times", d.get("n_times"), lo=2)
            kind = c.text("input_kind", d.get("input_kind"), choices=list(INPUT_KINDS))
            kw["input_kind"] = kind
            try:
                kw["input_params"] = input_kind(kind).params(
                    c.mapping("input_params", d.get("input_params", {})))
            except ModelConfigError as err:
                raise ContractError(f"{where}: field 'input_params' is invalid ({err})") \
                    from None
            kw["window_norm"] = c.text("window_norm", d.get("window_norm", "none"),
                                       choices=WINDOW_NORMS)
        if "peripheral" in modalities:
            kw["peripheral_signals"] = c.names("peripheral_signals",
                                               d.get("peripheral_signals", []))
            kw["peripheral_features"] = c.names("peripheral_features",
                                                d.get("peripheral_features"), allow_empty=False)
        if "face" in modalities:
            kw["face_features"] = c.names("face_features", d.get("face_features"),
                                          allow_empty=False)
            kw["face_min_valid"] = c.number("face_min_valid", d.get("face_min_valid", 0.5),
                                            allow_zero=True, lo=0.0, hi=1.0)
        ts = d.get("target_scaling")
        if task == "regression":
            if not isinstance(ts, list | tuple) or len(ts) != 2:
                raise c.fail("target_scaling", "[mean, std] of the training targets", ts)
            kw["target_scaling"] = (c.number("target_scaling[0]", ts[0], positive=False),
                                    c.number("target_scaling[1]", ts[1]))
        for key in ("label_rule", "trained_as", "label", "package_version"):
            if key in d:
                kw[key] = c.text(key, d[key])
        if "provenance" in d:
            kw["provenance"] = c.mapping("provenance", d["provenance"])
        if "subject_adaptation" in d:
            ad = c.mapping("subject_adaptation", d["subject_adaptation"])
            method = c.text("subject_adaptation.method", ad.get("method", "none"),
                            choices=ADAPTATION_METHODS)
            kw["subject_adaptation"] = {**ad, "method": method,
                                        "transductive": method != "none"}
            if "calibration_s" in ad:
                kw["subject_adaptation"]["calibration_s"] = c.number(
                    "subject_adaptation.calibration_s", ad["calibration_s"])
            online = ad.get("online", False)
            if not isinstance(online, bool):
                raise c.fail("subject_adaptation.online", "true or false", online)
            kw["subject_adaptation"]["online"] = online
            half = ad.get("half_life_s")
            kw["subject_adaptation"]["half_life_s"] = None if half is None else c.number(
                "subject_adaptation.half_life_s", half)
        if "quality_gate" in d:
            gate = c.mapping("quality_gate", d["quality_gate"])
            kw["quality_gate"] = {
                "threshold": c.number("quality_gate.threshold", gate.get("threshold"),
                                      allow_zero=True, lo=0.0, hi=1.0),
                "action": c.text("quality_gate.action", gate.get("action"),
                                 choices=("mask", "drop", "keep"))}
        kw["contract_version"] = int(version)
        contract = cls(**kw)
        contract._check_shapes(c)
        return contract

    def _check_shapes(self, c: _Check) -> None:
        """Statistics shapes agree with the channels and feature lists."""
        sizes = {"peripheral": len(self.peripheral_features), "face": len(self.face_features)}
        for m, want in sizes.items():
            if m in self.normalisation and self.normalisation[m].mean.shape != (want,):
                raise c.fail(f"normalisation.{m}.mean", f"{want} values (one per feature)",
                             self.normalisation[m].mean.shape)
        if "eeg" in self.normalisation:
            kind = input_kind(self.input_kind or "raw")
            st = self.normalisation["eeg"]
            if st.keep != kind.norm_axes:
                raise c.fail("normalisation.eeg.keep", f"{list(kind.norm_axes)} for "
                             f"{kind.name} input", list(st.keep))
            chan_axis = {"raw": 0, "graphs": 0}.get(kind.name, 0)
            if st.mean.shape[chan_axis] != len(self.channels):
                raise c.fail("normalisation.eeg.mean", f"{len(self.channels)} rows (one per "
                             "channel)", st.mean.shape)
        n_expected = self.window_s * self.model_sfreq
        if "eeg" in self.modalities and abs(self.n_times - n_expected) > 1.0 + 1e-9:
            raise c.fail("n_times", f"window_s x model rate = {n_expected:g} samples",
                         self.n_times)

    def check_model(self, model: Any, where: str) -> None:
        """Refuse a network of another class or whose shape does not fit the contract."""
        from physioaffect.models.registry import name_of

        c = _Check(where)
        try:
            network = name_of(model)
        except ModelConfigError:
            network = None  # not a registered class (a test double): its shape is checked
        if network is not None and network != self.model:
            raise c.fail("model", f"{network!r}, the network in config.json beside it "
                         "(the contract belongs to another checkpoint?)", self.model)
        if int(getattr(model, "n_outputs", self.n_outputs)) != self.n_outputs:
            raise c.fail("class_names", f"{model.n_outputs} names (the network's outputs)",
                         list(self.class_names))
        if "eeg" in self.modalities and int(getattr(model, "n_chans", len(self.channels))) \
                != len(self.channels):
            raise c.fail("channels", f"{model.n_chans} channels (the network's input)",
                         len(self.channels))
        if "eeg" in self.modalities and int(getattr(model, "n_times", self.n_times)) \
                != self.n_times:
            raise c.fail("n_times", f"{model.n_times} samples (the network's input)",
                         self.n_times)


# --------------------------------------------------------------------------------- files
def is_checkpoint(directory: str | Path) -> bool:
    """True when ``directory`` holds a model with a contract (or a legacy checkpoint)."""
    d = Path(directory)
    return (d / "config.json").is_file() and (
        (d / CONTRACT_NAME).is_file() or (d / "decoder.json").is_file()
        or _legacy_training_meta(d) is not None)


def find_checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder at ``path`` (itself, or ``path/checkpoint`` of a fold folder)."""
    p = Path(path)
    for cand in (p, p / "checkpoint"):
        if (cand / "config.json").is_file():
            return cand
    raise ContractError(f"{p}: no checkpoint here (expected config.json, model.safetensors and "
                        f"{CONTRACT_NAME}, or a fold folder with checkpoint/)")


def save_checkpoint(model: Any, directory: str | Path, contract: CheckpointContract) -> Path:
    """Write the network and its contract into ``directory``."""
    contract.check_model(model, str(Path(directory) / CONTRACT_NAME))
    save_model(model, directory)
    contract.save(directory)
    return Path(directory)


def _legacy_training_meta(d: Path) -> dict | None:
    try:
        extra = read_json(d / "config.json", ModelFileError, "model configuration") \
            .get("extra") or {}
    except (ModelFileError, AttributeError):
        return None
    return extra if extra.get("format") == LEGACY_TRAINING_FORMAT else None


def read_contract(path: str | Path) -> CheckpointContract:
    """The contract of a checkpoint, without loading the weights.

    Raises
    ------
    ContractError
        No contract, an unknown version, or an invalid field.
    """
    d = find_checkpoint_dir(path)
    cpath = d / CONTRACT_NAME
    if cpath.is_file():
        data = read_json(cpath, ContractError, "checkpoint contract")
        return CheckpointContract.from_dict(data, str(cpath))
    config = read_config(d)
    extra = config.get("extra") or {}
    if extra.get("format") == LEGACY_TRAINING_FORMAT:
        return CheckpointContract.from_dict(_convert_training_v1(config), str(d / "config.json"))
    if (d / "decoder.json").is_file():
        return CheckpointContract.from_dict(_convert_decoder_v1(config), str(d / "config.json"))
    raise ContractError(f"{d}: a model folder without {CONTRACT_NAME} (not a training "
                        "checkpoint; save one with physioaffect.models.save_checkpoint)")


def load_checkpoint(path: str | Path, map_location: str = "cpu"):
    """Load a checkpoint: the network (eval mode) and its validated contract.

    Parameters
    ----------
    path : str or Path
        A checkpoint folder or a training fold folder holding ``checkpoint/``.
    map_location : str
        Device of the network.

    Returns
    -------
    model : torch.nn.Module
    contract : CheckpointContract

    Raises
    ------
    ContractError, ModelFileError
        Missing files, unknown contract version, invalid fields, or a network whose shape
        disagrees with its contract.
    """
    d = find_checkpoint_dir(path)
    contract = read_contract(d)
    model = load_model(d, map_location=map_location)
    contract.check_model(model, str(d / CONTRACT_NAME))
    return model, contract


# ------------------------------------------------------------------------------ legacy
def _convert_training_v1(config: dict) -> dict:
    """Contract fields from a pre-contract training checkpoint (``extra`` of config.json)."""
    m = dict(config.get("extra") or {})
    graph = m.get("graph") or {}
    per = m.get("peripheral") or {}
    face = m.get("face") or {}
    ts = m.get("target_scaling")
    norm = dict(m.get("normalisation") or {})
    out = {
        "contract_version": 1, "model": config.get("model"),
        "modalities": m.get("modalities"), "task": m.get("task"), "target": m.get("target"),
        "class_names": m.get("class_names") or [], "channels": m.get("channels"),
        "sfreq": m.get("sfreq"), "pipeline": m.get("pipeline"), "window_s": m.get("window_s"),
        "step_s": m.get("step_s"), "n_times": m.get("n_times"),
        "input_kind": m.get("input"),
        "input_params": {"sub_window_s": graph.get("sub_window_s"),
                         "sub_overlap": graph.get("sub_overlap"), "bands": graph.get("bands")}
        if m.get("input") == "graphs" else {},
        "normalisation": norm, "peripheral_signals": per.get("signals") or [],
        "peripheral_features": per.get("feature_names") or [],
        "face_features": face.get("feature_names") or [],
        "face_min_valid": face.get("min_valid", 0.5),
        "target_scaling": None if not ts else [ts.get("mean"), ts.get("std")],
        "label_rule": m.get("label_rule") or "unknown", "trained_as": m.get("model_name") or
        config.get("model"), "label": m.get("label") or m.get("model_name") or config.get("model"),
        "provenance": {k: m.get(k) for k in ("dataset", "fold", "train_subjects", "val_subjects",
                                             "test_subjects", "seed", "best_epoch")},
        "package_version": "0.1.0 (converted)",
    }
    if "peripheral" not in (out["modalities"] or []):
        for k in ("peripheral_signals", "peripheral_features"):
            out.pop(k)
    if "face" not in (out["modalities"] or []):
        out.pop("face_features")
        out.pop("face_min_valid")
    return out


def _convert_decoder_v1(config: dict) -> dict:
    """Contract fields from a pre-contract decoder bundle (``decoder.json`` beside it)."""
    m = dict(config.get("extra") or {})
    kwargs = config.get("kwargs") or {}
    channels = m.get("ch_names") or m.get("channels") or []
    task = m.get("task") or ("classification" if m.get("classes") else "regression")
    modalities = m.get("modalities") or ["eeg"]
    return {
        "contract_version": 1, "model": config.get("model"), "modalities": modalities,
        "task": task, "target": m.get("target", "arousal"),
        "class_names": m.get("classes") or [] if task == "classification" else [],
        "channels": channels, "sfreq": m.get("sfreq") or kwargs.get("sfreq"),
        "pipeline": m.get("pipeline"), "n_times": m.get("n_times") or kwargs.get("n_times"),
        "window_s": (m.get("n_times") or kwargs.get("n_times") or 0)
        / float(kwargs.get("sfreq") or m.get("sfreq") or 1),
        "input_kind": "raw", "window_norm": m.get("window_norm", "none"),
        "normalisation": {"eeg": Standardisation.identity((1,), (len(channels),)).to_dict()},
        "target_scaling": None if task == "classification" else [0.0, 1.0],
        "label_rule": "unknown", "trained_as": config.get("model"),
        "label": config.get("model"), "package_version": "0.1.0 (converted)",
    }
