"""The deep networks as a scikit-learn classifier (the role of skorch / braindecode's
``EEGClassifier``), trained by the same engine as ``physioaffect train``.

:class:`DeepEEGClassifier` takes EEG windows ``X`` of shape ``(n_windows, n_channels,
n_times)`` in microvolts (or an ``mne.Epochs``: its EEG channels, converted from MNE's volts)
and class labels ``y``. ``fit`` builds the network's input with the
model's own input kind (raw windows for EEG-Deformer, EEGNet, ShallowConvNet; EmT's band-power
graph sequences for EmT), fits the per-channel (per channel and band) standardisation on the
training windows, builds a fresh network through the model registry
(:func:`physioaffect.training.engine.build_network`) and trains it with
:func:`physioaffect.training.engine.fit` (AdamW, cosine annealing, optional early stopping on
held-out *subjects*). ``predict_proba`` applies the same input kind and standardisation.

Because ``__init__`` only stores its arguments, ``clone``, ``get_params``/``set_params`` and
``GridSearchCV`` work; the network's hyper-parameters are ``model_kwargs`` or, as in skorch,
``module__<name>`` (``{"module__depth": [2, 4]}`` in a grid). Choosing hyper-parameters on
validation subjects is the grid search's splitter with ``groups=subjects``::

    from sklearn.model_selection import GridSearchCV, GroupKFold
    search = GridSearchCV(DeepEEGClassifier("eeg_deformer", sfreq=128, epochs=20),
                          {"lr": [1e-3, 3e-4], "module__depth": [2, 4]}, cv=GroupKFold(4))
    search.fit(X, y, groups=subjects)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from physioaffect.log import logger, use_log_level
from physioaffect.training.config import TrainingError

__all__ = ["DeepEEGClassifier"]

_MODULE_PREFIX = "module__"


class DeepEEGClassifier(ClassifierMixin, BaseEstimator):
    """A registered deep network as a scikit-learn classifier of EEG windows.

    Parameters
    ----------
    model : str
        A registered network (:func:`physioaffect.models.list_models`): ``eeg_deformer``,
        ``emt``, ``eegnet``, ``shallow_convnet`` ...
    model_kwargs : dict or None
        The network's hyper-parameters (``{"depth": 2}``); ``set_params(module__depth=2)``
        sets one of them.
    sfreq : float or None
        Sampling rate of ``X`` in Hz. Needed by networks whose input or layers depend on it
        (EmT's band-power graphs, EEG-Deformer's kernel of ``0.1 * sfreq`` samples).
    ch_names : sequence of str or None
        Names of the channels of ``X`` (the network keeps them as ``chs_info``); checked
        against ``X``'s channel count.
    input_params : dict or None
        Settings of the model's input kind (EmT: ``sub_window_s``, ``sub_overlap``,
        ``bands``); see :mod:`physioaffect.models.inputs`.
    epochs : int
        Maximum training epochs.
    batch_size : int
    lr, weight_decay : float
        AdamW learning rate and weight decay (cosine annealing over ``epochs``).
    label_smoothing : float
        Cross-entropy label smoothing (0-1).
    validation : float, int or None
        Validation subjects for early stopping: a fraction (``0.2``) or a number (``2``) of the
        distinct ``groups`` given to :meth:`fit`, drawn with ``random_state``. None: no
        validation, all ``epochs`` are run and the last weights kept. Validation never splits
        one subject's windows (overlapping windows would leak), so it needs ``groups``.
    patience : int
        Early stopping: epochs without a better validation loss (0: off).
    device : {"auto", "cpu", "cuda"}
        ``auto``: CUDA when available.
    amp : bool
        bf16 autocast on CUDA.
    random_state : int
        Seeds the initialisation, the batch order and the choice of validation subjects.
    verbose : bool, str, int or None
        Package log level during ``fit``/``predict`` (:func:`physioaffect.set_log_level`):
        INFO gives one line per fit, DEBUG one per epoch.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (weights of the kept epoch).
    classes_ : ndarray
        Class labels, in the order of the columns of :meth:`predict_proba`.
    normaliser_ : Standardiser
        Standardisation of the network input fitted on the training windows.
    input_kind_ : str
        How the network input is built from windows (``raw``, ``graphs``).
    input_params_ : dict
        The input kind's resolved settings.
    n_chans_, n_times_ : int
        Shape of one window seen in :meth:`fit`.
    history_ : list of dict
        One row per epoch (``train_loss``, ``val_loss``, ``val_accuracy``, ``lr``).
    best_epoch_ : int
        Epoch whose weights were kept (1-based).
    validation_groups_ : list
        The validation subjects (empty without validation).
    network_info_ : dict
        What the registry built (``network``, ``input``, ``fusion``, ``modalities``).
    device_ : torch.device
        Where the network lives.
    """

    def __init__(
        self,
        model: str = "eeg_deformer",
        model_kwargs: dict[str, Any] | None = None,
        *,
        sfreq: float | None = None,
        ch_names: Sequence[str] | None = None,
        input_params: dict[str, Any] | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.0,
        validation: float | int | None = None,
        patience: int = 5,
        device: str = "auto",
        amp: bool = True,
        random_state: int = 0,
        verbose: bool | str | int | None = None,
    ) -> None:
        self.model = model
        self.model_kwargs = model_kwargs
        self.sfreq = sfreq
        self.ch_names = ch_names
        self.input_params = input_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.validation = validation
        self.patience = patience
        self.device = device
        self.amp = amp
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True  # (n_windows, n_channels, n_times)
        tags.input_tags.allow_nan = True  # standardised to the training mean
        return tags

    # ------------------------------------------------------------------ skorch-style params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters; with ``deep`` also ``module__<name>`` for each of ``model_kwargs``."""
        params = super().get_params(deep=deep)
        if deep and isinstance(self.model_kwargs, dict):  # any value is stored; fit checks it
            params.update({f"{_MODULE_PREFIX}{k}": v for k, v in self.model_kwargs.items()})
        return params

    def set_params(self, **params: Any) -> DeepEEGClassifier:
        """Set parameters; ``module__<name>=value`` sets ``model_kwargs[name]`` (a new dict)."""
        module = {k[len(_MODULE_PREFIX):]: params.pop(k) for k in list(params)
                  if k.startswith(_MODULE_PREFIX)}
        super().set_params(**params)
        if module:
            base = self.model_kwargs if isinstance(self.model_kwargs, dict) else {}
            self.model_kwargs = {**base, **module}
        return self

    # ----------------------------------------------------------------------------- checks
    def _name(self) -> str:
        return f"DeepEEGClassifier({self.model})"

    def _windows(self, X: Any, fitted: bool) -> np.ndarray:
        """``X`` as float32 ``(n, C, T)`` microvolts; NaN allowed (standardised to 0), inf
        refused. An ``mne.Epochs`` gives its EEG channels, converted from volts."""
        from physioaffect.features.transformers import as_microvolt_windows
        from physioaffect.preprocessing.quality import SignalInputError

        if hasattr(X, "info") and hasattr(X, "get_data"):
            try:
                X, sfreq, _ = as_microvolt_windows(X, None, "eeg", self._name())
            except SignalInputError as err:
                raise TrainingError(str(err)) from None
            if self.sfreq is not None and abs(float(self.sfreq) - sfreq) > 1e-9 * sfreq:
                raise TrainingError(f"{self._name()}: X is sampled at {sfreq:g} Hz, sfreq is "
                                    f"{self.sfreq:g} Hz")
        try:
            X = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise TrainingError(f"{self._name()}: X must be numeric EEG windows "
                                f"(n_windows, n_channels, n_times) in microvolts ({err})") from None
        if X.ndim != 3 or 0 in X.shape:
            raise TrainingError(f"{self._name()}: X must have shape (n_windows, n_channels, "
                                f"n_times) in microvolts, got {X.shape}")
        if np.isinf(X).any():
            raise TrainingError(f"{self._name()}: X holds infinite values")
        if fitted and X.shape[1:] != (self.n_chans_, self.n_times_):
            raise TrainingError(f"{self._name()}: X has windows of {X.shape[1]} channels x "
                                f"{X.shape[2]} samples, the network was fitted on "
                                f"{self.n_chans_} x {self.n_times_}")
        return X

    def _config(self, kind_name: str | None, input_params: dict[str, Any],
                chs_info: list[dict] | None):
        """The :class:`TrainConfig` the training engine reads (network, optimiser, device)."""
        from physioaffect.training.config import ComputeSettings, OptimSettings, TrainConfig

        kwargs = dict(self.model_kwargs or {})
        if chs_info is not None:
            kwargs["chs_info"] = chs_info
        cfg = TrainConfig(
            dataset="sim", root="<estimator>", model=self.model, model_kwargs=kwargs,
            modalities=["eeg"], baselines=[], seed=int(self.random_state),
            inputs={kind_name: input_params} if kind_name else {},
            optim=OptimSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                weight_decay=self.weight_decay,
                                label_smoothing=self.label_smoothing, patience=self.patience),
            compute=ComputeSettings(device=self.device, amp=bool(self.amp)))
        try:
            cfg.optim.validate()
            cfg.compute.validate()
        except TrainingError as err:
            raise TrainingError(f"{self._name()}: {err}") from None
        return cfg

    def _validation_rows(self, groups: Any, n: int) -> tuple[np.ndarray, np.ndarray, list]:
        """Training and validation row indices: whole subjects held out (see ``validation``)."""
        rows = np.arange(n)
        if self.validation is None:
            return rows, rows[:0], []
        if groups is None:
            raise TrainingError(
                f"{self._name()}: validation={self.validation!r} needs groups (the subject of "
                "each window) in fit(X, y, groups=...); random windows would leak")
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise TrainingError(f"{self._name()}: groups must give one subject per window "
                                f"({n}), got shape {groups.shape}")
        subjects = np.unique(groups)
        v = self.validation
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise TrainingError(f"{self._name()}: validation must be a fraction in (0, 1), a "
                                f"number of subjects, or None; got {v!r}")
        n_val = int(v) if v >= 1 else math.ceil(v * len(subjects))
        if n_val >= len(subjects):
            raise TrainingError(f"{self._name()}: validation={v!r} leaves no training subject "
                                f"({len(subjects)} subjects)")
        rng = np.random.default_rng(self.random_state)
        val_subjects = sorted(rng.permutation(subjects)[:n_val].tolist())
        is_val = np.isin(groups, val_subjects)
        return rows[~is_val], rows[is_val], val_subjects

    # ---------------------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any, groups: Any = None) -> DeepEEGClassifier:
        """Train a fresh network on windows ``X`` ``(n, C, T)`` (microvolts) and labels ``y``.

        Parameters
        ----------
        X : array-like, shape (n_windows, n_channels, n_times), or mne.Epochs
            EEG windows in microvolts at ``sfreq`` Hz (an ``Epochs``: its EEG channels, in
            volts as MNE holds them, converted to microvolts).
        y : array-like, shape (n_windows,)
            Class labels (any sortable values).
        groups : array-like, shape (n_windows,), optional
            Subject of each window; used only to hold out ``validation`` subjects. (In a grid
            search, ``groups`` goes to the splitter; route it here too with scikit-learn's
            metadata routing if ``validation`` is set.)
        """
        with use_log_level(self.verbose):
            return self._fit(X, y, groups)

    def _fit(self, X: Any, y: Any, groups: Any) -> DeepEEGClassifier:
        from physioaffect.models import ModelConfigError, get_spec
        from physioaffect.preprocessing.standardise import Standardiser
        from physioaffect.training.engine import (
            build_network,
            fit,
            resolve_device,
            seed_everything,
        )

        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise TrainingError(f"{self._name()}: model_kwargs must be a dict of the network's "
                                f"hyper-parameters or None, got {self.model_kwargs!r}")
        X = self._windows(X, fitted=False)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise TrainingError(f"{self._name()}: y must give one label per window "
                                f"({len(X)}), got shape {y.shape}")
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise TrainingError(f"{self._name()}: y holds one class ({classes[0]!r}); a "
                                "classifier needs at least two")
        n, n_chans, n_times = X.shape
        chs_info = None
        if self.ch_names is not None:
            names = [str(c) for c in self.ch_names]
            if len(names) != n_chans:
                raise TrainingError(f"{self._name()}: ch_names lists {len(names)} channels, "
                                    f"X has {n_chans}")
            chs_info = [{"ch_name": c} for c in names]
        try:
            spec = get_spec(self.model)
            kind = spec.eeg_input(dict(self.model_kwargs or {}))
            if kind is None:
                raise ModelConfigError(f"model {self.model!r} with these model_kwargs has no "
                                       "EEG input")
            params = kind.params(self.input_params)
        except ModelConfigError as err:
            raise TrainingError(f"{self._name()}: {err}") from None
        if kind.name != "raw" and self.sfreq is None:
            raise TrainingError(f"{self._name()}: its {kind.name} input is computed at a "
                                "sampling rate; give sfreq (Hz)")
        train_rows, val_rows, val_subjects = self._validation_rows(groups, n)
        built = kind.build(X, self.sfreq, params)
        normaliser = Standardiser(kind.norm_axes).fit(built, rows=train_rows)
        cfg = self._config(kind.name, params, chs_info)
        seed = int(self.random_state)
        seed_everything(seed)
        device = resolve_device(cfg)
        try:
            net, info = build_network(cfg, n_chans=n_chans, n_times=n_times, sfreq=self.sfreq,
                                      n_outputs=len(classes), eeg_input=built[:2],
                                      n_peripheral=0)
        except TrainingError as err:
            raise TrainingError(f"{self._name()}: {err}") from None
        mode = "fusion" if info["fusion"] else "single"

        def take(rows: np.ndarray) -> dict[str, np.ndarray]:
            return {"eeg": normaliser.transform(built[rows])}

        def on_epoch(row: dict) -> None:
            if not row.get("final"):
                val = (f", validation loss {row['val_loss']:.4f}" if "val_loss" in row else "")
                logger.debug("%s: epoch %d/%d, training loss %.4f%s", self._name(),
                             row["epoch"], self.epochs, row["train_loss"], val)

        val = (take(val_rows), y_index[val_rows].astype(np.int64)) if val_rows.size else None
        net, history, best_epoch = fit(
            net, mode, cfg, seed, (take(train_rows), y_index[train_rows].astype(np.int64)), val,
            device, on_epoch=on_epoch if logger.isEnabledFor(logging.DEBUG) else None)
        self.module_ = net.eval()
        self.classes_ = classes
        self.normaliser_ = normaliser
        self.input_kind_ = kind.name
        self.input_params_ = dict(params)
        self.n_chans_, self.n_times_ = n_chans, n_times
        self.history_ = history
        self.best_epoch_ = int(best_epoch)
        self.validation_groups_ = val_subjects
        self.network_info_ = dict(info)
        self.device_ = device
        stopped = history[-1].get("stopped", "") if history else ""
        logger.info("%s: %d epochs on %d windows (%d classes%s), kept epoch %d; %s",
                    self._name(), len(history), len(train_rows), len(classes),
                    f", {len(val_subjects)} validation subjects" if val_subjects else "",
                    self.best_epoch_, stopped)
        return self

    # ------------------------------------------------------------------------- prediction
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_windows, n_classes)`` (softmax of the network output)."""
        import torch

        from physioaffect.models.inputs import input_kind
        from physioaffect.training.engine import predict_arrays

        check_is_fitted(self, "module_")
        with use_log_level(self.verbose):
            X = self._windows(X, fitted=True)
            built = input_kind(self.input_kind_).build(X, self.sfreq, self.input_params_)
            mode = "fusion" if self.network_info_["fusion"] else "single"
            out = predict_arrays(self.module_, mode,
                                 {"eeg": self.normaliser_.transform(built)}, self.device_,
                                 bool(self.amp), batch_size=max(int(self.batch_size), 256))
        return torch.softmax(torch.as_tensor(out, dtype=torch.float64), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each window (labels as in ``y``)."""
        check_is_fitted(self, "module_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
