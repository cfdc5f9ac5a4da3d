"""The session file: round trip, metadata, gaps, drops, journal recovery, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from test_recording_helpers import mount_tmpfs, run_cli_cases, start_in

from physioaffect.recording import (
    InvalidIdError,
    RecordingError,
    SessionFileError,
    SessionWriter,
    bids_basename,
    choose_session_path,
    journal_path,
    read_session,
    recover_session,
)
from physioaffect.recording import journal as jr
from physioaffect.streams import Chunk, StreamInfo

EEG = StreamInfo.from_labels("amp-EEG", "EEG", ["Fp1", "Fp2", "Cz"], 250.0, "microvolts",
                             source_id="amp1", device={"manufacturer": "ACME", "serial": "SN42"})
ECG = StreamInfo.from_labels("amp/ECG", "ECG", ["ECG"], 100.0, "millivolts")
MRK = StreamInfo.from_labels("stim", "Markers", ["m"], 0.0, "", channel_format="string")


def _write(path, n_chunks=20, t0=100.0, gap_at=None, close=True, **kw):
    """A session with EEG (25-sample chunks), ECG added half-way, markers; returns truth."""
    rng = np.random.default_rng(0)
    w = SessionWriter(path, subject="S01", task="rest", session="A", run=2,
                      config={"why": "test"}, **kw)
    w.add_stream(EEG)
    w.add_stream(MRK)
    truth = {"EEG": [], "ECG": [], "marks": []}
    k_ecg = 0
    for k in range(n_chunks):
        shift = 2.0 if gap_at is not None and k >= gap_at else 0.0
        ts = t0 + shift + (25 * k + np.arange(25)) / 250.0
        x = rng.normal(0, 20, (25, 3)).astype(np.float32)
        w.append(Chunk("amp-EEG", ts, x))
        truth["EEG"].append((ts, x))
        if k == n_chunks // 2:  # a stream that appears mid-recording
            w.add_stream(ECG)
        if k >= n_chunks // 2:
            ts2 = t0 + shift + (10 * k_ecg + np.arange(10)) / 100.0 + 0.001
            x2 = np.sin(ts2)[:, None].astype(np.float32)
            w.append(Chunk("amp/ECG", ts2, x2, dropped=3 if k_ecg == 1 else 0))
            truth["ECG"].append((ts2, x2))
            k_ecg += 1
        if k % 5 == 0:
            text = json.dumps({"event": "stimulus_onset", "trial": k})
            w.append(Chunk("stim", [ts[0]], np.array([[text]], dtype=object)))
            truth["marks"].append((ts[0], text))
        w.tick()
    if close:
        w.close()
    return w, truth


def test_round_trip_metadata_and_mid_recording_stream(tmp_path):
    p = tmp_path / "s.h5"
    _, truth = _write(p)
    assert not journal_path(p).exists()  # finalised: journal removed
    s = read_session(p)
    assert s.complete
    a = s.attrs
    assert (a["subject"], a["session"], a["task"], a["run"]) == ("S01", "A", "rest", 2)
    assert a["utc_start"].endswith("Z") and a["lsl_clock_start"] > 0
    assert abs(a["lsl_clock_start"] - a["unix_start"] - a["unix_to_lsl_offset"]) < 1e-6
    for pkg in ("physioaffect", "h5py", "pylsl", "brainflow", "numpy", "hdf5", "liblsl"):
        assert pkg in a["software_versions"], pkg
    assert a["configuration"] == {"why": "test"}
    eeg = s.streams["amp-EEG"]
    ts = np.concatenate([t for t, _ in truth["EEG"]])
    x = np.concatenate([v for _, v in truth["EEG"]])
    np.testing.assert_array_equal(eeg.timestamps, ts)
    np.testing.assert_array_equal(eeg.samples, x)
    assert eeg.info == EEG
    assert eeg.attrs["device_serial"] == "SN42" and eeg.attrs["device_manufacturer"] == "ACME"
    assert list(eeg.attrs["channel_units"]) == ["microvolts"] * 3
    assert abs(eeg.measured_srate - 250.0) < 1e-6
    ecg = s.streams["amp/ECG"]  # a '/' in a name survives
    np.testing.assert_array_equal(ecg.samples, np.concatenate([v for _, v in truth["ECG"]]))
    assert ecg.dropped_total == 3
    assert [(m.time, m.text) for m in s.markers] == truth["marks"]
    with h5py.File(p) as f:  # chunked, checksummed per chunk and as a whole, uncompressed
        ds = f["streams/amp-EEG/samples"]
        assert ds.compression is None and ds.fletcher32 and ds.chunks is not None
        assert "crc32" in ds.attrs and "crc32" in f["streams/amp-EEG/timestamps"].attrs
    gz = tmp_path / "gz.h5"
    _, truth_gz = _write(gz, n_chunks=4, compression="gzip")
    with h5py.File(gz) as f:
        ds = f["streams/amp-EEG/samples"]
        assert ds.compression == "gzip" and ds.shuffle and ds.fletcher32
    np.testing.assert_array_equal(read_session(gz).streams["amp-EEG"].samples,
                                  np.concatenate([v for _, v in truth_gz["EEG"]]))


def test_gap_is_detected_and_excluded_from_measured_rate(tmp_path):
    p = tmp_path / "g.h5"
    _write(p, gap_at=8)
    eeg = read_session(p).streams["amp-EEG"]
    assert eeg.gaps.shape[0] == 1
    g = eeg.gaps[0]
    assert g["end"] - g["start"] == pytest.approx(2.0 + 1 / 250, abs=1e-9)
    assert g["missing"] == 500
    assert abs(eeg.measured_srate - 250.0) < 1e-6  # the gap does not bias the rate


def test_recover_from_journal_after_crash_and_torn_tail(tmp_path):
    p = tmp_path / "c.h5"
    w, truth = _write(p, close=False)
    w.tick(force=True)
    # simulate kill -9: copy the files as they are on disk now, then append a torn record
    crash = tmp_path / "crash.h5"
    shutil.copy(p, crash)
    shutil.copy(journal_path(p), journal_path(crash))
    with open(journal_path(crash), "ab") as fh:
        fh.write(b"PJ\x03\xff\xff\x00")
    w.close()
    report = recover_session(crash)
    assert "torn" in report.stop_reason
    a, b = read_session(p), read_session(crash)
    assert b.complete and b.attrs["recovered"]
    for name in a.streams:
        np.testing.assert_array_equal(a.streams[name].timestamps, b.streams[name].timestamps)
        if a.streams[name].info.channel_format != "string":
            np.testing.assert_array_equal(a.streams[name].samples, b.streams[name].samples)
    assert [m.text for m in b.markers] == [m.text for m in a.markers]
    assert not journal_path(crash).exists()


def test_recover_loses_only_the_damaged_journal_records(tmp_path):
    """Flipped bytes in two records (one in a payload, one in a header's length) cost those
    two records: every record before and after them is rebuilt, the samples lost become a
    gap, and the loss is an event of the session."""
    p = tmp_path / "k.h5"
    w, truth = _write(p, close=False)
    w.tick(force=True)
    w.abort()  # the recorder dies (its journal lock goes with it)
    jp = journal_path(p)
    records = jr.read_journal(jp).records
    starts = np.cumsum([len(jr.MAGIC)] + [11 + len(r.payload) for r in records])
    formats = {0: ("float32", 3), 1: ("string", 1), 2: ("float32", 1)}
    chunks = [(k, jr.decode_chunk(r.payload, formats)) for k, r in enumerate(records)
              if r.type == jr.CHUNK]
    eeg = [(k, c) for k, c in chunks if c[0] == 0 and len(c[1])]
    hit = [eeg[5][0], eeg[12][0]]  # two EEG chunks, far apart
    data = bytearray(jp.read_bytes())
    data[starts[hit[0]] + 11 + 20] ^= 0xFF  # a sample byte
    data[starts[hit[1]] + 4] ^= 0x01  # the length field: the record now claims 256 more bytes
    os.unlink(p)  # and the HDF5 file is gone entirely (power cut before any flush)
    jp.write_bytes(bytes(data))
    report = recover_session(p)
    s = read_session(p)
    st = s.streams["amp-EEG"]
    expected = np.concatenate([c[1] for k, c in eeg if k not in hit])
    np.testing.assert_array_equal(st.timestamps, expected)  # all the others, in order
    lost = {k: c for k, c in eeg if k in hit}
    assert st.gaps.shape[0] == 2
    for gap, (_, ts, _, _) in zip(st.gaps, lost.values(), strict=True):
        assert gap["start"] < ts[0] and gap["end"] > ts[-1]
        assert gap["missing"] == len(ts) and "damaged journal" in str(gap["reason"])
    assert s.streams["amp/ECG"].n_samples == sum(len(ts) for ts, _ in truth["ECG"])
    assert [m.text for m in s.markers] == [text for _, text in truth["marks"]]
    damaged = [e for e in s.events if e["kind"] == "journal-damaged"]
    assert len(damaged) == 2 and "damaged" in report.message


def test_never_overwrite_and_bids_names(tmp_path):
    p = tmp_path / "x.h5"
    _write(p, n_chunks=2)
    before = p.read_bytes()
    with pytest.raises(SessionFileError, match="never overwritten"):
        SessionWriter(p, subject="S01", task="rest")
    assert p.read_bytes() == before
    assert bids_basename("01", "rest", "2", 3) == "sub-01_ses-2_task-rest_run-3"
    first = choose_session_path(tmp_path, "01", "rest", "1")
    assert first.name == "sub-01_ses-1_task-rest_run-1_physio.h5"
    first.write_bytes(b"")
    assert choose_session_path(tmp_path, "01", "rest", "1").name.endswith("_run-2_physio.h5")
    with pytest.raises(RecordingError, match="already exists"):
        choose_session_path(tmp_path, "01", "rest", "1", run=1)
    with pytest.raises(RecordingError, match="does not exist"):
        choose_session_path(tmp_path / "nope", "01", "rest", "1")


@pytest.mark.parametrize("bad", ["a/b", "a b", "", "..", "x_y", "sub-1", "é"])
def test_invalid_ids_are_refused(bad):
    with pytest.raises(InvalidIdError, match="invalid subject id"):
        bids_basename(bad, "rest")


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                          capture_output=True, text=True, timeout=60, **kw)


def test_cli_bad_input_one_line_errors(tmp_path):
    good = tmp_path / "good.h5"
    _write(good, n_chunks=4)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    xdf = tmp_path / "garbage.xdf"
    xdf.write_bytes(b"XDF:" + np.random.default_rng(0).bytes(3000))
    rec = ["record", "--subject", "01", "--session", "1", "--task", "t"]
    slow_source = ["--source", "lsl:never-appears?timeout=60"]  # refusals must come first
    cases = [
        (("info", str(foreign)), "not a physioaffect session file"),
        (("export", str(foreign), "--to", "edf"), "not a physioaffect session file"),
        (("recover", str(foreign)), "not a physioaffect session file"),
        (("info", str(truncated)), "not a readable HDF5 file"),
        (("export", str(truncated), "--to", "fif"), "not a readable HDF5 file"),
        (("recover", str(truncated)), "not a readable HDF5 file"),
        (("info", str(text)), "not a readable HDF5 file"),
        (("recover", str(good)), "reads back as written; nothing to recover"),
        ((*rec, "--source", "sim", "--subject", "a/b", "--out", str(tmp_path)),
         "invalid subject id"),
        ((*rec, "--source", "sim", "--session", "1 2", "--out", str(tmp_path)),
         "invalid session id"),
        ((*rec, "--source", "sim", "--out", str(good)), "already exists"),
        ((*rec, "--source", "sim", "--out", str(good) + "/sub"), "not a folder"),
        ((*rec, "--source", "sim", "--source", "sim", "--out", str(tmp_path),
          "--mark-port", "0"), "comes from both"),
        ((*rec, "--source", "nosuch", "--out", str(tmp_path)), "unknown source kind"),
        ((*rec, *slow_source, "--out", "/proc"), "'/proc' is not writable"),
        ((*rec, *slow_source, "--out", str(tmp_path), "--mark-port", "70000"),
         "--mark-port 70000 is not a UDP port"),
        ((*rec, *slow_source, "--out", str(tmp_path), "--mark-port", "-1"),
         "--mark-port -1 is not a UDP port"),
        (("mark", "x", "--port", "70000"), "--port 70000 is not a UDP port"),
        (("import", str(xdf), "--subject", "01", "--task", "t", "--out", str(tmp_path)),
         "garbage.xdf"),
    ]
    for value in ("-5", "0", "nan", "inf"):
        cases.append(((*rec, *slow_source, "--out", str(tmp_path), "--duration", value),
                      f"--duration must be a positive number of seconds, got {float(value)!r}"))
    results = run_cli_cases([list(args) for args, _ in cases])
    for (args, expected), (code, stderr) in zip(cases, results, strict=True):
        assert code != 0, args
        assert expected in stderr, (args, stderr)
        assert "Traceback" not in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1, (args, stderr)
    assert not list(tmp_path.glob("sub-01*"))  # nothing was written by a refused record
    read_session(good)  # untouched



def test_unwritable_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    if not mount_tmpfs(ro, "ro,size=1m"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        r = _cli("record", "--source", "sim", "--subject", "01", "--session", "1", "--task", "t",
                 "--out", str(ro), "--duration", "1")
        assert r.returncode != 0 and "not writable" in r.stderr and "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", str(ro)])


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_disk_full_clear_error_and_synced_data_intact(tmp_path, how):
    """A recorder on a 1.5 MB file system (stops before HDF5 hits the wall), or with a
    1 MB file-size limit (the journal write itself fails): a clear message; recover
    (after space is freed) gives a file whose samples equal the simulator's."""
    from physioaffect.sources.sim import SimConfig, simulate_subject

    small = tmp_path / "small"
    mounted = how == "tmpfs" and mount_tmpfs(small, "size=1536k")
    if how == "tmpfs" and not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root); the rlimit case covers it")
    kw = {}
    if not mounted:  # a per-file size limit in the child
        small.mkdir(exist_ok=True)

        def limit():
            import resource
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

        kw["preexec_fn"] = limit
    try:
        r = _cli("record", "--source", "sim?eeg_channels=32&rate=512&seed=11&speed=8",
                 "--subject", "01", "--session", "1", "--task", "full", "--out", str(small),
                 "--duration", "30", "-q", **kw)
        assert r.returncode == 2, r.stderr
        assert "disk full" in r.stderr and "Traceback" not in r.stderr, r.stderr
        path = small / "sub-01_ses-1_task-full_run-1_physio.h5"
        assert journal_path(path).exists()
        if mounted:  # free space, as an operator would, then rebuild
            subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        else:
            dest = tmp_path / "moved"
            dest.mkdir()
            for q in (path, journal_path(path)):
                if q.exists():
                    shutil.move(q, dest / q.name)
            path = dest / path.name
        recover_session(path)
        s = read_session(path)
        eeg = s.streams["sim-EEG"]
        assert eeg.n_samples > 512  # more than a second of data survived
        truth = simulate_subject(SimConfig(eeg_channels=32, rate=512, seed=11), 0,
                                 duration=eeg.n_samples / 512 + 10)
        ref = truth.signals["EEG"][2]
        k0 = start_in(ref, eeg.samples)
        np.testing.assert_array_equal(eeg.samples, ref[k0:k0 + eeg.n_samples])
    finally:
        if mounted:
            subprocess.run(["umount", str(small)])
