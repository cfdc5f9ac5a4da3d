"""Recording sessions: a crash-safe session file (HDF5 + journal), the recorder that
fills it from sources, markers, reading, recovery, exports and XDF import."""

from physioaffect.recording.bids_physio import read_physio
from physioaffect.recording.errors import (
    DiskFullError,
    InvalidIdError,
    RecordingError,
    SessionFileError,
)
from physioaffect.recording.events import MarkerEvent, marker_events
from physioaffect.recording.export import export_bids, export_edf, export_fif, to_raw
from physioaffect.recording.naming import bids_basename, choose_session_path, journal_path
from physioaffect.recording.reader import (
    Marker,
    Session,
    StreamData,
    describe_session,
    read_session,
)
from physioaffect.recording.recover import RecoveryReport, recover_session
from physioaffect.recording.writer import SessionWriter

__all__ = [
    "DiskFullError",
    "InvalidIdError",
    "Marker",
    "MarkerEvent",
    "RecordingError",
    "RecoveryReport",
    "Session",
    "SessionFileError",
    "SessionWriter",
    "StreamData",
    "bids_basename",
    "choose_session_path",
    "describe_session",
    "export_bids",
    "export_edf",
    "export_fif",
    "journal_path",
    "marker_events",
    "read_physio",
    "read_session",
    "recover_session",
    "to_raw",
]
