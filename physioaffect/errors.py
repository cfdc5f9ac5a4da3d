"""The root of every error physioaffect raises for its user.

Each stage keeps its own error class (``SignalInputError``, ``DatasetError``,
``RecordingError``, ``TrainingError`` ...), all derived from :class:`PhysioAffectError`, so that
one ``except PhysioAffectError`` catches every operator mistake the package reports (a bad file,
option or stream) while a bug keeps its own exception type and traceback. The command line
prints these as one line and exits with status 2.

Stage errors also keep the builtin base they had before the root existed (``ValueError``,
``RuntimeError``, ``KeyError``, ``ImportError``), so code that caught those still works.

This module imports nothing from the package: every stage may import it.
"""

from __future__ import annotations

__all__ = ["PhysioAffectError"]


class PhysioAffectError(Exception):
    """An error meant for the person running physioaffect; ``str(err)`` is one line.

    The message names the file, field or option at fault and what was expected.
    """

    def __str__(self) -> str:
        # KeyError quotes its message; a one-line operator message must read as written.
        if len(self.args) == 1 and isinstance(self.args[0], str):
            return self.args[0]
        return super().__str__()
