"""Folds on a real Ray cluster: three local Ray nodes (``ray.cluster_utils.Cluster``: a head and
two worker nodes, 1 CPU each, each with its own temporary folder and working folder), one
connection for the whole module (Ray is slow to start on a shared 2-core machine).

- LOSO on the cluster gives the serial executor's metrics, predictions and checkpoint bytes,
  and no worker writes a file outside its temporary folders: a Python audit hook installed in
  every worker process (Ray's ``worker_process_setup_hook``) refuses and records any such
  write (a positive control proves the hook is active); the workers' working folders stay
  empty.
- A fold result that arrives twice is written once.
- A nested search of 4 settings x LOSO on 6 simulated subjects runs on the cluster, reports the
  chosen setting per outer fold, never uses a test subject, and equals the serial search.
- Bad input: an unreachable address, a node whose Python cannot import physioaffect, an unknown
  hyper-parameter in the search space: one line before any fold.
- A worker node killed in the middle of a fold: the fold is retried once, continues from the
  epoch checkpoint the driver holds, and the metrics equal the undisturbed run (last test: the
  cluster has one node fewer afterwards).

Everything is tiny (4 or 6 simulated subjects, a one-layer EmT, 2-3 epochs, 1 thread).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray not installed (optional extra 'ray')")

from physioaffect.sources.sim import SimConfig  # noqa: E402
from physioaffect.training import TrainConfig, TrainingError, train  # noqa: E402
from physioaffect.training.config import (  # noqa: E402
    ComputeSettings,
    ExecutorSettings,
    OptimSettings,
    SearchSettings,
    WindowSettings,
)

#: The nodes' workers pause this long after each epoch checkpoint, so that a node can be killed
#: in the middle of a fold (the driver never pauses).
PAUSE_S = "0.4"
TINY = dict(windows=WindowSettings(window_s=4.0),
            inputs={"graphs": {"sub_window_s": 2.0, "sub_overlap": 0.5}},
            optim=OptimSettings(batch_size=16, epochs=3, patience=0),
            compute=ComputeSettings(threads=1), seed=3,
            model_kwargs={"n_layers": 1, "K": 2, "heads": 2, "dim_head": 8})


def _sim(subjects: int) -> SimConfig:
    return SimConfig(subjects=subjects, n_trials=8, stimulus_seconds=12.0, eeg_channels=14,
                     rate=128, seed=3, rest_seconds=10.0, baseline_seconds=10.0)


def _audit_writes() -> None:
    """Worker setup hook: refuse, and record in the node's temporary folder, every write to a
    file or folder outside the worker's temporary folders (its node's ``TMPDIR`` and Ray's
    session folder). Python-level writes only: torch and safetensors write from C, and the
    package hands them paths in the temporary folder (the empty working folders cover stray
    relative paths)."""
    import os
    import sys
    import tempfile

    allowed = [os.path.realpath(tempfile.gettempdir()),
               os.path.realpath(os.environ["PHYSIOAFFECT_TEST_RAY_TEMP"])]
    record = os.path.join(allowed[0], f"write-violations-{os.getpid()}.txt")
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def resolved(path, dir_fd=None) -> str | None:
        if path is None or isinstance(path, int):
            return None
        path = os.fsdecode(path)
        if dir_fd not in (None, -1) and not os.path.isabs(path):  # relative to an open folder
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        return os.path.realpath(path)

    def outside(p: str | None) -> bool:
        return p is not None and not (p.startswith("/dev/") or any(
            p == a or p.startswith(a + os.sep) for a in allowed))

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if mode else bool(flags & writes)
            paths = [resolved(path)] if writing else []
        elif event == "os.rename":  # also os.replace: (src, dst, src_dir_fd, dst_dir_fd)
            paths = [resolved(args[0], args[2]), resolved(args[1], args[3])]
        elif event in ("os.link", "os.symlink"):
            paths = [resolved(args[1])]
        elif event in ("os.remove", "os.rmdir"):  # (path, dir_fd)
            paths = [resolved(args[0], args[1])]
        elif event == "os.mkdir":  # (path, mode, dir_fd)
            paths = [resolved(args[0], args[2])]
        elif event == "os.truncate":
            paths = [resolved(args[0])]
        else:
            return
        bad = [p for p in paths if outside(p)]
        if bad:
            with open(record, "a") as fh:
                fh.write(bad[0] + "\n")
            raise PermissionError(f"audit: a worker wrote {bad[0]} outside its temp folders")

    sys.addaudithook(hook)


def _violations(nodes: list[Path]) -> list[str]:
    return sorted(line for d in nodes for f in (d / "tmp").glob("write-violations-*.txt")
                  for line in f.read_text().splitlines())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """A console that keeps the driver's lines (and may act on them)."""

    is_terminal = False

    def __init__(self, on_line=None) -> None:
        self.lines: list[str] = []
        self.on_line = on_line

    def print(self, msg, **_) -> None:
        self.lines.append(str(msg))
        if self.on_line is not None:
            self.on_line(str(msg))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def cluster(work: Path):
    """Head + 2 worker nodes, each with its own TMPDIR and working folder; the driver runs in a
    folder of its own too (not the repository: workers must import the installed package)."""
    from ray import cloudpickle
    from ray.cluster_utils import Cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook and test tasks
    ray_temp = tempfile.mkdtemp(prefix="pa-ray-")  # short: Ray's socket paths must fit 107 bytes
    # Cluster() writes the head's address to $RAY_TMPDIR/ray/ray_current_cluster without creating
    # the folder (on a fresh machine /tmp/ray does not exist): point it into our temp folder
    old_ray_tmpdir = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = ray_temp
    os.makedirs(os.path.join(ray_temp, "ray"), exist_ok=True)
    old_cwd = os.getcwd()
    nodes, c = [], None
    try:
        for k in range(3):
            d = work / f"node{k}"
            (d / "tmp").mkdir(parents=True)
            (d / "cwd").mkdir()
            nodes.append(d)
            os.chdir(d / "cwd")  # a node's processes, and so its workers, start here
            # torch's compile cache follows TMPDIR unless TORCHINDUCTOR_CACHE_DIR is set, and
            # importing torch._dynamo (as other test modules do) sets it to /tmp/... for the
            # processes started after it: a node's workers keep their caches in its TMPDIR
            env = {"TMPDIR": str(d / "tmp"), "PYTHONDONTWRITEBYTECODE": "1",
                   "TORCHINDUCTOR_CACHE_DIR": str(d / "tmp" / "torchinductor"),
                   "PHYSIOAFFECT_TEST_RAY_TEMP": ray_temp, "PHYSIOAFFECT_EPOCH_PAUSE_S": PAUSE_S}
            if c is None:
                c = Cluster(initialize_head=True, head_node_args=dict(
                    num_cpus=1, temp_dir=ray_temp, include_dashboard=False, env_vars=env))
            else:
                c.add_node(wait=False, num_cpus=1, env_vars=env)  # the two start together
        c.wait_for_nodes()
        (work / "driver").mkdir()
        os.chdir(work / "driver")
        ray.init(address=c.address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": _audit_writes})
        c.node_dirs, c.ray_temp = nodes, ray_temp
        yield c
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        os.chdir(old_cwd)
        if old_ray_tmpdir is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old_ray_tmpdir
        shutil.rmtree(ray_temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cfg(work: Path) -> TrainConfig:
    return TrainConfig(dataset="sim", root=str(work / "sim4"), sim=_sim(4), model="emt",
                       protocol="loso", target="arousal", cache_dir=str(work / "cache"), **TINY)


@pytest.fixture(scope="module")
def serial_run(cfg: TrainConfig, work: Path) -> Path:
    return train(cfg, out=work / "serial", progress=False)


def _on(cfg: TrainConfig, cluster, **executor) -> TrainConfig:
    return dataclasses.replace(cfg, executor=ExecutorSettings(kind="ray", address=cluster.address,
                                                              **executor))


def _same_results(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics_subjects.csv"),
                                  pd.read_csv(b / "metrics_subjects.csv"))
    pa, pb = pd.read_csv(a / "predictions.csv"), pd.read_csv(b / "predictions.csv")
    pd.testing.assert_frame_equal(pa, pb, check_exact=False, atol=1e-6)


def test_cluster_run_equals_serial_and_workers_write_nothing(cluster, cfg: TrainConfig,
                                                             serial_run: Path,
                                                             work: Path) -> None:
    # positive control: the audit hook is active in the workers
    @ray.remote(num_cpus=0)
    def write_outside(path: str) -> None:
        Path(path).write_text("x")

    with pytest.raises(ray.exceptions.RayTaskError, match="outside its temp folders"):
        ray.get(write_outside.remote(str(work / "outside.txt")))
    assert not (work / "outside.txt").exists()
    assert _violations(cluster.node_dirs) == [str(work / "outside.txt")]
    for d in cluster.node_dirs:
        for f in (d / "tmp").glob("write-violations-*.txt"):
            f.unlink()

    console = Lines()
    run = train(_on(cfg, cluster), out=work / "ray", progress=False, console=console)
    _same_results(serial_run, run)
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    folds = json.loads((run / "folds.json").read_text())
    nodes = set()
    for f in folds:
        fa, fb = serial_run / "folds" / f["name"], run / "folds" / f["name"]
        for name in ("model.safetensors", "contract.json", "config.json"):  # same bytes
            assert (fa / "checkpoint" / name).read_bytes() == (fb / "checkpoint" / name).read_bytes()
        assert not (fb / "train_state.pt").exists()
        summary = json.loads((fb / "fold.json").read_text())
        assert summary["attempts"] == 1 and summary["resumed_from_epoch"] == 0
        nodes.add(summary["node"])
    assert len(nodes) >= 2, "the folds did not spread over the cluster's nodes"
    assert any("one shared copy of 96 windows through the object store" in m
               for m in console.lines), console.lines
    # no worker wrote anywhere but its temporary folders
    assert _violations(cluster.node_dirs) == []
    for d in cluster.node_dirs:
        assert list((d / "cwd").iterdir()) == []
        assert list((d / "tmp").glob("physioaffect-*")) == []  # task folders cleaned up
    report = (run / "report.md").read_text()
    assert "up to 2 retries of a fold whose worker or node died" in report


def test_resources_per_fold_from_the_config() -> None:
    """No cluster needed: the resources a fold asks for, against what the nodes have."""
    from physioaffect.training.cluster import fold_resources

    def nodes(gpus: float) -> list[dict]:
        return [{"address": f"10.0.0.{i}", "resources": {"CPU": 8.0, "GPU": gpus}}
                for i in range(2)]

    def ask(device: str = "auto", **executor) -> tuple[float, float]:
        cfg = TrainConfig(root="x", compute=ComputeSettings(device=device),
                          executor=ExecutorSettings(kind="ray", **executor))
        return fold_resources(cfg, nodes(gpus))

    gpus = 4.0
    assert ask() == (1.0, 1.0)  # a cluster with GPUs: one per fold
    assert ask(cpus_per_fold=4, gpus_per_fold=0.5) == (4.0, 0.5)
    assert ask(device="cpu") == (1.0, 0.0)
    with pytest.raises(TrainingError, match=r"no node has 16 CPU and 1 GPU for a fold"):
        ask(cpus_per_fold=16)
    gpus = 0.0
    assert ask() == (1.0, 0.0)
    with pytest.raises(TrainingError, match="compute.device: cuda, but the folds get no GPU"):
        ask(device="cuda")
    with pytest.raises(TrainingError, match="executor.max_retries: expected an integer >= 0"):
        TrainConfig(root="x", executor=ExecutorSettings(max_retries=-1)).resolve()


def test_windows_go_per_fold_only_when_that_sends_less(cfg: TrainConfig) -> None:
    from physioaffect.training.cluster import FoldInputs, _slim
    from physioaffect.training.data import prepare_data
    from physioaffect.training.runner import plan_folds

    resolved = cfg.resolve()
    data = prepare_data(resolved)
    loso, y, _ = plan_folds(resolved, data)
    assert not FoldInputs(data, y, loso, "object_store").per_fold  # every fold uses everything
    # folds inside one subject (as SEED's 9/6 protocol makes them), two per subject: the two
    # folds of a subject share that subject's windows, and nothing else is sent
    subject = data.meta["subject"].astype(str).to_numpy()
    folds = []
    for s in sorted(set(subject)):
        rows = np.flatnonzero(subject == s)
        for k in range(2):
            test = rows[k::2]
            rest = np.setdiff1d(rows, test)
            folds.append({"train": rest[2:], "val": rest[:2], "test": test,
                          "test_subjects": [s]})
    inputs = FoldInputs(data, y, folds, "object_store")
    assert inputs.per_fold and len(inputs.sets) == 4
    part = _slim(data, inputs.sets[0])
    assert set(part.meta["subject"].astype(str)) == {folds[0]["test_subjects"][0]}
    np.testing.assert_array_equal(part.eeg_input, data.eeg_input[inputs.sets[0]])
    assert "window_cache" not in part.info and "derived_cache" not in part.info


def test_a_resumed_fold_reuses_its_finished_search_trials(cfg: TrainConfig, work: Path) -> None:
    """Trials finished before a stop are kept beside the fold and not run again: the choice
    follows them (here made-up scores that favour the third setting), and the fold's epoch
    checkpoint continues the setting they chose."""
    from physioaffect.training.data import prepare_data
    from physioaffect.training.rundir import TRIALS_NAME, store_trial
    from physioaffect.training.runner import plan_folds, run_fold
    from physioaffect.training.search import plan_search

    searched = dataclasses.replace(cfg, search=SearchSettings(
        space={"optim.lr": [1e-3, 1e-2], "model_kwargs.dropout": [0.0, 0.5]})).resolve()
    data = prepare_data(searched)
    folds, y, _ = plan_folds(searched, data)
    search = plan_search(searched, data, folds, y)[folds[0]["name"]]
    fold_dir = work / "resumed-search" / "folds" / folds[0]["name"]
    for t in search["trials"]:
        store_trial(fold_dir, {**{k: t[k] for k in ("fold", "setting", "params", "inner",
                                                    "metric", "train_subjects", "val_subjects")},
                               "score": 0.1 if t["setting"] == 2 else 0.9, "best_epoch": 1,
                               "epochs_run": 1, "subjects_used": []})
    ran = []
    summary = run_fold(searched.to_dict(), folds[0], data, y, str(work / "resumed-search"),
                       search=search, on_trial=ran.append)
    assert summary["search"]["chosen_setting"] == 2
    assert summary["search"]["scores"] == [0.9, 0.9, 0.1, 0.9]
    assert [t["score"] for t in ran] == [0.9, 0.9, 0.1, 0.9]  # the stored ones, not new runs
    assert not (fold_dir / TRIALS_NAME).exists()  # the fold is finished: search.csv holds them
    assert len(pd.read_csv(fold_dir / "search.csv")) == 4


def test_a_second_result_of_a_fold_is_not_written_twice(cfg: TrainConfig, work: Path) -> None:
    from physioaffect.training.cluster import accept_result
    from physioaffect.training.data import prepare_data
    from physioaffect.training.runner import compute_fold, plan_folds

    resolved = cfg.resolve()
    data = prepare_data(resolved)
    folds, y, _ = plan_folds(resolved, data)
    first = compute_fold(resolved.to_dict(), folds[0], data, y)
    run_dir = work / "twice"
    summaries: dict[str, dict] = {}
    console = Lines()
    assert accept_result(run_dir, first, summaries, console)
    fold_dir = run_dir / "folds" / folds[0]["name"]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in fold_dir.rglob("*")
              if p.is_file()}
    # the late result of an attempt whose node was declared dead: other numbers
    late = dataclasses.replace(first, predictions=first.predictions.assign(y_pred=0),
                               summary={**first.summary, "attempts": 2})
    assert not accept_result(run_dir, late, summaries, console)
    assert "a second result arrived and was dropped" in console.lines[-1]
    # also when the driver was restarted (--resume) and only the folder knows the fold
    assert not accept_result(run_dir, late, {}, console)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in fold_dir.rglob("*")
             if p.is_file()}
    assert after == before
    assert summaries[first.name] == first.summary


def test_nested_search_on_the_cluster(cluster, work: Path) -> None:
    space = {"optim.lr": [1e-3, 1e-2], "model_kwargs.dropout": [0.0, 0.5]}
    cfg6 = TrainConfig(dataset="sim", root=str(work / "sim6"), sim=_sim(6), model="emt",
                       protocol="loso", target="arousal", cache_dir=str(work / "cache"),
                       baselines=["majority"], search=SearchSettings(space=space),
                       **{**TINY, "optim": OptimSettings(batch_size=16, epochs=2, patience=0)})
    console = Lines()
    run = train(_on(cfg6, cluster), out=work / "search-ray", progress=False, console=console)
    grid = [{"optim.lr": lr, "model_kwargs.dropout": p} for lr in space["optim.lr"]
            for p in space["model_kwargs.dropout"]]
    report = (run / "report.md").read_text()
    assert "## Model selection (nested, validation subjects only)" in report
    folds = json.loads((run / "folds.json").read_text())
    assert len(folds) == 6
    for f in folds:
        s = json.loads((run / "folds" / f["name"] / "fold.json").read_text())["search"]
        trials = pd.read_csv(run / "folds" / f["name"] / "search.csv", dtype=str)
        assert len(trials) == 4  # 4 settings x 1 inner fold
        # the chosen setting is the one with the lowest validation loss (recomputed)
        scores = trials.astype({"score": float}).groupby("setting")["score"].mean()
        assert int(scores.idxmin()) == s["chosen_setting"]
        assert s["chosen"] == grid[s["chosen_setting"]]
        # the search never used the test subject: only the outer fold's training and
        # validation subjects
        assert not set(f["test_subjects"]) & set(s["subjects_used"])
        assert set(s["subjects_used"]) == set(f["train_subjects"]) | set(f["val_subjects"])
        assert set(trials["val_subjects"]) == {" ".join(f["val_subjects"])}
        chosen = ", ".join(f"{k}={v}" for k, v in s["chosen"].items())
        assert f"| {f['name']} | {f['test_subjects'][0]} | {chosen} |" in report
    # the same search in-process (serial executor) chooses the same and scores the same
    serial = train(cfg6, out=work / "search-serial", progress=False)
    _same_results(serial, run)
    for f in folds:
        a = json.loads((serial / "folds" / f["name"] / "fold.json").read_text())["search"]
        b = json.loads((run / "folds" / f["name"] / "fold.json").read_text())["search"]
        assert a["chosen"] == b["chosen"]
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-6)


def test_bad_cluster_input_fails_before_any_fold(cluster, cfg: TrainConfig, work: Path) -> None:
    # an address where no Ray head node answers: refused in seconds, before data preparation
    port = _free_port()
    bad = dataclasses.replace(cfg, executor=ExecutorSettings(kind="ray",
                                                             address=f"127.0.0.1:{port}"))
    with pytest.raises(TrainingError, match=rf"127.0.0.1:{port}: no Ray head node answers") as e:
        train(bad, out=work / "bad-address", progress=False)
    assert "\n" not in str(e.value) and not (work / "bad-address").exists()
    # a search space naming a hyper-parameter the model does not have
    unknown = dataclasses.replace(_on(cfg, cluster), search=SearchSettings(
        space={"optim.lr": [1e-3], "model_kwargs.depthh": [1, 2]}))
    with pytest.raises(TrainingError, match=r"search.space: unknown hyper-parameter "
                                            r"'model_kwargs.depthh' \(known: .*dropout") as e:
        train(unknown, out=work / "bad-search", progress=False)
    assert "\n" not in str(e.value) and not (work / "bad-search").exists()
    # a fold's own error in a worker reaches the driver as one line naming the fold; a bug
    # keeps its remote traceback
    from physioaffect.training.cluster import _task_error

    @ray.remote(num_cpus=0, max_retries=0)
    def fails(kind: str) -> None:
        raise TrainingError("inputs.graphs: 9 s sub-windows do not fit a 4 s window") if \
            kind == "ours" else ZeroDivisionError("division by zero")

    for kind, want in (("ours", TrainingError), ("bug", ray.exceptions.RayTaskError)):
        with pytest.raises(Exception) as raised:
            ray.get(fails.remote(kind))
        err = _task_error(ray, "fold", "loso-02", raised.value, cfg)
        assert isinstance(err, want)
        if want is TrainingError:
            assert str(err) == ("fold loso-02: inputs.graphs: 9 s sub-windows do not fit a 4 s "
                                "window")
        else:
            assert "ZeroDivisionError" in str(err) and "File \"" in str(err)  # remote frames
    # a fourth node whose Python cannot import physioaffect. The package is installed for every
    # interpreter on this machine, so the node's workers get a path entry that hides it (a
    # `sitecustomize` refusing the import, as an interpreter without the package would).
    hide = work / "hide-physioaffect"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n\n\nclass _NotInstalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'physioaffect':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n\n\n"
        "sys.meta_path.insert(0, _NotInstalled())\n")
    (work / "node3" / "tmp").mkdir(parents=True)
    env = {"PYTHONPATH": str(hide), "TMPDIR": str(work / "node3" / "tmp"),
           "PHYSIOAFFECT_TEST_RAY_TEMP": cluster.ray_temp}
    node = cluster.add_node(num_cpus=1, env_vars=env)
    try:
        with pytest.raises(TrainingError, match=rf"node .*\(id {node.node_id[:12]}\) cannot "
                                                r"import physioaffect \(ModuleNotFoundError") as e:
            train(_on(cfg, cluster), out=work / "bad-node", progress=False)
        assert "\n" not in str(e.value) and not (work / "bad-node").exists()
    finally:
        cluster.remove_node(node)


def test_a_run_stopped_on_the_driver_resumes(cluster, cfg: TrainConfig, serial_run: Path,
                                             work: Path) -> None:
    """The driver stops (an exception in its loop, as a Ctrl-C would) after one fold is written
    and another's epoch checkpoint reached it; ``resume=True`` skips the written fold and
    continues the other from its checkpoint."""
    seen: list[str] = []

    def stop(line: str) -> None:
        seen.append(line)
        done = [m.split()[1] for m in seen if re.match(r"fold \S+ done", m)]
        ckpt = [m.split()[1].rstrip(":") for m in seen if "checkpoint at the driver" in m]
        if done and set(ckpt) - set(done):
            raise KeyboardInterrupt

    out = work / "stopped"
    with pytest.raises(KeyboardInterrupt):
        train(_on(cfg, cluster), out=out, progress=False, console=Lines(stop))
    assert json.loads((out / "status.json").read_text())["status"] == "running"
    written = {f.parent.name: f.stat().st_mtime_ns for f in (out / "folds").glob("*/fold.json")}
    states = [p.parent.name for p in (out / "folds").glob("*/train_state.pt")
              if not (p.parent / "fold.json").exists()]
    assert written and states, seen
    # the rest runs with every node memory-mapping the windows the driver wrote into the cache
    # folder (the executor may change on --resume); the audit hook refuses any write there
    console = Lines()
    train(_on(cfg, cluster, data="shared_path"), out=out, resume=True, progress=False,
          console=console)
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
    assert {f.parent.name: f.stat().st_mtime_ns for f in (out / "folds").glob("*/fold.json")
            if f.parent.name in written} == written  # finished folds were not run again
    assert any(f"ray: {4 - len(written)} fold(s) as tasks" in m for m in console.lines)
    assert any("windows memory-mapped by each node from the shared cache folder" in m
               for m in console.lines), console.lines
    for name in states:
        summary = json.loads((out / "folds" / name / "fold.json").read_text())
        assert summary["resumed_from_epoch"] >= 1, (name, summary)
    _same_results(serial_run, out)
    assert _violations(cluster.node_dirs) == []


def test_a_killed_node_costs_one_retry_of_its_fold(cluster, cfg: TrainConfig, serial_run: Path,
                                                  work: Path) -> None:
    killed: list[tuple[str, int]] = []
    workers = {n.node_id: n for n in cluster.worker_nodes}

    def kill_on_checkpoint(line: str) -> None:
        # the driver received a fold's epoch checkpoint from a worker node: kill that node
        m = re.match(r"fold (\S+): epoch (\d+) checkpoint at the driver \(node (\w+), attempt 1",
                     line)
        if m and not killed and m.group(3) in workers:
            cluster.remove_node(workers[m.group(3)], allow_graceful=False)
            killed.append((m.group(1), int(m.group(2))))

    console = Lines(kill_on_checkpoint)
    run = train(_on(cfg, cluster, max_retries=1), out=work / "killed", progress=False,
                console=console)
    assert killed, "no epoch checkpoint came from a worker node"
    name, epoch = killed[0]
    summary = json.loads((run / "folds" / name / "fold.json").read_text())
    assert summary["attempts"] == 2, console.lines
    assert summary["resumed_from_epoch"] >= epoch >= 1  # continued, did not start over
    assert any(re.match(rf"fold {name}: attempt 2 on node .* continues from epoch [1-9]", m)
               for m in console.lines), console.lines
    assert sum(m.startswith(f"fold {name} done") for m in console.lines) == 1
    _same_results(serial_run, run)
    report = (run / "report.md").read_text()
    assert f"fold {name}: 2 attempts (a worker or node died)" in report
