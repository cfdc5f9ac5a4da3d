"""Errors of the datasets stage, in a module that imports nothing else of the stage.

:mod:`physioaffect.datasets.base` (the data model) and :mod:`physioaffect.datasets.face`,
:mod:`~physioaffect.datasets.safe_pickle` and :mod:`~physioaffect.datasets.matfile` (which
the readers use) all raise these; keeping them here lets every import of the stage go one
way (``base`` imports ``face``, never the reverse). ``base`` re-exports both names.
"""

from __future__ import annotations

from physioaffect.errors import PhysioAffectError

__all__ = ["DatasetError", "UnsafePickleError"]


class DatasetError(PhysioAffectError, ValueError):
    """A dataset folder or file is not what the reader expects.

    ``str(err)`` is a one-line message naming the file and what was expected; the CLI prints it
    without a traceback.
    """


class UnsafePickleError(DatasetError):
    """A pickle asked for a global the restricted unpickler does not admit."""
