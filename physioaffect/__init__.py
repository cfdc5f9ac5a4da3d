"""physioaffect: affective computing from physiological signals.

Acquire EEG, ECG, EDA, PPG and respiration from BrainFlow boards, LSL devices or
the built-in simulator; record them; preprocess them; learn across subjects;
decode live.

Messages go through one logger, ``logging.getLogger("physioaffect")``; set its level with
:func:`set_log_level` (or ``verbose=`` on the functions that report progress).
"""

from importlib.metadata import PackageNotFoundError, version

from physioaffect.compute import passive_wait
from physioaffect.log import set_log_level

# OpenMP threads that spin while they wait slow every other process on the machine (and
# themselves) down; set before torch is loaded (OMP_WAIT_POLICY in the environment wins).
passive_wait()

try:
    __version__ = version("physioaffect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "set_log_level"]
