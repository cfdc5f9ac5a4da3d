"""One fold: a fresh network, training with early stopping on validation subjects, prediction.

Device handling: CPU unless CUDA is present (``device="auto"``), bf16 autocast on CUDA,
optional ``torch.compile``. The fold's input arrays are moved to the device once (on a GPU the
whole training set of a DEAP-sized fold, ~1.3 GB of float32, fits), and batches are gathered
there by index, so no data-loader worker can starve the GPU.

Determinism: the fold seed seeds the initialisation; the batch order of epoch ``e`` comes from
a generator seeded with ``(seed, e)``; dropout draws from the global generator whose state is
saved with every epoch checkpoint. A fold resumed from its epoch checkpoint therefore continues
exactly as if it had not been interrupted (on the same device and thread count).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from physioaffect.models.feeding import forward as feed_forward
from physioaffect.training.augment import fourier_surrogate
from physioaffect.training.config import TrainConfig, TrainingError

#: Seconds to pause after each epoch checkpoint (lets a test kill a tiny run between epochs).
_PAUSE_ENV = "PHYSIOAFFECT_EPOCH_PAUSE_S"

__all__ = ["resolve_device", "seed_everything", "build_network", "forward", "fit",
           "predict_arrays"]


def resolve_device(cfg: TrainConfig) -> torch.device:
    device = cfg.compute.device
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("compute.device: cuda requested but torch sees no CUDA device")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may draw from it
    torch.manual_seed(seed)


def build_network(cfg: TrainConfig, *, n_chans: int, n_times: int, sfreq: float, n_outputs: int,
                  eeg_input: np.ndarray | None, n_peripheral: int,
                  n_face: int = 0) -> tuple[nn.Module, dict]:
    """Fresh network for ``cfg``, asked of the model registry.

    Parameters
    ----------
    eeg_input : ndarray or None
        The EEG input built by the model's input kind (a few windows suffice): the kind derives
        the constructor arguments the network needs from it (e.g. the number of band features).

    Returns
    -------
    model : nn.Module
    info : dict
        ``network`` (registry name of the built class), ``input`` (input kind of the EEG branch,
        None without EEG), ``fusion`` (the network takes named modalities), ``modalities``.
    """
    from physioaffect.models import ModelConfigError, create
    from physioaffect.models.registry import MULTIMODAL, get_spec
    from physioaffect.training.data import eeg_input_kind

    kwargs = dict(cfg.model_kwargs)
    kind = eeg_input_kind(cfg)
    input_kw = {} if kind is None or eeg_input is None else \
        kind.model_kwargs(cfg.inputs.get(kind.name, {}), eeg_input)
    info = {"input": None if kind is None else kind.name, "modalities": list(cfg.modalities)}
    try:
        if not cfg.multimodal:
            model = create(cfg.model, n_chans=n_chans, n_outputs=n_outputs, n_times=n_times,
                           sfreq=sfreq, **{**input_kw, **kwargs})
            return model, {**info, "network": cfg.model, "fusion": False}
        fusion_kw = dict(kwargs.pop("fusion", {}))
        if get_spec(cfg.model).named_inputs:  # the fusion network itself, configured
            enc = fusion_kw.pop("eeg_encoder", kwargs.pop("eeg_encoder", "deformer"))
            eeg_kw = dict(fusion_kw.pop("eeg_kwargs", kwargs.pop("eeg_kwargs", {})))
            fusion_kw.update(kwargs)
        else:
            enc = get_spec(cfg.model).fusion_encoder
            eeg_kw = kwargs
        if "eeg" not in cfg.modalities:
            enc = "none"
        model = create(MULTIMODAL, n_chans=n_chans, n_outputs=n_outputs, n_times=n_times,
                       sfreq=sfreq, eeg_encoder=enc, eeg_kwargs={**input_kw, **eeg_kw},
                       n_peripheral_features=n_peripheral if "peripheral" in cfg.modalities
                       else 0, n_face_features=n_face if "face" in cfg.modalities else 0,
                       **fusion_kw)
    except ModelConfigError as err:
        raise TrainingError(str(err)) from None
    return model, {**info, "network": MULTIMODAL, "fusion": True}


def forward(model: nn.Module, kind: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Network output for a batch: :func:`physioaffect.models.feeding.forward` (``kind``
    ``"fusion"``: the network takes named modalities)."""
    return feed_forward(model, batch, kind == "fusion")


def _autocast(device: torch.device, amp: bool):
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _to_device(arrays: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        out[k] = t.to(device, non_blocking=True) if device.type == "cuda" else t
    return out


def predict_arrays(model: nn.Module, kind: str, arrays: dict[str, np.ndarray],
                   device: torch.device, amp: bool, batch_size: int = 256) -> np.ndarray:
    """Raw outputs ``(n, n_outputs)`` of the network for normalised input arrays."""
    model.eval()
    t = _to_device(arrays, device)
    n = len(next(iter(t.values())))
    outs = []
    with torch.no_grad(), _autocast(device, amp):
        for i in range(0, n, batch_size):
            outs.append(forward(model, kind, {k: v[i:i + batch_size] for k, v in t.items()})
                        .float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros((0, 1), np.float32)


def _loss_fn(task: str, label_smoothing: float) -> Callable:
    if task == "regression":
        mse = nn.MSELoss()
        return lambda out, y: mse(out.reshape(len(y), -1)[:, 0], y)
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


#: Training windows that :func:`recalibrate_batchnorm` averages over (enough for stable
#: statistics, few enough that an epoch of a DEAP-sized fold barely notices).
PRECISE_BN_WINDOWS = 256


def recalibrate_batchnorm(model: nn.Module, kind: str, x: dict[str, torch.Tensor],
                          batch_size: int, device: torch.device, amp: bool,
                          max_windows: int = PRECISE_BN_WINDOWS) -> bool:
    """Re-estimate every batch norm's running statistics with the current weights.

    "Precise BN" (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", arXiv:2105.07576):
    the running averages a network keeps during training mix statistics of many past weights
    and, with dropout in front of a batch norm (EEG-Deformer's fine branch), of inputs whose
    variance dropout inflated (Li et al. 2019, "Understanding the disharmony between dropout
    and batch normalization"). Evaluated with those averages, a small-data network can put
    every validation window in one class while it separates them in training mode; early
    stopping then keeps near-initial weights. Here the statistics are recomputed as a plain
    average over up to ``max_windows`` clean training windows, with dropout off, as the
    network will see data in evaluation.

    Returns
    -------
    bool
        False when the network has no batch norm (nothing done).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms:
        return False
    n = len(next(iter(x.values())))
    rows = torch.arange(n, device=device)
    if n > max_windows:  # an evenly spread subset, the same every epoch
        rows = torch.linspace(0, n - 1, max_windows, device=device).round().long()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.eval()
    for m in norms:
        m.train()
    with torch.no_grad(), _autocast(device, amp):
        for i in range(0, len(rows), batch_size):
            idx = rows[i:i + batch_size]
            if len(idx) < 2:
                continue
            forward(model, kind, {k: v.index_select(0, idx) for k, v in x.items()})
    for m, mom in zip(norms, momenta, strict=True):
        m.momentum = mom
    model.eval()
    return True


def fit(model: nn.Module, kind: str, cfg: TrainConfig, seed: int,
        train: tuple[dict[str, np.ndarray], np.ndarray],
        val: tuple[dict[str, np.ndarray], np.ndarray] | None,
        device: torch.device, state_path: Path | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        threads: Any = None) -> tuple[nn.Module, list[dict], int]:
    """Train ``model`` with AdamW + cosine annealing, early stopping on validation loss.

    Raw EEG training batches are augmented as ``cfg.optim.augment`` says (Fourier surrogates,
    drawn from torch's global generator, whose state every epoch checkpoint keeps).

    The last history row carries ``stopped``: why training ended (all epochs run, or early
    stopping after ``patience`` epochs without a better validation loss).

    Parameters
    ----------
    train, val : (inputs, targets)
        Normalised input arrays by modality and targets (int classes or standardised floats).
        ``val`` None: train all epochs, keep the last.
    state_path : Path or None
        Epoch checkpoint (written after every epoch, resumed from if present).
    on_epoch : callable(dict)
        Called with each epoch's history row (progress display).
    threads : ThreadPolicy or None
        Asked before every epoch how many threads are free
        (:class:`~physioaffect.compute.ThreadPolicy`).

    Returns
    -------
    model (best validation state loaded), history (one dict per epoch), best_epoch (1-based).
    """
    task = "regression" if cfg.task == "regression" else "classification"
    ydtype = torch.float32 if task == "regression" else torch.long
    model.to(device)
    run_model = torch.compile(model) if cfg.compute.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    epochs = cfg.optim.epochs_for(len(train[1]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = _loss_fn(task, cfg.optim.label_smoothing)
    xt = _to_device(train[0], device)
    yt = torch.as_tensor(train[1], dtype=ydtype).to(device)
    xv = yv = None
    if val is not None and len(val[1]):
        xv = _to_device(val[0], device)
        yv = torch.as_tensor(val[1], dtype=ydtype).to(device)
    n = len(yt)
    # raw EEG training windows (batch, channels, samples) get Fourier surrogates; graph
    # inputs (batch, sub-windows, channels, bands) are features and are left as they are
    augment = cfg.optim.augment.startswith("ft_surrogate") and "eeg" in xt \
        and xt["eeg"].ndim == 3
    channel_independent = cfg.optim.augment == "ft_surrogate_channels"
    history: list[dict] = []
    best_loss, best_epoch, best_state, bad = math.inf, 0, None, 0
    start = 0
    if state_path is not None and state_path.exists():
        try:
            st = torch.load(state_path, map_location="cpu", weights_only=True)
            model.load_state_dict(st["model"])
        except Exception as err:  # noqa: BLE001 - torch raises many types for unsafe/bad files
            import pickle

            if isinstance(err, pickle.UnpicklingError):
                msg = "it holds Python objects other than tensors, refused unread"
            else:
                msg = (str(err).splitlines()[0] if str(err) else type(err).__name__)[:120]
            raise TrainingError(f"{state_path}: not a safe epoch checkpoint of this fold "
                                f"({msg}); delete it to restart the fold from epoch 1") from None
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        history = list(st["history"])
        best_loss, best_epoch, bad = float(st["best_loss"]), int(st["best_epoch"]), int(st["bad"])
        best_state = st["best_state"] or None
        torch.set_rng_state(st["rng"])
        if device.type == "cuda" and "cuda_rng" in st:
            torch.cuda.set_rng_state(st["cuda_rng"])
        start = int(st["epoch"])
    stopped = f"all {epochs} epochs run"
    for epoch in range(start, epochs):
        if best_epoch and cfg.optim.patience and bad >= cfg.optim.patience:
            stopped = (f"early stopping: validation loss not better than epoch {best_epoch} "
                       f"for {bad} epochs")
            break
        if threads is not None and device.type == "cpu":
            threads.adjust()
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(seed * 100003 + epoch)
        order = torch.randperm(n, generator=gen).to(device)
        total, count = 0.0, 0
        for i in range(0, n, cfg.optim.batch_size):
            idx = order[i:i + cfg.optim.batch_size]
            if len(idx) < 2 and n > 1:
                continue  # a batch of one breaks batch norm
            batch = {k: v.index_select(0, idx) for k, v in xt.items()}
            if augment:
                batch["eeg"] = fourier_surrogate(batch["eeg"], cfg.optim.augment_prob,
                                                 channel_independent=channel_independent)
            with _autocast(device, cfg.compute.amp):
                out = forward(run_model, kind, batch)
            loss = loss_fn(out.float(), yt.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        sched.step()
        row = {"epoch": epoch + 1, "train_loss": total / max(count, 1),
               "lr": float(opt.param_groups[0]["lr"])}
        if xv is not None:
            if cfg.optim.precise_bn:
                recalibrate_batchnorm(model, kind, xt, cfg.optim.batch_size, device,
                                      cfg.compute.amp)
            model.eval()
            with torch.no_grad(), _autocast(device, cfg.compute.amp):
                outs = [forward(run_model, kind, {k: v[i:i + 512] for k, v in xv.items()}).float()
                        for i in range(0, len(yv), 512)]
            out = torch.cat(outs)
            row["val_loss"] = float(loss_fn(out, yv))
            if task == "classification":
                row["val_accuracy"] = float((out.argmax(1) == yv).float().mean())
            if row["val_loss"] < best_loss - 1e-6:
                best_loss, best_epoch, bad = row["val_loss"], epoch + 1, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        else:
            best_epoch = epoch + 1
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if state_path is not None:
            st = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "history": history, "best_loss": best_loss,
                  "best_epoch": best_epoch, "bad": bad, "best_state": best_state or {},
                  "rng": torch.get_rng_state(), "epoch": epoch + 1}
            if device.type == "cuda":
                st["cuda_rng"] = torch.cuda.get_rng_state()
            tmp = state_path.with_suffix(".tmp")
            torch.save(st, tmp)
            tmp.replace(state_path)
            if _PAUSE_ENV in os.environ:  # testing/debugging: time to interrupt a tiny run
                time.sleep(float(os.environ[_PAUSE_ENV]))
    if best_state is not None:
        model.load_state_dict(best_state)  # its batch-norm statistics were recomputed
    else:
        best_epoch = len(history)
        if cfg.optim.precise_bn and history:  # no validation: recompute them once, at the end
            recalibrate_batchnorm(model, kind, xt, cfg.optim.batch_size, device, cfg.compute.amp)
    if history:
        history[-1]["stopped"] = stopped
        if on_epoch and stopped.startswith("early"):
            on_epoch({**history[-1], "final": True})
    return model, history, best_epoch


def copy_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)
