"""LSL in and out, end to end between two real processes on loopback."""

from __future__ import annotations

import subprocess
import time
import uuid
import warnings

import numpy as np
import pylsl
import pytest
from conftest import cli

from physioaffect.sinks.lsl import LSLOutlet
from physioaffect.sources import SourceError, open_source
from physioaffect.sources.lsl import LSLSource, StreamLostWarning
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import Chunk, StreamInfo, local_clock


def _publisher(prefix: str, duration: float, extra: str = "") -> subprocess.Popen:
    spec = f"sim?eeg_channels=8&rate=250&seed=4&prefix={prefix}{extra}"
    return subprocess.Popen(cli("stream", "--source", spec, "--duration", str(duration)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _collect(src, stream: str, n: int, limit: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    ts, xs = [], []
    t0 = time.monotonic()
    while sum(len(t) for t in ts) < n and time.monotonic() - t0 < limit:
        for ch in src.read(0.1):
            if ch.stream == stream:
                ts.append(ch.timestamps)
                xs.append(ch.samples)
    return np.concatenate(ts), np.concatenate(xs)


def test_sim_to_lsl_to_inlet_in_another_process_keeps_metadata_and_values():
    prefix = f"t{uuid.uuid4().hex[:8]}"
    proc = _publisher(prefix, 6)
    try:
        with LSLSource(f"{prefix}-EEG", timeout=20) as src:
            info = src.stream(f"{prefix}-EEG")
            assert info.type == "EEG" and info.nominal_srate == 250
            assert info.labels == ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
            assert set(info.units) == {"microvolts"} and set(info.channel_types) == {"EEG"}
            assert info.device["manufacturer"] == "physioaffect"
            ts, x = _collect(src, f"{prefix}-EEG", 500)
    finally:
        proc.wait(30)
    assert proc.returncode == 0, proc.stderr.read()
    # Values: the same seed offline gives the same samples; find where the inlet joined.
    offline = simulate_subject(SimConfig(eeg_channels=8, rate=250, seed=4), 0, duration=12).signals["EEG"][2]
    start = int(np.nonzero(np.all(offline == x[0], axis=1))[0][0])
    np.testing.assert_array_equal(x, offline[start : start + len(x)])
    # Timestamps are regular at 250 Hz and on this host's LSL clock.
    np.testing.assert_allclose(np.diff(ts), 1 / 250, atol=1e-6)
    assert abs(ts[-1] - local_clock()) < 15


def test_string_markers_and_float_streams_roundtrip_in_process():
    name = f"m{uuid.uuid4().hex[:8]}"
    info = StreamInfo.from_labels(name, "Markers", ["Marker"], 0.0, "", channel_format="string",
                                  source_id=name)
    outlet = LSLOutlet(info)
    with LSLSource(name, timeout=5) as src:
        time.sleep(0.3)
        now = local_clock()
        outlet.push(Chunk(name, [now, now + 0.01], np.array([["a"], ['{"event":"x"}']], dtype=object)))
        ts, x = _collect(src, name, 2, limit=5)
    assert list(x[:, 0]) == ["a", '{"event":"x"}']
    np.testing.assert_allclose(ts, [now, now + 0.01], atol=1e-3)


def test_stream_that_never_appears_is_a_clear_error_not_a_hang():
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="no LSL stream .* appeared within 0.5 s"):
        open_source("lsl:does-not-exist-123?timeout=0.5").start()
    assert time.monotonic() - t0 < 20  # a hang would be the 32e6 s default of pylsl


def test_vanished_stream_warns_and_reconnects_when_it_returns():
    prefix = f"v{uuid.uuid4().hex[:8]}"
    first = _publisher(prefix, 3)
    with LSLSource(f"{prefix}-ECG", timeout=20) as src:
        _collect(src, f"{prefix}-ECG", 100)
        first.wait(30)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.monotonic()
            while not caught and time.monotonic() - t0 < 10:
                src.read(0.1)
        assert any(issubclass(w.category, StreamLostWarning) for w in caught)
        assert src.state[f"{prefix}-ECG"] == "lost"
        second = _publisher(prefix, 5)
        try:
            ts, x = _collect(src, f"{prefix}-ECG", 200, limit=25)
            assert len(ts) >= 200 and src.state[f"{prefix}-ECG"] == "connected"
        finally:
            second.wait(30)


def test_outlet_desc_is_readable_by_plain_pylsl():
    """Any LSL consumer (LabRecorder, mne-lsl) sees labels, units and types in desc."""
    name = f"d{uuid.uuid4().hex[:8]}"
    info = StreamInfo.from_labels(name, "ECG", ["ECG"], 256.0, "millivolts", source_id=name,
                                  device={"manufacturer": "ACME", "model": "X1"})
    outlet = LSLOutlet(info)  # noqa: F841 (kept alive while resolving)
    found = pylsl.resolve_byprop("name", name, 1, 5.0)
    inlet = pylsl.StreamInlet(found[0])
    desc = inlet.info(5.0).desc()
    ch = desc.child("channels").child("channel")
    assert (ch.child_value("label"), ch.child_value("unit"), ch.child_value("type")) == ("ECG", "millivolts", "ECG")
    assert desc.child("acquisition").child_value("model") == "X1"
    assert found[0].type() == "ECG" and found[0].nominal_srate() == 256.0


def test_two_streams_of_one_type_read_by_a_thread_each_without_loss():
    """A source matching several streams reads each on its own thread (a blocking pull
    each); every pushed sample arrives once, in order, under its own stream."""
    kind = f"T{uuid.uuid4().hex[:8]}"
    outlets = {}
    for name in (f"{kind}-a", f"{kind}-b"):
        info = StreamInfo.from_labels(name, kind, ["x", "y"], 100.0, "au", source_id=name)
        outlets[name] = LSLOutlet(info)
    got: dict[str, list[np.ndarray]] = {name: [] for name in outlets}
    with LSLSource(kind, timeout=10, expect=2) as src:
        assert {s.name for s in src.streams} == set(outlets)
        assert len(src._threads) == 2  # one per inlet (liblsl objects stay on it)
        deadline = time.monotonic() + 10
        while not all(o.have_consumers() for o in outlets.values()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t0 = local_clock()
        for k in range(20):  # 20 chunks of 5 samples each, values count up per stream
            for j, (name, outlet) in enumerate(outlets.items()):
                v = np.arange(5 * k, 5 * k + 5, dtype=np.float32)
                outlet.push(Chunk(name, t0 + v / 100, np.stack([v, v + 1000 * j], axis=1)))
            time.sleep(0.005)
        deadline = time.monotonic() + 10
        while sum(len(x) for xs in got.values() for x in xs) < 200:
            assert time.monotonic() < deadline, {n: sum(map(len, xs)) for n, xs in got.items()}
            for chunk in src.read(0.1):
                got[chunk.stream].append(chunk.samples)
    for j, name in enumerate(outlets):
        x = np.concatenate(got[name])
        np.testing.assert_array_equal(x[:, 0], np.arange(100))
        np.testing.assert_array_equal(x[:, 1], np.arange(100) + 1000 * j)
