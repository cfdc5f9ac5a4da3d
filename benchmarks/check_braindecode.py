"""Check the braindecode weight translation against braindecode 1.8.1's own modules.

braindecode does not import beside torch 2.13 (its ``__init__`` pulls torchaudio, whose wheel
does not load with this torch), so it is not a dependency. This script builds braindecode's
``EEGNet`` and ``ShallowFBCSPNet`` from the wheel's source without importing the package
``__init__`` (package modules registered by path, torchaudio stubbed: neither model uses it)
and checks, for two input sizes each:

1. a braindecode model's ``state_dict()`` (batch-norm statistics randomised, EEGNet's spatial
   weight scaled past its max norm) loads into ours (``load_braindecode_state_dict``) and gives
   the same outputs;
2. ours exported (``braindecode_state_dict``) loads into a fresh braindecode model with
   ``strict=True`` and gives the same outputs;
3. the state dicts that ``tests/test_models_braindecode.py`` writes by hand load into
   braindecode with ``strict=True``, and the test's functional reference forward equals
   braindecode's forward (so the test checks what braindecode computes);
4. windows of ``to_epochs`` output (a DEAP-format fixture) through
   ``physioaffect.datasets.braindecode_windows`` make braindecode ``WindowsDataset``s whose
   ``BaseConcatDataset.get_metadata()`` keeps subject and ratings and whose items are the
   epochs' samples, where braindecode's own ``create_from_mne_epochs`` keeps only its window
   columns.

Setup (once; none of it goes into the project's environment)::

    pip download braindecode==1.8.1 --no-deps -d /tmp/bd
    python -m zipfile -e /tmp/bd/braindecode-1.8.1-py3-none-any.whl /tmp/bd/src
    pip install --no-deps --target /tmp/bd/extra einops docstring_inheritance torchinfo
    PYTHONPATH=.:/tmp/bd/extra python benchmarks/check_braindecode.py --source /tmp/bd/src

Writes ``benchmarks/results/braindecode.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def load_braindecode(src: Path) -> tuple[type, type]:
    """braindecode's EEGNet and ShallowFBCSPNet classes from an unpacked wheel."""
    ta = types.ModuleType("torchaudio")
    ta.__path__ = []
    sys.modules.setdefault("torchaudio", ta)
    for sub in ("functional", "transforms"):
        m = types.ModuleType(f"torchaudio.{sub}")
        for name in ("fftconvolve", "filtfilt", "lfilter"):  # imported, unused by both models
            setattr(m, name, lambda *a, **k: None)
        sys.modules.setdefault(f"torchaudio.{sub}", m)
    for pkg in ("braindecode", "braindecode.models", "braindecode.datasets"):
        m = types.ModuleType(pkg)
        m.__path__ = [str(src / pkg.replace(".", "/"))]
        sys.modules[pkg] = m
    import braindecode.models.eegnet as eegnet
    import braindecode.models.shallow_fbcsp as shallow

    return eegnet.EEGNet, shallow.ShallowFBCSPNet


def _test_module():
    spec = importlib.util.spec_from_file_location(
        "test_models_braindecode", HERE.parent / "tests" / "test_models_braindecode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True,
                    help="folder of the unpacked braindecode 1.8.1 wheel")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "braindecode.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from physioaffect.models import (
        EEGNet,
        ShallowConvNet,
        braindecode_state_dict,
        load_braindecode_state_dict,
    )

    bd_eegnet, bd_shallow = load_braindecode(args.source)
    tests = _test_module()
    torch.manual_seed(0)
    rows = []
    for name, ours_cls, bd_cls, make, ref in (
            ("EEGNet", EEGNet, bd_eegnet, tests.eegnet_state, tests.braindecode_eegnet_forward),
            ("ShallowFBCSPNet", ShallowConvNet, bd_shallow, tests.shallow_state,
             tests.braindecode_shallow_forward)):
        for C, T, n_out in ((8, 256, 3), (22, 1000, 4)):
            bd = bd_cls(n_chans=C, n_outputs=n_out, n_times=T)
            sd = bd.state_dict()
            for k, v in sd.items():
                if "running_var" in k:
                    sd[k] = torch.rand_like(v) + 0.5
                elif "running_mean" in k or ("bnorm" in k and k.endswith(("weight", "bias"))):
                    sd[k] = torch.randn_like(v)
                elif k.endswith("parametrizations.weight.original"):
                    sd[k] = v * 5  # past the max norm: the parametrization renorms it
            bd.load_state_dict(sd)
            bd.eval()
            x = torch.randn(8, C, T) * 10
            ours = load_braindecode_state_dict(
                ours_cls(n_chans=C, n_outputs=n_out, n_times=T, sfreq=None), bd.state_dict()
            ).eval()
            fresh = bd_cls(n_chans=C, n_outputs=n_out, n_times=T).eval()
            fresh.load_state_dict(braindecode_state_dict(ours), strict=True)
            hand = make(C, T, n_out)
            hand_bd = bd_cls(n_chans=C, n_outputs=n_out, n_times=T).eval()
            hand_bd.load_state_dict(hand, strict=True)
            with torch.no_grad():
                a, b, c = bd(x), ours(x), fresh(x)
                d, e = hand_bd(x), ref(hand, x)
            rows.append({
                "model": name, "n_chans": C, "n_times": T, "n_outputs": n_out,
                "max_abs_output": float(a.abs().max()),
                "import_max_abs_diff": float((a - b).abs().max()),
                "export_max_abs_diff": float((b - c).abs().max()),
                "test_reference_vs_braindecode_max_abs_diff": float((d - e).abs().max()),
                "keys_equal": sorted(bd.state_dict()) == sorted(braindecode_state_dict(ours)),
            })
            print(rows[-1])
    windows = check_windows()
    print(windows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"braindecode": "1.8.1", "torch": torch.__version__,
                                    "checks": rows, "windows": windows}, indent=2) + "\n")
    print(f"wrote {args.out}")


def check_windows() -> dict:
    """braindecode_windows output in braindecode's WindowsDataset / BaseConcatDataset."""
    import tempfile

    import numpy as np
    from braindecode.datasets.base import BaseConcatDataset, WindowsDataset
    from braindecode.datasets.mne import create_from_mne_epochs

    from physioaffect.datasets import braindecode_windows, to_epochs
    from physioaffect.datasets.fixtures import write_deap

    with tempfile.TemporaryDirectory() as tmp:
        root = write_deap(Path(tmp) / "deap", n_subjects=2, seconds=4, n_trials=4)
        ep = to_epochs("deap", root)
    ours = BaseConcatDataset([WindowsDataset(w, description=d)
                              for w, d in braindecode_windows(ep, 128, 96, target="valence")])
    meta = ours.get_metadata()
    # braindecode at its best: one description for the list item (per-trial fields are lost)
    theirs = create_from_mne_epochs([ep], 128, 96, drop_last_window=False,
                                    descriptions=[{"dataset": "deap"}])
    X, y, crop = ours[5]
    trial, start = divmod(5, 5)  # 5 windows per 4 s (512-sample) trial: 0, 96, ..., 384
    expected = ep.get_data()[trial, :, [0, 96, 192, 288, 384][start]:][:, :128]
    return {
        "n_windows": len(ours), "n_windows_create_from_mne_epochs": len(theirs),
        "columns": sorted(map(str, meta.columns)),
        "columns_create_from_mne_epochs": sorted(map(str, theirs.get_metadata().columns)),
        "subjects": sorted(set(meta["subject"])),
        "valence_kept": bool(np.allclose(meta["valence"], meta["target"])),
        "item_equals_epoch_slice": bool(np.allclose(X, expected, rtol=1e-6)),
        "item_target": float(y), "item_crop_inds": [int(c) for c in crop],
    }


if __name__ == "__main__":
    main()
