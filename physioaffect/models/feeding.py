"""How a checkpoint's network is fed: inputs, per-subject adaptation, forward pass, prediction.

Everything here reads the :class:`~physioaffect.models.CheckpointContract` and nothing else, so
training's evaluation, ``physioaffect evaluate``, the live decoder and the notebooks build
exactly the same tensors from the same windows:

1. :func:`model_arrays` checks preprocessed EEG windows (and peripheral and face features)
   against the contract and builds the network's input kind from them (EmT graphs ...);
2. a per-subject adaptation (:func:`fit_adaptation` on a whole session, :func:`start_adaptation`
   for the live decoder's recursive reference) maps them into the subject-independent space
   the network was trained in;
3. :func:`normalise` applies the training statistics and the modality masks;
4. :func:`predict` runs :func:`forward` and returns probabilities or ratings.

:func:`build_inputs` is 1-3 in one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physioaffect.models.contract import CheckpointContract, ContractError

__all__ = ["InputMismatchError", "check_compatible", "model_arrays", "adaptation_method",
           "fit_adaptation", "start_adaptation", "normalise", "build_inputs", "forward",
           "predict", "face_present", "named_inputs"]


class InputMismatchError(ContractError):
    """The data given do not fit what a checkpoint needs (one-line message)."""


def check_compatible(contract: CheckpointContract, ch_names: list[str], sfreq: float,
                     where: str) -> list[int]:
    """Channel indices of the checkpoint's channels in ``ch_names``; raise if incompatible.

    The data must have every channel of the checkpoint (any order, case-insensitive) and be
    recorded at the rate the checkpoint's pipeline takes.
    """
    if abs(float(sfreq) - contract.sfreq) > 1e-6:
        raise InputMismatchError(f"{where}: checkpoint expects EEG at {contract.sfreq:g} Hz, the "
                                 f"data is at {sfreq:g} Hz (incompatible pipeline)")
    low = {c.lower(): i for i, c in enumerate(ch_names)}
    missing = [c for c in contract.channels if c.lower() not in low]
    if missing:
        raise InputMismatchError(f"{where}: checkpoint needs channel(s) {', '.join(missing)} that "
                                 "the data lacks (incompatible pipeline; train with --config "
                                 "channels: [common channels])")
    return [low[c.lower()] for c in contract.channels]


def face_present(face: np.ndarray) -> np.ndarray:
    """Boolean ``(n,)``: windows with face features (any finite value but the valid fraction,
    which is the last column and always set)."""
    return np.isfinite(np.asarray(face)[:, :-1]).any(axis=1)


def named_inputs(contract: CheckpointContract) -> bool:
    """Whether the checkpoint's network takes named modalities (asked of the registry)."""
    from physioaffect.models.registry import get_spec

    return get_spec(contract.model).named_inputs


def model_arrays(contract: CheckpointContract, eeg: np.ndarray | None,
                 peripheral: np.ndarray | None = None, face: np.ndarray | None = None,
                 where: str = "inputs") -> dict[str, np.ndarray]:
    """Checked model inputs before adaptation and normalisation.

    Parameters
    ----------
    eeg : ndarray, shape (n, C, T) or None
        EEG windows in microvolts after the checkpoint's pipeline, channels in
        ``contract.channels`` order, ``T = contract.n_times`` (at ``contract.model_sfreq``).
    peripheral : ndarray, shape (n, F_p) or None
        Peripheral features in ``contract.peripheral_features`` order (NaN allowed).
    face : ndarray, shape (n, F_f) or None
        Face window features in ``contract.face_features`` order; None with other modalities
        present means "no face" (the branch is masked).

    Returns
    -------
    dict
        ``eeg`` (the network's input kind built from the windows), ``peripheral``, ``face``:
        the modalities the checkpoint uses, float32.
    """
    from physioaffect.models.inputs import input_kind

    out: dict[str, np.ndarray] = {}
    if "eeg" in contract.modalities:
        if eeg is None:
            raise InputMismatchError(f"{where}: this checkpoint needs EEG windows")
        x = np.asarray(eeg, dtype=np.float32)
        want = (len(contract.channels), contract.n_times)
        if x.ndim != 3 or x.shape[1:] != want:
            raise InputMismatchError(f"{where}: EEG must be (n, {want[0]}, {want[1]}), got "
                                     f"{x.shape}")
        if contract.window_norm == "zscore":
            x = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, keepdims=True) + 1e-6)
        kind = input_kind(contract.input_kind or "raw")
        out["eeg"] = kind.build(x, contract.model_sfreq, contract.input_params)
    if "peripheral" in contract.modalities:
        if peripheral is None:
            raise InputMismatchError(f"{where}: this checkpoint needs peripheral features")
        p = np.asarray(peripheral, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != len(contract.peripheral_features):
            raise InputMismatchError(f"{where}: peripheral features must be (n, "
                                     f"{len(contract.peripheral_features)}), got {p.shape}")
        out["peripheral"] = p
    if "face" in contract.modalities:
        names = contract.face_features
        if face is None:
            if len(out) == 0:
                raise InputMismatchError(f"{where}: this face-only checkpoint needs face "
                                         "features")
            n = len(next(iter(out.values())))
            face = np.full((n, len(names)), np.nan, np.float32)
        f = np.asarray(face, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != len(names):
            raise InputMismatchError(f"{where}: face features must be (n, {len(names)}) in the "
                                     f"checkpoint's order, got {f.shape}")
        out["face"] = f
    return out


def adaptation_method(contract: CheckpointContract) -> str:
    """The per-subject adaptation a checkpoint was trained with (``"none"`` if it was not)."""
    return str((contract.subject_adaptation or {}).get("method", "none"))


def _eeg_kind(contract: CheckpointContract) -> str | None:
    if "eeg" not in contract.modalities:
        return None
    return "graphs" if (contract.input_kind or "raw") != "raw" else "raw"


def fit_adaptation(contract: CheckpointContract, eeg: np.ndarray | None,
                   peripheral: np.ndarray | None = None, face: np.ndarray | None = None):
    """Fit the checkpoint's per-subject adaptation on windows of ONE new subject.

    The windows are unlabelled: all windows of a subject being evaluated (transductive, as in
    training) or a calibration period. Same arguments as :func:`build_inputs`; pass the result
    to it as ``adaptation``.

    Returns
    -------
    SubjectAdaptation or None
        None for a checkpoint trained without adaptation.
    """
    from physioaffect.preprocessing.alignment import SubjectAdaptation
    from physioaffect.preprocessing.standardise import NormalisationError

    method = adaptation_method(contract)
    if method == "none":
        return None
    arrays = model_arrays(contract, eeg, peripheral, face, "fit_adaptation")
    try:
        return SubjectAdaptation(method, _eeg_kind(contract)).fit(arrays)
    except NormalisationError as err:
        raise InputMismatchError(f"fit_adaptation: {err}") from None


def start_adaptation(contract: CheckpointContract, online: bool | None = None,
                     half_life_s: float | None = None):
    """A new subject's recursive adaptation reference (the live decoder's), empty.

    Feed it :func:`model_arrays` of each window in recording order (``step``/``update``); see
    :class:`~physioaffect.preprocessing.alignment.OnlineAdaptation`.

    Parameters
    ----------
    online : bool or None
        Keep updating after the calibration (None: as the checkpoint says).
    half_life_s : float or None
        Forgetting (None: as the checkpoint says).

    Returns
    -------
    OnlineAdaptation or None
        None for a checkpoint trained without adaptation.
    """
    from physioaffect.preprocessing.alignment import OnlineAdaptation

    method = adaptation_method(contract)
    if method == "none":
        return None
    ad = contract.subject_adaptation or {}
    if half_life_s is None:
        half_life_s = ad.get("half_life_s")
    online = bool(ad.get("online", False)) if online is None else bool(online)
    return OnlineAdaptation(method, _eeg_kind(contract), half_life_s, online)


def normalise(contract: CheckpointContract, arrays: dict[str, np.ndarray]
              ) -> dict[str, np.ndarray]:
    """Adapted model arrays -> the network's inputs: training statistics applied, masks added.

    A window without any usable peripheral (or face) feature gets its branch masked
    (``peripheral_present``/``face_present`` = 0) in a network that takes named modalities.
    """
    norms = contract.normalisation
    out: dict[str, np.ndarray] = {name: norms[name].transform(x) for name, x in arrays.items()}
    if "peripheral" in out and named_inputs(contract):
        out["peripheral_present"] = np.isfinite(arrays["peripheral"]).any(axis=1) \
            .astype(np.float32)
    if "face" in out:
        out["face_present"] = face_present(arrays["face"]).astype(np.float32)
    return out


def build_inputs(contract: CheckpointContract, eeg: np.ndarray | None,
                 peripheral: np.ndarray | None = None,
                 face: np.ndarray | None = None, adaptation: Any = None) -> dict[str, np.ndarray]:
    """Network inputs from preprocessed windows, exactly as in training.

    Parameters
    ----------
    contract : CheckpointContract
    eeg, peripheral, face :
        As in :func:`model_arrays`.
    adaptation : SubjectAdaptation, OnlineAdaptation or None
        The subject's fitted adaptation (:func:`fit_adaptation`), required when the checkpoint
        was trained with one (``contract.subject_adaptation``): all windows given here are from
        that subject, adapted with its current reference.

    Returns
    -------
    dict
        ``{"eeg": ..., "peripheral": ..., "face": ..., "face_present": ...}`` normalised
        float32 arrays (only the modalities the checkpoint uses); pass to :func:`predict`.
    """
    arrays = model_arrays(contract, eeg, peripheral, face, "build_inputs")
    return normalise(contract, adapt(contract, arrays, adaptation))


def adapt(contract: CheckpointContract, arrays: dict[str, np.ndarray], adaptation: Any
          ) -> dict[str, np.ndarray]:
    """Model arrays with the subject's adaptation applied (as they are without one)."""
    method = adaptation_method(contract)
    if method == "none":
        return arrays
    if adaptation is None or not getattr(adaptation, "fitted", False):
        raise InputMismatchError(
            f"build_inputs: this checkpoint was trained with per-subject adaptation "
            f"{method!r}; fit it on the subject's own unlabelled windows first "
            "(fit_adaptation) and pass it as adaptation=")
    return adaptation.transform(arrays)


def forward(model, batch: dict, named: bool):
    """Network output for a batch of named input tensors.

    ``eeg``, ``peripheral`` and ``face`` are the modalities; ``face_present`` and
    ``peripheral_present`` (1/0 per window) mask the branch of windows without that data, as
    long as the window has another modality present (where none is left, e.g. a face-only
    network, the window's inputs are used as they are: the training mean). A network that
    predicts one value per sub-window ``(B, S, n_outputs)`` gives their mean.

    Parameters
    ----------
    named : bool
        The network takes named modalities (:attr:`ModelSpec.named_inputs`); otherwise it
        takes the ``eeg`` tensor alone.
    """
    import torch

    if named:
        per, face = batch.get("peripheral"), batch.get("face")
        if per is not None and per.ndim == 2:
            per = per.unsqueeze(1)  # one feature step per window: (B, 1, F_p)
        if face is not None and face.ndim == 2:
            face = face.unsqueeze(1)
        present = {}
        for name, x in (("peripheral", per), ("face", face)):
            flag = batch.get(f"{name}_present")
            if flag is not None and x is not None:
                present[name] = flag > 0.5
        mask = None
        if present:
            if batch.get("eeg") is None:  # every window needs one present modality
                given = {"peripheral": per, "face": face}
                some = torch.stack([present.get(n, torch.ones_like(next(iter(present.values()))))
                                    for n, x in given.items() if x is not None]).any(dim=0)
                present = {n: p | ~some for n, p in present.items()}
            mask = present
        out = model(eeg=batch.get("eeg"), peripheral=per, face=face, mask=mask)
    else:
        out = model(batch["eeg"])
    if out.ndim == 3:  # one value per sub-window -> window mean
        out = out.mean(dim=1)
    return out


def predict(model, contract: CheckpointContract, inputs: dict[str, np.ndarray],
            batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` or regression values ``(n,)`` (rating scale)."""
    import torch

    dev = torch.device(device) if device else next(model.parameters()).device
    if model.training:  # eval() walks every module: ~2 ms, too much for a live window
        model.eval()
    n = len(next(iter(inputs.values())))
    named = named_inputs(contract)
    outs = []
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            batch = {k: torch.as_tensor(v[i:i + batch_size], device=dev)
                     for k, v in inputs.items()}
            outs.append(forward(model, batch, named).float().cpu())
    y = torch.cat(outs) if outs else torch.zeros(0, max(contract.n_outputs, 1))
    if contract.task == "regression":
        mean, std = contract.target_scaling or (0.0, 1.0)
        return y.reshape(len(y), -1)[:, 0].numpy() * std + mean
    return torch.softmax(y, dim=1).numpy()
