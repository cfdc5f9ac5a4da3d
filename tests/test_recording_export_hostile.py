"""Exports of sessions a careless or hostile program produced: markers with lone surrogates,
10,000 channels, a 1 MB marker, subjects that are not BIDS labels, a full disk during a BIDS
export. Each exports or is refused in one line; nothing is half-written."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_recording_helpers import mount_tmpfs

from physioaffect.recording import SessionWriter, read_session
from physioaffect.recording.errors import RecordingError
from physioaffect.recording.export import export_bids, export_edf, export_fif
from physioaffect.streams import Chunk, StreamInfo

T0 = 100.0


def _session(path: Path, n_ch: int = 4, rate: int = 128, seconds: float = 3.0,
             markers: tuple[str, ...] = (), subject: str = "01") -> Path:
    """A session file written by the recording stage's writer; ``subject`` is then set in the
    file directly (a crafted file: the writer itself is not asked to accept it)."""
    w = SessionWriter(path, journal=False, subject="01", task="rest",
                      clock={"unix_start": 1.7e9, "lsl_clock_start": T0,
                             "unix_to_lsl_offset": T0 - 1.7e9,
                             "utc_start": "2023-11-14T22:13:20Z"})
    info = StreamInfo.from_labels("eeg", "EEG", [f"C{i}" for i in range(n_ch)], float(rate),
                                  "microvolts")
    w.add_stream(info)
    n = int(rate * seconds)
    x = np.random.default_rng(0).standard_normal((n, n_ch)).astype(np.float32)
    w.append(Chunk("eeg", T0 + np.arange(n) / rate, x))
    if markers:
        mk = StreamInfo.from_labels("mk", "Markers", ["Marker"], 0.0, "",
                                    channel_format="string")
        w.add_stream(mk)
        w.append(Chunk("mk", [T0 + 0.5 + 0.25 * i for i in range(len(markers))],
                       np.array([[m] for m in markers], dtype=object)))
    w.close()
    if subject != "01":
        with h5py.File(path, "a") as f:
            f.attrs["subject"] = subject
    return path


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_markers_with_lone_surrogates_are_kept_and_every_export_works(tmp_path, caplog):
    import mne

    texts = ("ok", "bad\ud800x", "\udfff", "\ud83d\ude00")  # the last: a pair split in two
    path = _session(tmp_path / "s.h5", markers=texts)
    # the session file keeps the text as sent (its UTF-8 escaping joins a split pair)
    assert [m.text for m in read_session(path).markers] == [*texts[:3], "\U0001f600"]
    expected = ["ok", "bad\ufffdx", "\ufffd", "\U0001f600"]
    with caplog.at_level("WARNING", logger="physioaffect"):
        export_edf(path, tmp_path / "s.edf")
        export_fif(path, tmp_path / "s_raw.fif")
        export_bids(path, tmp_path / "bids")
    said = _warnings(caplog)
    assert len(said) == 3 and all(w.startswith(f"{path}: 2 marker(s) hold text that is not "
                                               "valid Unicode") for w in said)
    edf = mne.io.read_raw_edf(tmp_path / "s.edf", verbose="error")
    assert list(edf.annotations.description) == expected
    fif = mne.io.read_raw_fif(tmp_path / "s_raw.fif", verbose="error")
    assert list(fif.annotations.description) == expected
    events = (tmp_path / "bids" / "sub-01" / "eeg" / "sub-01_task-rest_events.tsv")
    rows = [ln.split("\t")[2] for ln in events.read_text(encoding="utf-8").splitlines()[1:]]
    assert sorted(rows) == sorted(expected)


def test_edf_refuses_10000_channels_up_front_and_says_when_it_cuts_a_marker(tmp_path, caplog):
    import time

    import mne

    big = _session(tmp_path / "big.h5", n_ch=10_000, seconds=1.0)
    t0 = time.process_time()
    with pytest.raises(RecordingError) as err:
        export_edf(big, tmp_path / "big.edf")
    msg = str(err.value)
    assert msg == (f"{big}: 10000 channels do not fit an EDF+/BDF+ file (at most 9998 signals "
                   "besides the annotations); export --to fif or --to bids instead")
    assert time.process_time() - t0 < 5.0
    assert not list(tmp_path.glob("big.edf*"))
    # a 1 MB marker: cut to 200 characters, said once with the count
    long = "x" * 1_000_000
    path = _session(tmp_path / "long.h5", markers=(long, "short"),
                    subject="Anna Müller")  # and a subject EDF's patient field refuses as is
    with caplog.at_level("WARNING", logger="physioaffect"):
        export_edf(path, tmp_path / "long.edf")
    assert _warnings(caplog) == [
        f"{path}: 1 marker(s) longer than 200 characters cut to 200 in the EDF+ annotations of "
        f"{tmp_path / 'long.edf'} (the session file keeps the full text)"]
    raw = mne.io.read_raw_edf(tmp_path / "long.edf", verbose="error")
    assert list(raw.annotations.description) == ["x" * 200, "short"]
    assert read_session(path).markers[0].text == long


def test_bids_subjects_that_are_not_labels_are_sanitised_or_refused(tmp_path, caplog):
    root = tmp_path / "out" / "bids"
    for subject, label in (("../../evil", "evil"), ("a_b", "ab")):
        path = _session(tmp_path / f"{label}.h5", subject=subject)
        caplog.clear()
        with caplog.at_level("WARNING", logger="physioaffect"):
            written = export_bids(path, root)
        assert _warnings(caplog) == [f"{path}: subject {subject!r} is not a BIDS label "
                                     f"(letters and digits only); exported as {label!r}"]
        assert all(p.is_relative_to(root / f"sub-{label}") for p in written["eeg"])
    # nothing outside the output folder, no stage left beside it
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bids"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["sub-ab", "sub-evil"]
    participants = (root / "participants.tsv").read_text().splitlines()[1:]
    assert sorted(r.split("\t")[0] for r in participants) == ["sub-ab", "sub-evil"]
    empty = _session(tmp_path / "empty.h5", subject="")
    with pytest.raises(RecordingError, match=r"subject '' holds no letter or digit for a BIDS "
                                             r"label; give one with export --subject LABEL"):
        export_bids(empty, root)
    assert not (root / "sub-").exists()
    export_bids(empty, root, subject="07")  # the way out the message names
    assert (root / "sub-07" / "eeg" / "sub-07_task-rest_eeg.vhdr").is_file()


def test_bids_export_on_a_full_disk_leaves_nothing_and_the_rerun_works(tmp_path, monkeypatch):
    """A real 1 MiB tmpfs when the test runs as root and mount works (the CLI, in a subprocess);
    elsewhere the BIDS writer is replaced by one that leaves a truncated data file and fails
    with ENOSPC (monkeypatched: a full disk cannot be made without root)."""
    path = _session(tmp_path / "s.h5", n_ch=8, rate=256, seconds=60.0, markers=("a", "b"))
    mnt = tmp_path / "mnt"
    real_disk = mount_tmpfs(mnt, "size=1M")
    try:
        if real_disk:
            disk = mnt
            filler = disk / "filler"
            filler.write_bytes(bytes(700_000))  # the 491,520-byte _eeg.eeg does not fit now
        else:
            disk = tmp_path / "disk"
            disk.mkdir()
            from physioaffect.recording import export as ex

            original = ex._write_bids

            def full(session, stage, *args, **kwargs):  # a truncated data file, then ENOSPC
                eeg = stage / "sub-01" / "eeg" / "sub-01_task-rest_eeg.eeg"
                eeg.parent.mkdir(parents=True)
                eeg.write_bytes(bytes(1000))
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(ex, "_write_bids", full)
        root = disk / "bids"
        r = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", "export", str(path),
                            "--to", "bids", "--out", str(root)], capture_output=True, text=True,
                           timeout=120) if real_disk else None
        if real_disk:
            assert r.returncode == 2 and "Traceback" not in r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("physioaffect: error: disk full while exporting")
        else:
            with pytest.raises(RecordingError, match="disk full while exporting"):
                export_bids(path, root)
        # nothing half-written: no root, no truncated _eeg.eeg, no stage folder
        assert sorted(p.name for p in disk.iterdir()) == (["filler"] if real_disk else [])
        if real_disk:
            filler.unlink()
        else:
            monkeypatch.setattr(ex, "_write_bids", original)
        written = export_bids(path, root)  # the rerun is not refused as "already exists"
        eeg = next(p for p in written["eeg"] if p.suffix == ".vhdr").with_suffix(".eeg")
        assert eeg.stat().st_size == 8 * 256 * 60 * 4
    finally:
        if real_disk:
            subprocess.run(["umount", str(mnt)], check=False)
