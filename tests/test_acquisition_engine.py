"""The one acquisition engine: what it does for every consumer (in process, with real and
test sources), and ``record``, ``view --record`` and ``decode`` taking a vanished LSL stream
back through it, all three at once on the same stream (real subprocesses, real LSL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
from conftest import cli
from test_recording_helpers import kill_all

from physioaffect.recording import SessionWriter, read_session
from physioaffect.recording.recorder import Recorder
from physioaffect.sources.base import Source
from physioaffect.sources.engine import Acquisition, Consumer
from physioaffect.streams import Chunk, StreamInfo, local_clock


class Counting(Source):
    """Streams A (2 ch, 200 Hz, values count up) and, from 0.3 s on, a stream ``extra``."""

    description = "counting"

    def __init__(self, extra: StreamInfo | None = None, fail_at: float | None = None):
        super().__init__()
        self.extra = extra
        self.fail_at = fail_at

    def _start(self) -> None:
        self.a = StreamInfo.from_labels("A", "EEG", ["x", "y"], 200.0, "microvolts")
        self.streams = [self.a]
        self.t0 = local_clock()
        self.sent = 0

    def _read(self, timeout: float) -> list[Chunk]:
        time.sleep(0.01)
        now = local_clock() - self.t0
        if self.fail_at is not None and now > self.fail_at:
            self.fail_at = None
            raise RuntimeError("cable wiggle")
        out = []
        n = int(now * 200) - self.sent
        if n > 0:
            k = self.sent + np.arange(n)
            out.append(Chunk("A", self.t0 + k / 200, np.stack([k, -k], 1).astype(np.float32)))
            self.sent += n
        if self.extra is not None and now > 0.3:
            if self.extra not in self.streams:
                self.streams = [self.a, self.extra]
            out.append(Chunk(self.extra.name, [local_clock()],
                             np.zeros((1, max(1, self.extra.n_channels)), np.float32)))
        return out

    def _stop(self) -> None:
        pass


class Collect(Consumer):
    def __init__(self):
        self.streams, self.chunks, self.events = [], [], []

    def on_stream(self, info, attrs):
        self.streams.append((info.name, dict(attrs)))

    def on_chunks(self, chunks):
        self.chunks += chunks

    def on_event(self, event):
        self.events.append(event)

    def values(self, name: str) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks if c.stream == name])


def test_every_consumer_gets_every_sample_once_in_order_and_a_late_one_the_known_streams():
    engine = Acquisition([Counting()], hub_seconds=10.0)
    first = engine.subscribe(Collect())
    with engine:
        time.sleep(0.4)
        late = engine.subscribe(Collect())  # told about A at once, then its chunks
        assert late.streams == [("A", {"source": "counting"})]
        time.sleep(0.3)
        engine.flush()
        hub = engine.hub.reader("A", from_oldest=True).read()
    a = first.values("A")
    np.testing.assert_array_equal(a[:, 0], np.arange(len(a)))  # every sample, once, in order
    b = late.values("A")
    np.testing.assert_array_equal(b[:, 0], np.arange(b[0, 0], b[0, 0] + len(b)))
    assert len(b) < len(a)
    np.testing.assert_array_equal(hub.samples, a[: len(hub.samples)])  # the hub too


def test_a_bad_stream_is_refused_in_one_line_and_the_others_go_on():
    zero = StreamInfo("Z", "EEG", (), 100.0)  # 0 channels: would crash a reader downstream
    engine = Acquisition([Counting(extra=zero, fail_at=0.5)], pace=0.1)
    got = engine.subscribe(Collect())
    with engine:
        time.sleep(1.2)
    assert [name for name, _ in got.streams] == ["A"]
    refused = [e for e in got.events if e.kind == "stream-refused"]
    assert len(refused) == 1 and "'Z'" in refused[0].text and "0 channels" in refused[0].text
    # the failing read was reported and retried; A never missed a sample
    assert [e.kind for e in got.events if "cable wiggle" in e.text] == ["source-error"]
    a = got.values("A")
    np.testing.assert_array_equal(a[:, 0], np.arange(len(a)))
    assert len(a) > 150


def test_two_sources_with_one_stream_name_are_refused_at_start():
    with pytest.raises(Exception, match="comes from both"):
        Acquisition([Counting(), Counting()]).start()


def test_recorder_is_a_consumer_and_local_markers_reach_every_consumer(tmp_path):
    engine = Acquisition([Counting()], pace=0.5, hub_seconds=5.0).start()
    other = engine.subscribe(Collect())
    w = SessionWriter(tmp_path / "r.h5", subject="1", task="t")
    rec = Recorder(engine, w)
    threading.Timer(0.3, lambda: rec.add_marker("hello")).start()
    rec.run(duration=0.8)
    engine.stop()
    w.close()
    s = read_session(tmp_path / "r.h5")
    a = s.streams["A"].samples[:, 0]
    np.testing.assert_array_equal(np.diff(a), 1)
    assert [m.text for m in s.markers] == ["hello"]
    assert "physioaffect-markers" in [n for n, _ in other.streams]
    assert engine.hub.buffers["physioaffect-markers"].total_written == 1


# -- one stream, three commands, one vanishing act ------------------------------------------

PUBLISHER = textwrap.dedent("""
    import sys, time, numpy as np, pylsl
    name, start = sys.argv[1], int(sys.argv[2])
    labels = sys.argv[3].split(",")
    info = pylsl.StreamInfo(name, "EEG", len(labels), 128, "float32", name + "-sid")
    chs = info.desc().append_child("channels")
    for lab in labels:
        c = chs.append_child("channel")
        c.append_child_value("label", lab)
        c.append_child_value("unit", "microvolts")
        c.append_child_value("type", "EEG")
    out = pylsl.StreamOutlet(info)
    rng = np.random.default_rng(start)
    k, t0 = start, pylsl.local_clock()
    print(repr(t0), flush=True)
    while True:
        n = start + int((pylsl.local_clock() - t0) * 128) + 1 - k
        if n > 0:
            x = rng.normal(0, 20, (n, len(labels))).astype(np.float32)
            x[:, 0] = np.arange(k, k + n)  # sample counter (exact in float32)
            out.push_chunk(x)
            k += n
        time.sleep(0.004)
""")


def _labels() -> str:
    from physioaffect.sources.sim import SimConfig, stream_infos

    return ",".join(stream_infos(SimConfig(rate=128, eeg_channels=8))["EEG"].labels)


def _checkpoint(tmp_path) -> str:
    """A small untrained EEGNet for the simulator's 8 channels at 128 Hz (decoding needs
    a contract, not accuracy)."""
    import torch

    from physioaffect.models import create
    from physioaffect.preprocessing import PipelineConfig
    from physioaffect.realtime import bundle_for_model, save_bundle

    torch.manual_seed(0)
    model = create("eegnet", n_chans=8, n_outputs=2, n_times=256, sfreq=128)
    pipe = PipelineConfig(l_freq=1.0, h_freq=40.0, phase="causal", detect_bads=False)
    return str(save_bundle(bundle_for_model(model, pipe, _labels().split(","), 128.0, 256),
                           tmp_path / "ckpt"))


def _check_session(path, name: str, t_back: float) -> dict:
    """The stream's counter before and after the gap: nothing lost while connected, and the
    returning stream recorded from (nearly) its first sample."""
    s = read_session(path)
    eeg = s.streams[name]
    v = eeg.samples[:, 0]
    before, after = v[v < 100000], v[v >= 100000]
    assert len(before) > 128 and len(after) > 128, (path, len(before), len(after))
    np.testing.assert_array_equal(np.diff(before), 1)
    np.testing.assert_array_equal(np.diff(after), 1)
    gaps = [g for g in eeg.gaps if g["end"] > g["start"]]
    assert len(gaps) == 1 and gaps[0]["start"] == eeg.timestamps[len(before) - 1]
    kinds = [(e["kind"], e["stream"]) for e in s.events]
    assert ("disconnected", name) in kinds and ("connected", name) in kinds
    return {"missed_after_return": int(after[0] - 100000),
            "first_after_s": float(eeg.timestamps[len(before)] - t_back)}


def test_record_view_and_decode_take_a_returning_stream_back_through_the_engine(tmp_path):
    """~25 s: three commands start (the decoder imports torch), a stream vanishes for 1 s."""
    name = f"eng{uuid.uuid4().hex[:8]}"
    labels = _labels()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, name, "0", labels],
                           stdout=subprocess.PIPE, text=True)
    pub2 = None
    rec_h5 = tmp_path / "rec.h5"
    procs = {
        "view": subprocess.Popen(cli("view", "-s", f"lsl:{name}?timeout=60", "--record",
                                     "--record-dir", str(tmp_path / "view"), "--duration", "90",
                                     "--fps", "4"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env),
        "record": subprocess.Popen(cli("record", "-s", f"lsl:{name}?timeout=60", "--subject",
                                       "1", "--session", "1", "--task", "eng", "--out",
                                       str(rec_h5), "-q", "--mark-port", "0"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    try:
        ckpt = _checkpoint(tmp_path)  # while the others start
        procs["decode"] = subprocess.Popen(
            cli("decode", "-c", ckpt, "-s", f"lsl:{name}?timeout=60", "--rate", "4",
                "--duration", "90", "--name", f"{name}-pred"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pub.stdout.readline()
        found = pylsl.resolve_bypred(f"name='{name}-pred'", 1, 90)
        assert found, procs["decode"].poll()
        pred = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=pylsl.proc_clocksync)
        pred.open_stream(timeout=10)
        stamps: list[float] = []

        def take(seconds: float) -> None:
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                _, ts = pred.pull_chunk(timeout=0.05)
                stamps.extend(ts)

        deadline = time.monotonic() + 60
        while not (stamps and (tmp_path / "view").exists() and rec_h5.with_name(
                "rec.h5.journal").exists()):  # everyone is acquiring
            assert time.monotonic() < deadline, {k: p.poll() for k, p in procs.items()}
            take(0.2)
        take(1.5)
        pub.send_signal(signal.SIGKILL)  # the amplifier's program dies ...
        pub.wait(10)
        t_lost = local_clock()
        take(1.0)
        pub2 = subprocess.Popen([sys.executable, "-c", PUBLISHER, name, "100000", labels],
                                stdout=subprocess.PIPE, text=True)
        t_back = float(pub2.stdout.readline())  # ... and is back (outlet made at t_back)
        take(4.0)
        procs["record"].send_signal(signal.SIGINT)  # each ends as an operator ends it
        procs["decode"].send_signal(signal.SIGTERM)
        procs["view"].send_signal(signal.SIGTERM)
        out = {k: p.communicate(timeout=90) for k, p in procs.items()}
    finally:
        kill_all(pub, pub2, *procs.values())
    for k, p in procs.items():
        assert p.returncode == 0, (k, out[k][1][-3000:])
    # record and the viewer's recording: the same gap, the returning stream within 0.5 s
    view_h5 = next(line.split("session file: ")[1] for line in out["view"][0].splitlines()
                   if line.startswith("session file: "))
    for path in (rec_h5, view_h5):
        got = _check_session(path, name, t_back)
        assert got["missed_after_return"] <= 64, (path, got)  # 0.5 s at 128 Hz
    # decode: predictions stop with the stream and resume on the returned stream's samples
    stamps_a = np.asarray(stamps)
    assert (stamps_a < t_lost).sum() >= 2
    assert (stamps_a > t_back).sum() >= 2, (stamps_a - t_back).round(2).tolist()
    assert "lost" in out["decode"][1] and "back" in out["decode"][1]
    assert json.loads(out["decode"][0].strip().splitlines()[-1])["predictions"] >= 4


class Broken(Source):
    """A stream whose outlet stamps some samples NaN and one chunk far in the future."""

    description = "broken"

    def _start(self) -> None:
        self.streams = [StreamInfo.from_labels("X", "ECG", ["x"], 100.0, "mV")]
        self.n = 0

    def _read(self, timeout: float) -> list[Chunk]:
        time.sleep(0.05)
        self.n += 1
        ts = local_clock() + np.arange(5) / 100
        if self.n == 3:
            ts[1:3] = np.nan
        if self.n == 5:
            ts = ts + 1e300
        return [Chunk("X", ts, np.full((5, 1), self.n, np.float32))]

    def _stop(self) -> None:
        pass


def test_samples_without_a_usable_time_are_counted_and_absurd_times_do_not_break_the_file(
        tmp_path):
    engine = Acquisition([Broken()], pace=0.1).start()
    w = SessionWriter(tmp_path / "b.h5", subject="1", task="t")
    Recorder(engine, w).run(duration=0.6)
    engine.stop()
    w.close()
    x = read_session(tmp_path / "b.h5").streams["X"]
    assert np.isfinite(x.timestamps).all()
    assert x.dropped_total == 2  # the two NaN-stamped samples, counted
    assert 3 in x.samples[:, 0] and (x.samples[:, 0] == 3).sum() == 3
    assert (x.gaps["missing"] <= 2**62).all()
