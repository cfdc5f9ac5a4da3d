"""MNE and BIDS as their users expect them: a lazily read session Raw (SI units, montage),
``to_epochs`` from datasets (volts, metadata, montage), a BIDS export read back by mne-bids
(electrodes, typed events, no padding), and EDF labels MNE maps to channel types.

Ground truth is the simulator's own samples written through the session writer, the dataset
fixtures' arrays as the readers return them, and MNE's own template montage."""

from __future__ import annotations

import json
import tracemalloc
import warnings

import mne
import numpy as np
import pytest
from conftest import write_truth_session

from physioaffect.datasets import DatasetError, braindecode_windows, open_dataset, to_epochs
from physioaffect.datasets.base import TrialsDroppedWarning
from physioaffect.datasets.fixtures import write_deap, write_seed
from physioaffect.recording import SessionWriter, export_bids, export_edf, to_raw
from physioaffect.recording.raw import events_and_metadata
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import Chunk, StreamInfo

# ECG/EDA/PPG/RESP at 512 Hz, twice the EEG rate: they are low-pass filtered into the Raw.
CFG = SimConfig(eeg_channels=8, rate=256, periph_rate=512, seed=3, baseline_seconds=1,
                stimulus_seconds=2, rest_seconds=1)
T0 = 500.0
SECONDS = 10.5  # not whole seconds: EDF must pad, BrainVision must not


def _template_positions(names):
    """Head-frame positions MNE itself gives these labels (its 10-05 template)."""
    info = mne.create_info(list(names), 100.0, "eeg")
    key = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() \
        else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        info.set_montage(mne.channels.make_standard_montage(key), match_case=False)
    return np.array([ch["loc"][:3] for ch in info["chs"]])


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    truth = simulate_subject(CFG, 0, duration=SECONDS, t0=T0)
    path = tmp_path_factory.mktemp("mne") / "sub-04_ses-1_task-emo_run-1_physio.h5"
    return write_truth_session(path, truth, T0, subject="04", session="1", task="emo",
                               run=1), truth


def test_to_raw_is_lazy_si_and_has_the_montage(session):
    path, truth = session
    raw = to_raw(path)
    assert isinstance(raw, mne.io.BaseRaw) and not raw.preload
    eeg_info, eeg_ts, eeg_x = truth.signals["EEG"]
    labels = eeg_info.labels
    assert raw.n_times == eeg_x.shape[0]
    # a segment read from the file on demand: the recorded microvolts, in volts
    seg = raw.get_data(picks=labels, start=1000, stop=1300)
    np.testing.assert_allclose(seg.T, eeg_x[1000:1300] * 1e-6, rtol=1e-6)
    assert raw._orig_units["Fp1"] == "µV" and raw._orig_units["ECG"] == "mV"
    # lazily read blocks of every channel equal the preloaded whole (the 512 Hz streams are
    # filtered block by block with a settling margin)
    full = to_raw(path, preload=True).get_data()
    pieces = np.concatenate([raw.get_data(start=a, stop=min(a + 700, raw.n_times))
                             for a in range(0, raw.n_times, 700)], axis=1)
    span = full.max(axis=1, keepdims=True) - full.min(axis=1, keepdims=True)
    assert np.all(np.abs(pieces - full) <= 1e-6 * span + 1e-15)
    # ECG at 512 Hz onto the 256 Hz grid: the (low-passed) original at the even samples
    ecg = full[raw.ch_names.index("ECG")]
    ref = truth.signals["ECG"][2][::2, 0] * 1e-3
    assert np.corrcoef(ecg[: ref.size], ref)[0, 1] > 0.99
    # montage: MNE's template positions for these labels, in the head frame
    got = np.array([raw.info["chs"][raw.ch_names.index(c)]["loc"][:3] for c in labels])
    np.testing.assert_allclose(got, _template_positions(labels), atol=1e-6)
    assert raw.get_montage().get_positions()["coord_frame"] == "head"
    assert dict(zip(raw.ch_names, raw.get_channel_types(), strict=True))["EDA"] == "gsr"
    # markers split into event name + fields on request
    split = to_raw(path, markers="split").annotations
    onset = [i for i, d in enumerate(split.description) if d == "stimulus_onset"]
    first = json.loads(truth.markers[0][1])
    assert split.extras[onset[0]]["trial"] == first["trial"]
    assert split.extras[onset[0]]["valence"] == pytest.approx(first["valence"])


def test_to_raw_reads_a_long_file_without_a_dense_copy(tmp_path):
    """64 channels x 60 s at 1 kHz: opening it and reading 2 s allocates far less than the
    30 MB a dense float64 copy would take."""
    fs, n, n_ch = 1000.0, 60_000, 64
    rng = np.random.default_rng(0)
    info = StreamInfo.from_labels("big-EEG", "EEG", [f"E{i}" for i in range(n_ch)], fs,
                                  "microvolts")
    path = tmp_path / "sub-1_task-long_physio.h5"
    w = SessionWriter(path, subject="1", task="long", journal=False, compression="lzf")
    w.add_stream(info)
    x = rng.normal(0, 20, (n, n_ch)).astype(np.float32)
    for a in range(0, n, 10_000):
        w.append(Chunk(info.name, 10.0 + np.arange(a, a + 10_000) / fs, x[a:a + 10_000]))
    w.close()
    to_raw(path).get_data(start=0, stop=10)  # imports and caches outside the measurement
    tracemalloc.start()
    raw = to_raw(path)
    got = raw.get_data(start=30_000, stop=32_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(got, x[30_000:32_000].T * 1e-6, rtol=1e-6)
    dense = n * n_ch * 8
    assert peak < dense / 3, f"peak {peak / 1e6:.1f} MB for a {dense / 1e6:.1f} MB recording"


@pytest.fixture(scope="module")
def deap(tmp_path_factory):
    return write_deap(tmp_path_factory.mktemp("deap") / "data_preprocessed_python",
                      n_subjects=2, seconds=4, n_trials=4)


def test_to_epochs_deap_volts_metadata_montage(deap):
    reader = open_dataset("deap", deap)
    recs = [reader.read_subject(s) for s in reader.subjects]
    ep = to_epochs("deap", deap, tmin=-1.0)
    trials = [tr for r in recs for tr in r.trials]
    assert len(ep) == len(trials)
    fs = trials[0].sfreq
    x = ep.get_data()
    for i, tr in enumerate(trials):  # baseline's last second, then the whole stimulus
        ref = np.concatenate([tr.baseline[:, -int(fs):], tr.eeg], axis=1) * 1e-6
        np.testing.assert_allclose(x[i], ref, rtol=1e-12)
    assert ep.times[0] == pytest.approx(-1.0) and ep.times[-1] == pytest.approx(4 - 1 / fs)
    md = ep.metadata
    assert list(md["subject"]) == [tr.subject for tr in trials]
    assert list(md["trial"]) == [tr.trial for tr in trials]
    np.testing.assert_allclose(md["valence"], [tr.ratings["valence"] for tr in trials])
    np.testing.assert_allclose(md["arousal"], [tr.ratings["arousal"] for tr in trials])
    # one event id per stimulus, and selection by it and by metadata work
    assert set(ep.event_id) == {tr.stimulus for tr in trials}
    assert len(ep[trials[0].stimulus]) == sum(tr.stimulus == trials[0].stimulus for tr in trials)
    assert len(ep["valence > 5"]) == sum(tr.ratings["valence"] > 5 for tr in trials)
    got = np.array([ch["loc"][:3] for ch in ep.info["chs"]])
    np.testing.assert_allclose(got, _template_positions(ep.ch_names), atol=1e-6)


def test_to_epochs_windows_match_the_window_cache(deap):
    from physioaffect.datasets.windows import WindowConfig, subject_windows

    reader = open_dataset("deap", deap)
    ep = to_epochs(reader, subjects=["s02"], window_s=1.0, step_s=0.5)
    rec = reader.read_subject("s02")
    ws = subject_windows(rec, WindowConfig(window_s=1.0, step_s=0.5, baseline="none",
                                           features="raw"))
    X, meta = ws.X, ws.meta
    assert len(ep) == len(meta)
    np.testing.assert_allclose(ep.get_data() * 1e6, X, rtol=1e-5, atol=1e-3)  # cache: float32
    np.testing.assert_allclose(ep.metadata["onset_s"], meta["onset_s"])
    assert list(ep.metadata["trial"]) == list(meta["trial"])


def test_to_epochs_seed_places_cerebellar_sites(tmp_path):
    root = write_seed(tmp_path / "Preprocessed_EEG", n_subjects=1, seconds=3, n_sessions=1)
    ep = to_epochs("seed", root)
    assert ep.metadata["emotion"].notna().all()
    pos = {c: ch["loc"][:3] for c, ch in zip(ep.ch_names, ep.info["chs"], strict=True)}
    assert np.all(np.isfinite(pos["CB1"])) and pos["CB1"][0] < 0 < pos["CB2"][0]
    np.testing.assert_allclose(pos["CB1"], _template_positions(["I1"])[0], atol=1e-6)


def test_bids_export_electrodes_typed_events_no_padding(session, tmp_path):
    import mne_bids

    path, truth = session
    root = tmp_path / "bids"
    written = export_bids(path, root)
    bp = mne_bids.BIDSPath(subject="04", session="1", task="emo", run=1, root=root,
                           datatype="eeg")
    raw = mne_bids.read_raw_bids(bp, verbose="error")
    labels = truth.signals["EEG"][0].labels
    assert raw.n_times == truth.signals["EEG"][2].shape[0]  # no padding to whole seconds
    np.testing.assert_allclose(raw.get_data(picks=labels).T, truth.signals["EEG"][2] * 1e-6,
                               rtol=1e-6, atol=1e-12)
    # electrodes.tsv read back as the montage
    got = np.array([raw.info["chs"][raw.ch_names.index(c)]["loc"][:3] for c in labels])
    np.testing.assert_allclose(got, _template_positions(labels), atol=1e-5)
    assert list(root.rglob("*_electrodes.tsv")) and list(root.rglob("*_coordsystem.json"))
    # typed events: one per stimulus with its duration (the recording stopped during the last
    # one: it keeps its onset marker's name and no duration), the marker's fields as columns
    markers = [(t, json.loads(m)) for t, m in truth.markers]
    offsets = {m["trial"]: t for t, m in markers if m["event"] == "stimulus_offset"}
    expected = [("stimulus" if m["trial"] in offsets else "stimulus_onset", t - T0,
                 offsets.get(m["trial"], t) - t, m) for t, m in markers
                if m["event"] == "stimulus_onset"]
    assert expected[-1][0] == "stimulus_onset"  # the fixture's 10.5 s cut the last trial
    ann = raw.annotations
    assert list(ann.description) == [e[0] for e in expected]
    np.testing.assert_allclose(ann.onset, [e[1] for e in expected], atol=1e-3)
    np.testing.assert_allclose(ann.duration, [e[2] for e in expected], atol=1e-3)
    for extra, (_, _, _, m) in zip(ann.extras, expected, strict=True):
        assert int(extra["trial"]) == m["trial"] and str(extra["stimulus"]) == str(m["stimulus"])
        assert float(extra["valence"]) == pytest.approx(m["valence"])
        assert float(extra["arousal"]) == pytest.approx(m["arousal"])
    events_json = json.loads(next(root.rglob("*_events.json")).read_text())
    assert {"trial", "stimulus", "valence", "arousal"} <= set(events_json)
    assert set(events_json["trial_type"]["Levels"]) == {"stimulus", "stimulus_onset"}
    # Epochs from the read-back annotations: one event id per kind, the fields as metadata
    events, event_id, metadata = events_and_metadata(raw, "stimulus")
    ep = mne.Epochs(raw, events, event_id, tmin=0.0, tmax=1.0, baseline=None,
                    metadata=metadata, preload=True, verbose="error")
    assert ep.event_id == {"stimulus": 1} and len(ep) == len(truth.trials)
    assert list(ep.metadata["trial"].astype(int)) == [t["trial"] for t in truth.trials]
    np.testing.assert_allclose(ep.metadata["valence"].astype(float),
                               [t["valence"] for t in truth.trials])
    sidecar = json.loads(next(root.rglob("*_eeg.json")).read_text())
    assert sidecar["Manufacturer"] == truth.signals["EEG"][0].device["manufacturer"]
    physio = [p for p in written["physio"] if p.suffix == ".json"]
    meta = json.loads(physio[0].read_text())
    assert meta["ECG"]["Units"] == "mV" and meta["EDA"]["Units"] == "µS"
    assert meta["SamplingFrequency"] == 512


def test_edf_labels_carry_types_for_mne_and_padding_is_marked(session, tmp_path):
    path, truth = session
    out = tmp_path / "x.edf"
    export_edf(path, out)
    plain = mne.io.read_raw_edf(out, verbose="error")  # MNE's defaults: no type inference
    assert "ECG ECG" in plain.ch_names and set(plain.get_channel_types()) == {"eeg"}
    typed = mne.io.read_raw_edf(out, infer_types=True, verbose="error")
    types = dict(zip(typed.ch_names, typed.get_channel_types(), strict=True))
    assert types["Fp1"] == "eeg" and types["ECG"] == "ecg" and types["RESP"] == "resp"
    assert types["EDA"] == "bio" and types["PPG"] == "bio"
    # 10.5 s: the last 1 s record is half padding, annotated as MNE's own EDF export does
    skip = [a for a in typed.annotations if a["description"] == "BAD_ACQ_SKIP"]
    n = truth.signals["EEG"][2].shape[0]
    assert len(skip) == 1 and skip[0]["onset"] == pytest.approx(n / 256, abs=1e-3)
    assert skip[0]["onset"] + skip[0]["duration"] == pytest.approx(11.0, abs=1e-3)


def test_to_raw_resamples_a_real_ecg_without_losing_beats(tmp_path, real_data):
    """MIT-BIH record 100 (360 Hz, mV) recorded beside 128 Hz EEG: the lazily read Raw puts it
    on the EEG rate (anti-alias low-pass, interpolation) and the beats are still where the
    cardiologists annotated them."""
    real = real_data
    if not (real / "mitbih" / "100.dat").exists():
        pytest.skip(f"MIT-BIH record 100 not found in {real}")
    wfdb = pytest.importorskip("wfdb")
    from physioaffect.features.peripheral import ecg_rpeaks

    rec = wfdb.rdrecord(str(real / "mitbih" / "100"), sampto=360 * 120)
    ann = wfdb.rdann(str(real / "mitbih" / "100"), "atr", sampto=360 * 120)
    beats = np.array([s for s, c in zip(ann.sample, ann.symbol, strict=True)
                      if c in set("NLRBAaJSVrFejnE/fQ?")]) / 360.0
    ecg = rec.p_signal[:, 0]
    path = tmp_path / "sub-100_task-rest_physio.h5"
    w = SessionWriter(path, subject="100", task="rest", journal=False)
    eeg = StreamInfo.from_labels("EEG", "EEG", ["Cz"], 128.0, "microvolts")
    ecg_info = StreamInfo.from_labels("ECG", "ECG", ["ECG"], 360.0, "millivolts")
    for info, ts, x in ((eeg, np.arange(128 * 120) / 128.0, np.zeros((128 * 120, 1))),
                        (ecg_info, np.arange(ecg.size) / 360.0, ecg[:, None])):
        w.add_stream(info)
        w.append(Chunk(info.name, ts + 100.0, x.astype(np.float32)))
    w.close()
    raw = to_raw(path)
    assert raw.info["sfreq"] == 128
    x = raw.get_data(picks=["ECG"])[0]
    assert np.nanmax(np.abs(x)) < 0.01  # volts (the recording is a few millivolts)
    peaks = ecg_rpeaks(x * 1e3, 128.0) / 128.0
    matched = [np.min(np.abs(peaks - b)) <= 0.05 for b in beats]
    assert np.mean(matched) >= 0.99 and len(peaks) <= 1.01 * len(beats)


def test_to_epochs_faced_and_thu_ep_through_the_generic_reader(tmp_path):
    from physioaffect.datasets.fixtures import write_faced, write_thu_ep

    for name, write in (("faced", write_faced), ("thu-ep", write_thu_ep)):
        root = write(tmp_path / name, n_subjects=2, seconds=2, n_trials=3)
        reader = open_dataset(name, root)
        trials = [tr for s in reader.subjects for tr in reader.read_subject(s).trials]
        ep = to_epochs(reader)
        assert len(ep) == len(trials) and set(ep.metadata["dataset"]) == {name}
        np.testing.assert_allclose(ep.get_data()[-1], trials[-1].eeg * 1e-6, rtol=1e-12)
        np.testing.assert_allclose(ep.metadata["valence"], [t.ratings["valence"] for t in trials])
        pos = np.array([ch["loc"][:3] for ch in ep.info["chs"]])
        assert np.isfinite(pos).all()  # every FACED/THU-EP label has a template position


# A session stopped early: ECG/EDA/PPG/RESP at 32 Hz, stimuli of 3.5 s every 5.5 s, so a stop at
# a whole second lands before, inside and after stimuli (offsets at x.5 s).
CUT_CFG = SimConfig(eeg_channels=4, rate=64, periph_rate=32, seed=5, n_trials=12,
                    baseline_seconds=2, stimulus_seconds=3.5, rest_seconds=2)
CUT_T0 = 100.0
EEG_LAG = 0.6  # s: the EEG's last chunk never arrived (stopped between chunks)


def _write_cut(path, truth, stop, start=0.0, subject="01"):
    """``truth`` as the recorder would have left it when stopped ``stop`` s (and started
    ``start`` s) into the scenario: markers before the stop, EEG until ``EEG_LAG`` s earlier."""
    from physioaffect.recording import SessionWriter

    w = SessionWriter(path, subject=subject, task="cut", journal=False)
    for kind, (info, ts, x) in truth.signals.items():
        end = CUT_T0 + stop - (EEG_LAG if kind == "EEG" else 0.0)
        keep = (ts >= CUT_T0 + start) & (ts < end)
        w.add_stream(info)
        w.append(Chunk(info.name, ts[keep], x[keep]))
    mk = StreamInfo.from_labels("sim-Markers", "Markers", ["Marker"], 0.0, "",
                                channel_format="string")
    w.add_stream(mk)
    marks = [(t, m) for t, m in truth.markers if CUT_T0 + start <= t < CUT_T0 + stop]
    w.append(Chunk(mk.name, [t for t, _ in marks], np.array([[m] for _, m in marks],
                                                          dtype=object)))
    w.close()
    return path


@pytest.fixture(scope="module")
def cut_truth():
    return simulate_subject(CUT_CFG, 0, duration=60.0, t0=CUT_T0)


def test_to_epochs_of_recordings_stopped_at_every_second_from_10_to_60(cut_truth, tmp_path):
    """Stopped at any whole second from 10 to 60 s: Epochs of every completed trial, the
    markers' own (0-based) trial numbers and fields as metadata, one warning naming each
    trial the stop cut."""
    truth = cut_truth
    # every stimulus the scenario started (its onset marker), 3.5 s long by design
    started = [{**json.loads(m), "onset": t, "offset": t + CUT_CFG.stimulus_seconds}
               for t, m in truth.markers if json.loads(m)["event"] == "stimulus_onset"]
    for stop in range(10, 61):
        _write_cut(tmp_path / f"sub-{stop}_task-cut_physio.h5", truth, stop, subject=str(stop))
    with pytest.warns(TrialsDroppedWarning) as caught:
        ep = to_epochs("sessions", tmp_path, tmin=-1.0)
    assert len([w for w in caught if w.category is TrialsDroppedWarning]) == 1
    named = caught[0].message.trials
    md = ep.metadata
    for stop in range(10, 61):
        done = [t for t in started if t["offset"] - CUT_T0 < stop - EEG_LAG]
        cut = [t for t in started
               if t["onset"] - CUT_T0 < stop and t["offset"] - CUT_T0 >= stop - EEG_LAG]
        rows = md[md["subject"] == str(stop)]
        assert list(rows["trial"]) == [t["trial"] for t in done], stop
        assert list(rows["stimulus"]) == [str(t["stimulus"]) for t in done]
        np.testing.assert_allclose(rows["valence"], [t["valence"] for t in done])
        np.testing.assert_allclose(rows["arousal"], [t["arousal"] for t in done])
        assert sorted(n for n in named if f"subject {stop} " in n) == sorted(
            f"sessions subject {stop} session 1 trial {t['trial']} "
            + ("(no stimulus_offset marker: the recording stopped during it)"
               if t["offset"] - CUT_T0 >= stop else "(the EEG does not cover the stimulus)")
            for t in cut)
    assert md["trial"].min() == 0  # the simulator's markers count from 0
    # every epoch is 1 s of baseline and the whole 3.5 s stimulus, in volts
    assert ep.times[0] == pytest.approx(-1.0) and ep.times[-1] == pytest.approx(3.5 - 1 / 64)
    eeg_info, eeg_ts, eeg_x = truth.signals["EEG"]
    first = truth.trials[0]
    i0 = int(np.searchsorted(eeg_ts, first["onset"])) - 64
    np.testing.assert_allclose(ep.get_data()[0], eeg_x[i0:i0 + len(ep.times)].T * 1e-6,
                               rtol=1e-6)


def test_to_epochs_leaves_out_a_trial_short_of_baseline_and_a_cut_one_with_one_warning(
        cut_truth, tmp_path):
    truth = cut_truth
    # started 1.5 s into the scenario (0.5 s before the first onset), stopped during trial 3
    _write_cut(tmp_path / "sub-01_task-cut_physio.h5", truth, stop=20.0, start=1.5)
    with pytest.warns(TrialsDroppedWarning) as caught:
        ep = to_epochs("sessions", tmp_path, tmin=-1.0)
    assert len(caught) == 1
    assert caught[0].message.trials == [
        "sessions subject 01 session 1 trial 3 (no stimulus_offset marker: the recording "
        "stopped during it)",
        "sessions subject 01 session 1 trial 0 (0 s of baseline for tmin=-1 s)"]
    assert list(ep.metadata["trial"]) == [1, 2]
    # without a baseline every completed trial is kept, still with one warning (the cut one)
    with pytest.warns(TrialsDroppedWarning, match="1 trial"):
        assert list(to_epochs("sessions", tmp_path).metadata["trial"]) == [0, 1, 2]


def test_braindecode_windows_keep_ratings_and_subject(deap):
    """Windows cut as braindecode's create_from_mne_epochs cuts them (size, stride, a last
    window ending at the epoch's end), with its four window columns, and the ratings, trial
    and subject it would drop; one description per recording. The WindowsDataset contract
    (crop indices, targets) is read back the way braindecode 1.8.1 reads it."""
    ep = to_epochs("deap", deap)
    n, size, stride = len(ep.times), 128, 96
    starts = list(range(0, n - size + 1, stride))
    starts += [n - size] if starts[-1] < n - size else []
    out = braindecode_windows(ep, size, stride, target="valence")
    assert [d for _, d in out] == [{"dataset": "deap", "subject": s, "session": 1}
                                   for s in ("s01", "s02")]
    x = ep.get_data()
    for windows, desc in out:
        md = windows.metadata
        rows = np.flatnonzero(ep.metadata["subject"] == desc["subject"])
        assert len(windows) == len(rows) * len(starts)
        # what braindecode's WindowsDataset reads: crop indices and the targets
        crop = md.loc[:, ["i_window_in_trial", "i_start_in_trial", "i_stop_in_trial"]]
        assert list(crop["i_window_in_trial"]) == list(range(len(starts))) * len(rows)
        assert list(crop["i_stop_in_trial"] - crop["i_start_in_trial"]) == [size] * len(md)
        np.testing.assert_allclose(md["target"], np.repeat(ep.metadata["valence"].iloc[rows],
                                                           len(starts)))
        # the epoch's metadata rides along: ratings, trial, subject
        assert set(md["subject"]) == {desc["subject"]}
        np.testing.assert_allclose(md["arousal"], np.repeat(ep.metadata["arousal"].iloc[rows],
                                                            len(starts)))
        got = windows.get_data()
        for k, (r, s) in enumerate((r, s) for r in rows for s in starts):
            np.testing.assert_array_equal(got[k], x[r, :, s:s + size])
    # one window per trial by default, the event code as target (create_from_mne_epochs)
    whole = braindecode_windows(ep)
    assert sum(len(w) for w, _ in whole) == len(ep)
    assert list(whole[0][0].metadata["target"]) == list(ep.events[:4, 2])
    with pytest.raises(DatasetError, match="not a metadata column"):
        braindecode_windows(ep, target="nope")
