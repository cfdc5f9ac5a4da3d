"""DREAMER (``DREAMER.mat``), EEG + ECG fused, leave-stimuli-out (no clip seen in training is
tested), arousal with rule gt3 (a 3 is low; ``ge3`` would make it high: state it).

Run: ``python examples/train_dreamer_lso.py DREAMER_FOLDER OUT``.
"""

import sys

from physioaffect.training import TrainConfig, train

root, out = sys.argv[1], sys.argv[2]
train(TrainConfig(dataset="dreamer", root=root, model="eeg_deformer", protocol="lso",
                  protocol_kwargs={"n_splits": 3}, target="arousal", label_rule="gt3",
                  modalities=["eeg", "peripheral"], windows={"window_s": 4.0},
                  optim={"epochs": 30}), out=out)
