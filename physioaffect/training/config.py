"""Training configuration: one dataclass, resolved once, saved beside every run for reruns.

:class:`TrainConfig` holds everything that decides a run's numbers (data, windows,
preprocessing, model, protocol, optimiser, seeds). :meth:`TrainConfig.resolve` fills the
``"auto"`` fields (label rule per dataset, device) and validates names *before* any data is read,
so that an unknown model, target or protocol fails in a second with a one-line
:class:`TrainingError`. A config is read from and written to YAML, TOML or JSON
(:func:`load_config`, :meth:`TrainConfig.save`); the run folder holds ``config.yaml``,
``config.toml`` and ``config.json`` of the resolved config.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physioaffect.errors import PhysioAffectError

__all__ = ["TrainConfig", "TrainingError", "load_config", "DATASETS", "PROTOCOL_ALIASES",
           "MODEL_INPUTS", "default_label_rule"]


class TrainingError(PhysioAffectError, ValueError):
    """Bad training input (one-line message; the CLI prints it without a traceback)."""


DATASETS = ("deap", "seed", "dreamer", "sessions", "sim")
#: CLI protocol names -> :func:`physioaffect.datasets.protocols.get_protocol` names.
PROTOCOL_ALIASES = {"loso": "loso", "lkso": "lkso", "lso": "lso", "seed-9-6": "seed-9-6",
                    "within": "within-kfold", "within-kfold": "within-kfold"}
#: Input layout of each registered network: raw EEG windows or EmT graph sequences.
MODEL_INPUTS = {"eeg_deformer": "raw", "eegnet": "raw", "shallow_convnet": "raw",
                "emt": "graphs", "emt_regression": "graphs", "fusion": "fusion"}
MODALITY_NAMES = ("eeg", "peripheral", "face")
#: Datasets whose face features come from recorded Face streams (no face folder needed).
FACE_FROM_STREAMS = ("sessions", "sim")
_DEFAULT_RULE = {"deap": "gt5", "dreamer": "gt3", "seed": "seed3", "sessions": "gt5", "sim": "gt5"}


def default_label_rule(dataset: str, target: str) -> str:
    """The label rule used when the config says ``auto`` (stated in every report)."""
    if dataset == "seed" and target != "emotion":
        return "gt5"
    return _DEFAULT_RULE.get(dataset, "gt5")


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
        Registered network (``eeg_deformer``, ``emt``, ``eegnet``, ``shallow_convnet``,
        ``emt_regression``, ``fusion``). With ``modalities`` other than ``["eeg"]`` the network
        is :class:`~physioaffect.models.MultimodalFusion` with this model as its EEG encoder.
    protocol : str
        ``loso``, ``lkso``, ``lso``, ``seed-9-6``, ``within``; ``protocol_kwargs`` go to the
        protocol (e.g. ``{"k": 4}``, ``{"n_val_subjects": 2}``).
    target : str
        Rating column (``valence``, ``arousal``, ``dominance``, ``liking``, ``emotion``).
    label_rule : str
        Named rule of :mod:`physioaffect.datasets.labels` or ``auto`` (per dataset: DEAP and
        sessions ``gt5``, DREAMER ``gt3``, SEED ``seed3``). ``continuous`` means regression.
    modalities : list of str
        ``eeg``, ``peripheral``, ``face``. Face features come from recorded ``Face`` streams
        (own sessions; the simulator's with ``dataset="sim"``) or from the ``face`` folder.
    face : str or None
        Folder of per-trial face videos or face-feature CSVs (OpenFace, py-feat, physioaffect;
        see :mod:`physioaffect.datasets.face`), e.g. DEAP's ``face_video``.
    face_offset_s : float
        Time of each face file's first frame after the stimulus onset, s.
    face_fps : float or None
        Frame rate behind py-feat CSVs (they store frame numbers only).
    face_trial_order : str or None
        DEAP's ``participant_ratings.csv`` (face videos are in presentation order).
    face_min_valid : float
        Least fraction of frames with a face for a window to have face features; windows below
        it (and trials without face data) enter the network with the face modality masked.
    channels : list of str or None
        EEG channels to keep, in this order (e.g. the channels DEAP shares with DREAMER).
    window_s, step_s : float
        Window length and hop in seconds (``step_s`` None: no overlap).
    preprocessing : dict
        :class:`~physioaffect.preprocessing.PipelineConfig` fields applied to each trial's EEG
        before windowing (band-pass/notch per ``phase``; ``reference="average"`` re-references).
    graph_sub_window_s, graph_sub_overlap, graph_bands : float, float, str
        EmT graph sequence: sub-windows inside each window, relative Welch band power per
        sub-window and channel in these bands.
    de_bands : str
        Bands of the differential-entropy features of the classical baselines.
    baselines : list of str
        ``majority``, ``logreg``, ``svm`` (fitted on training + validation windows of each fold).
    epochs, batch_size, lr, weight_decay, label_smoothing, patience : training
        AdamW with cosine annealing; early stopping on validation loss (validation subjects
        only); ``patience`` 0 disables it.
    model_kwargs : dict
        Extra hyper-parameters of the network.
    seed : int
        Master seed; fold ``i`` uses ``seed + 1000 * i``.
    device : {"auto", "cpu", "cuda"}
    amp : bool
        bf16 autocast on CUDA.
    compile : bool
        ``torch.compile`` the network (CUDA only by default; slow to start).
    threads : int
        Torch intra-op threads per fold (0: leave torch's default). Serial and Ray runs with the
        same value give the same numbers.
    executor : {"serial", "ray"}
    ray_address : str or None
        Ray cluster address (None: a local Ray instance).
    ray_cpus_per_fold : float
    cache_dir : str or None
        Window cache (default ``<root>/../physioaffect-cache``, next to the dataset).
    sim_subjects, sim_trials, sim_seconds, sim_channels, sim_rate : simulator folder settings
        (used when ``dataset="sim"`` and the folder does not exist yet).
    max_subjects : int
        Use only the first N subjects (0: all).
    """

    dataset: str = "sim"
    root: str = ""
    model: str = "emt"
    protocol: str = "loso"
    protocol_kwargs: dict = field(default_factory=dict)
    target: str = "arousal"
    label_rule: str = "auto"
    modalities: list = field(default_factory=lambda: ["eeg"])
    channels: list | None = None
    window_s: float = 4.0
    step_s: float | None = None
    preprocessing: dict = field(default_factory=lambda: {
        "l_freq": 1.0, "h_freq": 45.0, "notch_freq": None, "phase": "causal",
        "reference": "none", "detect_bads": False, "interpolate_bads": False})
    graph_sub_window_s: float = 2.0
    graph_sub_overlap: float = 0.5
    graph_bands: str = "emt7"
    de_bands: str = "torcheeg4"
    baselines: list = field(default_factory=lambda: ["majority", "logreg", "svm"])
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    patience: int = 5
    model_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    threads: int = 0
    executor: str = "serial"
    ray_address: str | None = None
    ray_cpus_per_fold: float = 1.0
    cache_dir: str | None = None
    sim_subjects: int = 12
    sim_trials: int = 16
    sim_seconds: float = 30.0
    sim_channels: int = 32
    sim_rate: int = 128
    max_subjects: int = 0
    face: str | None = None
    face_offset_s: float = 0.0
    face_fps: float | None = None
    face_trial_order: str | None = None
    face_min_valid: float = 0.5
    version: int = 1

    # ------------------------------------------------------------------------------ resolve
    def resolve(self) -> TrainConfig:
        """Validate names and fill ``auto`` fields; returns a new config (self is unchanged)."""
        from physioaffect.datasets.labels import RULES
        from physioaffect.models.registry import REGISTRY

        c = dataclasses.replace(self)
        c.dataset = c.dataset.lower()
        if c.dataset not in DATASETS:
            raise TrainingError(f"dataset: unknown {c.dataset!r} (expected one of "
                                f"{', '.join(DATASETS)})")
        if not c.root:
            raise TrainingError("root: the dataset folder is required (--root PATH)")
        if c.model not in REGISTRY or c.model not in MODEL_INPUTS:
            known = ", ".join(m for m in MODEL_INPUTS if m in REGISTRY)
            raise TrainingError(f"model: unknown {c.model!r} (expected one of {known})")
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
        if "face" in c.modalities and not c.face and c.dataset not in FACE_FROM_STREAMS:
            raise TrainingError(f"modalities: face needs the {c.dataset} face data "
                                "(--face FOLDER of per-trial face videos or CSV files)")
        if not 0.0 <= c.face_min_valid <= 1.0:
            raise TrainingError(f"face_min_valid: expected 0-1, got {c.face_min_valid}")
        if c.label_rule == "auto":
            c.label_rule = default_label_rule(c.dataset, c.target)
        if c.label_rule not in RULES:
            raise TrainingError(f"label_rule: unknown {c.label_rule!r} (expected auto or one of "
                                f"{', '.join(RULES)})")
        if (c.label_rule == "continuous") != (c.model == "emt_regression") and \
                c.model in ("emt_regression",):
            raise TrainingError("model emt_regression needs label_rule 'continuous'")
        for b in c.baselines:
            if b not in ("majority", "logreg", "svm"):
                raise TrainingError(f"baselines: unknown {b!r} (expected majority, logreg, svm)")
        if c.executor not in ("serial", "ray"):
            raise TrainingError(f"executor: expected serial or ray, got {c.executor!r}")
        if c.device not in ("auto", "cpu", "cuda"):
            raise TrainingError(f"device: expected auto, cpu or cuda, got {c.device!r}")
        if c.epochs < 1 or c.batch_size < 1 or c.window_s <= 0:
            raise TrainingError("epochs, batch_size and window_s must be positive")
        from physioaffect.preprocessing.pipeline import PipelineConfig

        try:
            PipelineConfig.from_dict(dict(c.preprocessing))
        except Exception as err:  # noqa: BLE001 - turned into one line
            raise TrainingError(f"preprocessing: {err}") from None
        return c

    @property
    def task(self) -> str:
        """``classification`` or ``regression`` (label rule ``continuous``)."""
        return "regression" if self.label_rule == "continuous" else "classification"

    def pipeline(self):
        """The :class:`~physioaffect.preprocessing.PipelineConfig` of this run."""
        from physioaffect.preprocessing.pipeline import PipelineConfig

        return PipelineConfig.from_dict(dict(self.preprocessing))

    # ------------------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainingError(f"{where}: unknown field(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(names))})")
        return cls(**data)

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


def _drop_none(d: dict) -> dict:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON config file into a dict of :class:`TrainConfig` fields."""
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p}: config file not found")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise TrainingError(f"{p}: expected a .yaml, .toml or .json config file")
    except TrainingError:
        raise
    except Exception as err:  # noqa: BLE001 - parser errors differ per format
        raise TrainingError(f"{p}: cannot parse ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{p}: expected a mapping of config fields")
    TrainConfig.from_dict(data, where=str(p))  # unknown fields fail here, naming the file
    return data
