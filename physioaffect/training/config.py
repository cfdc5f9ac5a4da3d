"""Training configuration, composed of the parts that own their settings.

:class:`TrainConfig` holds what decides a run's numbers: the data (dataset, folder, target,
label rule, channels), the network (model, hyper-parameters, modalities), the protocol, the seed,
and one part per concern, each validated by the code that owns it:

=================  ============================================================================
``windows``        :class:`WindowSettings` (length and hop; checked as a dataset window config)
``preprocessing``  :class:`~physioaffect.preprocessing.PipelineConfig` (the preprocessing stage)
``inputs``         settings per network input kind (:mod:`physioaffect.models.inputs`)
``optim``          :class:`OptimSettings` (epochs, batch, learning rate, early stopping)
``adaptation``     :class:`AdaptationSettings` (per-subject normalisation; transductive or not)
``quality``        :class:`QualitySettings` (low-quality windows: mask, drop or keep)
``compute``        :class:`ComputeSettings` (device, mixed precision, threads)
``executor``       :class:`ExecutorSettings` (serial or Ray, resources, retries, data transfer)
``search``         :class:`SearchSettings` (nested model selection on validation subjects)
``face``           :class:`FaceSettings` (face folder, offset, frame rate, validity)
``sim``            :class:`~physioaffect.sources.sim.SimConfig` (the simulated dataset)
=================  ============================================================================

:meth:`TrainConfig.resolve` fills the ``"auto"`` fields and validates every part *before* any data
is read, so that an unknown model, a pipeline field training cannot honour or a bad window fails in
a second with a one-line :class:`TrainingError` naming the field. A config is read from and written
to YAML, TOML or JSON (:func:`load_config`, :meth:`TrainConfig.save`) as nested sections; flat
configs of version 1 (``epochs: 20`` at the top) are converted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physioaffect.errors import PhysioAffectError
from physioaffect.preprocessing.alignment import ADAPTATION_METHODS
from physioaffect.preprocessing.pipeline import PipelineConfig
from physioaffect.sources.sim.model import SimConfig

__all__ = ["TrainConfig", "TrainingError", "load_config", "DATASETS", "PROTOCOL_ALIASES",
           "default_label_rule", "WindowSettings", "OptimSettings", "AdaptationSettings",
           "QualitySettings",
           "ComputeSettings", "ExecutorSettings", "SearchSettings", "FaceSettings",
           "apply_setting", "default_pipeline", "default_sim"]


class TrainingError(PhysioAffectError, ValueError):
    """Bad training input (one-line message; the CLI prints it without a traceback)."""


DATASETS = ("deap", "seed", "dreamer", "faced", "thu-ep", "sessions", "sim")
#: CLI protocol names -> :func:`physioaffect.datasets.protocols.get_protocol` names.
PROTOCOL_ALIASES = {"loso": "loso", "lkso": "lkso", "lso": "lso", "seed-9-6": "seed-9-6",
                    "within": "within-kfold", "within-kfold": "within-kfold"}
MODALITY_NAMES = ("eeg", "peripheral", "face")
#: Datasets whose face features come from recorded Face streams (no face folder needed).
FACE_FROM_STREAMS = ("sessions", "sim")
_DEFAULT_RULE = {"deap": "gt5", "dreamer": "gt3", "seed": "seed3", "faced": "emt_gt3",
                 "thu-ep": "emt_gt3", "sessions": "gt5", "sim": "gt5"}
#: EmT node-feature bands per dataset when the config names none (the official scripts').
_DEFAULT_GRAPH_BANDS = {"seed": "emt_seed"}
CONFIG_VERSION = 2
#: Largest training config file read (a config holds settings: ours are about 2 KB).
MAX_CONFIG_BYTES = 1 << 20


def default_label_rule(dataset: str, target: str) -> str:
    """The label rule used when the config says ``auto`` (stated in every report)."""
    if dataset == "seed" and target != "emotion":
        return "gt5"
    return _DEFAULT_RULE.get(dataset, "gt5")


def default_pipeline() -> PipelineConfig:
    """Training's default EEG preprocessing: causal 1-45 Hz band-pass, nothing else (live-able)."""
    return PipelineConfig(l_freq=1.0, h_freq=45.0, notch_freq=None, phase="causal",
                          reference="none", detect_bads=False, interpolate_bads=False)


def default_sim() -> SimConfig:
    """The simulated dataset written when ``dataset="sim"`` and the folder does not exist."""
    return SimConfig(subjects=12, eeg_channels=32, rate=128, n_trials=16, stimulus_seconds=30.0,
                     rest_seconds=10.0, baseline_seconds=10.0)


def _finite(name: str, v: Any, lo: float | None = None, hi: float | None = None,
            strict_lo: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise TrainingError(f"{name}: expected a finite number, got {v!r}")
    if lo is not None and (v < lo or (strict_lo and v == lo)):
        raise TrainingError(f"{name}: expected a number {'>' if strict_lo else '>='} {lo:g}, "
                            f"got {v!r}")
    if hi is not None and v > hi:
        raise TrainingError(f"{name}: expected a number <= {hi:g}, got {v!r}")
    return float(v)


def _int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise TrainingError(f"{name}: expected an integer >= {lo}, got {v!r}")
    return v


# ------------------------------------------------------------------------------------ parts
@dataclass
class WindowSettings:
    """Window length and hop in seconds (``step_s`` None: windows do not overlap).

    ``window_s`` None: the segment length of the model preset if one is chosen, else 4 s.
    """

    window_s: float | None = None
    step_s: float | None = None

    DEFAULT_S = 4.0

    def validate(self) -> None:
        from physioaffect.datasets.base import DatasetError
        from physioaffect.datasets.windows import WindowConfig

        _finite("windows.window_s", self.window_s, 0, strict_lo=True)
        if self.step_s is not None:
            _finite("windows.step_s", self.step_s, 0, strict_lo=True)
        try:
            WindowConfig(window_s=self.window_s, step_s=self.step_s, features="raw")
        except DatasetError as err:
            raise TrainingError(f"windows: {err}") from None


@dataclass
class OptimSettings:
    """Optimisation of the network.

    Attributes
    ----------
    epochs : int or None
        Maximum epochs per fold; None (default): enough for ``min_steps`` optimiser steps, at
        least 30 and at most 200 (:meth:`epochs_for`).
    min_steps : int
        With ``epochs`` None: optimiser steps a fold gets at least. A small dataset has few
        batches per epoch (the README example: 7), and the convolutional networks
        underfit in 30 epochs of them; a large one reaches this in its first epochs.
    batch_size : int
    lr, weight_decay : float
        AdamW learning rate and weight decay.
    label_smoothing : float
        Cross-entropy label smoothing (0-1).
    patience : int
        Early stopping: epochs without a better validation loss (validation subjects only)
        before a fold stops; 0 disables it.
    augment : {"ft_surrogate_channels", "ft_surrogate", "none"}
        Augmentation of raw EEG training batches (graph inputs are not augmented):
        Fourier-transform surrogates (random phases, same power spectra;
        :func:`physioaffect.training.augment.fourier_surrogate`), so that a network cannot learn
        the training trials' waveforms by heart. ``ft_surrogate_channels`` draws the phases per
        channel (the phase relations between channels, a fingerprint of a trial, change too);
        ``ft_surrogate`` shares them across channels.
    augment_prob : float
        Probability that a training window is augmented in an epoch (0-1).
    precise_bn : bool
        Recompute every batch norm's statistics with the current weights on up to 256 training
        windows (dropout off) before each validation
        (:func:`physioaffect.training.engine.recalibrate_batchnorm`), instead of evaluating
        with running averages that dropout in front of a batch norm has inflated.
    """

    epochs: int | None = None
    min_steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    patience: int = 8
    augment: str = "ft_surrogate_channels"
    augment_prob: float = 1.0
    precise_bn: bool = True

    def validate(self) -> None:
        from physioaffect.training.augment import AUGMENTATIONS

        if self.epochs is not None:
            _int("optim.epochs", self.epochs, 1)
        _int("optim.min_steps", self.min_steps, 0)
        _int("optim.batch_size", self.batch_size, 2)
        _finite("optim.lr", self.lr, 0, 10, strict_lo=True)
        _finite("optim.weight_decay", self.weight_decay, 0, 10)
        _finite("optim.label_smoothing", self.label_smoothing, 0, 1)
        _int("optim.patience", self.patience, 0)
        if self.augment not in AUGMENTATIONS:
            raise TrainingError(f"optim.augment: expected one of {', '.join(AUGMENTATIONS)}, "
                                f"got {self.augment!r}")
        _finite("optim.augment_prob", self.augment_prob, 0, 1)
        if not isinstance(self.precise_bn, bool):
            raise TrainingError(f"optim.precise_bn: expected true or false, got "
                                f"{self.precise_bn!r}")

    #: Bounds of the automatic epoch budget (``epochs: null``).
    AUTO_EPOCHS = (30, 200)

    def epochs_for(self, n_train: int) -> int:
        """Epoch budget of a fold with ``n_train`` training windows (early stopping may end
        it sooner): ``epochs`` if set, else enough for ``min_steps`` steps within
        :attr:`AUTO_EPOCHS`."""
        if self.epochs is not None:
            return int(self.epochs)
        steps = max(1, math.ceil(max(int(n_train), 1) / self.batch_size))
        lo, hi = self.AUTO_EPOCHS
        return int(min(hi, max(lo, math.ceil(self.min_steps / steps))))


@dataclass
class AdaptationSettings:
    """How each subject's inputs are adapted before the network and the baselines.

    Between subjects, EEG differs more in amplitude and spatial covariance than between a
    subject's emotional states; the methods remove those differences with statistics of each
    subject's *own unlabelled* windows (:mod:`physioaffect.preprocessing.alignment`). A live
    decoder fits them on the new subject's first ``calibration_s`` and, when ``online``, keeps
    updating them as the session goes on; every report scores test subjects that way (the live
    protocol, :mod:`physioaffect.training.live`), with the whole-session (transductive) score
    beside it.

    Attributes
    ----------
    method : {"auto", "none", "subject_zscore", "euclidean"}
        ``none``: inputs normalised with training-subject statistics only (inductive).
        ``subject_zscore``: each subject's inputs z-scored with its own statistics (per channel
        of raw EEG, per channel and band of log band power for graph inputs, per feature for
        DE, peripheral and face features). ``euclidean``: raw EEG Euclidean-aligned per subject
        (He & Wu 2019), features z-scored per subject. ``auto``: chosen per fold by evidence:
        no adaptation and the input's method (``euclidean`` for raw EEG, ``subject_zscore``
        otherwise) are weighed with the live
        protocol on the fold's validation subjects (never its test subjects; see
        ``evidence``), and the simplest within one standard error of the best is kept;
        without validation subjects, ``none``.
    evidence : {"baseline", "network"}
        What ``auto`` weighs none against the input's method with. ``baseline`` (default): a
        logistic regression adapted the way the network would be (DE of Euclidean-aligned
        windows for raw EEG, per-subject z-scored DE for graph inputs;
        :mod:`physioaffect.training.evidence`), fitted on the training subjects with and
        without the adaptation and scored with the live protocol on the validation subjects
        (one network per fold). ``network``: the network itself, trained both ways (two networks
        per fold, twice the time). Either way the network's ``offline``/``online`` variant is
        then chosen with the network on the validation subjects.
    online : bool or None
        Whether the live reference keeps updating after the calibration. None: chosen on the
        validation subjects (online where there are none).
    half_life_s : float or None
        Forgetting of the online reference: a window ``d`` s old weighs ``2 ** (-d /
        half_life_s)``. None: every window since the start weighs the same.
    transductive : bool or None
        ``False`` forbids using a test subject's data at all (only ``none`` is allowed);
        ``True`` or None allow the methods above. Labels of test subjects are never used.
    calibration_s : float
        Seconds of a new subject's stream the live decoder collects (and adapts on) before its
        first decision; the live protocol scores the windows after it.
    """

    method: str = "auto"
    evidence: str = "baseline"
    online: bool | None = None
    half_life_s: float | None = None
    transductive: bool | None = None
    calibration_s: float = 60.0

    #: ``auto`` and the methods of :mod:`physioaffect.preprocessing.alignment`.
    METHODS = ("auto", *ADAPTATION_METHODS)

    @property
    def uses_test_subject(self) -> bool:
        """Whether the test subject's own (unlabelled) data may be used."""
        return self.method != "none"

    def validate(self) -> None:
        if self.method not in self.METHODS:
            raise TrainingError(f"adaptation.method: expected one of {', '.join(self.METHODS)}, "
                                f"got {self.method!r}")
        if self.evidence not in ("baseline", "network"):
            raise TrainingError(f"adaptation.evidence: expected baseline or network, got "
                                f"{self.evidence!r}")
        for name in ("transductive", "online"):
            if getattr(self, name) not in (None, True, False):
                raise TrainingError(f"adaptation.{name}: expected true, false or null, got "
                                    f"{getattr(self, name)!r}")
        if self.transductive is False and self.method not in ("none", "auto"):
            raise TrainingError(
                f"adaptation.method: {self.method} fits on each test subject's own unlabelled "
                "windows, which adaptation.transductive: false forbids; use method none, or "
                "allow it with transductive: true")
        _finite("adaptation.calibration_s", self.calibration_s, 0, strict_lo=True)
        if self.half_life_s is not None:
            _finite("adaptation.half_life_s", self.half_life_s, 0, strict_lo=True)

    def resolved(self, input_kind: str | None) -> AdaptationSettings:
        """Checked against a network whose EEG input is ``input_kind``; ``auto`` under
        ``transductive: false`` is ``none``."""
        method = self.method
        if method == "auto" and self.transductive is False:
            method = "none"
        if method == "euclidean" and input_kind not in ("raw", None):
            raise TrainingError(f"adaptation.method: euclidean aligns raw EEG windows, but this "
                                f"network takes {input_kind} inputs (use subject_zscore)")
        return dataclasses.replace(self, method=method)

    def candidate(self, input_kind: str | None) -> str:
        """The adaptation method tried (or used) for a network taking ``input_kind``."""
        if self.method not in ("auto", "none"):
            return self.method
        return "euclidean" if input_kind == "raw" else "subject_zscore"


@dataclass
class QualitySettings:
    """What training does with windows of low signal quality.

    Every window gets a quality score per signal (0-1: ``EEG`` is the fraction of good channels,
    each peripheral signal the published indices of :mod:`physioaffect.features.quality`); the
    report counts the windows below ``threshold`` per subject and signal.

    Attributes
    ----------
    threshold : float
        Below it a window's signal counts as low quality (0.5: it failed a criterion).
    action : {"mask", "drop", "keep"}
        ``mask``: peripheral features of a low-quality signal are missing (the fusion network
        masks its branch when no peripheral signal is left; baselines impute the training
        mean); EEG windows are kept and counted. ``drop``: windows where the EEG or any used
        peripheral signal is low quality leave training, validation and test. ``keep``: used
        as they are, only counted.
    """

    threshold: float = 0.5
    action: str = "mask"

    ACTIONS = ("mask", "drop", "keep")

    def validate(self) -> None:
        _finite("quality.threshold", self.threshold, 0, 1)
        if self.action not in self.ACTIONS:
            raise TrainingError(f"quality.action: expected one of {', '.join(self.ACTIONS)}, "
                                f"got {self.action!r}")


@dataclass
class ComputeSettings:
    """Where and how a fold's network runs.

    Attributes
    ----------
    device : {"auto", "cpu", "cuda"}
    amp : bool
        bf16 autocast on CUDA.
    compile : bool
        ``torch.compile`` the network (slow to start).
    threads : int
        Torch intra-op threads per fold. 0: as many as cores are free of other processes'
        work, checked every epoch (:mod:`physioaffect.compute`), so that training
        shares a busy machine in proportion. A number > 0 is used as given: serial and Ray
        runs with the same number give the same numbers.
    """

    device: str = "auto"
    amp: bool = True
    compile: bool = False
    threads: int = 0

    def validate(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainingError(f"compute.device: expected auto, cpu or cuda, got {self.device!r}")
        _int("compute.threads", self.threads, 0)


@dataclass
class ExecutorSettings:
    """Where the folds run.

    Attributes
    ----------
    kind : {"serial", "ray"}
    address : str or None
        Ray cluster address (``HOST:PORT`` of a head node started with ``ray start --head``,
        ``auto`` for the cluster this machine is a node of); None: a local Ray instance.
    cpus_per_fold : float
        CPUs each Ray fold task reserves.
    gpus_per_fold : float or None
        GPUs each Ray fold task reserves. None: one when the cluster has GPUs and
        ``compute.device`` is not ``cpu``, else none. A fraction packs several folds on a GPU.
    max_retries : int
        How often Ray reruns a fold (or search trial) whose worker process or node died; the
        rerun continues from the fold's last epoch checkpoint that reached the driver. Errors of
        the fold itself (bad data, a bug) are not retried.
    data : {"object_store", "shared_path"}
        How the prepared windows reach the workers. ``object_store``: through Ray's object
        store, each fold only the windows it uses (training, validation and test subjects)
        where that sends less than one shared copy; no disk is shared. ``shared_path``: the
        driver writes the prepared windows once into ``cache_dir/shared/`` (read-only ``.npy``
        files) and every task memory-maps them; ``cache_dir`` must then be a folder every node
        reads at the same path (a network file system).
    """

    kind: str = "serial"
    address: str | None = None
    cpus_per_fold: float = 1.0
    gpus_per_fold: float | None = None
    max_retries: int = 2
    data: str = "object_store"

    DATA_MODES = ("object_store", "shared_path")

    def validate(self) -> None:
        if self.kind not in ("serial", "ray"):
            raise TrainingError(f"executor.kind: expected serial or ray, got {self.kind!r}")
        if self.address is not None and (not isinstance(self.address, str)
                                         or not self.address.strip()):
            raise TrainingError(f"executor.address: expected HOST:PORT of a Ray head node, "
                                f"got {self.address!r}")
        _finite("executor.cpus_per_fold", self.cpus_per_fold, 0, strict_lo=True)
        if self.gpus_per_fold is not None:
            _finite("executor.gpus_per_fold", self.gpus_per_fold, 0)
        _int("executor.max_retries", self.max_retries, 0)
        if self.data not in self.DATA_MODES:
            raise TrainingError(f"executor.data: expected one of {', '.join(self.DATA_MODES)}, "
                                f"got {self.data!r}")


@dataclass
class SearchSettings:
    """Nested model selection: hyper-parameters chosen inside each outer fold, on validation
    subjects only (the outer fold's test subjects are never seen by the search).

    Every setting of the grid ``space`` is trained on the inner folds of each outer fold and
    scored on their validation subjects; the setting with the best mean score is then trained
    on the outer fold as usual and tested on its test subjects. With the Ray executor the
    trials run as Ray tasks; with the serial executor in-process, by the same code.

    Attributes
    ----------
    space : dict
        Hyper-parameter -> list of values; the grid is their product. Names are
        ``optim.<field>`` (``optim.lr``, ``optim.weight_decay`` ...) or
        ``model_kwargs.<argument>`` (an argument of the model's constructor, e.g.
        ``model_kwargs.dropout``, ``model_kwargs.depth``). Empty: no search.
    inner_folds : int
        1: train on the outer fold's training subjects and score on its validation subjects.
        k >= 2: k folds over the outer fold's training and validation subjects (each subject
        scores once); the score is the mean over the inner folds.
    metric : {"val_loss", "val_accuracy"}
        Score of a trial: validation loss (lower is better) or accuracy (classification;
        higher is better) at the epoch early stopping keeps.
    """

    space: dict = field(default_factory=dict)
    inner_folds: int = 1
    metric: str = "val_loss"

    METRICS = ("val_loss", "val_accuracy")
    #: Constructor arguments that come from the data, not from the search.
    DATA_ARGUMENTS = ("n_chans", "n_outputs", "n_times", "sfreq")

    def validate(self, model: str | None = None) -> None:
        """Check the grid's names (against ``model``'s constructor) and values."""
        if not isinstance(self.space, dict):
            raise TrainingError(f"search.space: expected a mapping of hyper-parameter -> list of "
                                f"values, got {self.space!r}")
        _int("search.inner_folds", self.inner_folds, 1)
        if self.metric not in self.METRICS:
            raise TrainingError(f"search.metric: expected one of {', '.join(self.METRICS)}, "
                                f"got {self.metric!r}")
        known = self.known_names(model)
        for name, values in self.space.items():
            if name not in known:
                raise TrainingError(f"search.space: unknown hyper-parameter {name!r} (known: "
                                    f"{', '.join(known)})")
            if not isinstance(values, list | tuple) or not values:
                raise TrainingError(f"search.space.{name}: expected a non-empty list of values, "
                                    f"got {values!r}")
            if name.startswith("optim."):  # model arguments are checked by building the network
                for v in values:
                    try:
                        dataclasses.replace(OptimSettings(), **{name[6:]: v}).validate()
                    except TrainingError as err:
                        raise TrainingError(f"search.space.{name}: "
                                            f"{str(err).split(': ', 1)[-1]}") from None

    def known_names(self, model: str | None) -> list[str]:
        """Names the grid may use: optimiser fields and the model's constructor arguments."""
        import inspect

        names = [f"optim.{f.name}" for f in dataclasses.fields(OptimSettings)]
        if model is None:
            return names
        from physioaffect.models.registry import REGISTRY

        params = inspect.signature(REGISTRY[model].constructor).parameters.values()
        return names + [f"model_kwargs.{p.name}" for p in params
                        if p.name not in self.DATA_ARGUMENTS
                        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def settings(self) -> list[dict[str, Any]]:
        """Every setting of the grid, in order (the last name varies fastest)."""
        import itertools

        names = list(self.space)
        return [dict(zip(names, combo, strict=True))
                for combo in itertools.product(*(list(self.space[n]) for n in names))]


def apply_setting(cfg_dict: dict[str, Any], setting: dict[str, Any]) -> dict[str, Any]:
    """A config dict with a search setting's values in place (``optim.lr`` ...)."""
    out = json.loads(json.dumps(cfg_dict))
    for name, value in setting.items():
        section, key = name.split(".", 1)
        out[section] = {**(out.get(section) or {}), key: value}
    return out


@dataclass
class FaceSettings:
    """Face features as a modality.

    Attributes
    ----------
    folder : str or None
        Folder of per-trial face videos or face-feature CSVs (OpenFace, py-feat, physioaffect;
        see :mod:`physioaffect.datasets.face`), e.g. DEAP's ``face_video``.
    offset_s : float
        Time of each face file's first frame after the stimulus onset, s.
    fps : float or None
        Frame rate behind py-feat CSVs (they store frame numbers only).
    trial_order : str or None
        DEAP's ``participant_ratings.csv`` (face videos are in presentation order).
    min_valid : float
        Least fraction of frames with a face for a window to have face features; windows below
        it (and trials without face data) enter the network with the face modality masked.
    """

    folder: str | None = None
    offset_s: float = 0.0
    fps: float | None = None
    trial_order: str | None = None
    min_valid: float = 0.5

    def validate(self) -> None:
        _finite("face.offset_s", self.offset_s)
        if self.fps is not None:
            _finite("face.fps", self.fps, 0, 1000, strict_lo=True)
        _finite("face.min_valid", self.min_valid, 0, 1)

    def reader_options(self, cache_dir: str | None) -> dict[str, Any]:
        """Keyword arguments of a dataset reader's ``face_options``."""
        return {"offset_s": self.offset_s, "fps": self.fps,
                "cache_dir": str(Path(cache_dir) / "face") if cache_dir else None}


_PARTS: dict[str, type] = {"windows": WindowSettings, "optim": OptimSettings,
                           "adaptation": AdaptationSettings, "quality": QualitySettings,
                           "compute": ComputeSettings,
                           "executor": ExecutorSettings, "search": SearchSettings,
                           "face": FaceSettings}

#: Training refuses these pipeline fields with a reason (it cannot honour them).
def _pipeline_refusals(p: PipelineConfig) -> list[str]:
    default = PipelineConfig()
    out = []
    if p.ica_eog:
        out.append("preprocessing.ica_eog: training cannot honour it (an ICA is fitted per "
                   "recording and could not be reproduced on a new subject or live); clean the "
                   "data first or set ica_eog: false")
    if p.baseline != "none":
        out.append("preprocessing.baseline: training windows come from the stimulus period; "
                   "use adaptation for per-subject normalisation, or set baseline: none")
    if p.reject_uv is not None:
        out.append("preprocessing.reject_uv: training does not reject windows by amplitude "
                   "(every window is kept and its quality reported); set reject_uv: null")
    for name in ("epoch_tmin", "epoch_tmax"):
        if getattr(p, name) != getattr(default, name):
            out.append(f"preprocessing.{name}: it cuts marker epochs (make_epochs); training "
                       "windows are set by windows.window_s and windows.step_s")
    return out


# ------------------------------------------------------------------------------------ config
@dataclass
class TrainConfig:
    """Everything that decides a training run.

    Attributes
    ----------
    dataset : {"deap", "seed", "dreamer", "sessions", "sim"}
        ``sim``: a folder of simulator session files (written there if it does not exist).
    root : str
        Dataset folder.
    model : str
        A registered network (:func:`physioaffect.models.list_models`). With ``modalities``
        other than ``["eeg"]`` the network is :class:`~physioaffect.models.MultimodalFusion`
        with this model as its EEG encoder.
    model_kwargs : dict
        Extra hyper-parameters of the network.
    preset : str or None
        A published configuration (:data:`physioaffect.models.PRESETS`, e.g. ``emt_faced``): its
        model, hyper-parameters (``model_kwargs`` override them), input settings (EmT's bands
        and sub-windows) and, unless ``windows.window_s`` is set, its segment length.
    modalities : list of str
        ``eeg``, ``peripheral``, ``face``. Face features come from recorded ``Face`` streams
        (own sessions; the simulator's with ``dataset="sim"``) or from ``face.folder``.
    protocol : str
        ``loso``, ``lkso``, ``lso``, ``seed-9-6``, ``within``; ``protocol_kwargs`` go to the
        protocol (e.g. ``{"k": 4}``, ``{"n_val_subjects": 2}``).
    target : str
        Rating column (``valence``, ``arousal``, ``dominance``, ``liking``, ``emotion``).
    label_rule : str
        Named rule of :mod:`physioaffect.datasets.labels` or ``auto`` (per dataset: DEAP and
        sessions ``gt5``, DREAMER ``gt3``, SEED ``seed3``). ``continuous`` means regression.
    channels : list of str or None
        EEG channels to keep, in this order (e.g. the channels DEAP shares with DREAMER).
    baselines : list of str
        ``majority``, ``logreg``, ``svm`` (fitted on training + validation windows of each fold).
    de_bands : str
        Bands of the differential-entropy features of the classical baselines.
    seed : int
        Master seed; fold ``i`` uses ``seed + 1000 * i``.
    cache_dir : str or None
        Window cache (default ``<root>/../physioaffect-cache``, next to the dataset).
    max_subjects : int
        Use only the first N subjects (0: all).
    windows, preprocessing, inputs, optim, adaptation, compute, executor, search, face, sim
        The parts (see the module docstring). ``inputs`` maps an input kind to its settings,
        e.g. ``{"graphs": {"sub_window_s": 2.0, "sub_overlap": 0.5, "bands": "emt7"}}``.
    """

    dataset: str = "sim"
    root: str = ""
    model: str = "emt"
    model_kwargs: dict = field(default_factory=dict)
    preset: str | None = None
    modalities: list = field(default_factory=lambda: ["eeg"])
    protocol: str = "loso"
    protocol_kwargs: dict = field(default_factory=dict)
    target: str = "arousal"
    label_rule: str = "auto"
    channels: list | None = None
    baselines: list = field(default_factory=lambda: ["majority", "logreg", "svm"])
    de_bands: str = "torcheeg4"
    seed: int = 0
    cache_dir: str | None = None
    max_subjects: int = 0
    windows: WindowSettings = field(default_factory=WindowSettings)
    preprocessing: PipelineConfig = field(default_factory=default_pipeline)
    inputs: dict = field(default_factory=dict)
    optim: OptimSettings = field(default_factory=OptimSettings)
    adaptation: AdaptationSettings = field(default_factory=AdaptationSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    face: FaceSettings = field(default_factory=FaceSettings)
    sim: SimConfig = field(default_factory=default_sim)
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        # parts may be given as plain dicts (TrainConfig(optim={"epochs": 5})): build them here,
        # so that every part is its owner's type from the start
        for key, cls in _PARTS.items():
            value = getattr(self, key)
            if not isinstance(value, cls):
                setattr(self, key, _part(cls, value, key))
        if not isinstance(self.preprocessing, PipelineConfig):
            self.preprocessing = _pipeline_part(self.preprocessing, "config")
        if not isinstance(self.sim, SimConfig):
            self.sim = _sim_part(self.sim, "config")

    # ------------------------------------------------------------------------------ resolve
    def resolve(self) -> TrainConfig:
        """Validate every part and fill ``auto`` fields; returns a new config (self unchanged).

        Raises
        ------
        TrainingError
            The first invalid field, named (``optim.lr: ...``, ``preprocessing.ica_eog: ...``).
        """
        from physioaffect.datasets.labels import RULES
        from physioaffect.models.registry import REGISTRY
        from physioaffect.safeload import check_plain

        c = dataclasses.replace(self)
        for f in dataclasses.fields(c):  # before anything walks them (json.dumps, copies)
            v = getattr(c, f.name)
            if isinstance(v, dict | list | tuple):
                check_plain(v, f.name, error=TrainingError)
        c.dataset = str(c.dataset).lower()
        if c.dataset not in DATASETS:
            raise TrainingError(f"dataset: unknown {c.dataset!r} (expected one of "
                                f"{', '.join(DATASETS)})")
        if not c.root:
            raise TrainingError("root: the dataset folder is required (--root PATH)")
        if c.preset is not None:
            c._apply_preset()
        if c.model not in REGISTRY:
            raise TrainingError(f"model: unknown {c.model!r} (expected one of "
                                f"{', '.join(REGISTRY)})")
        if c.protocol not in PROTOCOL_ALIASES:
            raise TrainingError(f"protocol: unknown {c.protocol!r} (expected one of "
                                f"{', '.join(PROTOCOL_ALIASES)})")
        if isinstance(c.modalities, str):
            c.modalities = [m.strip() for m in c.modalities.split(",") if m.strip()]
        bad = [m for m in c.modalities if m not in MODALITY_NAMES]
        if bad or not c.modalities:
            raise TrainingError(f"modalities: expected a non-empty subset of "
                                f"{', '.join(MODALITY_NAMES)}, got {c.modalities!r}")
        c.modalities = [m for m in MODALITY_NAMES if m in c.modalities]
        spec = REGISTRY[c.model]
        if self.multimodal and not spec.named_inputs and spec.fusion_encoder is None:
            encoders = [s.name for s in REGISTRY.values() if s.fusion_encoder]
            raise TrainingError(f"model: {c.model} cannot be the EEG encoder of a multimodal "
                                f"network (use {' or '.join(encoders)}, or model fusion)")
        for part in _PARTS:
            if part == "windows" and c.windows.window_s is None:
                continue  # filled below (preset segment or the default)
            if part == "search":
                c.search.validate(c.model)  # its names depend on the model
                continue
            getattr(c, part).validate()
        if not isinstance(c.preprocessing, PipelineConfig):
            raise TrainingError("preprocessing: expected a PipelineConfig")
        refused = _pipeline_refusals(c.preprocessing)
        if refused:
            raise TrainingError(refused[0])
        if not isinstance(c.sim, SimConfig):
            raise TrainingError("sim: expected a SimConfig")
        if c.windows.window_s is None:
            c.windows = dataclasses.replace(c.windows, window_s=WindowSettings.DEFAULT_S)
            c.windows.validate()
        kind = spec.eeg_input(dict(c.model_kwargs)) if "eeg" in c.modalities else None
        c.adaptation = c.adaptation.resolved(None if kind is None else kind.name)
        graphs = dict(c.inputs.get("graphs") or {}) if isinstance(c.inputs, dict) else {}
        if "bands" not in graphs and c.dataset in _DEFAULT_GRAPH_BANDS:
            c.inputs = {**c.inputs, "graphs": {**graphs, "bands": _DEFAULT_GRAPH_BANDS[c.dataset]}}
        c.inputs = c._resolved_inputs()
        if "face" in c.modalities and not c.face.folder and c.dataset not in FACE_FROM_STREAMS:
            raise TrainingError(f"modalities: face needs the {c.dataset} face data "
                                "(--face FOLDER of per-trial face videos or CSV files)")
        if c.label_rule == "auto":
            c.label_rule = default_label_rule(c.dataset, c.target)
        if c.label_rule not in RULES:
            raise TrainingError(f"label_rule: unknown {c.label_rule!r} (expected auto or one of "
                                f"{', '.join(RULES)})")
        if c.task not in spec.tasks:
            rule = "label_rule 'continuous'" if c.task == "classification" else \
                "a classification label rule"
            raise TrainingError(f"model {c.model} is trained for {', '.join(spec.tasks)} only: "
                                f"it needs {rule}")
        for b in c.baselines:
            if b not in ("majority", "logreg", "svm"):
                raise TrainingError(f"baselines: unknown {b!r} (expected majority, logreg, svm)")
        _int("seed", c.seed, 0)
        _int("max_subjects", c.max_subjects, 0)
        return c

    def _apply_preset(self) -> None:
        """Model, hyper-parameters, input settings and window of ``self.preset`` (in place)."""
        from physioaffect.models.registry import EMT_PRESET_BANDS, PRESETS

        if self.preset not in PRESETS:
            raise TrainingError(f"preset: unknown {self.preset!r} (expected one of "
                                f"{', '.join(PRESETS)})")
        name, kw = PRESETS[self.preset]
        kw = dict(kw)
        size = {k: kw.pop(k) for k in ("n_chans", "n_outputs", "n_times", "sfreq")}
        graph = {k: kw.pop(k) for k in ("sub_window_s", "sub_overlap") if k in kw}
        kw.pop("n_features", None)  # follows from the bands
        self.model = name
        self.model_kwargs = {**kw, **self.model_kwargs}
        if self.preset in EMT_PRESET_BANDS:  # the preset's graph inputs, as published
            given = dict(self.inputs.get("graphs") or {})
            preset_graph = {"sub_window_s": graph.get("sub_window_s", 2.0),
                            "sub_overlap": graph.get("sub_overlap", 0.75),
                            "bands": EMT_PRESET_BANDS.get(self.preset, "emt_faced")}
            self.inputs = {**self.inputs, "graphs": {**preset_graph, **given}}
        if self.windows.window_s is None:
            self.windows = dataclasses.replace(self.windows,
                                               window_s=size["n_times"] / size["sfreq"])

    def _resolved_inputs(self) -> dict[str, dict]:
        """Settings of every input kind, defaults filled; unknown kinds or keys refused."""
        from physioaffect.models import ModelConfigError
        from physioaffect.models.inputs import INPUT_KINDS

        if not isinstance(self.inputs, dict):
            raise TrainingError(f"inputs: expected a mapping of input kind -> settings, got "
                                f"{self.inputs!r}")
        unknown = sorted(set(self.inputs) - set(INPUT_KINDS))
        if unknown:
            raise TrainingError(f"inputs: unknown input kind(s) {', '.join(unknown)} (known: "
                                f"{', '.join(INPUT_KINDS)})")
        out = {}
        for name, kind in INPUT_KINDS.items():
            try:
                out[name] = kind.params(self.inputs.get(name) or {})
            except ModelConfigError as err:
                raise TrainingError(f"inputs.{name}: {err}") from None
        return out

    @property
    def multimodal(self) -> bool:
        """The network is one that takes named modalities: several modalities, or a model
        that takes them itself (the registry's ``named_inputs``, e.g. ``fusion``)."""
        from physioaffect.models.registry import REGISTRY

        spec = REGISTRY.get(self.model)
        return list(self.modalities) != ["eeg"] or bool(spec and spec.named_inputs)

    @property
    def task(self) -> str:
        """``classification`` or ``regression`` (label rule ``continuous``)."""
        return "regression" if self.label_rule == "continuous" else "classification"

    def pipeline(self) -> PipelineConfig:
        """The EEG preprocessing of this run."""
        return self.preprocessing

    # ------------------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (parts as sections); :meth:`from_dict` reads it back."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, PipelineConfig):
                v = v.to_dict()
            elif dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
            elif isinstance(v, dict | list):
                v = json.loads(json.dumps(v))
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        """Build from nested sections (or a version-1 flat config, converted).

        Raises
        ------
        TrainingError
            An unknown field, naming the section it was found in.
        """
        if not isinstance(data, dict):
            raise TrainingError(f"{where}: expected a mapping of config fields")
        data = dict(data)
        if _is_flat_v1(data):
            data = convert_v1(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainingError(f"{where}: unknown field(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(names))})")
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key in _PARTS:
                kw[key] = _part(_PARTS[key], value, f"{where}: {key}")
            elif key == "preprocessing":
                kw[key] = _pipeline_part(value, where)
            elif key == "sim":
                kw[key] = _sim_part(value, where)
            else:
                kw[key] = value
        return cls(**kw)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``config.yaml``, ``config.toml`` and ``config.json`` into ``directory``."""
        import tomli_w
        import yaml

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        paths = [d / "config.json", d / "config.yaml", d / "config.toml"]
        paths[0].write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        paths[1].write_text(yaml.safe_dump(data, sort_keys=True))
        # TOML has no null: leave None fields out (they come back as defaults, which are None).
        paths[2].write_text(tomli_w.dumps(_drop_none(data)))
        return paths


def _section(cls: type, value: Any, where: str) -> dict:
    """``value`` as a dict of ``cls`` fields; anything else, or an unknown field, refused."""
    if not isinstance(value, dict):
        raise TrainingError(f"{where}: expected a section of fields, got {value!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise TrainingError(f"{where}: unknown field(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(names))})")
    return value


def _part(cls: type, value: Any, where: str) -> Any:
    return value if isinstance(value, cls) else cls(**_section(cls, value, where))


def _pipeline_part(value: Any, where: str) -> PipelineConfig:
    if isinstance(value, PipelineConfig):
        return value
    from physioaffect.preprocessing.quality import SignalInputError

    if not isinstance(value, dict):
        raise TrainingError(f"{where}: preprocessing: expected a section of fields")
    # a partial section overrides training's default pipeline, field by field
    try:
        return PipelineConfig.from_dict({**default_pipeline().to_dict(), **value})
    except SignalInputError as err:
        raise TrainingError(f"{where}: preprocessing: {err}") from None


def _sim_part(value: Any, where: str) -> SimConfig:
    if isinstance(value, SimConfig):
        return value
    from physioaffect.sources.base import SourceError

    _section(SimConfig, value, f"{where}: sim")
    try:
        return dataclasses.replace(default_sim(), **value)
    except (SourceError, TypeError) as err:
        raise TrainingError(f"{where}: sim: {err}") from None


# ------------------------------------------------------------------------ version 1 (flat)
_V1_MOVES = {
    "window_s": ("windows", "window_s"), "step_s": ("windows", "step_s"),
    "epochs": ("optim", "epochs"), "batch_size": ("optim", "batch_size"), "lr": ("optim", "lr"),
    "weight_decay": ("optim", "weight_decay"), "label_smoothing": ("optim", "label_smoothing"),
    "patience": ("optim", "patience"), "device": ("compute", "device"),
    "amp": ("compute", "amp"), "compile": ("compute", "compile"),
    "threads": ("compute", "threads"), "executor": ("executor", "kind"),
    "ray_address": ("executor", "address"), "ray_cpus_per_fold": ("executor", "cpus_per_fold"),
    "face": ("face", "folder"), "face_offset_s": ("face", "offset_s"),
    "face_fps": ("face", "fps"), "face_trial_order": ("face", "trial_order"),
    "face_min_valid": ("face", "min_valid"), "sim_subjects": ("sim", "subjects"),
    "sim_trials": ("sim", "n_trials"), "sim_seconds": ("sim", "stimulus_seconds"),
    "sim_channels": ("sim", "eeg_channels"), "sim_rate": ("sim", "rate"),
    "graph_sub_window_s": ("inputs.graphs", "sub_window_s"),
    "graph_sub_overlap": ("inputs.graphs", "sub_overlap"),
    "graph_bands": ("inputs.graphs", "bands"),
}


def _is_flat_v1(data: dict) -> bool:
    if data.get("version") == 1:
        return True
    return any(k in data and not isinstance(data[k], dict) for k in _V1_MOVES
               if k not in ("face",)) or isinstance(data.get("face"), str)


def convert_v1(data: dict) -> dict:
    """A version-1 (flat) config as version-2 sections (run folders written before 2 resume)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "version":
            continue
        if key not in _V1_MOVES:
            out[key] = value
            continue
        section, name = _V1_MOVES[key]
        if section.startswith("inputs."):
            out.setdefault("inputs", {}).setdefault(section.split(".", 1)[1], {})[name] = value
        else:
            if value is None and section in ("face",) and name == "folder":
                continue
            out.setdefault(section, {})[name] = value
    if "sim" in out:  # version 1 simulated rest and baseline as long as nothing: 10 s each
        out["sim"] = {**out["sim"]}
    out["version"] = CONFIG_VERSION
    return out


def _drop_none(d: dict) -> dict:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON config file into a dict of :class:`TrainConfig` fields.

    The file is read within bounds (:mod:`physioaffect.safeload`): at most
    :data:`MAX_CONFIG_BYTES`, UTF-8, nested at most 64 levels, YAML aliases that expand to at
    most 200,000 values and never refer to themselves. Anything else is one
    :class:`TrainingError` naming the file, raised before a run folder exists.
    """
    from physioaffect.safeload import load_structured

    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p}: config file not found")
    data = load_structured(p, max_bytes=MAX_CONFIG_BYTES, error=TrainingError,
                           what="training config")
    if data is None:  # an empty YAML document
        data = {}
    if not isinstance(data, dict):
        raise TrainingError(f"{p}: expected a mapping of config fields")
    if _is_flat_v1(data):
        data = convert_v1(data)
    TrainConfig.from_dict(data, where=str(p))  # unknown fields fail here, naming the file
    return data
