"""Run both BIDS validators on exported simulator sessions and count errors and warnings.

Two exports of the same simulated session (8 EEG channels at 256 Hz, ECG/EDA/PPG/RESP at
128 Hz, three stimuli, the last one cut by the stop):

- ``bare``: ``export_bids(session, root)``: what the recording knows;
- ``lab``: ``export_bids(session, root, metadata=LAB)``, LAB being what a lab adds once for its
  study (licence, institution, cap, head circumference, task description, stimulus software;
  the example values below are illustrative, not facts about the simulator);
- ``lab+MISCChannelCount``: the same with the ``MISCChannelCount`` the schema validator
  recommends for ``_eeg.json``, which the legacy validator's schema does not allow (it knows
  ``MiscChannelCount``, which mne-bids writes): the two validators disagree on this key.

Validators (neither is a project dependency; the tests never need them):

- the legacy ``bids-validator`` 1.x from npm (``npm install bids-validator@1``): found on
  ``PATH``, in ``$BIDS_VALIDATOR_LEGACY``, or as ``node_modules/.bin/bids-validator`` under
  ``$BIDS_VALIDATOR_NODE_MODULES``;
- the schema-based validator (the Deno build; on PyPI as ``bids-validator-deno``, not on npm
  as ``@bids/validator``): ``bids-validator-deno`` on ``PATH`` or ``$BIDS_VALIDATOR_DENO``
  (a command, or a folder to put on ``PYTHONPATH`` when installed with ``pip --target``).

Writes ``benchmarks/results/bids_validation.json``: per export and validator, the version, the
error and warning counts, and the codes with the keys they name.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: What a lab states once for its study (illustrative values for the check).
LAB = {
    "dataset_description": {
        "License": "CC0",
        "SourceDatasets": [{"URL": "file:sub-07_ses-2_task-emo_run-1_physio.h5"}],
        "HEDVersion": "8.3.0",
    },
    "eeg": {
        "TaskDescription": "Emotional video clips, self-reports after each clip.",
        "Instructions": "Watch each clip and rate how you felt.",
        "CogAtlasID": "https://www.cognitiveatlas.org/task/id/trm_4f2453ce33f16/",
        "CogPOID": "http://www.wiki.cogpo.org/index.php?title=Passive_Viewing",
        "InstitutionName": "Example Lab",
        "InstitutionAddress": "1 Example Street, Example City",
        "InstitutionalDepartmentName": "Psychology",
        "CapManufacturer": "EasyCap",
        "CapManufacturersModelName": "actiCAP 32 Ch",
        "HeadCircumference": 56,
        "SubjectArtefactDescription": "n/a",
    },
    "events": {"StimulusPresentation": {"OperatingSystem": "Linux",
                                        "SoftwareName": "physioaffect simulator",
                                        "SoftwareVersion": "0.1.0"}},
    "coordsystem": {
        "AnatomicalLandmarkCoordinateSystemDescription": "Template landmark positions.",
        "FiducialsCoordinates": {},
        "FiducialsCoordinateSystem": "CapTrak",
        "FiducialsCoordinateUnits": "m",
        "FiducialsCoordinateSystemDescription": "No fiducial markers were placed.",
    },
}


def _session(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import write_truth_session

    from physioaffect.sources.sim import SimConfig, simulate_subject

    cfg = SimConfig(eeg_channels=8, rate=256, periph_rate=128, seed=9, baseline_seconds=1,
                    stimulus_seconds=2, rest_seconds=1)
    truth = simulate_subject(cfg, 0, duration=10.5, t0=1000.0)
    return write_truth_session(folder / "sub-07_ses-2_task-emo_run-1_physio.h5", truth, 1000.0,
                               subject="07", session="2", task="emo", run=1)


def _legacy_cmd() -> list[str] | None:
    env = os.environ.get("BIDS_VALIDATOR_LEGACY")
    if env:
        return [env]
    nm = os.environ.get("BIDS_VALIDATOR_NODE_MODULES")
    if nm and (Path(nm) / "node_modules/.bin/bids-validator").exists():
        return [str(Path(nm) / "node_modules/.bin/bids-validator")]
    found = shutil.which("bids-validator")
    return [found] if found else None


def _deno_cmd() -> tuple[list[str], dict] | None:
    env = os.environ.get("BIDS_VALIDATOR_DENO")
    if env and Path(env).is_dir():  # pip install --target DIR bids-validator-deno
        code = "import sys; from bids_validator_deno import cli; sys.exit(cli())"
        return [sys.executable, "-c", code], {"PYTHONPATH": env}
    if env:
        return [env], {}
    found = shutil.which("bids-validator-deno")
    return ([found], {}) if found else None


def run_legacy(cmd: list[str], root: Path) -> dict:
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run([*cmd, str(root), "--json"], capture_output=True, text=True, timeout=600)
    issues = json.loads(r.stdout)["issues"]
    return {"validator": f"bids-validator {version} (legacy, npm)",
            "errors": len(issues["errors"]), "warnings": len(issues["warnings"]),
            "codes": [f"{i['severity']} {i['key']}" for i in issues["errors"] + issues["warnings"]]}


def run_deno(cmd: list[str], env: dict, root: Path) -> dict:
    full_env = {**os.environ, **env}
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True,
                             env=full_env).stdout
    version = re.sub(r"\x1b\[[0-9;]*m", "", version).replace("bids-validator", "").strip()
    r = subprocess.run([*cmd, str(root), "--json"], capture_output=True, text=True, timeout=600,
                       env=full_env)
    issues = json.loads(r.stdout)["issues"]["issues"]
    count = collections.Counter(i["severity"] for i in issues)
    codes = collections.Counter(f"{i['severity']} {i['code']} {i.get('subCode') or ''}".strip()
                                for i in issues)
    return {"validator": f"bids-validator-deno {version} (schema validator)",
            "errors": count.get("error", 0), "warnings": count.get("warning", 0),
            "codes": [f"{k} x{v}" for k, v in sorted(codes.items())]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bids_validation.json")
    args = ap.parse_args()
    from physioaffect.recording import export_bids

    legacy, deno = _legacy_cmd(), _deno_cmd()
    results: dict = {"validators_found": {"legacy": bool(legacy), "deno": bool(deno)},
                     "exports": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = _session(tmp)
        lab_misc = {**LAB, "eeg": {**LAB["eeg"], "MISCChannelCount": 0}}
        for name, meta in (("bare", None), ("lab", LAB), ("lab+MISCChannelCount", lab_misc)):
            root = tmp / re.sub(r"[^a-z]", "_", name)
            export_bids(path, root, metadata=meta)
            runs = {}
            if legacy:
                runs["legacy"] = run_legacy(legacy, root)
            if deno:
                runs["deno"] = run_deno(*deno, root)
            results["exports"][name] = runs
            for key, res in runs.items():
                print(f"{name:20s} {key:6s} {res['validator']}: {res['errors']} errors, "
                      f"{res['warnings']} warnings")
                for c in res["codes"]:
                    print(f"      {c}")
    results["lab_metadata"] = LAB
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
