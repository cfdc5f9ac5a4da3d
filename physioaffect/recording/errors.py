"""Errors of the recording stage: one-line messages meant for the operator."""

from __future__ import annotations

from physioaffect.errors import PhysioAffectError


class RecordingError(PhysioAffectError, RuntimeError):
    """Something about a recording went wrong; ``str(err)`` is a one-line message for the operator."""


class SessionFileError(RecordingError):
    """A session file (or its journal) is missing, foreign, truncated or damaged."""


class DiskFullError(RecordingError):
    """The disk filled up (or a file-size limit was hit) while recording."""


class InvalidIdError(RecordingError, ValueError):
    """A subject/session/task/run identifier cannot be used in a BIDS-like file name."""


class StreamMismatchError(SessionFileError):
    """A chunk does not fit its stream (undeclared stream, wrong channel count)."""
