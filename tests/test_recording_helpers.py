"""Helpers shared by the recording tests (and a check of the helper itself)."""

from __future__ import annotations

import numpy as np


def mount_tmpfs(path, opts: str) -> bool:
    """Create ``path`` and mount a tmpfs with mount options ``opts`` on it (e.g. a small or a
    read-only disk); False where this machine does not allow it (not root, no ``mount``)."""
    import os
    import shutil
    import subprocess

    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def start_in(ref: np.ndarray, rows: np.ndarray, n: int = 64) -> int:
    """Index in ``ref`` where ``rows`` (its first ``n``) start; raises if nowhere.

    Several rows are matched: a slow signal (EDA, respiration) repeats float32 values.
    """
    rows = rows[:n]
    for k in np.flatnonzero((ref == rows[0]).all(axis=1)):
        if len(ref) - k >= len(rows) and np.array_equal(ref[k:k + len(rows)], rows):
            return int(k)
    raise AssertionError("the recorded samples do not occur in the reference signal")


def wait_for_journal(path, proc, min_bytes: int = 2000, limit: float = 60.0) -> None:
    """Wait until the recorder ``proc`` has written ``min_bytes`` of the journal of ``path``."""
    import time

    from physioaffect.recording import journal_path

    deadline = time.monotonic() + limit
    while not (journal_path(path).exists() and journal_path(path).stat().st_size > min_bytes):
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        assert time.monotonic() < deadline, "recorder did not start"
        time.sleep(0.05)


def kill_all(*procs) -> None:
    """Kill the processes of a test that are still running (None entries are skipped)."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def test_start_in_skips_repeated_values():
    ref = np.array([[1.0], [2.0], [1.0], [3.0], [4.0]], dtype=np.float32)
    assert start_in(ref, ref[2:]) == 2


_CASES_SCRIPT = r"""
import contextlib, io, json, sys, traceback
from physioaffect.cli.main import main
out = []
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    sys.argv = ["physioaffect", *argv]
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = -1
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""


def run_cli_cases(cases: list[list[str]], timeout: float = 120) -> list[tuple[int, str]]:
    """Run several ``physioaffect`` command lines through the real ``main()`` in ONE
    subprocess (one import instead of one per case); returns (exit code, stderr) each."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _CASES_SCRIPT], input=json.dumps(cases),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return [(int(c), e) for c, e in json.loads(r.stdout.strip().splitlines()[-1])]
