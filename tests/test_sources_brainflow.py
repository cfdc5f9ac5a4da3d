"""BrainFlow: a real synthetic-board session, profiles, and the errors of bad boards.

No physical board exists here; the synthetic board (id -1) is BrainFlow's own
board implementation, driven through the same native library as real boards.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from physioaffect.sources import SourceError, open_source
from physioaffect.sources.brainflow import BrainFlowSource
from physioaffect.sources.profiles import shipped_profiles
from physioaffect.streams import local_clock


def test_synthetic_board_session_maps_rows_rates_and_clock():
    src = open_source("brainflow:synthetic")
    assert isinstance(src, BrainFlowSource)
    got: dict[str, list] = {}
    with src:
        src.insert_marker(7)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            for ch in src.read(0.05):
                got.setdefault(ch.stream, []).append(ch)
        now = local_clock()
    eeg = src.stream("synthetic-EEG")
    assert eeg.n_channels == 16 and eeg.labels[:3] == ["Fz", "C3", "Cz"] and eeg.units[0] == "microvolts"
    assert src.stream("synthetic-EDA").type == "GSR"
    ts = np.concatenate([c.timestamps for c in got["synthetic-EEG"]])
    rate = (len(ts) - 1) / (ts[-1] - ts[0])
    assert 225 < rate < 275  # nominal 250 Hz, host-stamped
    assert abs(ts[-1] - now) < 0.5  # UNIX stamps were mapped onto the LSL clock
    x = np.concatenate([c.samples for c in got["synthetic-EEG"]])
    assert np.all(np.std(x, axis=0) > 0)  # every EEG row really carries signal
    markers = np.concatenate([c.samples for c in got["synthetic-Markers"]])
    assert list(markers[:, 0]) == ["7"]
    assert src.dropped["synthetic-EEG"] == 0


def test_package_counter_gaps_count_as_dropped():
    src = BrainFlowSource("synthetic")
    src._last_package = {"default": None}
    assert src._count_dropped("default", np.array([250, 251, 252, 253])) == 0
    # wraps at 256: 254, 255, 0, 1 is contiguous; 1 -> 5 loses 3
    assert src._count_dropped("default", np.array([254, 255, 0, 1, 5])) == 3


def test_every_shipped_profile_fits_its_board():
    from physioaffect.sources.brainflow import board_id_of, check_profile

    for prof in shipped_profiles().values():
        check_profile(prof, board_id_of(prof.board))  # raises if a row does not exist


def test_profile_naming_missing_rows_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('board = "SYNTHETIC_BOARD"\n[[streams]]\nname = "EEG"\ntype = "EEG"\n'
                   'rows = [1, 2, 40]\nunit = "microvolts"\n')
    with pytest.raises(SourceError, match=r"bad.toml: stream 'EEG' names row 40.*rows 0-31"):
        open_source(f"brainflow:synthetic?profile={bad}")


def test_unknown_board_and_unopenable_port_are_clear_errors():
    with pytest.raises(SourceError, match="unknown BrainFlow board 'nosuchboard'"):
        open_source("brainflow:nosuchboard")
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="cannot open the board on /dev/does-not-exist"):
        open_source("brainflow:cyton?serial_port=/dev/does-not-exist").start()
    assert time.monotonic() - t0 < 15
    with pytest.raises(ValueError, match="unknown parameter.*serialport"):
        open_source("brainflow:cyton?serialport=/dev/x")
