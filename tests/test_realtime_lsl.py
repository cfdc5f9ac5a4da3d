"""``physioaffect decode`` end to end over real LSL: the simulator published by
``physioaffect stream`` in one process, the decoder in another, predictions received here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pylsl
import pytest
import torch
from conftest import cli

from physioaffect.realtime import save_bundle
from physioaffect.realtime.analysis import block_scores, prediction_table, stimulus_blocks
from physioaffect.realtime.demo import train_demo_bundle
from physioaffect.recording import read_session
from physioaffect.sources.sim import NEUTRAL, SimConfig, scenario_cycle

# A short scenario so that a run sees both high- and low-arousal stimuli; affect effects
# doubled so that a model trained in seconds on two subjects picks them up.
SIM = dict(rate=128, eeg_channels=32, n_trials=4, stimulus_seconds=12, rest_seconds=4,
           baseline_seconds=2, subjects=2, effect=2.0)


def _spec(prefix: str, speed: float, **extra) -> str:
    opts = {**SIM, **extra, "prefix": prefix, "speed": speed}
    return "sim?" + "&".join(f"{k}={v}" for k, v in opts.items())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A ShallowConvNet trained in seconds on subjects 0 and 1, scenario cycles 1-2 (the live
    run streams cycle 0, which the model has not seen)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # restored below: other tests keep their setting
    try:
        bundle, info = train_demo_bundle(SimConfig(**SIM), subjects=(0, 1), epochs=10,
                                         cycles=2)
    finally:
        torch.set_num_threads(old)
    assert info["train_accuracy"] > 0.8
    return save_bundle(bundle, tmp_path_factory.mktemp("rt") / "ckpt")


def _start(args, **kw):
    return subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _stop(*procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _inlet(name: str, timeout: float = 60.0) -> pylsl.StreamInlet:
    found = pylsl.resolve_bypred(f"name='{name}'", 1, timeout)
    assert found, f"LSL stream {name} never appeared"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=pylsl.proc_clocksync)
    inlet.open_stream(timeout=10)
    return inlet


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _decoder(checkpoint, prefix: str) -> tuple[subprocess.Popen, pylsl.StreamInlet]:
    """Start ``decode`` waiting for ``<prefix>-EEG``; connect to its prediction outlet first so
    that no prediction is missed."""
    dec = _start(["decode", "--checkpoint", str(checkpoint), "--source",
                  f"lsl:{prefix}-EEG?timeout=60", "--rate", "4", "--duration", "90",
                  "--name", f"{prefix}-pred"])
    return dec, _inlet(f"{prefix}-pred")


def _finish(dec: subprocess.Popen) -> dict:
    dec.send_signal(signal.SIGTERM)  # ends the run normally, with its JSON summary
    out, err = dec.communicate(timeout=60)
    assert dec.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_predictions_arrive_at_the_rate_and_follow_the_data(checkpoint):
    prefix = f"rtrate{os.getpid()}"
    dec, pred = _decoder(checkpoint, prefix)
    info = pred.info()
    # the two class probabilities, then the quality of the decoded window
    assert info.type() == "Prediction" and info.channel_count() == 3
    pub = _start(["stream", "--source", _spec(prefix, 1.0), "--duration", "30"])
    try:
        eeg = _inlet(f"{prefix}-EEG")
        got, eeg_ts = [], []
        t_end = time.monotonic() + 7.0
        while time.monotonic() < t_end:
            _, ts = eeg.pull_chunk(timeout=0.0)
            eeg_ts += ts
            sample, t = pred.pull_sample(timeout=0.05)
            if t is not None:
                got.append((t, pylsl.local_clock(), sample))
        summary = _finish(dec)
    finally:
        _stop(dec, pub)
    stamps = np.array([g[0] for g in got])
    # (the wall-clock rate and the latency are timings: benchmarks/bench_realtime.py measures
    # them; the suite checks what does not depend on the machine's load)
    assert len(got) >= 10
    # data time: every 32 samples of the 128 Hz stream, each stamp is an EEG sample's time
    np.testing.assert_allclose(np.diff(stamps), 0.25, atol=1.5 / 128)
    eeg_ts = np.asarray(eeg_ts)
    inside = stamps[(stamps >= eeg_ts[0]) & (stamps <= eeg_ts[-1])]
    assert len(inside) >= 5
    right = np.searchsorted(eeg_ts, inside).clip(1, len(eeg_ts) - 1)
    nearest = np.minimum(np.abs(eeg_ts[right] - inside), np.abs(eeg_ts[right - 1] - inside))
    assert nearest.max() < 1e-3
    assert summary["predictions"] >= len(got) and np.isfinite(summary["p95_ms"])
    probs = np.array([g[2] for g in got])
    np.testing.assert_allclose(probs[:, :2].sum(axis=1), 1.0, atol=1e-4)
    assert (probs[:, 2] >= 0.5).all()  # the simulator's EEG passes the quality criteria


def test_high_arousal_blocks_are_decoded_as_such(checkpoint, tmp_path):
    prefix = f"rtaro{os.getpid()}"
    speed = 5.0
    config = SimConfig(**SIM)
    dec, pred = _decoder(checkpoint, prefix)
    # the lab's recorder takes the prediction stream along with the signals and markers
    session_file = tmp_path / "live.h5"
    rec = _start(["record", "--source", f"lsl:{prefix}-pred?timeout=30", "--source",
                  f"lsl:{prefix}-Markers?timeout=30", "--source", f"lsl:{prefix}-EEG?timeout=30",
                  "--subject", "sim0", "--session", "live", "--task", "decode", "--duration",
                  f"{config.cycle_seconds / speed + 3:.0f}", "--out", str(session_file), "-q",
                  "--mark-port", str(_free_udp_port()), "--marker-keys", ""])
    pub = _start(["stream", "--source", _spec(prefix, speed), "--duration",
                  f"{config.cycle_seconds / speed + 0.5:.1f}"])
    try:
        markers = _inlet(f"{prefix}-Markers")
        got, marks = [], []
        while pub.poll() is None or pred.samples_available():
            m, mt = markers.pull_chunk(timeout=0.0)
            marks += [(t, json.loads(s[0])) for s, t in zip(m, mt, strict=True)]
            s, t = pred.pull_chunk(timeout=0.05)
            got += [(tt, ss[1]) for ss, tt in zip(s, t, strict=True)]
        _finish(dec)
        rec_out, rec_err = rec.communicate(timeout=90)
    finally:
        _stop(dec, pub, rec)
    assert rec.returncode == 0, rec_err[-2000:]
    # the scenario is scripted: one marker tells where scenario time 0 lies on the LSL clock
    trials = {tr.trial: tr for tr in scenario_cycle(config, 0, 0)}
    assert marks, "no marker received"
    t_mark, m = marks[0]
    tr = trials[m["trial"]]
    t0 = t_mark - (tr.onset if m["event"] == "stimulus_onset" else tr.offset)
    t_pred = np.array([g[0] for g in got]) - t0
    p_high = np.array([g[1] for g in got])
    high, low = [], []
    for tr in trials.values():
        # 2 s windows inside the block, from 3 s after onset (affect lags the stimulus)
        sel = (t_pred >= tr.onset + 5.0) & (t_pred <= tr.offset)
        assert sel.sum() >= 8, f"trial {tr.trial}: only {sel.sum()} predictions"
        (high if tr.arousal > NEUTRAL else low).append(p_high[sel].mean())
    assert len(high) == 2 and len(low) == 2
    assert min(high) > max(low)
    assert np.mean(high) > 0.5 and np.mean(low) < 0.3

    # the recording holds the same predictions, and the analysis of the notebook finds the
    # blocks from its markers and scores them alike
    session = read_session(session_file)
    table = prediction_table(session)
    assert table.columns.tolist()[2:] == ["arousal_low", "arousal_high", "quality"]
    # the two inlets estimate the clock offset separately: match stamps within 1 ms
    t_got = np.array([g[0] for g in got])
    idx = np.searchsorted(t_got, table["time"].to_numpy()).clip(1, len(t_got) - 1)
    idx = np.where(np.abs(t_got[idx - 1] - table["time"]) < np.abs(t_got[idx] - table["time"]),
                   idx - 1, idx)
    close = np.abs(t_got[idx] - table["time"].to_numpy()) < 1e-3
    assert close.sum() >= 0.8 * len(table) > 0
    np.testing.assert_allclose(table["arousal_high"].to_numpy()[close], p_high[idx[close]],
                               atol=1e-6)
    blocks = stimulus_blocks(session)
    scores = block_scores(table, blocks, "arousal_high", window_s=2.0, settle_s=3.0)
    scores = scores[scores.n >= 8]
    assert scores.high.any() and (~scores.high).any()
    assert scores.loc[scores.high, "mean"].min() > scores.loc[~scores.high, "mean"].max()


def test_decode_refuses_a_mismatched_source(checkpoint):
    # 14 EEG channels (DREAMER set) where the checkpoint wants the 32 DEAP channels
    r = subprocess.run(cli("decode", "--checkpoint", str(checkpoint), "--source",
                           "sim?eeg_channels=14&rate=128", "--duration", "2"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "lacks channel" in r.stderr and "Fp1" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(cli("decode", "--checkpoint", str(checkpoint), "--source",
                           "sim?eeg_channels=32&rate=256", "--duration", "2"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "256 Hz" in r.stderr and "128 Hz" in r.stderr
