"""physioaffect: affective computing from physiological signals.

Acquire EEG, ECG, EDA, PPG and respiration from BrainFlow boards, LSL devices or
the built-in simulator; record them; preprocess them; learn across subjects;
decode live.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("physioaffect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
