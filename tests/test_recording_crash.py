"""Crash safety: a recorder subprocess killed with SIGKILL, then ``physioaffect recover``;
and the recorder's handling (through the acquisition engine) of streams that appear late
and sources that fail."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from test_recording_helpers import start_in

from physioaffect.recording import journal_path, read_session
from physioaffect.recording.recorder import Recorder
from physioaffect.recording.writer import SessionWriter
from physioaffect.sources.base import Source
from physioaffect.sources.engine import Acquisition
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import Chunk, StreamInfo, local_clock


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "physioaffect.cli.main", *args]


def test_sigkill_then_recover_keeps_everything_older_than_one_second(tmp_path):
    port = free_udp_port()
    spec = "sim?eeg_channels=16&rate=500&seed=21"
    proc = subprocess.Popen(
        cli("record", "--source", spec, "--subject", "01", "--session", "1", "--task", "crash",
            "--out", str(tmp_path), "-q", "--mark-port", str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    path = tmp_path / "sub-01_ses-1_task-crash_run-1_physio.h5"
    try:
        deadline = time.monotonic() + 30
        while not (journal_path(path).exists() and journal_path(path).stat().st_size > 50_000):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "recorder did not start"
            time.sleep(0.05)
        time.sleep(0.5)
        mark = subprocess.run(cli("mark", "before-the-crash", "--port", str(port)),
                              capture_output=True, text=True, timeout=20)
        assert mark.returncode == 0, mark.stderr
        time.sleep(random.uniform(1.5, 3.0))  # a random moment
        t_kill = local_clock()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert journal_path(path).exists()
    r = subprocess.run(cli("recover", str(path)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "rebuilt from the journal" in r.stdout
    s = read_session(path)
    assert s.attrs["recovered"]
    truth = simulate_subject(SimConfig(eeg_channels=16, rate=500, seed=21), 0, duration=30)
    for kind, name in (("EEG", "sim-EEG"), ("ECG", "sim-ECG"), ("RESP", "sim-RESP")):
        st, ref = s.streams[name], truth.signals[kind][2]
        assert st.timestamps[-1] >= t_kill - 1.0, (name, t_kill - st.timestamps[-1])
        # the recording starts a little after the simulator: find where, then every
        # sample from there on must equal the simulator's (seeded) signal
        k0 = start_in(ref, st.samples)
        assert k0 < 500 * 5
        np.testing.assert_array_equal(st.samples, ref[k0:k0 + st.n_samples])
        np.testing.assert_allclose(np.diff(st.timestamps), 1 / 500, atol=1e-9)
    assert "before-the-crash" in [m.text for m in s.markers]


class FlakySource(Source):
    """Stream A from the start, stream B appearing after 0.4 s, one read failure at 0.6 s."""

    description = "flaky"

    def _start(self) -> None:
        self.a = StreamInfo.from_labels("A", "EEG", ["x"], 200.0, "microvolts")
        self.b = StreamInfo.from_labels("B", "GSR", ["eda"], 50.0, "microsiemens")
        self.streams = [self.a]
        self.t0 = local_clock()
        self.sent = {"A": 0, "B": 0}
        self.failed = False

    def _read(self, timeout: float) -> list[Chunk]:
        time.sleep(0.02)
        now = local_clock() - self.t0
        if now > 0.6 and not self.failed:
            self.failed = True
            raise RuntimeError("cable wiggle")
        if now > 0.4 and self.b not in self.streams:
            self.streams = [self.a, self.b]
        out = []
        for info in self.streams:
            fs = info.nominal_srate
            n = int(now * fs) - self.sent[info.name]
            if n > 0:
                k = self.sent[info.name] + np.arange(n)
                out.append(Chunk(info.name, self.t0 + k / fs, k[:, None].astype(np.float32)))
                self.sent[info.name] += n
        return out

    def _stop(self) -> None:
        pass


def test_recorder_takes_late_streams_survives_a_failing_read_and_records_markers(tmp_path):
    src = FlakySource()
    engine = Acquisition([src], pace=0.5).start()  # the recording pace of `record`
    w = SessionWriter(tmp_path / "r.h5", subject="1", task="t")
    rec = Recorder(engine, w)
    t_mark = local_clock()
    rec.add_marker("hello", t_mark, "api")
    rec.run(duration=1.5)
    engine.stop()
    w.close()
    s = read_session(tmp_path / "r.h5")
    a, b = s.streams["A"], s.streams["B"]
    # A never stopped: its values count up by one with nothing missing (what came
    # before the recording started is not part of it)
    np.testing.assert_array_equal(np.diff(a.samples[:, 0]), 1)
    assert a.n_samples >= 0.9 * 200 * 1.5
    np.testing.assert_array_equal(np.diff(b.samples[:, 0]), 1)
    # B appeared 0.4 s after its source started: from then on, nothing is missing
    assert b.samples[0, 0] <= 50 * 0.45 and b.timestamps[0] >= s.attrs["recording_start_lsl"]
    assert b.n_samples > 0 and b.attrs["added_at"] > s.lsl_start
    assert any("cable wiggle" in str(e["text"]) for e in s.events)
    assert [(m.time, m.text) for m in s.markers] == [(t_mark, "hello")]


class VanishingSource(Source):
    """Stream V at 100 Hz for 0.5 s, then gone for good (its state says "lost")."""

    description = "vanishing"

    def _start(self) -> None:
        self.info = StreamInfo.from_labels("V", "ECG", ["ecg"], 100.0, "millivolts")
        self.streams = [self.info]
        self.t0 = local_clock()
        self.sent = 0

    @property
    def state(self) -> dict[str, str]:
        return {"V": "lost" if local_clock() - self.t0 > 0.5 else "connected"}

    def _read(self, timeout: float) -> list[Chunk]:
        time.sleep(0.02)
        n = min(50, int((local_clock() - self.t0) * 100)) - self.sent
        if n <= 0:
            return []
        k = self.sent + np.arange(n)
        self.sent += n
        return [Chunk("V", self.t0 + k / 100, k[:, None].astype(np.float32))]

    def _stop(self) -> None:
        pass


def test_stream_lost_until_the_end_gets_a_gap_up_to_the_end(tmp_path):
    engine = Acquisition([VanishingSource()], pace=0.5).start()
    w = SessionWriter(tmp_path / "v.h5", subject="1", task="t")
    Recorder(engine, w).run(duration=2.0)
    engine.stop()
    w.close()
    s = read_session(tmp_path / "v.h5")
    v = s.streams["V"]
    assert ("disconnected", "V") in [(e["kind"], e["stream"]) for e in s.events]
    assert v.gaps.shape[0] == 1
    gap = v.gaps[0]
    assert gap["start"] == v.timestamps[-1] and gap["end"] == s.attrs["recording_stop_lsl"]
    assert gap["missing"] == round((gap["end"] - gap["start"]) * 100) > 100
    assert "until the end" in str(gap["reason"])
