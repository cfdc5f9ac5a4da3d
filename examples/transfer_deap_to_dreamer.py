"""Cross-dataset transfer: train on DEAP restricted to the 14 channels DREAMER has, then score
every fold checkpoint on DREAMER (both 128 Hz). Labels follow each dataset's own rule.

Run: ``python examples/transfer_deap_to_dreamer.py DEAP_FOLDER DREAMER_FOLDER OUT``.
"""

import sys
from pathlib import Path

from physioaffect.training import TrainConfig, evaluate, train

deap, dreamer, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
common14 = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"]
run = train(TrainConfig(dataset="deap", root=deap, model="emt", protocol="lkso",
                        protocol_kwargs={"k": 8}, target="arousal", channels=common14,
                        optim={"epochs": 20}), out=out / "deap14")
evaluate(run, "dreamer", dreamer, out / "deap14-on-dreamer")
print((out / "deap14-on-dreamer" / "report.md").read_text())
