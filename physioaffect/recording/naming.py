"""BIDS-like identifiers and file names of session files.

A session file is named ``sub-<subject>[_ses-<session>]_task-<task>[_run-<run>]_physio.h5``.
BIDS labels are letters and digits only, which also keeps path separators, spaces and
dots (``..``) out of file names.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from physioaffect.recording.errors import InvalidIdError, RecordingError
from physioaffect.recording.journal import journal_in_use

_LABEL = re.compile(r"^[A-Za-z0-9]+$")

#: Suffix of a session file and of its journal.
SESSION_SUFFIX = "_physio.h5"
JOURNAL_SUFFIX = ".journal"


def check_label(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid BIDS label (letters and digits), else raise.

    Parameters
    ----------
    kind : str
        What the label is (``"subject"``, ``"session"``, ``"task"``), for the message.
    value : str
    """
    value = str(value)
    if not _LABEL.match(value):
        bad = sorted({c for c in value if not c.isascii() or not c.isalnum()})
        what = "it is empty" if not value else f"it contains {''.join(bad)!r}"
        raise InvalidIdError(
            f"invalid {kind} id {value!r}: {what}; use letters and digits only (a BIDS label)"
        )
    return value


def check_run(run: int | str | None) -> int | None:
    """Validate a run index (a positive integer) or ``None``."""
    if run is None:
        return None
    try:
        n = int(run)
    except (TypeError, ValueError):
        raise InvalidIdError(f"invalid run {run!r}: expected a positive integer") from None
    if n < 1:
        raise InvalidIdError(f"invalid run {run!r}: expected a positive integer")
    return n


def bids_basename(subject: str, task: str, session: str | None = None, run: int | None = None) -> str:
    """``sub-<subject>[_ses-<session>]_task-<task>[_run-<run>]`` (labels validated)."""
    parts = [f"sub-{check_label('subject', subject)}"]
    if session:
        parts.append(f"ses-{check_label('session', session)}")
    parts.append(f"task-{check_label('task', task)}")
    run = check_run(run)
    if run is not None:
        parts.append(f"run-{run}")
    return "_".join(parts)


def journal_path(path: str | os.PathLike[str]) -> Path:
    """The journal that sits beside a session file: ``<file>.journal``."""
    p = Path(path)
    return p.with_name(p.name + JOURNAL_SUFFIX)


def session_path_taken(path: Path) -> bool:
    """True when the session file or its journal already exists."""
    return path.exists() or journal_path(path).exists()


def choose_session_path(
    out: str | os.PathLike[str] | None,
    subject: str,
    task: str,
    session: str | None = None,
    run: int | None = None,
    create: bool = False,
    on_create: Callable[[Path], None] | None = None,
) -> Path:
    """Pick the session file to write, never an existing one.

    Parameters
    ----------
    out : path or None
        A folder (the BIDS-like name is made inside it), a file path ending in ``.h5``,
        or None for the current folder.
    subject, task, session, run
        Identifiers; with ``run=None`` the first free run number (1, 2, ...) is used.
    create : bool
        Create the folder (and missing folders above it) when some folder above it
        exists; ``on_create(folder)`` is called for each folder made.

    Raises
    ------
    RecordingError
        If the file exists, or the folder does not exist (and cannot be created) or is
        not writable (checked by creating and removing a file in it).
    """
    folder: Path
    explicit: Path | None = None
    if out is not None and str(out).endswith((".h5", ".hdf5")):
        explicit = Path(out)
        folder = explicit.parent if str(explicit.parent) else Path(".")
        # the ids are still validated: they go into the file's attributes
        bids_basename(subject, task, session, run)
    else:
        folder = Path(out) if out is not None else Path(".")
        bids_basename(subject, task, session, run)  # refuse bad ids before making folders
    if not folder.exists() and create:
        _make_folders(folder, on_create)
    if not folder.exists():
        raise RecordingError(f"output folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise RecordingError(f"output {str(folder)!r} is not a folder")
    _check_writable(folder)
    if explicit is not None:
        if session_path_taken(explicit):
            raise _taken(explicit, "")
        return explicit
    if run is not None:
        path = folder / (bids_basename(subject, task, session, run) + SESSION_SUFFIX)
        if session_path_taken(path):
            raise _taken(path, " (choose another --run)")
        return path
    for n in range(1, 10000):
        path = folder / (bids_basename(subject, task, session, n) + SESSION_SUFFIX)
        if not session_path_taken(path):
            return path
    raise RecordingError(f"no free run number left in {str(folder)!r}")


def _taken(path: Path, hint: str) -> RecordingError:
    if journal_in_use(journal_path(path)):
        return RecordingError(f"{str(path)!r} is being recorded by another recorder right "
                              f"now{hint or '; choose another file'}")
    return RecordingError(f"{str(path)!r} already exists; it is never overwritten{hint}")


def _make_folders(folder: Path, on_create: Callable[[Path], None] | None) -> None:
    """Create ``folder`` and the missing folders above it, below the nearest existing one."""
    missing = []
    p = folder.absolute()
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise RecordingError(f"cannot create output folder {str(folder)!r}: {str(p)!r} is "
                             f"not a folder")
    for q in reversed(missing):
        try:
            q.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            raise RecordingError(f"cannot create output folder {str(q)!r}: "
                                 f"{err.strerror or err}") from None
        if on_create is not None:
            on_create(q)


def _check_writable(folder: Path) -> None:
    """Create and remove a file in ``folder`` (``os.access`` says yes to root everywhere,
    also to ``/proc``, a read-only mount or a full disk's inode table)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".physioaffect-probe-", dir=folder)
    except OSError as err:
        raise RecordingError(f"output folder {str(folder)!r} is not writable "
                             f"({err.strerror or err})") from None
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
