"""A small arousal decoder trained in seconds on simulated subjects.

It exists so that ``physioaffect decode``, the viewer's neurofeedback panel, the tests and the
live-session notebook can run end to end on any machine without a training run: the
simulator's subjects are generated offline (:func:`~physioaffect.sources.sim.simulate_subject`),
filtered with the same causal pipeline the live decoder applies, cut into windows labelled
high/low arousal from the scripted stimuli, and a ShallowConvNet is fitted for a few epochs.
Real studies train with ``physioaffect train`` (the training stage) instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from physioaffect.models import create
from physioaffect.preprocessing import PipelineConfig, filter_array
from physioaffect.realtime.checkpoint import DecoderBundle, bundle_for_model
from physioaffect.sources.sim import NEUTRAL, SimConfig, simulate_subject, stream_infos

__all__ = ["DEMO_PIPELINE", "arousal_windows", "train_demo_bundle"]

#: Causal pipeline shared by training and live decoding (band-pass 1-40 Hz, notch, avg ref).
DEMO_PIPELINE = PipelineConfig(l_freq=1.0, h_freq=40.0, phase="causal", notch_freq=50.0,
                               reference="average", detect_bads=False, interpolate_bads=False)


def arousal_windows(
    config: SimConfig, subject: int, window_s: float, step_s: float, t_from: float = 0.0,
    duration: float | None = None, settle_s: float = 3.0,
    pipeline: PipelineConfig = DEMO_PIPELINE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of one simulated subject inside stimulus blocks, labelled by arousal.

    Parameters
    ----------
    config : SimConfig
    subject : int
    window_s, step_s : float
        Window length and step, s.
    t_from : float
        Scenario time (s) before which windows are not taken (data before it still
        primes the causal filter).
    duration : float, optional
        Seconds to simulate (default: one scenario cycle after ``t_from``).
    settle_s : float
        Seconds after a stimulus onset before windows start (affect follows with a lag).

    Returns
    -------
    X : ndarray, shape (n_windows, n_chans, n_times)
        Causally filtered EEG in microvolts.
    y : ndarray, shape (n_windows,)
        1 for arousal above the neutral 5, else 0.
    t_end : ndarray, shape (n_windows,)
        Scenario time of each window's last sample, s.
    """
    duration = duration if duration is not None else t_from + config.cycle_seconds
    rec = simulate_subject(config, subject, duration=duration)
    info, ts, data = rec.signals["EEG"]
    fs = info.nominal_srate
    x = filter_array(data.T, fs, pipeline)  # (C, N), causal as live
    if pipeline.reference == "average":
        x = x - x.mean(axis=0, keepdims=True)
    n_win, n_step = int(round(window_s * fs)), int(round(step_s * fs))
    xs, ys, te = [], [], []
    for tr in rec.trials:
        if tr["onset"] < t_from:
            continue
        start = int(np.ceil((tr["onset"] + settle_s) * fs))
        stop = int(np.floor(tr["offset"] * fs))
        for s in range(start, stop - n_win + 1, n_step):
            xs.append(x[:, s:s + n_win])
            ys.append(int(tr["arousal"] > NEUTRAL))
            te.append(ts[s + n_win - 1])
    return (np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64),
            np.asarray(te, dtype=np.float64))


def train_demo_bundle(
    config: SimConfig, subjects: Sequence[int] = (0, 1, 2), window_s: float = 2.0,
    epochs: int = 15, seed: int = 0, t_from: float | None = None, cycles: int = 1,
) -> tuple[DecoderBundle, dict[str, float]]:
    """Train a ShallowConvNet high/low arousal decoder on simulated subjects.

    Parameters
    ----------
    config : SimConfig
        The simulator's configuration (the live source must use the same channels and rate).
    subjects : sequence of int
        Training subjects.
    window_s : float
        Window length, s.
    epochs : int
    seed : int
    t_from : float, optional
        Use only stimuli from this scenario time on (default: the second cycle, so a live
        simulator starting at scenario time 0 shows the model data it was not trained on).
    cycles : int
        Scenario cycles used for training after ``t_from``.

    Returns
    -------
    bundle : DecoderBundle
    info : dict
        ``train_accuracy`` and ``n_windows``.
    """
    torch.manual_seed(seed)
    t_from = config.cycle_seconds if t_from is None else t_from
    parts = [arousal_windows(config, s, window_s, window_s / 2, t_from=t_from,
                             duration=t_from + cycles * config.cycle_seconds) for s in subjects]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    fs = float(config.rate)
    n_times = X.shape[2]
    model = create("shallow_convnet", n_chans=X.shape[1], n_outputs=2, n_times=n_times, sfreq=fs,
                   n_filters_time=8, n_filters_spat=8, filter_time_length=13,
                   pool_time_length=int(fs // 2), pool_time_stride=int(fs // 8), drop_prob=0.25)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.inference_mode():
        acc = float((model(Xt).argmax(1) == yt).float().mean())
    ch_names = list(stream_infos(config)["EEG"].labels)
    bundle = bundle_for_model(model, DEMO_PIPELINE, ch_names, fs, n_times,
                              task="classification", target="arousal",
                              outputs=["low", "high"], path="demo")
    return bundle, {"train_accuracy": acc, "n_windows": int(len(y))}
