"""Montages: channel sets, MNE positions and symmetric pairs."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from physioaffect.streams.montage import (
    MontageError,
    available_montages,
    load_montage,
    montage_for_channels,
)

DEAP = ("Fp1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 Oz Pz Fp2 AF4 Fz F4 F8 FC6 FC2 Cz "
        "C4 T8 CP6 CP2 P4 P8 PO4 O2").split()


def test_shipped_sets_and_orders():
    assert {"deap32", "seed62", "dreamer14", "openbci8", "openbci16"} <= set(available_montages())
    assert load_montage("deap32").ch_names == DEAP
    seed = load_montage("seed62")
    assert len(seed) == 62 and seed.ch_names[:3] == ["FP1", "FPZ", "FP2"] and seed.ch_names[-1] == "CB2"
    assert load_montage("dreamer14").ch_names[0] == "AF3"


@pytest.mark.parametrize("name", ["deap32", "seed62", "dreamer14", "openbci8", "openbci16"])
def test_pairs_are_mirror_images(name):
    """Left sites have x < 0, right sites x > 0, and each pair mirrors across the midline."""
    mont = load_montage(name)
    assert mont.pairs
    for left, right in mont.pairs:
        pl, pr = mont.positions[mont.index(left)], mont.positions[mont.index(right)]
        assert pl[0] < 0 < pr[0], (left, right)
        np.testing.assert_allclose(pl * [-1, 1, 1], pr, atol=0.012)


def test_positions_are_mnes_template():
    mont = load_montage("deap32").to_mne()
    info = mne.create_info(DEAP, 128.0, "eeg")
    info.set_montage(mont)
    key = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    ref = mne.channels.make_standard_montage(key).get_positions()["ch_pos"]
    got = mont.get_positions()["ch_pos"]
    for ch in ("Fp1", "Cz", "O2"):
        # same template sites (10-20 vs 10-05 templates agree to a few millimetres)
        assert np.linalg.norm(got[ch] - ref[ch]) < 0.01


def test_channel_counts_and_errors():
    assert montage_for_channels(62).name == "seed62"
    sub = montage_for_channels(24)
    assert len(sub) == 24 and len(set(sub.ch_names)) == 24
    assert {"F3", "F4", "O1", "O2"} <= set(sub.ch_names)
    with pytest.raises(MontageError, match="unknown montage 'nope'"):
        load_montage("nope")
    with pytest.raises(MontageError, match="no electrode set with 65"):
        montage_for_channels(65)
