"""Faults that used to lose data (issue 16), each reproduced with real parts and ending with
the file read back sample by sample against the simulator's seed:

- markers with a NUL byte (over UDP from ``mark``'s protocol and from an LSL marker outlet)
  and hostile datagrams that used to kill the mark listener;
- a stream that restarts while LSL resolves at machine scope (``ResolveScope = machine`` in
  an ``lsl_api.cfg`` named by ``LSLAPICFG``, for the recorder only);
- another process filling a small tmpfs while the recorder writes its HDF5 file;
- a session file with a zeroed 4 KiB block.
"""

from __future__ import annotations

import ctypes
import json
import os
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
from test_recording_helpers import kill_all, mount_tmpfs, start_in, wait_for_journal

from physioaffect.recording import journal_path, read_session, recover_session
from physioaffect.recording.markers import send_mark
from physioaffect.sinks.lsl import LSLOutlet
from physioaffect.sources.sim import SimConfig, simulate_subject
from physioaffect.streams import Chunk, StreamInfo, local_clock


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "physioaffect.cli.main", *args]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_seeded(samples: np.ndarray, ref: np.ndarray) -> int:
    """Every row of ``samples`` follows the simulator's rows from where it starts; returns that index."""
    k0 = start_in(ref, samples)
    np.testing.assert_array_equal(samples, ref[k0:k0 + len(samples)])
    return k0


def one_line_error(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = [ln for ln in stderr.strip().splitlines() if "error" in ln]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], stderr


# -- NUL bytes and hostile datagrams -------------------------------------------------------

def _udp(port: int, payload: bytes, timeout: float = 5.0) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        return json.loads(s.recvfrom(4096)[0].decode())


def test_nul_markers_over_udp_and_lsl_are_kept_and_no_datagram_kills_the_listener(tmp_path):
    name = f"nul{uuid.uuid4().hex[:8]}"
    info = StreamInfo.from_labels(name, "Markers", ["m"], 0.0, "", channel_format="string",
                                  source_id=name)
    outlet = LSLOutlet(info)
    port = free_udp_port()
    path = tmp_path / "sub-01_ses-1_task-nul_run-1_physio.h5"
    proc = subprocess.Popen(
        cli("record", "-s", "sim?eeg_channels=4&rate=128&seed=5", "-s", f"lsl:{name}?timeout=30",
            "--subject", "01", "--session", "1", "--task", "nul", "--out", str(tmp_path),
            "--duration", "8", "-q", "--mark-port", str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_journal(path, proc)
        deadline = time.monotonic() + 20
        while not outlet.have_consumers():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t_lsl = local_clock()
        outlet.push(Chunk(name, [t_lsl], np.array([["bad\x00marker"]], dtype=object)))
        assert _udp(port, json.dumps({"text": "a\u0000b"}).encode())["ok"]
        assert _udp(port, json.dumps({"text": "lone \ud800 surrogate"}).encode())["ok"]
        hostile = [
            b'{"text": "inf", "time": 1e400}',
            b'{"text": "huge", "time": 1' + b"0" * 400 + b"}",
            b'{"text": "nan", "time": NaN}',
            b'{"text": "-inf", "time": -Infinity}',
            b'{"text": "far", "time": -1e300}',
            b"[" * 20000 + b"]" * 20000,
            b'{"text": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            b"\xff\xfe not utf-8",
            b'["a list"]',
            b'{"no": "text"}',
        ]
        for payload in hostile:
            reply = _udp(port, payload)
            assert reply["ok"] is False and reply["error"], (payload[:40], reply)
        # the listener is still there
        send_mark("after-the-storm", port=port, timeout=5)
        out, err = proc.communicate(timeout=60)
    finally:
        kill_all(proc)
    assert proc.returncode == 0, err
    s = read_session(path)
    own = [m.text for m in s.markers if m.stream == "physioaffect-markers"]
    assert own == ["a\x00b", "lone \ud800 surrogate", "after-the-storm"]
    lsl = [(m.time, m.text) for m in s.markers if m.stream == name]
    assert len(lsl) == 1 and lsl[0][1] == "bad\x00marker"
    assert abs(lsl[0][0] - t_lsl) < 0.01
    truth = simulate_subject(SimConfig(eeg_channels=4, rate=128, seed=5), 0, duration=40)
    for kind, stream in (("EEG", "sim-EEG"), ("ECG", "sim-ECG")):
        assert_seeded(s.streams[stream].samples, truth.signals[kind][2])
        assert s.streams[stream].n_samples > 5 * 128


def test_nul_and_surrogate_markers_survive_recover(tmp_path):
    """What the recorder accepted, ``recover`` rebuilds (the journal replays through HDF5)."""
    from physioaffect.recording import SessionWriter

    texts = ["a\x00b", "\x00", "lone \udc80", 'quote " and \\ backslash', "plain", ""]
    mrk = StreamInfo.from_labels("stim", "Markers", ["m"], 0.0, "", channel_format="string")
    p = tmp_path / "n.h5"
    w = SessionWriter(p, subject="1", task="t")
    w.add_stream(mrk)
    for i, text in enumerate(texts):
        w.append(Chunk("stim", [10.0 + i], np.array([[text]], dtype=object)))
    w.tick(force=True)
    # a kill -9 now: copy the files as they are, then finish the original normally
    crash = tmp_path / "crash.h5"
    crash.write_bytes(p.read_bytes())
    journal_path(crash).write_bytes(journal_path(p).read_bytes())
    w.close()
    assert [m.text for m in read_session(p).markers] == texts
    recover_session(crash)
    assert [m.text for m in read_session(crash).markers] == texts


# -- a restarted stream with machine-scope resolving -----------------------------------------

PUBLISH = textwrap.dedent("""
    import sys
    from physioaffect.sinks.lsl import publish
    from physioaffect.sources.sim import SimConfig, SimSource
    src = SimSource(SimConfig(eeg_channels=4, rate=250, seed=8), prefix=sys.argv[1])
    src.start()
    publish(src, duration=float(sys.argv[2]))
""")


@pytest.mark.slow
def test_restarted_stream_is_reconnected_with_machine_resolve_scope(tmp_path):
    prefix = f"rs{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text("[multicast]\nResolveScope = machine\n")
    env = {**os.environ, "LSLAPICFG": str(cfg)}  # the recorder only
    first = subprocess.Popen([sys.executable, "-c", PUBLISH, prefix, "120"])
    second = None
    path = tmp_path / "sub-01_ses-1_task-rs_run-1_physio.h5"
    rec = subprocess.Popen(
        cli("record", "-s", f"lsl:{prefix}-EEG?timeout=40", "--subject", "01", "--session",
            "1", "--task", "rs", "--out", str(tmp_path), "--duration", "14", "-q",
            "--mark-port", "0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_journal(path, rec, min_bytes=20000)
        time.sleep(1.0)
        t_kill = local_clock()
        first.send_signal(signal.SIGKILL)  # the amplifier's program dies ...
        first.wait(timeout=10)
        time.sleep(0.5)
        t_restart = local_clock()
        second = subprocess.Popen([sys.executable, "-c", PUBLISH, prefix, "120"])  # ... and is back
        out, err = rec.communicate(timeout=90)
    finally:
        kill_all(first, second, rec)
    assert rec.returncode == 0, err
    s = read_session(path)
    eeg = s.streams[f"{prefix}-EEG"]
    assert eeg.gaps.shape[0] == 1, eeg.gaps
    gap = eeg.gaps[0]
    split = int(np.searchsorted(eeg.timestamps, gap["end"]))
    before, after = eeg.samples[:split], eeg.samples[split:]
    assert len(before) > 250 and len(after) > 250, (len(before), len(after))
    # the gap record: from the last sample before the loss to the first one after the return
    assert gap["start"] == eeg.timestamps[split - 1] and gap["end"] == eeg.timestamps[split]
    assert gap["start"] <= t_kill + 0.1 and gap["end"] >= t_restart
    assert abs(gap["missing"] - ((gap["end"] - gap["start"]) * 250 - 1)) <= 1
    events = [(e["kind"], e["stream"], e["time"]) for e in s.events]
    lost = [t for k, n, t in events if k == "disconnected" and n == eeg.name]
    back = [t for k, n, t in events if k == "connected" and n == eeg.name]
    assert len(lost) == 1 and len(back) == 1 and lost[0] < back[0], events
    # both runs of the publisher are the same seeded simulator: every sample in order
    ref = simulate_subject(SimConfig(eeg_channels=4, rate=250, seed=8), 0,
                           duration=60).signals["EEG"][2]
    assert_seeded(before, ref)
    assert_seeded(after, ref)
    np.testing.assert_allclose(np.diff(eeg.timestamps[:split]), 1 / 250, atol=2e-4)
    np.testing.assert_allclose(np.diff(eeg.timestamps[split:]), 1 / 250, atol=2e-4)


# -- another process fills the disk -----------------------------------------------------------

FILLER = textwrap.dedent("""
    # Waits until the recorder writes its HDF5 file, then takes every free byte of the file
    # system (and keeps taking what is freed), as a runaway program on the same disk would.
    import ctypes, os, sys, time
    target, filler, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    libc = ctypes.CDLL(None, use_errno=True)
    while not os.path.exists(target):
        time.sleep(0.01)
    time.sleep(delay)
    fd = libc.inotify_init()
    libc.inotify_add_watch(fd, target.encode(), 0x2)  # IN_MODIFY
    os.read(fd, 4096)  # the recorder is writing to the file right now
    out = os.open(filler, os.O_WRONLY | os.O_CREAT)
    st = os.statvfs(os.path.dirname(filler))
    try:
        os.posix_fallocate(out, 0, st.f_bavail * st.f_frsize)
    except OSError:
        pass
    print("full", flush=True)
    block = b"x" * 4096
    while True:
        try:
            os.write(out, block)
        except OSError:
            time.sleep(0.0005)
""")



@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None),
                                                                          "inotify_init"),
                    reason="inotify (Linux) times the filler to the recorder's HDF5 writes")
def test_disk_filled_by_another_process_ends_in_one_line_and_a_recoverable_file(tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "size=8m"):
        # a file-size limit (RLIMIT_FSIZE) fails the recorder's own writes but cannot race
        # another process for the space, which is what this test is about
        pytest.skip("cannot mount a tmpfs here (needs root and a kernel that allows it)")
    filler = None
    try:
        path = disk / "sub-01_ses-1_task-full_run-1_physio.h5"
        rec = subprocess.Popen(
            cli("record", "-s", "sim?eeg_channels=32&rate=512&seed=11&speed=4", "--subject",
                "01", "--session", "1", "--task", "full", "--out", str(disk), "--duration",
                "40", "-q", "--mark-port", "0"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        filler = subprocess.Popen([sys.executable, "-c", FILLER, str(path),
                                   str(disk / "filler"), "1.5"],
                                  stdout=subprocess.PIPE, text=True)
        out, err = rec.communicate(timeout=120)
        assert rec.returncode == 2, (rec.returncode, err)  # not a segfault (-11)
        one_line_error(err, "disk full", "recover")
        filler.kill()
        filler.wait()
        (disk / "filler").unlink()  # the operator frees space ...
        assert journal_path(path).exists()
        r = subprocess.run(cli("recover", str(path)), capture_output=True, text=True,
                           timeout=120)  # ... and rebuilds the file
        assert r.returncode == 0, r.stderr
        s = read_session(path)
        truth = simulate_subject(SimConfig(eeg_channels=32, rate=512, seed=11), 0, duration=90)
        eeg = s.streams["sim-EEG"]
        assert eeg.n_samples > 2 * 512
        for kind, stream in (("EEG", "sim-EEG"), ("ECG", "sim-ECG"), ("RESP", "sim-RESP")):
            assert_seeded(s.streams[stream].samples, truth.signals[kind][2])
            np.testing.assert_allclose(np.diff(s.streams[stream].timestamps),
                                       1 / 512, atol=1e-9)
    finally:
        if filler is not None and filler.poll() is None:
            filler.kill()
            filler.wait()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- a damaged session file -----------------------------------------------------------------

def _zero_block_in(path, dataset: str) -> tuple[int, int]:
    """Zero the 4 KiB block (4 KiB aligned) in the middle of a dataset's data on disk;
    returns the range of rows it hit."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        n_chunks = ds.id.get_num_chunks()
        info = ds.id.get_chunk_info(n_chunks // 2)
        rows = ds.chunks[0]
        first_row = info.chunk_offset[0]
        start = (info.byte_offset + 4095) // 4096 * 4096
        assert start + 4096 <= info.byte_offset + info.size, "chunk smaller than a block"
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(b"\x00" * 4096)
    return first_row, first_row + rows


def test_zeroed_block_is_detected_and_recover_rebuilds_or_salvages(tmp_path):
    cfg = SimConfig(eeg_channels=32, rate=256, seed=3)
    truth = simulate_subject(cfg, 0, duration=40)
    from physioaffect.recording import SessionWriter

    def write(path, keep_journal):
        w = SessionWriter(path, subject="1", task="t")
        for info, _, _ in truth.signals.values():
            w.add_stream(info)
        for i in range(0, 30 * 256, 64):  # 30 s in 0.25 s chunks
            for info, ts, x in truth.signals.values():
                k = slice(i * len(ts) // len(truth.signals["EEG"][1]),
                          (i + 64) * len(ts) // len(truth.signals["EEG"][1]))
                w.append(Chunk(info.name, 1000.0 + ts[k], x[k]))
            w.tick()
        w.close(keep_journal=keep_journal)

    # 1. the journal is still there: recover rebuilds the whole file from it
    a = tmp_path / "a.h5"
    write(a, keep_journal=True)
    _zero_block_in(a, "streams/sim-EEG/samples")
    r = subprocess.run(cli("info", str(a)), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    one_line_error(r.stderr, "damaged", "sim-EEG", "recover")
    recover_session(a)
    s = read_session(a)
    for kind, (info, ts, x) in truth.signals.items():
        st = s.streams[info.name]
        np.testing.assert_array_equal(st.samples, x[:st.n_samples])
        np.testing.assert_array_equal(st.timestamps, 1000.0 + ts[:st.n_samples])
        assert st.n_samples >= 29 * info.nominal_srate, kind

    # 2. no journal: info, export and recover say so; recover keeps every intact sample
    b = tmp_path / "b.h5"
    write(b, keep_journal=False)
    lo, hi = _zero_block_in(b, "streams/sim-EEG/samples")
    for args, needle in ((("info", str(b)), "damaged"),
                         (("export", str(b), "--to", "edf"), "damaged")):
        r = subprocess.run(cli(*args), capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, args
        one_line_error(r.stderr, needle, "sim-EEG")
    r = subprocess.run(cli("recover", str(b)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "salvaged" in r.stdout and "sim-EEG" in r.stdout, r.stdout
    assert (tmp_path / "b.h5.damaged").exists()  # the original is kept for forensics
    s = read_session(b)
    eeg_info, eeg_ts, eeg_x = truth.signals["EEG"]
    eeg = s.streams[eeg_info.name]
    rows = np.rint((eeg.timestamps - 1000.0 - eeg_ts[0]) * 256).astype(int)
    np.testing.assert_array_equal(eeg.samples, eeg_x[rows])  # every kept sample is right
    missing = sorted(set(range(rows[-1] + 1)) - set(rows.tolist()))
    assert missing == list(range(lo, hi))  # exactly the damaged chunk is gone ...
    assert eeg.gaps.shape[0] == 1 and eeg.gaps[0]["missing"] == hi - lo  # ... and says so
    assert "damaged" in str(eeg.gaps[0]["reason"])
    for kind in ("ECG", "RESP"):  # the other streams are whole
        info, ts, x = truth.signals[kind]
        st = s.streams[info.name]
        np.testing.assert_array_equal(st.samples, x[:st.n_samples])
