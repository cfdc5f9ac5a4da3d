"""The online decoder on a real StreamHub fed with simulator chunks (no LSL): window content
against the offline causal pipeline, schedule and timestamps, pauses on gaps, NaN and silence,
smoothing, and the checkpoint/source checks."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from physioaffect.models import create
from physioaffect.preprocessing import filter_array
from physioaffect.realtime import (
    CheckpointMismatchError,
    DecoderBundle,
    OnlineDecoder,
    Smoother,
    bundle_for_model,
    load_bundle,
    match_streams,
    save_bundle,
)
from physioaffect.realtime.demo import DEMO_PIPELINE
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import Chunk, StreamHub

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FS = 128.0
CFG = SimConfig(rate=128, eeg_channels=8, subjects=1)


def _bundle(n_times: int = 256, reverse: bool = False) -> DecoderBundle:
    torch.manual_seed(0)
    rec = simulate_subject(CFG, 0, duration=1)
    labels = list(rec.signals["EEG"][0].labels)
    labels = labels[::-1] if reverse else labels
    model = create("eegnet", n_chans=8, n_outputs=2, n_times=n_times, sfreq=FS)
    return bundle_for_model(model, DEMO_PIPELINE, labels, FS, n_times, task="classification",
                            target="arousal", outputs=["low", "high"], path="test")


@pytest.fixture(scope="module")
def sim_eeg():
    rec = simulate_subject(CFG, 0, duration=12)
    info, ts, x = rec.signals["EEG"]
    return info, ts + 1000.0, x


def _hub(info):
    return StreamHub([info], seconds=30)


def _feed(hub, dec, info, ts, x, chunk=13):
    preds = []
    for i in range(0, len(ts), chunk):
        hub.push(Chunk(info.name, ts[i:i + chunk], x[i:i + chunk]))
        preds += dec.step()
    return preds


def test_window_is_the_offline_causal_pipeline_and_stamped_with_its_last_sample(sim_eeg):
    info, ts, x = sim_eeg
    # the channels in the checkpoint come in a different order than in the stream
    bundle = _bundle(reverse=True)
    hub = _hub(info)
    windows = []
    dec = OnlineDecoder(hub, bundle, rate=4.0, warmup_s=1.0,
                        on_prediction=lambda p: windows.append(dec.window(
                            dec._count - int(np.searchsorted(ts, p.time)) - 1)[0]))
    preds = _feed(hub, dec, info, ts, x)
    # independent computation: causal filter of the whole recording, average reference
    picks = [info.labels.index(c) for c in bundle.ch_names]
    y = filter_array(x[:, picks].T.astype(np.float64), FS, DEMO_PIPELINE)
    y = y - y.mean(axis=0, keepdims=True)
    assert len(preds) > 20
    for p, w in zip(preds, windows, strict=True):
        end = int(np.searchsorted(ts, p.time))
        assert ts[end] == p.time  # the stamp is a sample's own timestamp
        np.testing.assert_allclose(w, y[:, end - 255:end + 1], rtol=1e-4, atol=1e-3)
        assert p.values.shape == (2,) and abs(p.values.sum() - 1) < 1e-6


@pytest.mark.parametrize("chunk", [7, 100])  # chunks shorter and longer than a hop
def test_predictions_every_hop_after_window_and_warmup(sim_eeg, chunk):
    info, ts, x = sim_eeg
    hub = _hub(info)
    dec = OnlineDecoder(hub, _bundle(), rate=4.0, warmup_s=1.0)
    preds = _feed(hub, dec, info, ts, x, chunk=chunk)
    t = np.array([p.time for p in preds]) - ts[0]
    # first window ends after 2 s of data plus 1 s of filter warm-up, then every 0.25 s
    assert t[0] == pytest.approx(3.0 - 1 / FS, abs=1.5 / FS)
    np.testing.assert_allclose(np.diff(t), 0.25, atol=1.01 / FS)
    assert len(preds) == pytest.approx((12 - 3) * 4, abs=1)
    assert all(p.published >= p.arrived for p in preds)  # (latency: bench_realtime.py)
    # every prediction carries the quality of its window: the simulator's EEG is clean
    assert all(0.5 <= p.quality <= 1.0 for p in preds)


def test_predictions_carry_the_quality_of_their_window(sim_eeg):
    """Electrode pops (3 mV steps) on 5 of 8 channels from 6 to 7 s: predictions whose window
    holds them are published with a low quality and the reason, once announced on the status
    stream; windows before and well after are clean."""
    info, ts, x = sim_eeg
    bad = x.copy()
    bad[int(6 * FS):int(7 * FS), :5] += 3000.0
    hub = _hub(info)
    status = []
    dec = OnlineDecoder(hub, _bundle(), rate=4.0, warmup_s=1.0, on_status=status.append)
    preds = _feed(hub, dec, info, ts, bad)
    t = np.array([p.time for p in preds]) - ts[0]
    q = np.array([p.quality for p in preds])
    hit = (t >= 6.0) & (t - 2.0 < 7.0)  # 2 s windows that hold part of the pops
    assert hit.any() and (q[hit] < 0.5).all()
    assert "peak-to-peak" in preds[int(np.flatnonzero(hit)[0])].quality_reasons
    assert (q[t < 6.0] >= 0.5).all() and (q[t > 10.0] >= 0.5).all()
    states = [s.state for s in status]
    assert states.count("low-quality") == 1 and "quality-ok" in states
    assert preds[0].sample().tolist() == [*preds[0].values.tolist(), preds[0].quality]


def test_gap_pauses_until_a_full_new_window(sim_eeg):
    info, ts, x = sim_eeg
    hub = _hub(info)
    status = []
    dec = OnlineDecoder(hub, _bundle(), rate=4.0, warmup_s=1.0, on_status=status.append)
    cut = int(5 * FS)
    before = _feed(hub, dec, info, ts[:cut], x[:cut])
    # the stream drops out for 2 s (samples never arrive) and comes back
    resume = cut + int(2 * FS)
    after = _feed(hub, dec, info, ts[resume:], x[resume:])
    assert before and after
    assert any(s.state == "paused" and "gap" in s.reason for s in status)
    # no prediction whose window would straddle the gap: the first one after it needs
    # 2 s window + 1 s warm-up of new data
    first = after[0].time
    assert first - ts[resume] >= 3.0 - 2 / FS
    assert status[-1].state == "running"


def test_nan_samples_pause_and_are_never_decoded(sim_eeg):
    info, ts, x = sim_eeg
    hub = _hub(info)
    status = []
    dec = OnlineDecoder(hub, _bundle(), rate=4.0, warmup_s=0.5, on_status=status.append)
    bad = x.copy()
    bad[int(4 * FS):int(4.5 * FS), 3] = np.nan
    preds = _feed(hub, dec, info, ts, bad)
    assert any("non-finite" in s.reason for s in status)
    for p in preds:
        assert np.isfinite(p.values).all()
        # no window contains a NaN sample or the restart of the filter after it
        assert not (4.0 <= p.time - ts[0] < 4.5 + 2.5 - 1 / FS)


def test_silence_reports_paused(sim_eeg):
    info, ts, x = sim_eeg
    hub = _hub(info)
    status = []
    dec = OnlineDecoder(hub, _bundle(), rate=4.0, stale_s=0.2, on_status=status.append)
    _feed(hub, dec, info, ts[:600], x[:600])
    time.sleep(0.3)
    assert dec.step() == []
    assert status[-1].state == "paused" and "no data" in status[-1].reason


def test_smoother_time_constant():
    sm = Smoother(1.0)
    sm(0.0, np.array([0.0]))
    # a step of 1: after tau seconds of updates the output reaches 1 - 1/e
    t = np.arange(1, 101) * 0.01
    out = [sm(tt, np.array([1.0]))[0] for tt in t]
    assert out[-1] == pytest.approx(1 - np.exp(-1), abs=1e-9)
    assert Smoother(0.0)(5.0, np.array([3.0]))[0] == 3.0


def test_mismatched_streams_are_refused_with_the_reason(sim_eeg, tmp_path):
    info, ts, x = sim_eeg
    bundle = _bundle()
    path = save_bundle(bundle, tmp_path / "ckpt")
    loaded = load_bundle(path)
    assert loaded.ch_names == bundle.ch_names and loaded.sfreq == FS
    other = SimConfig(rate=128, eeg_channels=14)
    info14 = simulate_subject(other, 0, duration=1).signals["EEG"][0]
    with pytest.raises(CheckpointMismatchError, match="lacks channel"):
        match_streams(loaded, [info14])
    info256 = simulate_subject(SimConfig(rate=256, eeg_channels=8), 0, duration=1).signals["EEG"][0]
    with pytest.raises(CheckpointMismatchError, match="256 Hz.*128 Hz"):
        match_streams(loaded, [info256])
    with pytest.raises(CheckpointMismatchError, match="no EEG stream"):
        match_streams(loaded, [simulate_subject(CFG, 0, duration=1).signals["ECG"][0]])
    assert match_streams(loaded, [info]).picks == list(range(8))


def _training_checkpoint(tmp_path, modalities, rec, n_times=256, adaptation=None):
    """A checkpoint with a contract written the way ``physioaffect train`` writes one."""
    from physioaffect.features import peripheral as pf
    from physioaffect.models import CheckpointContract, MultimodalFusion, save_checkpoint
    from physioaffect.preprocessing.standardise import Standardiser

    info, ts, x = rec.signals["EEG"]
    labels = info.labels
    torch.manual_seed(0)
    X = np.stack([filter_array(x[i:i + n_times].T, FS, DEMO_PIPELINE)
                  for i in range(0, 1024, 128)])
    norms = {"eeg": Standardiser((1,)).fit(X).standardisation()}
    kw = {}
    rng = np.random.default_rng(0)
    if "peripheral" in modalities:
        names = list(pf.feature_names("ECG")) + list(pf.feature_names("EDA"))
        norms["peripheral"] = Standardiser((1,)).fit(
            rng.standard_normal((20, len(names)))).standardisation()
        kw = {"peripheral_signals": ("ECG", "GSR"), "peripheral_features": tuple(names)}
        model = MultimodalFusion(8, 2, n_times, FS, eeg_encoder="deformer",
                                 n_peripheral_features=len(names), d_model=16, heads=2)
    elif "face" in modalities:
        from physioaffect.features.face import face_feature_names
        from physioaffect.streams.face_layout import FEATURE_LABELS

        names = face_feature_names(FEATURE_LABELS)
        norms["face"] = Standardiser((1,)).fit(
            rng.standard_normal((20, len(names)))).standardisation()
        kw = {"face_features": tuple(names), "face_min_valid": 0.5}
        model = MultimodalFusion(8, 2, n_times, FS, eeg_encoder="deformer",
                                 n_face_features=len(names), d_model=16, heads=2)
    else:
        model = create("eegnet", n_chans=8, n_outputs=2, n_times=n_times, sfreq=FS)
    from physioaffect.models import name_of

    contract = CheckpointContract(
        model=name_of(model), modalities=tuple(modalities), task="classification",
        target="arousal", class_names=("low", "high"), channels=tuple(labels), sfreq=FS,
        pipeline=DEMO_PIPELINE, window_s=n_times / FS, step_s=1.0, n_times=n_times,
        input_kind="raw", normalisation=norms, label_rule="gt5",
        subject_adaptation=adaptation or {}, **kw)
    return save_checkpoint(model.eval(), tmp_path / "fold0" / "checkpoint", contract)


def test_training_checkpoint_decodes_like_the_training_scorer(sim_eeg, tmp_path):
    info, ts, x = sim_eeg
    rec = simulate_subject(CFG, 0, duration=12)
    path = _training_checkpoint(tmp_path, ["eeg"], rec)
    bundle = load_bundle(tmp_path / "fold0")  # a fold folder works too
    assert bundle.ch_names == list(info.labels)
    hub = _hub(info)
    got = []
    dec = OnlineDecoder(hub, bundle, rate=2.0, warmup_s=0.0,
                        on_prediction=lambda p: got.append((p, dec.window(
                            dec._count - int(np.searchsorted(ts, p.time)) - 1)[0])))
    _feed(hub, dec, info, ts, x)
    from physioaffect.training.checkpoint import build_inputs, load_checkpoint, predict

    model, contract = load_checkpoint(path)
    assert len(got) > 5
    for p, w in got[:5]:
        ref = predict(model, contract, build_inputs(contract, w[None]))[0]
        np.testing.assert_allclose(p.values, ref, rtol=1e-5, atol=1e-6)


def test_fusion_checkpoint_masks_missing_peripheral_streams(tmp_path):
    rec = simulate_subject(CFG, 0, duration=14)
    # 4 s windows: heart-rate features need a few beats
    path = _training_checkpoint(tmp_path, ["eeg", "peripheral"], rec, n_times=512)
    bundle = load_bundle(path)
    einfo, ets, ex = rec.signals["EEG"]
    cinfo, cts, cx = rec.signals["ECG"]
    results = {}
    for with_ecg in (False, True):
        infos = [einfo, cinfo] if with_ecg else [einfo]
        hub = StreamHub(infos, seconds=30)
        if with_ecg:  # the peripheral stream is there (all of it, before decoding starts)
            hub.push(Chunk(cinfo.name, cts, cx))
        dec = OnlineDecoder(hub, bundle, rate=2.0, warmup_s=0.0)
        if dec.peripheral is not None:
            dec.peripheral._row = dec.peripheral.compute()
            dec.peripheral.stop()
        preds = _feed(hub, dec, einfo, ets, ex)
        results[with_ecg] = (dec.modalities_used, preds[-1].values, dec.reason)
        dec.close()
    assert results[False][0] == ("eeg",) and "peripheral masked" in results[False][2]
    assert results[True][0] == ("eeg", "peripheral")
    # the peripheral branch changes the output (it is really used when present)
    assert not np.allclose(results[False][1], results[True][1])


def test_fusion_checkpoint_uses_a_live_face_stream_and_masks_frames_without_a_face(tmp_path):
    from physioaffect.streams.face_layout import FEATURE_LABELS, STATUS_CODES, face_stream_info

    rec = simulate_subject(CFG, 0, duration=12)
    path = _training_checkpoint(tmp_path, ["eeg", "face"], rec)
    bundle = load_bundle(path)
    einfo, ets, ex = rec.signals["EEG"]
    finfo = face_stream_info("cam", nominal_srate=30.0)
    fts = np.arange(ets[0], ets[-1] + 0.5, 1 / 30.0)
    rng = np.random.default_rng(1)
    frames = rng.uniform(0.2, 0.8, (fts.size, len(FEATURE_LABELS))).astype(np.float32)
    frames[:, FEATURE_LABELS.index("status")] = STATUS_CODES["ok"]
    lost = frames.copy()  # the person left: no face in any frame
    lost[:, 1:] = np.nan
    lost[:, FEATURE_LABELS.index("status")] = STATUS_CODES["no_face"]
    results = {}
    for case, stream in (("none", None), ("face", frames), ("no_face", lost)):
        hub = StreamHub([einfo] if stream is None else [einfo, finfo], seconds=30)
        if stream is not None:
            hub.push(Chunk(finfo.name, fts, stream))
        dec = OnlineDecoder(hub, bundle, rate=2.0, warmup_s=0.0)
        preds = _feed(hub, dec, einfo, ets, ex)
        results[case] = (dec.modalities_used, preds[-1].values)
        dec.close()
    assert results["none"][0] == ("eeg",) and results["no_face"][0] == ("eeg",)
    assert results["face"][0] == ("eeg", "face")
    np.testing.assert_allclose(results["no_face"][1], results["none"][1], atol=1e-6)
    assert not np.allclose(results["face"][1], results["none"][1])  # the face branch is used


def test_adapted_checkpoint_calibrates_on_the_subject_before_its_first_prediction(sim_eeg,
                                                                                  tmp_path):
    """A checkpoint trained with Euclidean alignment: no prediction during the calibration
    period; then predictions equal the training scorer's with the alignment fitted on exactly
    the calibration windows (no labels anywhere)."""
    from physioaffect.models.feeding import InputMismatchError
    from physioaffect.training.checkpoint import (
        build_inputs,
        fit_adaptation,
        load_checkpoint,
        predict,
    )

    info, ts, x = sim_eeg
    rec = simulate_subject(CFG, 0, duration=12)
    path = _training_checkpoint(tmp_path, ["eeg"], rec, adaptation={
        "method": "euclidean", "transductive": True, "calibration_s": 4.0})
    bundle = load_bundle(path)
    hub = _hub(info)
    status, windows, got = [], [], []
    dec = OnlineDecoder(hub, bundle, rate=2.0, warmup_s=0.0, on_status=status.append,
                        on_prediction=lambda p: got.append((p, dec.window(
                            dec._count - int(np.searchsorted(ts, p.time)) - 1)[0])))
    calibrate = dec.calibrate

    def spy(w, t_end):  # the windows the decoder calibrates on, as it sees them
        windows.append(w.copy())
        return calibrate(w, t_end)

    dec.calibrate = spy
    assert dec.calibrating
    _feed(hub, dec, info, ts, x)
    assert not dec.calibrating and got
    # 2 s windows every 0.5 s: 4 s of signal after 5 windows (first one counts its whole length)
    assert len(windows) == 5
    assert "calibrating" in [s.state for s in status]
    first = got[0][0].time
    assert first - ts[0] >= 4.0  # nothing before the calibration period is over
    model, contract = load_checkpoint(path)
    adapter = fit_adaptation(contract, np.stack(windows))
    for p, w in got[:4]:
        ref = predict(model, contract, build_inputs(contract, w[None], adaptation=adapter))[0]
        np.testing.assert_allclose(p.values, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputMismatchError, match="per-subject adaptation 'euclidean'"):
        build_inputs(contract, got[0][1][None])


def test_online_adaptation_equals_the_trainers_stream_order_evaluation(sim_eeg, tmp_path):
    """A checkpoint with online Euclidean alignment: the decoder's predictions, window for
    window, equal training's live-protocol procedure (:func:`stream_adapted`: calibrate on the
    first windows, then update with each window before scoring it) run on the same windows and
    end times."""
    from physioaffect.models.feeding import model_arrays, normalise, predict, start_adaptation
    from physioaffect.training.checkpoint import load_checkpoint
    from physioaffect.training.live import calibration_count, stream_adapted

    info, ts, x = sim_eeg
    rec = simulate_subject(CFG, 0, duration=12)
    path = _training_checkpoint(tmp_path, ["eeg"], rec, adaptation={
        "method": "euclidean", "calibration_s": 4.0, "online": True})
    bundle = load_bundle(path)
    hub = _hub(info)
    calib, got = [], []
    dec = OnlineDecoder(hub, bundle, rate=2.0, warmup_s=0.0,
                        on_prediction=lambda p: got.append((p, dec.window(
                            dec._count - int(np.searchsorted(ts, p.time)) - 1)[0])))
    calibrate = dec.calibrate

    def spy(w, t_end):
        calib.append((w.copy(), t_end))
        return calibrate(w, t_end)

    dec.calibrate = spy
    _feed(hub, dec, info, ts, x)
    assert dec.adaptation.online and not dec.adaptation.frozen and len(got) > 8
    # every decoded window follows the previous one by one hop: a stream without gaps
    times = np.array([t for _, t in calib] + [p.time for p, _ in got])
    assert np.allclose(np.diff(times), 0.5, atol=1.5 / FS)
    windows = np.stack([w for w, _ in calib] + [w for _, w in got])
    assert calibration_count(times, bundle.window_s, 4.0) == len(calib)

    model, contract = load_checkpoint(path)
    arrays = model_arrays(contract, windows)
    adapted = stream_adapted(start_adaptation(contract), arrays, times, len(calib))
    ref = predict(model, contract, normalise(contract, adapted))
    live = np.stack([p.values for p, _ in got])
    np.testing.assert_allclose(live, ref, rtol=1e-5, atol=1e-6)
    # and it is not the frozen reference: later windows see a reference that moved on
    frozen = stream_adapted(start_adaptation(contract, online=False), arrays, times,
                            len(calib))
    assert not np.allclose(adapted["eeg"][-1], frozen["eeg"][-1], atol=1e-3)


def test_a_stream_in_volts_decodes_as_the_same_stream_in_microvolts(sim_eeg):
    """Units on the live path: an EEG stream that says volts is converted (the network sees
    microvolts); one in an unknown unit, or without a unit, is refused with one line naming
    the stream and channel, unless the operator declares the unit."""
    import dataclasses

    info, ts, x = sim_eeg
    assert {c.unit for c in info.channels} == {"microvolts"}
    bundle = _bundle()

    def run(stream_info, samples, **kw):
        hub = StreamHub([stream_info], seconds=30)
        dec = OnlineDecoder(hub, bundle, rate=2.0, warmup_s=0.0, **kw)
        return np.stack([p.values for p in _feed(hub, dec, stream_info, ts, samples)])

    def with_unit(unit: str):
        return dataclasses.replace(info, channels=tuple(dataclasses.replace(c, unit=unit)
                                                        for c in info.channels))

    ref = run(info, x)
    volts = run(with_unit("V"), x * 1e-6)
    np.testing.assert_allclose(volts, ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(run(with_unit("uV"), x * 1e-6), ref, atol=1e-3)  # the positive control
    with pytest.raises(CheckpointMismatchError, match=r"channel .*cannot convert unit 'furlongs'"):
        run(with_unit("furlongs"), x)
    with pytest.raises(CheckpointMismatchError, match="declare it with --eeg-unit"):
        run(with_unit(""), x)
    np.testing.assert_allclose(run(with_unit(""), x * 1e-3, eeg_unit="mV"), ref, rtol=1e-4,
                               atol=1e-5)
