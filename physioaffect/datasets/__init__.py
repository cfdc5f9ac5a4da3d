"""Public datasets (DEAP, SEED, DREAMER, FACED, THU-EP) and own recordings as windows with provenance.

See ``docs/datasets.md``. Readers validate a folder before any long work and return
:class:`~physioaffect.datasets.base.SubjectRecording` objects one subject at a time.
"""

from __future__ import annotations

from physioaffect.datasets.base import (
    DatasetError,
    DatasetReader,
    Signal,
    SubjectRecording,
    Trial,
    TrialsDroppedWarning,
    UnsafePickleError,
)
from physioaffect.datasets.epochs import braindecode_windows, to_epochs

__all__ = ["DatasetError", "DatasetReader", "Signal", "SubjectRecording", "Trial",
           "TrialsDroppedWarning", "braindecode_windows",
           "UnsafePickleError", "open_dataset", "READERS", "to_epochs"]

READERS = ("deap", "seed", "dreamer", "faced", "thu-ep", "sessions")


def open_dataset(name: str, root, **kwargs) -> DatasetReader:
    """Open and validate the dataset ``name`` at ``root``.

    ``name``: ``deap``, ``seed``, ``dreamer``, ``faced``, ``thu-ep`` (or ``thu_ep``),
    ``sessions`` (``own``, ``sim``).
    """
    name = name.lower()
    if name == "deap":
        from physioaffect.datasets.deap import DEAPReader

        return DEAPReader(root, **kwargs)
    if name == "seed":
        from physioaffect.datasets.seed import SEEDReader

        return SEEDReader(root, **kwargs)
    if name == "dreamer":
        from physioaffect.datasets.dreamer import DREAMERReader

        return DREAMERReader(root, **kwargs)
    if name == "faced":
        from physioaffect.datasets.faced import FACEDReader

        return FACEDReader(root, **kwargs)
    if name in ("thu-ep", "thu_ep", "thuep"):
        from physioaffect.datasets.thu_ep import THUEPReader

        return THUEPReader(root, **kwargs)
    if name in ("sessions", "own", "sim"):
        from physioaffect.datasets.sessions import SessionsReader

        return SessionsReader(root, **kwargs)
    raise DatasetError(f"unknown dataset {name!r} (expected one of {', '.join(READERS)})")
