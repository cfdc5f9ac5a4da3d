"""DEAP (``data_preprocessed_python/``), EEG-Deformer, LOSO on valence (rule gt5, stated).

Run: ``python examples/train_deap_loso.py DEAP_FOLDER OUT``. On a CUDA machine the device is
picked automatically (bf16 autocast); add ``executor={"kind": "ray"}`` to spread folds over a Ray cluster.
CLI equivalent::

    physioaffect train --dataset deap --root DEAP_FOLDER --model eeg_deformer --protocol loso \
        --target valence --out OUT
"""

import sys

from physioaffect.training import TrainConfig, train

root, out = sys.argv[1], sys.argv[2]
train(TrainConfig(dataset="deap", root=root, model="eeg_deformer", protocol="loso",
                  target="valence", label_rule="gt5", windows={"window_s": 4.0},
                  optim={"epochs": 30}), out=out)
