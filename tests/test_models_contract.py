"""The checkpoint contract: a round trip for every registered model, every tampered field refused
with its name, unknown versions refused by name, and a pre-contract checkpoint still loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import physioaffect.models as M
from physioaffect.models.contract import CheckpointContract, ContractError, Standardisation
from physioaffect.preprocessing import PipelineConfig
from physioaffect.preprocessing.standardise import Standardiser
from physioaffect.training.checkpoint import build_inputs, predict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FS = 128.0
CHANNELS = ("Fp1", "Fp2", "C3", "C4", "O1", "O2")
PIPE = PipelineConfig(l_freq=1.0, h_freq=30.0, notch_freq=None, phase="causal",
                      reference="average", detect_bads=False, interpolate_bads=False)
#: Small hyper-parameters of every registered model (the test fails when a model is added
#: without an entry here).
SMALL = {
    "eeg_deformer": {"depth": 1},
    "emt": {"n_layers": 1, "K": 2, "heads": 2, "dim_head": 8},
    "emt_regression": {"n_layers": 1, "K": 2, "heads": 2, "dim_head": 8},
    "eegnet": {},
    "shallow_convnet": {"pool_time_length": 16, "pool_time_stride": 4},
    "fusion": {"eeg_encoder": "deformer", "eeg_kwargs": {"depth": 1},
               "n_peripheral_features": 3, "d_model": 16, "heads": 2},
}


def _windows(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, len(CHANNELS), 512)) * 10).astype(np.float32)


def _checkpoint(name: str, tmp_path):
    """Train-free: a model, its contract built as training builds it, and the inputs."""
    spec = M.get_spec(name)
    kwargs = dict(SMALL[name])
    kind = spec.eeg_input(kwargs)
    x = _windows()
    params = kind.params({"sub_window_s": 1.0, "sub_overlap": 0.5}
                         if kind.name == "graphs" else {})
    built = kind.build(x, FS, params)
    regression = name == "emt_regression"
    n_out = 1 if regression else 2
    torch.manual_seed(0)
    model = M.create(name, n_chans=len(CHANNELS), n_outputs=n_out, n_times=512, sfreq=FS,
                     **{**kind.model_kwargs(params, built), **kwargs}).eval()
    norms = {"eeg": Standardiser(kind.norm_axes).fit(built).standardisation()}
    extra = {}
    per = None
    if name == "fusion":
        per = np.random.default_rng(1).standard_normal((len(x), 3)).astype(np.float32)
        norms["peripheral"] = Standardiser((1,)).fit(per).standardisation()
        extra = {"peripheral_features": ("a", "b", "c"), "peripheral_signals": ("ECG",)}
    contract = CheckpointContract(
        model=name, modalities=("eeg", "peripheral") if name == "fusion" else ("eeg",),
        task="regression" if regression else "classification", target="arousal",
        class_names=() if regression else ("low", "high"), channels=CHANNELS, sfreq=FS,
        pipeline=PIPE, window_s=4.0, n_times=512, input_kind=kind.name, input_params=params,
        normalisation=norms, target_scaling=(5.0, 2.0) if regression else None,
        label_rule="continuous" if regression else "gt5", **extra)
    path = M.save_checkpoint(model, tmp_path / name, contract)
    return model, contract, path, x, per


def test_every_registered_model_has_a_small_configuration():
    assert set(SMALL) == set(M.REGISTRY)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_round_trip_through_the_contract_gives_the_same_predictions(name, tmp_path):
    model, contract, path, x, per = _checkpoint(name, tmp_path)
    loaded, again = M.load_checkpoint(path)
    assert again.to_dict() == contract.to_dict()
    assert type(loaded) is type(model)
    # independent of the contract: the model on the normalised input, by hand
    kind = M.input_kind(contract.input_kind)
    built = kind.build(x, FS, contract.input_params)
    mean = contract.normalisation["eeg"].mean
    scale = contract.normalisation["eeg"].scale
    shape = [1] * built.ndim
    for a, n in zip(contract.normalisation["eeg"].keep, mean.shape, strict=True):
        shape[a] = n
    by_hand = ((built - mean.reshape(shape)) / scale.reshape(shape)).astype(np.float32)
    with torch.no_grad():
        if name == "fusion":
            p = contract.normalisation["peripheral"]
            out = model(eeg=torch.from_numpy(by_hand),
                        peripheral=torch.from_numpy(((per - p.mean) / p.scale)
                                                    .astype(np.float32))[:, None])
        else:
            out = model(torch.from_numpy(by_hand))
    if contract.task == "regression":
        expected = out.reshape(len(x), -1, 1).mean(dim=1)[:, 0].numpy() * 2.0 + 5.0
    else:
        expected = torch.softmax(out, dim=1).numpy()
    got = predict(loaded, again, build_inputs(again, x, per))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _tamper(tmp_path, **changes):
    _, contract, path, _, _ = _checkpoint("eegnet", tmp_path)
    data = json.loads((path / "contract.json").read_text())
    for key, value in changes.items():
        target = data
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    (path / "contract.json").write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("field, value, message", [
    ("sfreq", 0, "'sfreq' must be a number > 0"),
    ("sfreq", "128", "'sfreq' must be a finite number"),
    ("window_s", math.nan, "'window_s' must be a finite number"),
    ("n_times", 255.5, "'n_times' must be an integer"),
    ("n_times", 600, "'n_times' must be window_s x model rate"),
    ("modalities", ["eeg", "smell"], "'modalities' must be a list of eeg, peripheral, face"),
    ("class_names", ["low", "mid", "high"], "'class_names' must be 2 names"),
    ("class_names", ["low"], "'class_names' must be at least two"),
    ("channels", 5, "'channels' must be a list of non-empty strings"),
    ("channels", ["Fp1", "Fp1", "C3", "C4", "O1", "O2"], "'channels' must be a list without"),
    ("normalisation.eeg.scale", [0.0] * 6, "'normalisation.eeg.scale' must be finite numbers > 0"),
    ("normalisation.eeg.mean", [1.0] * 5, "'normalisation.eeg.scale' must be an array of the"),
    ("input_kind", "spectrogram", "'input_kind' must be one of raw, graphs"),
    ("pipeline.phase", "sideways", "field 'pipeline' is invalid"),
    ("task", "ranking", "'task' must be one of classification, regression"),
    ("model", "resnet9000", "'model' must be one of"),
    ("eeg_unit", "V", "'eeg_unit' must be one of uV"),
])
def test_each_tampered_field_is_refused_by_name(tmp_path, field, value, message):
    path = _tamper(tmp_path, **{field: value})
    with pytest.raises(ContractError) as err:
        M.load_checkpoint(path)
    text = str(err.value)
    assert message in text and "contract.json" in text, text
    assert len(text.splitlines()) == 1


def test_unknown_version_missing_fields_and_non_objects_are_refused(tmp_path):
    path = _tamper(tmp_path, contract_version=7)
    with pytest.raises(ContractError, match="contract version 7 is not one this physioaffect"):
        M.read_contract(path)
    (path / "contract.json").write_text("[1, 2, 3]")
    with pytest.raises(ContractError, match="'contract' must be an object"):
        M.read_contract(path)
    (path / "contract.json").write_text("{not json")
    with pytest.raises(ContractError, match="not valid JSON"):
        M.read_contract(path)
    path = _tamper(tmp_path / "b", colour="red")
    with pytest.raises(ContractError, match="unknown field"):
        M.read_contract(path)


def test_a_contract_that_could_not_be_read_back_is_never_written(tmp_path):
    model = M.create("eegnet", n_chans=6, n_outputs=2, n_times=512, sfreq=FS)
    bad = CheckpointContract(model="eegnet", modalities=("eeg",), task="classification",
                             target="arousal", class_names=("low", "high"), channels=CHANNELS,
                             sfreq=FS, pipeline=PIPE, window_s=4.0, n_times=512,
                             input_kind="raw",
                             normalisation={"eeg": Standardisation((1,), np.zeros(6),
                                                                   np.zeros(6))})
    with pytest.raises(ContractError, match="scale"):
        M.save_checkpoint(model, tmp_path / "c", bad)
    assert not (tmp_path / "c" / "contract.json").exists()


def test_a_checkpoint_written_before_the_contract_still_loads(tmp_path):
    """The training checkpoint format 1 (metadata in config.json's ``extra``) is converted."""
    model, contract, _, x, _ = _checkpoint("eegnet", tmp_path)
    st = contract.normalisation["eeg"]
    legacy = {"format": "physioaffect-training-checkpoint/1", "model_name": "eegnet",
              "label": "eegnet", "input": "raw", "fusion": False, "modalities": ["eeg"],
              "channels": list(CHANNELS), "sfreq": FS, "n_times": 512, "window_s": 4.0,
              "step_s": None, "target": "arousal", "label_rule": "gt5",
              "task": "classification", "class_names": ["low", "high"], "n_classes": 2,
              "graph": {"sub_window_s": 2.0, "sub_overlap": 0.5, "bands": "emt7"},
              "peripheral": {"signals": [], "feature_names": []},
              "face": {"feature_names": [], "min_valid": 0.5},
              "normalisation": {"eeg": {"keep": [1], "mean": st.mean.tolist(),
                                        "scale": st.scale.tolist()}},
              "target_scaling": None, "pipeline": PIPE.to_dict(), "pipeline_hash": "x",
              "dataset": "sim", "fold": "loso-01", "train_subjects": ["02"],
              "val_subjects": ["03"], "test_subjects": ["01"], "seed": 0, "best_epoch": 3}
    M.save_model(model, tmp_path / "old", extra=legacy)
    loaded, converted = M.load_checkpoint(tmp_path / "old")
    assert converted.contract_version == 1 and converted.channels == CHANNELS
    assert converted.provenance["test_subjects"] == ["01"]
    np.testing.assert_allclose(predict(loaded, converted, build_inputs(converted, x)),
                               predict(model, contract, build_inputs(contract, x)), atol=1e-6)


def test_live_problems_name_what_cannot_run_live():
    zero = PipelineConfig(phase="zero", detect_bads=False)
    c = CheckpointContract(model="eegnet", modalities=("eeg",), task="classification",
                           target="arousal", class_names=("low", "high"), channels=CHANNELS,
                           sfreq=FS, pipeline=zero, window_s=4.0, n_times=512,
                           input_kind="raw",
                           normalisation={"eeg": Standardisation.identity((1,), (6,))})
    assert c.live_problems() == ["phase='zero' filters look ahead in time"]


# -- crafted checkpoints: one line naming the file and field, before any memory is taken -----
def _crafted(tmp_path, case: str):
    _, _, path, _, _ = _checkpoint("shallow_convnet", tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    con = json.loads((path / "contract.json").read_text())
    if case == "deep_config":  # 100,000 nested lists: RecursionError before
        text = json.dumps(cfg)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
        (path / "config.json").write_text(text)
    elif case == "deep_contract":
        text = json.dumps(con)[:-1] + ', "provenance": ' + "[" * 100_000 + "]" * 100_000 + "}"
        (path / "contract.json").write_text(text)
    elif case == "huge_tensor":  # 6e12 parameters: "allocate 24000000000000 bytes" before
        cfg["kwargs"].update(n_filters_time=10**6, n_filters_spat=10**6)
        (path / "config.json").write_text(json.dumps(cfg))
    elif case == "highpass_above_nyquist":  # scipy's "Digital filter critical frequencies"
        con["pipeline"].update(l_freq=100.0, h_freq=None)
        (path / "contract.json").write_text(json.dumps(con))
    elif case == "contract_of_another_model":  # decoded without a word before
        con["model"] = "eeg_deformer"
        (path / "contract.json").write_text(json.dumps(con))
    elif case == "not_utf8":
        (path / "contract.json").write_bytes(json.dumps(con).replace(
            '"arousal"', '"\xe9"').encode("latin-1"))
    return path


CRAFTED = {
    "deep_config": ("config.json", "nested deeper than 64 levels"),
    "deep_contract": ("contract.json", "nested deeper than 64 levels"),
    "huge_tensor": ("model.safetensors", "expects (1000000, 1, 25, 1)"),
    "highpass_above_nyquist": ("contract.json", "field 'pipeline' is invalid "
                               "(PipelineConfig.l_freq=100 Hz is at or above Nyquist"),
    "contract_of_another_model": ("contract.json", "field 'model' must be 'shallow_convnet'"),
    "not_utf8": ("contract.json", "not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_checkpoint_is_refused_in_one_line_naming_file_and_field(case, tmp_path):
    import resource
    import time

    from physioaffect.models.io import ModelFileError

    path = _crafted(tmp_path, case)
    name, expected = CRAFTED[case]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    with pytest.raises(ModelFileError) as err:
        M.load_checkpoint(path)
    msg = str(err.value)
    assert msg.startswith(f"{path / name}: ") and expected in msg and "\n" not in msg, msg
    assert time.process_time() - t0 < 2.0
    # no large allocation on the way (ru_maxrss in KiB on Linux)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000


def test_cli_decode_and_evaluate_refuse_a_crafted_checkpoint_in_one_line(tmp_path):
    import subprocess
    import sys

    from physioaffect.datasets.fixtures import write_deap

    path = _crafted(tmp_path, "huge_tensor")
    deap = write_deap(tmp_path / "deap", n_subjects=2, seconds=4.0, n_trials=2)
    for args in (["decode", "-c", str(path), "--duration", "1"],
                 ["evaluate", str(path), "--dataset", "deap", "--root", str(deap),
                  "--out", str(tmp_path / "ev")]):
        r = subprocess.run([sys.executable, "-m", "physioaffect.cli.main", *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
        assert len(lines) == 1 and str(path / "model.safetensors") in lines[0], r.stderr
        assert "Traceback" not in r.stderr
