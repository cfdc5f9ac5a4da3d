"""The acquisition commands, driven as real subprocesses."""

from __future__ import annotations

import subprocess

import pytest
from conftest import cli

from physioaffect import __version__


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout)


def test_version_and_help_on_every_command():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"physioaffect {__version__}"
    top = run("--help")
    assert top.returncode == 0
    commands = [c for c in ("devices", "check", "stream") if c in top.stdout]
    assert commands == ["devices", "check", "stream"]
    for command in commands:
        res = run(command, "--help")
        assert res.returncode == 0 and "Usage" in res.stdout, command


def test_devices_lists_profiles_with_rates():
    res = run("devices")
    assert res.returncode == 0
    for spec in ("brainflow:synthetic", "brainflow:cyton", "brainflow:muse_2", "brainflow:emotibit"):
        assert spec in res.stdout
    assert "250 Hz" in res.stdout  # the synthetic board's rate, read from BrainFlow


def test_check_reports_rates_and_verdicts_and_honours_require():
    ok = run("check", "--source", "sim?eeg_channels=8&rate=250", "--seconds", "2", "--require", "EEG")
    assert ok.returncode == 0, ok.stderr
    assert "sim-EEG" in ok.stdout and "(250) Hz" in ok.stdout and "plausible" in ok.stdout
    missing = run("check", "--source", "sim?eeg_channels=8", "--seconds", "1", "--require", "Face")
    assert missing.returncode == 1
    assert "required stream type(s) missing or silent: Face" in missing.stderr


@pytest.mark.parametrize(
    "spec, message",
    [
        ("foo:bar", "unknown source kind 'foo'"),
        ("brainflow:nosuchboard", "unknown BrainFlow board 'nosuchboard'"),
        ("lsl:nothing-here?timeout=0.3", "no LSL stream with type, name or source id 'nothing-here'"),
        ("sim?rate=abc", "rate='abc' must be an integer"),
        ("video:/does/not/exist.mp4", "video file /does/not/exist.mp4 does not exist"),
    ],
)
def test_bad_sources_give_one_line_errors_without_traceback(spec, message):
    res = run("check", "--source", spec, "--seconds", "1")
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
