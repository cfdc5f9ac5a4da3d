"""SEED (``Preprocessed_EEG/``), EmT with the published within-subject split (first 9 trials
train, last 6 test) and, for the cross-subject number, LOSO. Three classes (rule seed3).

Run: ``python examples/train_seed_published.py SEED_FOLDER OUT``.
"""

import sys
from pathlib import Path

from physioaffect.training import TrainConfig, compare_runs, train

root, out = sys.argv[1], Path(sys.argv[2])
common = dict(dataset="seed", root=root, model="emt", target="emotion", label_rule="seed3",
              windows={"window_s": 20.0, "step_s": 4.0},
              inputs={"graphs": {"sub_window_s": 2.0, "sub_overlap": 0.75}},
              optim={"label_smoothing": 0.1, "lr": 3e-4, "epochs": 30})
runs = [train(TrainConfig(**common, protocol="seed-9-6",
                          protocol_kwargs={"n_val_trials": 1}), out=out / "seed-9-6"),
        train(TrainConfig(**common, protocol="loso"), out=out / "loso")]
print(compare_runs(runs))
