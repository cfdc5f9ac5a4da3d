"""Work around a reference-count bug of the installed Qt binding.

PySide6 6.12 on Python 3.11 returns ``None`` (and ``True``/``False``) from many wrapped
methods without taking a reference: every ``item.update()``, ``widget.setVisible()``,
``label.setText()`` ... lowers the reference count of ``None`` by one. From Python 3.12 on these
objects are immortal and nothing happens; on 3.11 the count reaches zero after some tens of
thousands of calls and the interpreter aborts with "deallocating None" (a live viewer does that
within a minute). :func:`binding_leaks_refs` measures the bug; :class:`RefcountGuard` keeps the
counts of the three singletons far above zero by adding back what the binding took (they are
never freed, so a higher count is harmless). The guard is a no-op where the bug is absent.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["RefcountGuard", "binding_leaks_refs"]

_SINGLETONS = (None, True, False)
_MARGIN = 10_000_000


def binding_leaks_refs(calls: int = 200) -> bool:
    """True when void-returning Qt calls lower the reference count of ``None``."""
    from PySide6 import QtCore

    obj = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        obj.setObjectName("probe")
    leaked = before - sys.getrefcount(None)
    return leaked >= calls // 2


class RefcountGuard:
    """Keeps the reference counts of ``None``, ``True`` and ``False`` above a floor.

    Call :meth:`check` often (every frame); it costs three ``sys.getrefcount`` calls and adds
    references only when a count fell below ``floor``.
    """

    def __init__(self) -> None:
        self.active = sys.version_info < (3, 12) and binding_leaks_refs()
        self.restored = 0
        self._floor = {id(o): sys.getrefcount(o) + _MARGIN // 10 for o in _SINGLETONS}
        if self.active:
            for o in _SINGLETONS:
                self._add(o, _MARGIN)

    @staticmethod
    def _add(obj: object, n: int) -> None:
        # ob_refcnt is the first field of every object (Py_ssize_t) in CPython 3.11
        ctypes.c_ssize_t.from_address(id(obj)).value += n

    def check(self) -> None:
        """Top the counts up if the binding has eaten into the margin."""
        if not self.active:
            return
        for o in _SINGLETONS:
            if sys.getrefcount(o) < self._floor[id(o)]:
                self._add(o, _MARGIN)
                self.restored += _MARGIN
