"""Recording real streams: the simulator through real LSL outlets (another process), an
LSL stream that vanishes and returns mid-recording, and the BrainFlow synthetic board."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest
from test_recording_helpers import kill_all, start_in, wait_for_journal

from physioaffect.recording import read_session
from physioaffect.sources.sim import SimConfig, simulate_subject


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "physioaffect.cli.main", *args]


def test_record_simulator_through_real_lsl(tmp_path):
    prefix = f"r{uuid.uuid4().hex[:8]}"
    opts = "eeg_channels=8&rate=250&seed=4&baseline_seconds=1&stimulus_seconds=1&rest_seconds=0.5"
    pub = subprocess.Popen(cli("stream", "--source", f"sim?{opts}&prefix={prefix}",
                               "--duration", "25"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        srcs = []
        for kind in ("EEG", "ECG", "EDA", "Markers"):
            srcs += ["--source", f"lsl:{prefix}-{kind}?timeout=20"]
        r = subprocess.run(cli("record", *srcs, "--subject", "01", "--session", "1",
                               "--task", "lsl", "--out", str(tmp_path), "--duration", "5", "-q",
                               "--require", "EEG", "--require", "Markers",
                               "--mark-port", "0"),
                           capture_output=True, text=True, timeout=90)
    finally:
        pub.terminate()
        pub.wait(timeout=20)
    assert r.returncode == 0, r.stderr
    s = read_session(tmp_path / "sub-01_ses-1_task-lsl_run-1_physio.h5")
    truth = simulate_subject(SimConfig(eeg_channels=8, rate=250, seed=4, baseline_seconds=1,
                                       stimulus_seconds=1, rest_seconds=0.5), 0, duration=25)
    eeg = s.streams[f"{prefix}-EEG"]
    # metadata travelled through LSL's desc
    assert eeg.info.labels == truth.signals["EEG"][0].labels
    assert set(eeg.info.units) == {"microvolts"}
    assert eeg.info.device.get("manufacturer") == "physioaffect"
    assert 0.85 * 5 * 250 <= eeg.n_samples <= 1.15 * 5 * 250
    assert eeg.gaps.shape[0] == 0 and eeg.dropped_total == 0
    for kind, name in (("EEG", f"{prefix}-EEG"), ("ECG", f"{prefix}-ECG"),
                       ("GSR", f"{prefix}-EDA")):
        st, ref = s.streams[name], truth.signals[kind][2]
        # the inlet joined mid-stream: find where, then every sample must follow in order
        k0 = start_in(ref, st.samples)
        np.testing.assert_array_equal(st.samples, ref[k0:k0 + st.n_samples])
        np.testing.assert_allclose(np.diff(st.timestamps), 1 / 250, atol=2e-4)
    # stimulus markers: the simulator's own JSON texts, on the same clock as the EEG
    marks = [m for m in s.markers if m.stream == f"{prefix}-Markers"]
    assert len(marks) >= 2
    truth_texts = [t for _, t in truth.markers]
    assert all(m.text in truth_texts for m in marks)
    k0 = start_in(truth.signals["EEG"][2], eeg.samples)
    t_sim0 = eeg.timestamps[0] - k0 / 250  # LSL time of the simulator's sample 0
    for m in marks:
        t_true = next(t for t, text in truth.markers if text == m.text)
        assert abs((m.time - t_sim0) - t_true) < 0.01, m.text
        assert json.loads(m.text)["event"] in ("stimulus_onset", "stimulus_offset")


OUTLET = textwrap.dedent("""
    import sys, time, pylsl
    name, start = sys.argv[1], int(sys.argv[2])
    info = pylsl.StreamInfo(name, "ECG", 1, 100, "float32", name + "-sid")
    ch = info.desc().append_child("channels").append_child("channel")
    ch.append_child_value("label", "ECG"); ch.append_child_value("unit", "millivolts")
    ch.append_child_value("type", "ECG")
    out = pylsl.StreamOutlet(info)
    k, t0 = start, pylsl.local_clock()
    while True:
        n = start + int((pylsl.local_clock() - t0) * 100) - k
        if n > 0:
            out.push_chunk([[float(v)] for v in range(k, k + n)])
            k += n
        time.sleep(0.01)
""")


def test_stream_that_vanishes_and_returns_leaves_a_gap_and_others_never_stop(tmp_path):
    name = f"vanish{uuid.uuid4().hex[:8]}"
    outlet = subprocess.Popen([sys.executable, "-c", OUTLET, name, "0"])
    second = None
    path = tmp_path / "sub-01_ses-1_task-drop_run-1_physio.h5"
    rec = subprocess.Popen(
        cli("record", "--source", f"lsl:{name}?timeout=20", "--source",
            "sim?eeg_channels=4&rate=128&seed=2", "--subject", "01", "--session", "1",
            "--task", "drop", "--out", str(tmp_path), "--duration", "9", "-q",
            "--mark-port", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_journal(path, rec)
        time.sleep(2.0)
        outlet.send_signal(signal.SIGKILL)  # the device vanishes
        outlet.wait(timeout=10)
        time.sleep(2.5)
        second = subprocess.Popen([sys.executable, "-c", OUTLET, name, "100000"])
        out, err = rec.communicate(timeout=60)
    finally:
        kill_all(outlet, second, rec)
    assert rec.returncode == 0, err
    s = read_session(path)
    ecg = s.streams[name]
    v = ecg.samples[:, 0]
    before, after = v[v < 100000], v[v >= 100000]
    assert len(before) > 100 and len(after) > 50, (len(before), len(after))
    np.testing.assert_array_equal(np.diff(before), 1)  # nothing lost while connected
    np.testing.assert_array_equal(np.diff(after), 1)
    # the returning outlet (its first sample is 100000) was found within 0.5 s: LSL keeps
    # nothing for inlets that connect later, so what it sent before is the only loss
    assert after[0] - 100000 <= 50, after[0]
    assert ecg.gaps.shape[0] == 1
    gap = ecg.gaps[0]
    assert gap["end"] - gap["start"] > 2.0
    assert gap["start"] == ecg.timestamps[len(before) - 1]
    kinds = [(e["kind"], e["stream"]) for e in s.events]
    assert ("disconnected", name) in kinds and ("connected", name) in kinds
    # the simulator recorded in the same process never stopped
    eeg = s.streams["sim-EEG"]
    assert eeg.gaps.shape[0] == 0
    np.testing.assert_allclose(np.diff(eeg.timestamps), 1 / 128, atol=1e-9)
    assert eeg.n_samples >= 0.9 * 9 * 128


def test_record_brainflow_synthetic_board(tmp_path):
    r = subprocess.run(cli("record", "--source", "brainflow:synthetic", "--subject", "01",
                           "--session", "1", "--task", "bf", "--out", str(tmp_path),
                           "--duration", "3", "-q", "--mark-port", "0"),
                       capture_output=True, text=True, timeout=90)
    if r.returncode != 0 and "already exists" in r.stderr and "board" in r.stderr:
        pytest.skip("another test holds the BrainFlow synthetic board")
    assert r.returncode == 0, r.stderr
    s = read_session(tmp_path / "sub-01_ses-1_task-bf_run-1_physio.h5")
    eeg = next(st for st in s.streams.values() if st.info.type == "EEG")
    assert eeg.info.nominal_srate == 250 and eeg.info.n_channels >= 8
    assert set(eeg.info.units) == {"microvolts"}
    assert eeg.info.device["board_id"] == "-1"
    assert abs(eeg.measured_srate - 250) < 5
    assert 0.8 * 3 * 250 <= eeg.n_samples <= 1.2 * 3 * 250
    assert eeg.dropped_total == 0 and eeg.gaps.shape[0] == 0
    # BrainFlow's UNIX stamps were mapped onto the LSL clock of this recording
    assert "clock_offset" in eeg.attrs
    assert s.lsl_start - 1.0 < eeg.timestamps[0] < eeg.timestamps[-1] < s.attrs["lsl_clock_end"] + 0.5
    assert np.all(np.diff(eeg.timestamps) > 0)
    assert np.std(eeg.samples, axis=0).min() > 0  # the board's signals, not zeros
