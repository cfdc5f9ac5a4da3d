"""The installed Qt binding keeps Python's reference counts intact.

PySide6 6.12 on Python 3.11 drops a reference to ``None`` on every void call and a
busy viewer aborts within a minute ("deallocating None"); pyproject.toml excludes it.
Measured in a subprocess, so a bad binding cannot take the test run down with it.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
from PySide6 import QtCore
obj = QtCore.QObject()
before = sys.getrefcount(None)
for _ in range(1000):
    obj.setObjectName("probe")
print(before - sys.getrefcount(None))
"""


def test_void_qt_calls_do_not_leak_references_to_none():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert abs(int(out.stdout.strip().splitlines()[-1])) < 10
