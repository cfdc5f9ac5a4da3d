"""Exports read back by MNE (EDF+, BDF+, FIF, BIDS), the MNE Raw itself, marker windows,
and XDF import (an XDF written to the spec, cross-checked with pyxdf)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import write_truth_session

from physioaffect.recording import read_session
from physioaffect.recording.bids_physio import read_physio
from physioaffect.recording.export import (
    export_bids,
    export_edf,
    marker_windows,
    to_raw,
    window_data,
)
from physioaffect.recording.raw import events_and_metadata
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import StreamInfo

CFG = SimConfig(eeg_channels=8, rate=256, periph_rate=128, seed=9, baseline_seconds=1,
                stimulus_seconds=2, rest_seconds=1)
T0 = 1000.0


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory):
    """A session written from the simulator offline: ground truth for every export."""
    truth = simulate_subject(CFG, 0, duration=10, t0=T0)
    path = tmp_path_factory.mktemp("exp") / "sub-07_ses-2_task-emo_run-1_physio.h5"
    return write_truth_session(path, truth, T0, subject="07", session="2", task="emo",
                               run=1), truth


def test_to_raw_units_types_time_base_and_annotations(sim_session):
    import mne
    from mne.io.constants import FIFF

    path, truth = sim_session
    raw = to_raw(path)
    assert raw.info["sfreq"] == 256
    types = dict(zip(raw.ch_names, raw.get_channel_types(), strict=True))
    # PPG and RESP in arbitrary units: never "volts" (MNE would draw 2 a.u. as 2 V)
    assert [types[c] for c in ("ECG", "EDA", "PPG", "RESP")] == ["ecg", "gsr", "misc", "resp"]
    units = {ch["ch_name"]: int(ch["unit"]) for ch in raw.info["chs"]}
    assert [units[c] for c in ("Fp1", "ECG", "EDA", "PPG", "RESP")] == [
        FIFF.FIFF_UNIT_V, FIFF.FIFF_UNIT_V, FIFF.FIFF_UNIT_S, FIFF.FIFF_UNIT_NONE,
        FIFF.FIFF_UNIT_NONE]
    ppg = raw.get_data(picks=["PPG"])[0]
    np.testing.assert_allclose(ppg[::2][:1280], truth.signals["PPG"][2][:, 0], rtol=1e-6)
    eeg_labels = truth.signals["EEG"][0].labels
    assert all(types[c] == "eeg" for c in eeg_labels)
    # EEG in volts, exactly the recorded samples (same rate, same time base)
    np.testing.assert_allclose(raw.get_data(picks=eeg_labels).T,
                               truth.signals["EEG"][2] * 1e-6, rtol=1e-6)
    # ECG (128 Hz, millivolts) on the 256 Hz grid: even samples are the originals
    ecg = raw.get_data(picks=["ECG"])[0]
    ref = truth.signals["ECG"][2][:, 0].astype(np.float64) * 1e-3
    np.testing.assert_allclose(ecg[::2][: ref.size], ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ecg[1:-1:2][: ref.size - 1], (ref[:-1] + ref[1:]) / 2,
                               rtol=1e-5, atol=1e-12)
    # one annotation per stimulus, from its onset marker to its offset marker
    ann = raw.annotations
    assert list(ann.description) == ["stimulus"] * len(truth.trials)
    np.testing.assert_allclose(ann.onset, [t["onset"] - T0 for t in truth.trials], atol=1e-6)
    np.testing.assert_allclose(ann.duration, [t["offset"] - t["onset"] for t in truth.trials],
                               atol=1e-6)
    assert [e["trial"] for e in ann.extras] == [t["trial"] for t in truth.trials]
    events, event_id = mne.events_from_annotations(raw, verbose="error")
    assert event_id == {"stimulus": 1} and len(events) == len(truth.trials)
    # events at the stimulus onsets, their fields as Epochs metadata
    events, event_id, meta = events_and_metadata(raw, "stimulus")
    assert list(events[:, 0]) == [round((t["onset"] - T0) * 256) for t in truth.trials]
    ep = mne.Epochs(raw, events, event_id, tmin=0, tmax=1, baseline=None, metadata=meta,
                    preload=True, verbose="error")
    assert list(ep.metadata["trial"]) == [t["trial"] for t in truth.trials]
    np.testing.assert_allclose(ep.metadata["arousal"], [t["arousal"] for t in truth.trials])
    np.testing.assert_allclose(ep.metadata["duration"],
                               [t["offset"] - t["onset"] for t in truth.trials], atol=1e-6)
    # the recorded text on request
    texts = [t for _, t in truth.markers]
    ann = [(a["onset"], a["description"]) for a in to_raw(path, markers="text").annotations]
    assert [d for _, d in ann] == texts
    np.testing.assert_allclose([o for o, _ in ann], [t - T0 for t, _ in truth.markers],
                               atol=1e-6)
    assert raw.info["meas_date"].timestamp() == pytest.approx(1.7e9, abs=1e-3)


@pytest.mark.parametrize("fmt", ["edf", "bdf"])
def test_edf_bdf_read_back_by_mne(sim_session, tmp_path, fmt):
    import mne

    path, truth = sim_session
    out = tmp_path / f"x.{fmt}"
    export_edf(path, out, bdf=(fmt == "bdf"))
    reader = mne.io.read_raw_edf if fmt == "edf" else mne.io.read_raw_bdf
    raw = reader(out, preload=True, infer_types=True, verbose="error")
    eeg_labels = truth.signals["EEG"][0].labels
    assert raw.ch_names == [*eeg_labels, "ECG", "EDA", "PPG", "RESP"]
    types = raw.get_channel_types()
    assert types[:8] == ["eeg"] * 8 and types[8:] == ["ecg", "bio", "bio", "resp"]
    assert raw._orig_units["Fp1"] == "µV" and raw._orig_units["ECG"] == "mV"
    import edfio  # MNE does not know microsiemens; the file header says it

    hdr = (edfio.read_edf if fmt == "edf" else edfio.read_bdf)(out)
    dims = {sig.label: sig.physical_dimension for sig in hdr.signals}
    assert dims["BIO EDA"] == "uS" and dims["EEG Fp1"] == "uV" and dims["RESP RESP"] == "au"
    x = raw.get_data(picks=eeg_labels)[:, : 10 * 256].T
    ref = truth.signals["EEG"][2].astype(np.float64) * 1e-6
    step = (ref.max(axis=0) - ref.min(axis=0)) / (2**16 if fmt == "edf" else 2**24)
    assert np.all(np.abs(x - ref) <= step + 1e-12)  # within one quantisation step
    descs = [a["description"] for a in raw.annotations]
    assert descs == [t for _, t in truth.markers]
    np.testing.assert_allclose(raw.annotations.onset, [t - T0 for t, _ in truth.markers],
                               atol=1e-3)
    with pytest.raises(Exception, match="already exists"):
        export_edf(path, out)


def test_fif_and_cli_export(sim_session, tmp_path):
    import mne

    path, truth = sim_session
    out = tmp_path / "x_raw.fif"
    r = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "export", str(path),
                        "--to", "fif", "--out", str(out)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    raw = mne.io.read_raw_fif(out, preload=True, verbose="error")
    np.testing.assert_allclose(raw.get_data(picks=["Fp1"])[0],
                               truth.signals["EEG"][2][:, 0] * 1e-6, rtol=1e-6)
    # the stimulus events with durations and their fields survive the FIF file
    ann = raw.annotations
    assert list(ann.description) == ["stimulus"] * len(truth.trials)
    np.testing.assert_allclose(ann.duration, [t["offset"] - t["onset"] for t in truth.trials],
                               atol=1e-3)
    assert [e["trial"] for e in ann.extras] == [t["trial"] for t in truth.trials]


def test_bids_read_back_and_physio_files(sim_session, tmp_path):
    import mne_bids

    path, truth = sim_session
    root = tmp_path / "bids"
    written = export_bids(path, root)
    bp = mne_bids.BIDSPath(subject="07", session="2", task="emo", run=1, root=root,
                           datatype="eeg")
    raw = mne_bids.read_raw_bids(bp, verbose="error")
    assert raw.ch_names == truth.signals["EEG"][0].labels
    assert set(raw.get_channel_types()) == {"eeg"}
    # one row per stimulus: trial_type "stimulus", its duration, the marker fields as columns
    assert [a["description"] for a in raw.annotations] == ["stimulus"] * len(truth.trials)
    events = pd.read_csv(bp.directory / f"{bp.basename}_events.tsv", sep="\t")
    assert list(events["trial_type"]) == ["stimulus"] * len(truth.trials)
    np.testing.assert_allclose(events["onset"], [t["onset"] - T0 for t in truth.trials],
                               atol=1e-3)
    np.testing.assert_allclose(events["duration"],
                               [t["offset"] - t["onset"] for t in truth.trials], atol=1e-3)
    assert list(events["trial"]) == [t["trial"] for t in truth.trials]
    np.testing.assert_allclose(events["arousal"], [t["arousal"] for t in truth.trials])
    # peripheral signals: one _physio pair at their own 128 Hz, values as recorded
    physio = [p for p in written["physio"] if p.name.endswith(".tsv.gz")]
    assert len(physio) == 1 and "_recording-128Hz_physio" in physio[0].name
    meta = json.loads(physio[0].with_name(physio[0].name.replace(".tsv.gz", ".json")).read_text())
    assert meta["SamplingFrequency"] == 128 and meta["Columns"] == ["ECG", "EDA", "PPG", "RESP"]
    assert meta["StartTime"] == pytest.approx(0.0) and meta["ECG"]["Units"] == "mV"
    assert meta["PhysioType"] == "generic" and meta["TaskName"] == "emo"
    with gzip.open(physio[0], "rt") as fh:
        table = np.loadtxt(fh, delimiter="\t")
    np.testing.assert_allclose(table[:, 1], truth.signals["GSR"][2][:, 0], rtol=1e-6)
    # reproducible gzip (RFC 1952 header): modification time 0, no file name stored
    head = physio[0].read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08" and head[4:8] == b"\0\0\0\0" and not head[3] & 0x08
    # found by mne-bids, read back by our reader in SI units with MNE types
    found = mne_bids.find_matching_paths(root, suffixes="physio", extensions=".tsv.gz")
    assert [p.fpath for p in found] == physio and found[0].recording == "128Hz"
    back = read_physio(physio[0])
    assert back.ch_names == ["ECG", "EDA", "PPG", "RESP"] and back.info["sfreq"] == 128
    assert back.get_channel_types() == ["ecg", "gsr", "misc", "resp"]
    for name, kind, factor in (("ECG", "ECG", 1e-3), ("EDA", "GSR", 1e-6), ("PPG", "PPG", 1.0)):
        np.testing.assert_allclose(back.get_data(picks=[name])[0],
                                   truth.signals[kind][2][:, 0] * factor, rtol=1e-6)


def test_marker_windows_match_the_simulated_trials(sim_session):
    path, truth = sim_session
    s = read_session(path)
    wins = marker_windows(s)
    assert [(w.label["trial"], round(w.start, 6), round(w.end, 6)) for w in wins] == [
        (t["trial"], round(t["onset"], 6), round(t["offset"], 6)) for t in truth.trials]
    cut = window_data(s, wins[0])
    ts, x = cut["sim-EEG"]
    assert len(ts) == 2 * 256 and ts[0] >= wins[0].start and ts[-1] < wins[0].end


def test_xdf_import_matches_pyxdf_and_applies_clock_offsets(tmp_path):
    import pyxdf

    from physioaffect.recording.xdf import write_xdf

    rng = np.random.default_rng(1)
    eeg = StreamInfo.from_labels("LabEEG", "EEG", ["C3", "C4"], 100.0, "microvolts",
                                 device={"manufacturer": "ACME"})
    mk = StreamInfo.from_labels("Stim", "Markers", ["m"], 0.0, "", channel_format="string")
    ts = 50.0 + np.arange(300) / 100.0
    x = rng.normal(0, 10, (300, 2)).astype(np.float32)
    mts = np.array([50.5, 51.5])
    marks = np.array([["go"], ["stop ü"]], dtype=object)
    xdf = tmp_path / "lab.xdf"
    write_xdf(xdf, [(eeg, ts, x), (mk, mts, marks)],
              clock_offsets={"LabEEG": [(50.0, 0.25), (53.0, 0.25)],
                             "Stim": [(50.0, 0.25), (53.0, 0.25)]},
              datetime="2024-05-01T10:00:00+00:00")
    streams, _ = pyxdf.load_xdf(str(xdf), dejitter_timestamps=False)  # independent reader
    assert {s["info"]["name"][0] for s in streams} == {"LabEEG", "Stim"}
    out = tmp_path / "sub-3_task-lab_physio.h5"
    r = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "import", str(xdf),
                        "--subject", "3", "--task", "lab", "--out", str(out), "--no-dejitter"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = read_session(out)
    got = s.streams["LabEEG"]
    np.testing.assert_array_equal(got.samples, x)
    np.testing.assert_allclose(got.timestamps, ts + 0.25, atol=1e-9)  # clock offset applied
    assert got.info.labels == ["C3", "C4"] and got.info.units == ["microvolts"] * 2
    assert got.info.device["manufacturer"] == "ACME"
    assert [(m.text, round(m.time, 6)) for m in s.markers] == [("go", 50.75), ("stop ü", 51.75)]
    assert s.attrs["imported_from"] == "lab.xdf" and s.attrs["utc_start"].startswith("2024-05-01")
    bad = tmp_path / "bad.xdf"
    bad.write_bytes(b"NOPE")
    r = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "import", str(bad),
                        "--subject", "3", "--task", "lab", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not an XDF file" in r.stderr and "Traceback" not in r.stderr
