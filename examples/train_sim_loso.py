"""Simulated subjects, LOSO on arousal: EmT, EEG-only and fused with peripheral physiology.

Run: ``python examples/train_sim_loso.py [OUT]`` (writes the simulator folder if absent).
CLI equivalent::

    physioaffect train --dataset sim --root OUT/sim12 --model emt --protocol loso \
        --target arousal --out OUT/runs/emt
"""

import sys
from pathlib import Path

from physioaffect.training import TrainConfig, compare_runs, train

out = Path(sys.argv[1] if len(sys.argv) > 1 else "physioaffect-example")
common = dict(dataset="sim", root=str(out / "sim12"), model="emt", protocol="loso",
              target="arousal", sim={"eeg_channels": 14}, optim={"epochs": 10},
              model_kwargs={"n_layers": 2, "K": 3, "heads": 4, "dim_head": 16})
runs = [train(TrainConfig(**common), out=out / "runs" / "emt"),
        train(TrainConfig(**common, modalities=["eeg", "peripheral"]), out=out / "runs" / "fused")]
print(compare_runs(runs, "accuracy"))
