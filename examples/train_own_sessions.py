"""Own recordings (``physioaffect record`` session files with stimulus/rating markers),
within-subject k-fold and LOSO side by side, then the checkpoint the live decoder loads.

Run: ``python examples/train_own_sessions.py SESSIONS_FOLDER OUT``.
"""

import sys
from pathlib import Path

from physioaffect.training import TrainConfig, compare_runs, load_checkpoint, train

root, out = sys.argv[1], Path(sys.argv[2])
common = dict(dataset="sessions", root=root, model="emt", target="valence",
              optim={"epochs": 20})
runs = [train(TrainConfig(**common, protocol="within"), out=out / "within"),
        train(TrainConfig(**common, protocol="loso"), out=out / "loso")]
print(compare_runs(runs))
model, contract = load_checkpoint(out / "loso" / "folds" / "loso-01")
print(contract.channels, contract.sfreq, contract.class_names, contract.pipeline)
