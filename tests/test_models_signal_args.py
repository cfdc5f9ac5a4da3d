"""braindecode's signal arguments: every registered model builds from any consistent subset of
``n_outputs, n_chans, chs_info, n_times, input_window_seconds, sfreq`` (``chs_info`` from a real
``mne.Info``), gets the same network as from ``n_chans``, refuses disagreeing arguments in one
line, and keeps ``chs_info`` through a saved model folder."""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

import mne
import numpy as np
import pytest
import torch
from torch import nn

import physioaffect.models as M
from physioaffect.models import REGISTRY, EEGModel, ModelConfigError

NAMES = ["Fz", "C3", "Cz", "C4", "Pz"]
FS, T = 128.0, 512  # 4 s windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def info() -> mne.Info:
    info = mne.create_info(NAMES, FS, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # montage-name deprecation of newer MNE
        info.set_montage("standard_1020")
    return info


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_model_builds_from_chs_info_alone(name: str, info: mne.Info) -> None:
    reference = M.create(name, n_chans=len(NAMES), n_outputs=2, n_times=T, sfreq=FS)
    from_chs = M.create(name, chs_info=info["chs"], n_outputs=2, n_times=T, sfreq=FS)
    from_window = M.create(name, chs_info=info, n_outputs=2, input_window_seconds=4.0,
                           sfreq=FS)
    n = M.count_parameters(reference)
    assert M.count_parameters(from_chs) == M.count_parameters(from_window) == n
    assert _shapes(from_chs) == _shapes(reference) == _shapes(from_window)
    assert from_chs.ch_names == from_window.ch_names == NAMES
    assert from_chs.n_chans == len(NAMES) and from_window.n_times == T
    assert from_window.sfreq == FS and from_chs.input_window_seconds == pytest.approx(4.0)
    # Without any rate: models whose layers do not depend on it build the same network; the
    # others say they need sfreq (EEG-Deformer's kernel, EmT's sub-windows).
    try:
        no_rate = M.create(name, chs_info=info["chs"], n_outputs=2, n_times=T)
    except ModelConfigError as err:
        assert "sfreq" in str(err) and "\n" not in str(err)
    else:
        assert _shapes(no_rate) == _shapes(reference)
        with pytest.raises(ModelConfigError, match="sfreq is unknown"):
            _ = no_rate.sfreq


def test_rate_free_builds_when_the_rate_dependent_size_is_given(info: mne.Info) -> None:
    """What sfreq decides can be given directly: the same network as with the rate."""
    kernel = M.deformer_temporal_kernel(FS)
    with_rate = M.create("eeg_deformer", chs_info=info["chs"], n_outputs=3, n_times=T, sfreq=FS)
    no_rate = M.create("eeg_deformer", chs_info=info["chs"], n_outputs=3, n_times=T,
                       temporal_kernel=kernel)
    assert _shapes(no_rate) == _shapes(with_rate)
    emt = M.create("emt", chs_info=info["chs"], n_outputs=2, n_times=T, sfreq=FS)
    emt_no_rate = M.create("emt", chs_info=info["chs"], n_outputs=2, n_times=T,
                           n_sub_windows=emt.n_sub_windows)
    assert _shapes(emt_no_rate) == _shapes(emt)


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_chans=4, n_outputs=2, n_times=T, sfreq=FS), ["n_chans=4", "5 channels"]),
    (dict(n_outputs=2, n_times=T - 1, input_window_seconds=4.0, sfreq=FS),
     ["n_times=511", "input_window_seconds=4"]),
    (dict(n_outputs=2, input_window_seconds=1.003, sfreq=FS), ["not a whole", "n_times"]),
    (dict(n_outputs=2, sfreq=FS), ["n_times", "input_window_seconds"]),
    (dict(n_times=T, sfreq=FS), ["n_outputs is required"]),
    (dict(n_outputs=2, n_times=T, sfreq=-1.0), ["sfreq must be a positive number in Hz"]),
])
def test_disagreeing_or_missing_arguments_are_refused(kwargs, words, info: mne.Info) -> None:
    with pytest.raises(ModelConfigError) as err:
        M.create("eegnet", chs_info=info["chs"], **kwargs)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("EEGNet:")
    for w in words:
        assert w in msg


@pytest.mark.parametrize("chs, words", [
    ([{"name": "Fz"}], ["chs_info[0]", "ch_name"]),
    ([{"ch_name": "Fz"}, {"ch_name": "Fz"}], ["'Fz' twice"]),
    ("Fz,Cz", ["list of channel dicts"]),
    ([], ["non-empty"]),
])
def test_bad_chs_info_is_refused(chs, words) -> None:
    with pytest.raises(ModelConfigError) as err:
        M.create("eeg_deformer", chs_info=chs, n_outputs=2, n_times=T, sfreq=FS)
    for w in words:
        assert w in str(err.value)
    with pytest.raises(ModelConfigError, match="give n_chans or chs_info"):
        M.create("eeg_deformer", n_outputs=2, n_times=T, sfreq=FS)


def test_chs_info_round_trips_through_a_saved_model(info: mne.Info, tmp_path: Path) -> None:
    model = M.create("eeg_deformer", chs_info=info["chs"], n_outputs=2, n_times=T, sfreq=FS,
                     depth=2).eval()
    d = M.save_model(model, tmp_path / "m")

    def no_constants(token: str):
        raise AssertionError(f"config.json holds {token}, which is not JSON")

    config = json.loads((d / "config.json").read_text(), parse_constant=no_constants)
    saved = config["kwargs"]["chs_info"]
    assert [c["ch_name"] for c in saved] == NAMES
    # positions survive (MNE's standard montage, metres) and unknown values become null
    np.testing.assert_allclose([c["loc"][:3] for c in saved],
                               [ch["loc"][:3] for ch in info["chs"]])
    assert saved[0]["loc"][6] is None and np.isnan(info["chs"][0]["loc"][6])
    assert saved[0]["kind"] == int(mne.io.constants.FIFF.FIFFV_EEG_CH)
    loaded = M.load_model(d)
    assert loaded.ch_names == NAMES and loaded.chs_info == model.chs_info
    x = torch.randn(3, len(NAMES), T)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_a_model_with_the_plain_signature_gets_chs_info_too(info: mne.Info) -> None:
    """A user's model written as (n_chans, n_outputs, n_times, sfreq) receives concrete values."""

    class Tiny(EEGModel):
        def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float,
                     hidden: int = 4) -> None:
            super().__init__(n_chans, n_outputs, n_times, sfreq)
            self._remember_config(locals())
            self.net = nn.Linear(n_chans * n_times, n_outputs)

    tiny = Tiny(chs_info=info["chs"], n_outputs=2, input_window_seconds=1.0, sfreq=FS)
    assert (tiny.n_chans, tiny.n_times) == (len(NAMES), int(FS))
    assert tiny.net.in_features == len(NAMES) * int(FS)
    assert tiny.get_config()["chs_info"][1]["ch_name"] == "C3"
    assert "chs_info" in inspect.signature(Tiny).parameters
    assert "input_window_seconds" in inspect.signature(M.EEGDeformer).parameters
    positional = Tiny(len(NAMES), 2, 64, FS)  # the plain positional call still works
    assert positional.chs_info is None and positional.ch_names is None
