"""What an operator or a local program can do to a recording (issue 25), each with real
parts: a recover or a second recorder on a live session, a burst of UDP markers, 0-channel
LSL streams (at start and in place of a lost stream), a nearly full disk under recover, a
salvage's gaps, bad simulator options and device profiles."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import h5py
import numpy as np
import pytest
from conftest import cli
from test_recording_helpers import kill_all, mount_tmpfs, run_cli_cases, wait_for_journal

from physioaffect.recording import SessionWriter, journal_path, read_session, recover_session
from physioaffect.recording.markers import MarkerListener
from physioaffect.streams import Chunk, StreamInfo


def one_line(stderr: str, *needles: str) -> str:
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    lines = [ln for ln in stderr.strip().splitlines() if "error" in ln]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], stderr
    return lines[0]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a session being recorded --------------------------------------------------------------

def test_recover_and_a_second_recorder_refuse_a_session_being_recorded(tmp_path):
    path = tmp_path / "live.h5"
    rec = subprocess.Popen(
        cli("record", "-s", "sim?eeg_channels=4&rate=128&seed=3", "--subject", "1", "--session",
            "1", "--task", "t", "--out", str(path), "--duration", "5", "-q", "--mark-port", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_journal(path, rec)
        journal_before = journal_path(path).stat().st_size
        got = run_cli_cases([["recover", str(path)], ["info", str(path)],
                             ["record", "-s", "sim", "--subject", "1", "--session", "1",
                              "--task", "t", "--out", str(path), "--duration", "1"]])
        assert rec.poll() is None  # still recording
        out, err = rec.communicate(timeout=60)
    finally:
        kill_all(rec)
    for (code, stderr), what in zip(got, ("recover", "info", "record"), strict=True):
        assert code != 0, what
        one_line(stderr, str(path), "being recorded")
    assert "Ctrl-C" in got[0][1]
    assert journal_before > 0
    assert rec.returncode == 0, err
    s = read_session(path)  # the recording went on undisturbed to its end
    eeg = s.streams["sim-EEG"]
    assert s.complete and not s.attrs.get("recovered")
    assert eeg.gaps.shape[0] == 0 and eeg.n_samples >= 0.9 * 5 * 128
    np.testing.assert_allclose(np.diff(eeg.timestamps), 1 / 128, atol=1e-9)


# -- UDP markers ---------------------------------------------------------------------------

def test_a_burst_of_3000_udp_markers_is_kept_or_counted(tmp_path):
    port = free_udp_port()
    path = tmp_path / "burst.h5"
    rec = subprocess.Popen(
        cli("record", "-s", "sim?eeg_channels=2&rate=64", "--subject", "1", "--session", "1",
            "--task", "t", "--out", str(path), "--duration", "4", "-q", "--mark-port",
            str(port)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_journal(path, rec)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            t0 = time.perf_counter()
            for i in range(3000):  # as fast as a local program can send them
                s.sendto(json.dumps({"text": f"m{i}"}).encode(), ("127.0.0.1", port))
            burst_s = time.perf_counter() - t0
        out, err = rec.communicate(timeout=60)
    finally:
        kill_all(rec)
    assert rec.returncode == 0, err
    assert burst_s < 0.5
    s = read_session(path)
    texts = [m.text for m in s.markers if m.stream == "physioaffect-markers"]
    events = [e for e in s.events if e["kind"] == "markers-dropped"]
    dropped = sum(int(str(e["text"]).split()[0]) for e in events)
    assert len(set(texts)) == len(texts) and set(texts) <= {f"m{i}" for i in range(3000)}
    assert len(texts) + dropped == 3000  # each one kept, or counted as dropped
    warnings = [ln for ln in err.splitlines() if "dropped by the system" in ln]
    assert len(warnings) == (1 if dropped else 0)
    assert texts == sorted(texts, key=lambda t: int(t[1:]))  # in the order sent


def test_marker_listener_counts_the_datagrams_the_kernel_drops():
    """A tiny receive buffer and a slow consumer: whatever is not received is counted."""
    got: list[str] = []
    drops: list[tuple[int, int]] = []

    def slow(text, t, origin):
        got.append(text)
        time.sleep(0.002)

    listener = MarkerListener(slow, port=0, receive_buffer=4096,
                              on_dropped=lambda new, total: drops.append((new, total)))
    listener.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(300):
            s.sendto(json.dumps({"text": f"m{i}"}).encode(), ("127.0.0.1", listener.port))
    time.sleep(1.0)
    listener.stop()
    assert drops, "nothing was dropped: the buffer was not small"
    assert len(got) + listener.dropped == 300
    assert sum(n for n, _ in drops) == listener.dropped == drops[-1][1]


# -- 0-channel LSL streams -------------------------------------------------------------------

OUTLET = textwrap.dedent("""
    import sys, time, pylsl
    name, kind, n_ch, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    out = pylsl.StreamOutlet(pylsl.StreamInfo(name, kind, n_ch, 100, "float32", name + "-sid"))
    print("up", flush=True)
    k, t0 = start, pylsl.local_clock()
    while True:
        n = start + int((pylsl.local_clock() - t0) * 100) - k
        if n > 0 and n_ch:
            out.push_chunk([[float(v)] * n_ch for v in range(k, k + n)])
        k += max(n, 0)
        time.sleep(0.01)
""")


def _outlet(name: str, kind: str, n_ch: int, start: int = 0) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", OUTLET, name, kind, str(n_ch), str(start)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    return p


def test_zero_channel_lsl_streams_are_refused_and_the_recording_goes_on(tmp_path):
    tag = uuid.uuid4().hex[:8]
    zero, ecg = f"zero{tag}", f"ecg{tag}"
    procs = [_outlet(zero, "EEG", 0), _outlet(ecg, "ECG", 1)]
    path = tmp_path / "z.h5"
    rec = subprocess.Popen(
        cli("record", "-s", "sim?eeg_channels=4&rate=128", "-s", f"lsl:{zero}?timeout=10", "-s",
            f"lsl:{ecg}?timeout=10", "--subject", "1", "--session", "1", "--task", "t",
            "--out", str(path), "--duration", "9", "-q", "--mark-port", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_journal(path, rec)
        time.sleep(1.5)
        procs[1].send_signal(signal.SIGKILL)  # the ECG's program dies, and a local program
        procs[1].wait(10)
        procs.append(_outlet(ecg, "ECG", 0))  # puts a 0-channel stream in its place ...
        time.sleep(1.5)
        procs.append(_outlet(ecg, "ECG", 1, 100000))  # ... then the ECG comes back
        out, err = rec.communicate(timeout=60)
    finally:
        kill_all(rec, *procs)
    assert rec.returncode == 0, err  # no "Floating point exception" (rc 136)
    assert "Traceback" not in err
    said = [ln for ln in err.splitlines() if "0 channels" in ln]
    assert len(said) == 2, err  # one line for each refused stream
    assert f"'{zero}'" in said[0] and "not recorded" in said[0]
    assert f"'{ecg}'" in said[1] and "still waiting" in said[1]
    s = read_session(path)
    assert zero not in s.streams
    assert s.streams["sim-EEG"].n_samples >= 0.9 * 9 * 128  # the others went on
    v = s.streams[ecg].samples[:, 0]
    before, after = v[v < 100000], v[v >= 100000]
    assert len(before) > 100 and len(after) > 100
    np.testing.assert_array_equal(np.diff(after), 1)
    assert sum("0 channels" in str(e["text"]) for e in s.events) == 2  # also in the file


# -- recover on a nearly full disk -----------------------------------------------------------


def test_recover_on_a_nearly_full_disk_says_so_and_changes_nothing(tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "size=12m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        path = disk / "full.h5"
        info = StreamInfo.from_labels("EEG", "EEG", [f"c{i}" for i in range(32)], 500.0, "uV")
        w = SessionWriter(path, subject="1", task="t")
        w.add_stream(info)
        rng = np.random.default_rng(1)
        for k in range(16):  # 8 s, about 0.6 MB of journal
            ts = 10.0 + (250 * k + np.arange(250)) / 500
            w.append(Chunk("EEG", ts, rng.normal(0, 10, (250, 32)).astype(np.float32)))
            w.tick()
        w.sync()
        w.abort()  # as after a full disk or a kill: the journal holds it all
        digest = hashlib.sha256(journal_path(path).read_bytes()).hexdigest()
        with open(disk / "filler", "wb") as fh:  # another program takes nearly all the rest
            free = int(subprocess.check_output(["df", "--output=avail", "-B1", str(disk)],
                                               text=True).split()[1])
            fh.write(b"x" * max(0, free - 300_000))
        r = subprocess.run(cli("recover", str(path)), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        line = one_line(r.stderr, f"'{path}'", "free space", "recover")
        assert ".recovering" not in line
        assert not (disk / "full.h5.recovering").exists()
        assert hashlib.sha256(journal_path(path).read_bytes()).hexdigest() == digest
        (disk / "filler").unlink()  # the operator frees space ...
        r = subprocess.run(cli("recover", str(path)), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr  # ... and the session is whole
        assert read_session(path).streams["EEG"].n_samples == 16 * 250
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- a salvage's gaps --------------------------------------------------------------------------

def _zero_chunk(path, dataset: str, index: int) -> tuple[int, int]:
    """Zero a 4 KiB block inside chunk ``index`` of a dataset; returns its rows."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        info = ds.id.get_chunk_info(index)
        rows = ds.chunks[0]
        first = info.chunk_offset[0]
        start = (info.byte_offset + 4095) // 4096 * 4096
        assert start + 4096 <= info.byte_offset + info.size
        n = min(rows, ds.shape[0] - first)
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(b"\x00" * 4096)
    return first, first + n


def test_salvaged_gaps_span_the_lost_rows_in_the_session_time(tmp_path):
    path = tmp_path / "s.h5"
    a = StreamInfo.from_labels("A", "EEG", [f"c{i}" for i in range(64)], 256.0, "uV")
    b = StreamInfo.from_labels("B", "ECG", ["ecg"], 100.0, "mV")
    w = SessionWriter(path, subject="1", task="t")
    w.add_stream(a)
    w.add_stream(b)
    t0 = w.session_attrs["lsl_clock_start"]
    rng = np.random.default_rng(2)
    for k in range(20):  # 20 s
        w.append(Chunk("A", t0 + 1 + k + np.arange(256) / 256,
                       rng.normal(0, 10, (256, 64)).astype(np.float32)))
        w.append(Chunk("B", t0 + 1.005 + k + np.arange(100) / 100,
                       rng.normal(0, 1, (100, 1)).astype(np.float32)))
    w.close()
    lo, hi = _zero_chunk(path, "streams/A/samples", 0)  # A's first chunk ...
    _zero_chunk(path, "streams/B/samples", 0)  # ... and all of B (one chunk)
    recover_session(path)
    s = read_session(path)
    ga, gb = s.streams["A"].gaps, s.streams["B"].gaps
    assert ga.shape[0] == 1 and gb.shape[0] == 1
    assert (lo, hi - lo) == (0, ga[0]["missing"])
    assert ga[0]["start"] == pytest.approx(t0 + 1) and ga[0]["end"] == s.streams["A"].timestamps[0]
    assert ga[0]["end"] - ga[0]["start"] == pytest.approx((hi - lo) / 256)
    assert gb[0]["missing"] == 2000 and s.streams["B"].n_samples == 0
    assert gb[0]["start"] == pytest.approx(t0 + 1.005)
    assert gb[0]["end"] == pytest.approx(t0 + 1.005 + 19.99)
    r = subprocess.run(cli("info", str(path)), capture_output=True, text=True, timeout=60)
    spans = [line.split(": ", 1)[1].split(" after start")[0] for line in r.stdout.splitlines()
             if line.strip().startswith("gap in")]
    for span in spans:  # e.g. "1.000 s to 5.000 s": inside the session, not empty
        start, end = (float(x.split()[0]) for x in span.split(" to "))
        assert 0 <= start < end <= 22, span


# -- bad options and device profiles ---------------------------------------------------------

def test_bad_sim_options_and_device_profiles_are_one_line(tmp_path):
    profile = ('board = "SYNTHETIC_BOARD"\n[[streams]]\nname = "EEG"\ntype = "EEG"\n'
               'rows = ROWS\nunit = "microvolts"\n')
    (tmp_path / "text_rows.toml").write_text(profile.replace("ROWS", '["one", "two"]'))
    (tmp_path / "latin1.toml").write_bytes(
        profile.replace("ROWS", "[1]").replace("micro", "\xb5").encode("latin-1"))
    rec = ["record", "--subject", "1", "--session", "1", "--task", "t", "--out",
           str(tmp_path), "--duration", "1"]
    cases = [
        ([*rec, "-s", "sim?seed=-1"], ["seed", "-1"]),
        ([*rec, "-s", "sim?effect=nan"], ["effect", "nan"]),
        (["check", "-s", f"brainflow:synthetic?profile={tmp_path / 'text_rows.toml'}"],
         ["text_rows.toml", "streams[0]", "'rows'"]),
        (["check", "-s", f"brainflow:synthetic?profile={tmp_path / 'latin1.toml'}"],
         ["latin1.toml", "UTF-8"]),
        (["check", "-s", "lsl:EEG?timeout=nan"], ["timeout", "nan"]),
        (["check", "-s", "brainflow:synthetic?buffer=nan"], ["buffer", "nan"]),
    ]
    for (args, needles), (code, stderr) in zip(cases, run_cli_cases([a for a, _ in cases]),
                                              strict=True):
        assert code == 2, (args, stderr)
        one_line(stderr, *needles)


def test_a_stream_that_never_sent_a_sample_reads_back(tmp_path):
    """A declared stream with no sample (an LSL stream that stayed silent) must not make the
    file unreadable."""
    w = SessionWriter(tmp_path / "e.h5", subject="1", task="t")
    w.add_stream(StreamInfo.from_labels("silent", "ECG", ["ecg"], 100.0, "mV"))
    w.add_stream(StreamInfo.from_labels("A", "EEG", ["x"], 10.0, "uV"))
    w.append(Chunk("A", [1.0, 1.1], np.ones((2, 1), np.float32)))
    w.close()
    s = read_session(tmp_path / "e.h5")
    assert s.streams["silent"].n_samples == 0 and s.streams["A"].n_samples == 2
