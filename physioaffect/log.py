"""One logger for the package, and MNE's ``verbose`` convention.

Library code reports through ``logging.getLogger("physioaffect")`` (:data:`logger`; module
loggers such as ``physioaffect.sources.lsl`` are its children), never through ``print``:

* :func:`set_log_level` sets the package level (``"DEBUG"``, ``"INFO"``, ``"WARNING"``, ...,
  ``True`` = INFO, ``False`` = WARNING); the default is INFO, or the environment variable
  ``PHYSIOAFFECT_LOG_LEVEL``;
* public functions that report progress take ``verbose=None`` (the :func:`verbose`
  decorator): a level for that call only, as ``mne.utils.verbose`` does; their progress bars
  are shown only when INFO messages are (:func:`progress_enabled`);
* messages go to stderr, one plain line each, unless the application configured logging
  itself (a handler on the root logger): then they reach that handler instead, never twice.

This module imports nothing from the package: every stage may import it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["logger", "set_log_level", "use_log_level", "verbose", "progress_enabled",
           "LOG_LEVEL_ENV"]

#: Environment variable with the initial level of the package logger.
LOG_LEVEL_ENV = "PHYSIOAFFECT_LOG_LEVEL"

logger = logging.getLogger("physioaffect")

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}

F = TypeVar("F", bound=Callable[..., Any])


class _DefaultHandler(logging.StreamHandler):
    """Plain lines on the current ``sys.stderr`` unless the root logger has handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:  # the application's logging (or pytest's) prints it
            return
        self.stream = sys.stderr  # the stderr of now (IPython, pytest replace it)
        super().emit(record)


def _level_of(value: bool | str | int | None) -> int:
    """The logging level ``value`` names (see :func:`set_log_level`)."""
    from physioaffect.errors import PhysioAffectError

    if value is None:
        value = os.environ.get(LOG_LEVEL_ENV, "INFO")
    if isinstance(value, bool):
        return logging.INFO if value else logging.WARNING
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().upper() in _LEVELS:
        return _LEVELS[value.strip().upper()]
    raise PhysioAffectError(f"verbose: expected True, False, an int or one of "
                            f"{', '.join(_LEVELS)}, got {value!r}")


def set_log_level(verbose: bool | str | int | None = None,
                  return_old_level: bool = False) -> int | None:
    """Set the level of the package logger.

    Parameters
    ----------
    verbose : bool, str, int or None
        ``"DEBUG"``, ``"INFO"``, ``"WARNING"``, ``"ERROR"``, ``"CRITICAL"`` (any case), a
        ``logging`` level number, ``True`` (INFO) or ``False`` (WARNING). None: the value of
        ``PHYSIOAFFECT_LOG_LEVEL``, else INFO.
    return_old_level : bool
        Return the level that was set before.

    Returns
    -------
    int or None
        The previous level if ``return_old_level``.
    """
    old = logger.level
    logger.setLevel(_level_of(verbose))
    return old if return_old_level else None


@contextlib.contextmanager
def use_log_level(verbose: bool | str | int | None) -> Iterator[None]:
    """Context manager: the package logger at ``verbose`` inside, the old level after.

    ``verbose=None`` leaves the level as it is.
    """
    if verbose is None:
        yield
        return
    old = set_log_level(verbose, return_old_level=True)
    try:
        yield
    finally:
        logger.setLevel(old)


def verbose(function: F) -> F:
    """Decorator for a function with a ``verbose`` parameter (``mne.utils.verbose``).

    ``verbose`` given (not None) sets the package level for that call only; None keeps the
    level set by :func:`set_log_level`.
    """
    sig = inspect.signature(function)
    if "verbose" not in sig.parameters:
        raise TypeError(f"{function.__qualname__} has no 'verbose' parameter")

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        level = kwargs.get("verbose")
        if "verbose" not in kwargs:
            level = sig.bind_partial(*args, **kwargs).arguments.get("verbose")
        with use_log_level(level):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def progress_enabled(progress: bool = True) -> bool:
    """Whether to draw a progress bar: asked for, and INFO messages are shown."""
    return bool(progress) and logger.isEnabledFor(logging.INFO)


if not any(isinstance(h, _DefaultHandler) for h in logger.handlers):
    _handler = _DefaultHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    try:
        set_log_level(None)
    except Exception:  # noqa: BLE001 - a bad environment value must not break the import
        logger.setLevel(logging.INFO)
