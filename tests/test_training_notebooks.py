"""Both training notebooks executed end to end (nbclient, small settings) and their outputs checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, work: Path, monkeypatch: pytest.MonkeyPatch):
    nbformat = pytest.importorskip("nbformat", reason="the 'test' extra runs notebooks")
    nbclient = pytest.importorskip("nbclient", reason="the 'test' extra runs notebooks")
    monkeypatch.setenv("PHYSIOAFFECT_NB_SMALL", "1")
    monkeypatch.setenv("PHYSIOAFFECT_NB_WORK", str(work))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))


def test_quickstart_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _run("quickstart_training.ipynb", tmp_path, monkeypatch)
    run = tmp_path / "runs" / "emt-loso"
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert {p.name for p in (run / "figures").glob("*.png")} >= {"per_subject.png",
                                                                "learning_curves.png"}
    assert "| majority |" in text and "| emt |" in text  # the report printed by the notebook
    assert "4 subjects" in text


def test_own_dataset_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _run("own_dataset_deap.ipynb", tmp_path, monkeypatch)
    summary = json.loads((tmp_path / "runs" / "deap-eegnet" / "summary.json").read_text())
    assert set(summary["models"]) == {"majority", "logreg", "svm", "eegnet"}
    assert "['s01', 's02', 's03']" in text and "'rule': 'gt5'" in text
