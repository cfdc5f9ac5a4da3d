"""Everything a fold needs, prepared once per dataset and configuration (and cached on disk).

:func:`prepare_data` opens the dataset (the reader validates the folder first), applies the
run's :class:`~physioaffect.preprocessing.PipelineConfig` to every trial's EEG, selects channels,
and cuts windows through :func:`physioaffect.datasets.cache.prepare` (HDF5 cache keyed by the
window config, the pipeline hash and the input files). From the raw windows it derives, once for
all folds (these are per-window, label-free transforms, so computing them before the split leaks
nothing):

- ``eeg_input``: the network's EEG input, built by the model's input kind
  (:mod:`physioaffect.models.inputs`; e.g. EmT graph sequences ``(n, S, C, F)``); the live
  decoder builds it with the same function;
- ``de``: differential entropy ``(n, C, B)`` for the classical baselines;
- ``peripheral``: NeuroKit2 features of ECG/EDA/PPG/RESP/TEMP per window ``(n, F_p)``, summarised
  inside the same time span as the EEG window;
- ``face``: mean and spread of every face feature per window ``(n, F_f)``, same span.

Normalisation statistics are *not* computed here: a
:class:`~physioaffect.preprocessing.standardise.Standardiser` is fitted per fold on training
windows only, and per-subject adaptation (:func:`fit_subject_adaptation`) per fold too.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from physioaffect.log import logger
from physioaffect.streams.signals import PERIPHERAL_SIGNALS, SIGNAL_ALIASES, canonical_signal
from physioaffect.training.config import TrainConfig, TrainingError

__all__ = ["PreparedData", "prepare_data", "fit_subject_adaptation", "de_features",
           "open_reader"]
DERIVED_VERSION = 3


@dataclass
class PreparedData:
    """Windows of every subject plus the derived inputs the run needs.

    Attributes
    ----------
    raw : ndarray, shape (n, C, T), float32
        Preprocessed EEG windows in microvolts (at ``sfreq``, the pipeline's output rate).
    meta : DataFrame
        One row per window (subject, session, trial, stimulus, onset_s, ratings).
    ch_names : list of str
    sfreq : float
        Hz.
    eeg_kind : str or None
        Input kind of the network's EEG branch (``raw``, ``graphs``; None: no EEG branch).
    eeg_input : ndarray or None
        The EEG input built by that kind (``raw`` itself for raw input).
    de : ndarray (n, C, B) or None
    peripheral : ndarray (n, F_p) or None
        NaN where a feature was not computable.
    peripheral_names : list of str
    peripheral_signals : list of str
        Dataset signal names the features came from (``ECG``, ``GSR`` ...).
    face : ndarray (n, F_f) or None
        Face features per window (:func:`physioaffect.features.face.face_window_table`); a
        row with every feature NaN means no face data for that window (masked in the network).
    face_names : list of str
    quality : dict of str -> ndarray (n,)
        Signal quality (0-1) of each window per signal: ``EEG`` (fraction of good channels)
        and each peripheral signal (:mod:`physioaffect.features.quality`).
    info : dict
        Cache paths and counts (reported).
    """

    raw: np.ndarray
    meta: pd.DataFrame
    ch_names: list[str]
    sfreq: float
    eeg_kind: str | None = None
    eeg_input: np.ndarray | None = None
    de: np.ndarray | None = None
    peripheral: np.ndarray | None = None
    peripheral_names: list[str] = field(default_factory=list)
    peripheral_signals: list[str] = field(default_factory=list)
    face: np.ndarray | None = None
    face_names: list[str] = field(default_factory=list)
    quality: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def n_times(self) -> int:
        return int(self.raw.shape[-1])


# --------------------------------------------------------------------------------- readers
class _PipelineReader:
    """A reader proxy that keeps the configured channels and preprocesses each trial's EEG.

    The whole declared pipeline runs on each trial (the selected channels, from the first sample
    of the trial's pre-stimulus baseline when the dataset has one, so that the filters have
    settled at the stimulus onset, as on a live stream) through
    :func:`~physioaffect.preprocessing.preprocess_array`, MNE's methods included. It presents
    the interface :func:`physioaffect.datasets.cache.prepare` uses (``name``, ``root``,
    ``subjects``, ``fingerprint``, ``read_subject``), so the cache key covers the dataset files
    *and* (through the window config's ``extra``) the pipeline and channels.
    """

    def __init__(self, reader, pipeline, channels: list[str] | None) -> None:
        self._reader = reader
        self.name = reader.name
        self.root = reader.root
        self.subjects = reader.subjects
        self.pipeline = pipeline
        self.channels = channels

    def fingerprint(self):
        return self._reader.fingerprint()

    def _check_subject(self, s: str) -> None:
        self._reader._check_subject(s)

    def read_subject(self, subject: str):
        from physioaffect.preprocessing.pipeline import preprocess_array
        from physioaffect.preprocessing.quality import SignalInputError

        rec = self._reader.read_subject(subject)
        for tr in rec.trials:
            where = f"{rec.dataset} subject {subject} trial {tr.trial}"
            idx = channel_index(tr.ch_names, self.channels, f"{rec.dataset} subject {subject}")
            names = [tr.ch_names[i] for i in idx]
            eeg = np.asarray(tr.eeg, dtype=np.float64)[idx]
            # the pre-stimulus baseline runs through the filters first, so that they have
            # settled when the trial's first window starts (as on a live stream)
            lead = 0
            if tr.baseline is not None and np.shape(tr.baseline)[0] == len(tr.ch_names):
                base = np.asarray(tr.baseline, dtype=np.float64)[idx]
                lead = base.shape[1]
                eeg = np.concatenate([base, eeg], axis=1)
            missing = ~np.isfinite(eeg)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # per-trial quality notes: in the report
                    out, report = preprocess_array(eeg, tr.sfreq, names, self.pipeline)
            except SignalInputError as err:
                raise TrainingError(f"{where}: preprocessing: {err}") from None
            if missing.any():  # the filters ran over zeros there: those samples stay unknown
                edges = np.linspace(0, eeg.shape[1], out.shape[1] + 1).astype(int)
                hit = np.add.reduceat(missing, edges[:-1], axis=1) > 0
                out[hit] = np.nan
            skip = int(round(lead * out.shape[1] / eeg.shape[1]))
            tr.eeg = out[:, skip:]
            tr.sfreq = float(report["sfreq"])
            tr.ch_names = names
            tr.baseline = None  # windows use the stimulus period only
        return rec


def channel_index(available: list[str], wanted: list[str] | None, where: str) -> list[int]:
    """Indices of ``wanted`` channels in ``available`` (case-insensitive); all if None."""
    if wanted is None:
        return list(range(len(available)))
    low = {c.lower(): i for i, c in enumerate(available)}
    missing = [c for c in wanted if c.lower() not in low]
    if missing:
        raise TrainingError(f"{where}: channel(s) {', '.join(missing)} not in the data "
                            f"(has {', '.join(available)})")
    return [low[c.lower()] for c in wanted]


def open_reader(cfg: TrainConfig):
    """Open (and validate) the dataset of ``cfg``; writes a simulator folder for ``sim``."""
    from physioaffect.datasets import open_dataset
    from physioaffect.datasets.base import DatasetError

    root = Path(cfg.root)
    if cfg.dataset == "sim" and not root.exists():
        from physioaffect.datasets.sessions import write_sim_sessions

        write_sim_sessions(root, config=cfg.sim, progress=False, face="face" in cfg.modalities)
    kwargs: dict = {}
    if cfg.face.folder:
        kwargs["face"] = cfg.face.folder
        kwargs["face_options"] = cfg.face.reader_options(cfg.cache_dir)
        if cfg.dataset == "deap":
            kwargs["face_trial_order"] = cfg.face.trial_order
    try:
        reader = open_dataset(cfg.dataset, root, **kwargs)
    except DatasetError as err:
        raise TrainingError(str(err)) from None
    if cfg.max_subjects:
        reader.subjects = reader.subjects[: cfg.max_subjects]
    ratings = list(reader.rating_names)
    if not ratings and cfg.target:  # own sessions: ratings come from markers; read one subject
        try:
            ratings = sorted({k for tr in reader.read_subject(reader.subjects[0]).trials
                              for k in tr.ratings})
        except DatasetError as err:
            raise TrainingError(str(err)) from None
    if ratings and cfg.target not in ratings:
        raise TrainingError(f"target: {cfg.target!r} is not a rating of {cfg.dataset} "
                            f"(ratings: {', '.join(ratings)})")
    return reader


def cache_dir_of(cfg: TrainConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    root = Path(cfg.root).resolve()
    return root.parent / "physioaffect-cache"


# -------------------------------------------------------------------------------- features
def de_features(raw: np.ndarray, sfreq: float, bands: str = "torcheeg4",
                chunk: int = 512) -> np.ndarray:
    """Differential entropy ``(n, C, B)`` (nats) of EEG windows ``(n, C, T)``."""
    from physioaffect.features.eeg import differential_entropy

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(0, len(raw), chunk):
            out.append(differential_entropy(np.asarray(raw[i:i + chunk], dtype=np.float64),
                                            sfreq, bands=bands).astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, raw.shape[1], 0), np.float32)


def _window_features(reader, subjects: list[str], cfg: TrainConfig, meta: pd.DataFrame,
                     peripheral: bool, face: bool) -> dict[str, np.ndarray]:
    """Per-window peripheral and/or face features aligned with ``meta`` rows, in one pass over
    the subjects (each read once). NaN where a feature was not computable.

    Returns
    -------
    dict
        ``peripheral``, ``peripheral_names``, ``peripheral_signals`` and/or ``face``,
        ``face_names``, ``face_trials`` (trials with face data).
    """
    from physioaffect.features import peripheral as pf
    from physioaffect.features.face import face_feature_names, face_window_values
    from physioaffect.features.windows import peripheral_table, window_starts

    per_rows: dict[tuple, dict] = {}
    quality_rows: dict[tuple, dict] = {}
    face_rows: dict[tuple, dict] = {}
    signals: list[str] = []
    face_columns: list[str] = []
    face_trials = 0
    for s in subjects:
        rec = reader.read_subject(s)
        for tr in rec.trials:
            starts = window_starts(tr.eeg.shape[1], tr.sfreq, cfg.windows.window_s,
                                   cfg.windows.step_s)
            if starts.size == 0:
                continue
            onsets = starts / tr.sfreq
            keys = [(str(tr.subject), int(tr.session), int(tr.trial), round(float(on), 6))
                    for on in onsets]
            if peripheral:
                feats: dict[str, np.ndarray] = {}
                quality: dict[str, np.ndarray] = {}
                for name in sorted(tr.peripheral):
                    mod = canonical_signal(name)
                    if mod is None:
                        continue
                    if name not in signals:
                        signals.append(name)
                    sig = tr.peripheral[name]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        # features kept and flagged: the run's quality settings decide later
                        tab = peripheral_table(mod, np.asarray(sig.data[0], dtype=np.float64),
                                               sig.sfreq, onsets, cfg.windows.window_s,
                                               low_quality="flag")
                    qcol = pf.quality_columns(mod)[0]
                    for col in tab.columns:
                        if col == qcol:
                            quality[name] = tab[col].to_numpy(dtype=float)
                        else:
                            feats[col] = tab[col].to_numpy(dtype=float)
                for k, key in enumerate(keys):
                    per_rows[key] = {c: v[k] for c, v in feats.items()}
                    quality_rows[key] = {c: v[k] for c, v in quality.items()}
            if face and tr.face is not None:
                face_trials += 1
                face_columns += [n for n in tr.face.names if n not in face_columns]
                summary = face_window_values(tr.face.times, tr.face.values, tr.face.names,
                                             onsets, cfg.windows.window_s,
                                             min_valid=cfg.face.min_valid)
                cols = face_feature_names(tr.face.names)
                for k, key in enumerate(keys):
                    face_rows[key] = dict(zip(cols, summary[k], strict=True))
    keys = list(zip(meta["subject"].astype(str), meta["session"].astype(int),
                    meta["trial"].astype(int), meta["onset_s"].astype(float).round(6),
                    strict=True))

    def aligned(rows: dict[tuple, dict], names: list[str]) -> np.ndarray:
        out = np.full((len(meta), len(names)), np.nan, dtype=np.float32)
        for i, key in enumerate(keys):
            r = rows.get(key)
            if r is not None:
                out[i] = [r.get(n, np.nan) for n in names]
        return out

    result: dict[str, np.ndarray] = {}
    if peripheral:
        if not signals:
            raise TrainingError(f"modalities: {cfg.dataset} has no peripheral signal the feature "
                                f"extractors know ({', '.join(PERIPHERAL_SIGNALS)} or "
                                f"{', '.join(SIGNAL_ALIASES)})")
        names = [n for sig in sorted({canonical_signal(s) for s in signals})
                 for n in pf.feature_names(sig)]
        result.update(peripheral=aligned(per_rows, names), peripheral_names=np.array(names),
                      peripheral_signals=np.array(signals),
                      peripheral_quality=aligned(quality_rows, list(signals)))
    if face:
        where = cfg.face.folder or f"the {cfg.dataset} session files (no Face stream recorded)"
        if not face_trials:
            raise TrainingError(f"modalities: face: no trial of {cfg.dataset} has face data "
                                f"in {where}")
        names = face_feature_names(face_columns)
        x = aligned(face_rows, names)
        if not np.isfinite(x[:, :-1]).any(axis=1).any():
            raise TrainingError(f"modalities: face: no window has a face in at least "
                                f"{cfg.face.min_valid:.0%} of its frames ({where})")
        result.update(face=x, face_names=np.array(names), face_trials=np.array(face_trials))
    return result


# ------------------------------------------------------------------------------------ main
def prepare_data(cfg: TrainConfig, progress: bool = False) -> PreparedData:
    """Windows and derived inputs of the whole dataset for ``cfg`` (cached on disk).

    Raises
    ------
    TrainingError
        Unreadable folder, unknown channel, target not among the ratings.
    """
    from physioaffect.datasets.base import DatasetError
    from physioaffect.datasets.cache import load_windows, prepare
    from physioaffect.datasets.windows import WindowConfig

    reader = open_reader(cfg)
    pipe = cfg.preprocessing
    wcfg = WindowConfig(window_s=cfg.windows.window_s, step_s=cfg.windows.step_s,
                        features="raw",
                        extra={"pipeline": pipe.config_hash(), "channels": cfg.channels,
                               "consumer": "training", "preprocess": 3})
    proxy = _PipelineReader(reader, pipe, cfg.channels)
    cache = cache_dir_of(cfg)
    try:
        path = prepare(proxy, wcfg, cache, subjects=reader.subjects, progress=progress)
        ws = load_windows(path, reader.subjects)
    except DatasetError as err:
        raise TrainingError(str(err)) from None
    meta = ws.meta.reset_index(drop=True)
    if cfg.target not in meta.columns:
        ratings = [c for c in meta.columns if c not in ("subject", "session", "trial",
                                                        "stimulus", "onset_s")]
        raise TrainingError(f"target: {cfg.target!r} is not a rating of this dataset "
                            f"(ratings: {', '.join(ratings)})")
    data = PreparedData(raw=np.ascontiguousarray(ws.X, dtype=np.float32), meta=meta,
                        ch_names=list(ws.ch_names), sfreq=float(ws.sfreq),
                        info={"window_cache": str(path)})
    bad = ~np.isfinite(data.raw).all(axis=(1, 2))
    if bad.any():  # reported per subject (normalisation turns them into zeros, the mean)
        counts = meta.loc[bad, "subject"].astype(str).value_counts().sort_index()
        data.info["nonfinite_eeg_windows"] = {k: int(v) for k, v in counts.items()}
    del ws
    kind = eeg_input_kind(cfg)
    # DE: the classical baselines' features, and (where it can be computed) the evidence of
    # adaptation auto's choice
    needs_de = any(b in ("logreg", "svm") for b in cfg.baselines)
    wants_de = not needs_de and cfg.adaptation.method == "auto" \
        and cfg.adaptation.evidence == "baseline"
    needs_per = "peripheral" in cfg.modalities
    needs_face = "face" in cfg.modalities
    face_key = None if reader.face is None else [
        reader.face.fingerprint(), cfg.face.offset_s, cfg.face.fps, cfg.face.trial_order]
    input_key = None if kind is None else [kind.name, cfg.inputs.get(kind.name, {})]
    derived_key = hashlib.sha256(json.dumps(
        [path.stem, DERIVED_VERSION, input_key, cfg.de_bands, cfg.windows.window_s,
         cfg.windows.step_s, reader.subjects, cfg.face.min_valid, face_key],
        sort_keys=True).encode()).hexdigest()[:12]
    dpath = Path(cache) / f"{path.stem}-derived-{derived_key}.npz"
    store: dict[str, np.ndarray] = {}
    if dpath.exists():
        try:
            with np.load(dpath, allow_pickle=False) as z:
                store = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            # written by rename, so only a disk fault damages it: recomputed, said once
            logger.warning(f"{dpath}: damaged cache file ({str(err).splitlines()[0]}); "
                           "rebuilding it")
            store = {}
    changed = False
    needs_input = kind is not None and kind.name != "raw"
    from physioaffect.models import ModelConfigError
    from physioaffect.preprocessing.quality import SignalInputError

    at = f"(windows at {data.sfreq:g} Hz after preprocessing)"
    if needs_input and "eeg_input" not in store:
        try:
            store["eeg_input"] = kind.build(data.raw, data.sfreq, cfg.inputs[kind.name])
        except (SignalInputError, ModelConfigError) as err:
            raise TrainingError(f"inputs.{kind.name}: {err} {at}") from None
        changed = True
    if (needs_de or wants_de) and "de" not in store:
        try:
            store["de"] = de_features(data.raw, data.sfreq, cfg.de_bands)
            changed = True
        except SignalInputError as err:
            if needs_de:
                raise TrainingError(f"de_bands: {err} {at}") from None
            logger.info("adaptation auto: no DE features at this rate (%s); the network "
                        "itself weighs the adaptation", err)
    if kind is not None and "eeg_quality" not in store:
        store["eeg_quality"] = eeg_window_quality(data.raw, data.ch_names)
        changed = True
    if pipe.resample_sfreq is not None and "source_sfreq" not in store:
        # the rate the pipeline takes (a live stream must run at it): read off one trial
        try:
            first = reader.read_subject(reader.subjects[0]).trials[0]
        except DatasetError as err:
            raise TrainingError(str(err)) from None
        store["source_sfreq"] = np.array(float(first.sfreq))
        changed = True
    want_per = needs_per and "peripheral" not in store
    want_face = needs_face and "face" not in store
    if want_face and reader.face is not None:
        reader.face.progress = progress  # videos not yet analysed show a bar each
    if want_per or want_face:
        store.update(_window_features(reader, reader.subjects, cfg, meta, want_per, want_face))
        changed = True
    if changed:
        tmp = dpath.with_suffix(".tmp.npz")
        np.savez(tmp, **store)
        tmp.replace(dpath)
    data.info["derived_cache"] = str(dpath)
    data.info["source_sfreq"] = float(store.get("source_sfreq", data.sfreq))
    if kind is not None:
        data.eeg_kind = kind.name
        data.eeg_input = store["eeg_input"] if needs_input else data.raw
    if "de" in store and (needs_de or wants_de):
        data.de = store["de"]
    if kind is not None:
        data.quality["EEG"] = store["eeg_quality"]
    if needs_per:
        data.peripheral = np.array(store["peripheral"], dtype=np.float32)
        data.peripheral_names = [str(s) for s in store["peripheral_names"]]
        data.peripheral_signals = [str(s) for s in store["peripheral_signals"]]
        for j, sig in enumerate(data.peripheral_signals):
            data.quality[sig] = store["peripheral_quality"][:, j]
        if cfg.quality.action == "mask":
            _mask_low_quality(data, cfg.quality.threshold)
    if needs_face:
        data.face = store["face"]
        data.face_names = [str(s) for s in store["face_names"]]
        data.info["face_trials"] = int(store["face_trials"])
        from physioaffect.models.feeding import face_present

        data.info["face_windows"] = int(face_present(data.face).sum())
    return data


def fit_subject_adaptation(cfg: TrainConfig, data: PreparedData, rows: np.ndarray,
                           method: str):
    """Each subject's whole-session adaptation statistics, fitted on its windows among
    ``rows`` (all of them, labelled or not; labels are never used).

    One :class:`~physioaffect.preprocessing.alignment.SubjectAdaptation` for every input a
    run can use: the network's EEG input, DE, peripheral and face features. Fitting it on a
    test subject is transductive (the session protocol); the live protocol fits its own on
    the calibration period instead.
    """
    from physioaffect.preprocessing.alignment import SubjectAdaptation
    from physioaffect.preprocessing.standardise import NormalisationError

    rows = np.asarray(rows, dtype=int)
    groups = data.meta["subject"].astype(str).to_numpy()
    arrays = {"eeg": data.eeg_input, "de": data.de, "peripheral": data.peripheral,
              "face": data.face}
    adapter = SubjectAdaptation(method, data.eeg_kind)
    adapter.adapters_ = {}
    try:
        for name, x in arrays.items():
            if x is not None:
                sub = SubjectAdaptation(method, data.eeg_kind)._make(name)
                adapter.adapters_[name] = sub.fit(x, rows=rows, groups=groups)
    except NormalisationError as err:
        raise TrainingError(f"adaptation: {err}") from None
    return adapter


def eeg_window_quality(raw: np.ndarray, ch_names: list[str], chunk: int = 1024) -> np.ndarray:
    """EEG quality of each window: the fraction of good channels (0-1), by the bad-channel
    criteria of :func:`physioaffect.features.quality.eeg_channel_quality`."""
    from physioaffect.features.quality import eeg_channel_quality

    out = [eeg_channel_quality(np.asarray(raw[i:i + chunk], dtype=np.float64), ch_names)[0]
           for i in range(0, len(raw), chunk)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _mask_low_quality(data: PreparedData, threshold: float) -> None:
    """Peripheral features of a signal whose window quality is below ``threshold`` become NaN
    (missing: the fusion network masks the branch when no signal is left, baselines impute)."""
    from physioaffect.features import peripheral as pf

    for sig in data.peripheral_signals:
        mod = canonical_signal(sig)
        cols = [data.peripheral_names.index(n) for n in pf.feature_names(mod)
                if n in data.peripheral_names]
        low = ~(data.quality[sig] >= threshold)  # NaN quality (no data) counts as low
        data.peripheral[np.ix_(np.flatnonzero(low), cols)] = np.nan


def low_quality_windows(data: PreparedData, threshold: float) -> dict[str, np.ndarray]:
    """Per signal, the windows whose quality is below ``threshold`` (boolean ``(n,)``)."""
    return {sig: ~(np.asarray(q) >= threshold) for sig, q in data.quality.items()}


def eeg_input_kind(cfg: TrainConfig):
    """The :class:`~physioaffect.models.InputKind` of the run's EEG branch (None: no EEG).

    Asked of the model registry: the model's own input kind, or for a multimodal run the
    kind of its EEG encoder.
    """
    from physioaffect.models.registry import get_spec

    if "eeg" not in cfg.modalities:
        return None
    return get_spec(cfg.model).eeg_input(dict(cfg.model_kwargs))
