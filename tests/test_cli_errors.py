"""The CLI's error contract: an operator error is one line and exit 2, a bug keeps its traceback.

Each case runs the real ``physioaffect.cli.main.main`` in a subprocess with one extra command
registered that raises on purpose.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from physioaffect.errors import PhysioAffectError

_SCRIPT = textwrap.dedent("""
    import sys
    from physioaffect.cli import main as m
    from physioaffect.training.config import TrainingError

    @m.app.command("boom")
    def boom(kind: str) -> None:
        if kind == "operator":
            raise TrainingError("root: the dataset folder is required (--root PATH)")
        if kind == "oserror":
            open("/nonexistent-folder/x.h5")
        raise RuntimeError("internal invariant broken")  # a bug

    sys.argv = ["physioaffect", "boom", sys.argv[1]]
    m.main()
""")


def _run(kind: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SCRIPT, kind], capture_output=True, text=True,
                          timeout=60)


def test_operator_error_is_one_line_with_exit_2():
    res = _run("operator")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines == ["physioaffect: error: root: the dataset folder is required (--root PATH)"]
    assert "Traceback" not in res.stderr


def test_machine_error_is_one_line():
    res = _run("oserror")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "/nonexistent-folder/x.h5" in res.stderr


def test_internal_bug_keeps_its_traceback():
    res = _run("bug")
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "RuntimeError: internal invariant broken" in res.stderr
    assert "physioaffect: error" not in res.stderr


@pytest.mark.parametrize("module, name", [
    ("physioaffect.preprocessing.quality", "SignalInputError"),
    ("physioaffect.datasets.base", "DatasetError"),
    ("physioaffect.recording.errors", "RecordingError"),
    ("physioaffect.training.config", "TrainingError"),
    ("physioaffect.models._base", "ModelConfigError"),
    ("physioaffect.models.io", "ModelFileError"),
    ("physioaffect.sources.base", "SourceError"),
    ("physioaffect.streams.info", "StreamError"),
    ("physioaffect.realtime.checkpoint", "DecoderError"),
    ("physioaffect.face.errors", "FaceError"),
    ("physioaffect.viewer.feedback", "FeedbackTargetError"),
])
def test_every_stage_error_is_a_physioaffect_error(module, name):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, PhysioAffectError)
    assert str(cls("x.h5: field 'data' must be 3-D")) == "x.h5: field 'data' must be 3-D"
