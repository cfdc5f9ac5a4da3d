"""Folds as Ray tasks, on this machine or on a Ray cluster (``executor.kind: ray``).

How a run uses the cluster:

- **The driver alone writes the run folder.** A fold task gets its windows through Ray's object
  store (or, with ``executor.data: shared_path``, memory-maps a read-only copy the driver wrote
  once into ``cache_dir``, a folder every node reads at the same path), trains in its own
  temporary folder and *returns* a :class:`~physioaffect.training.fold.FoldResult`
  (metrics, predictions, learning curve, the checkpoint's files as bytes); the driver writes it
  with :func:`~physioaffect.training.rundir.write_fold`, as the serial executor does. Workers
  need no shared disk and no path of the driver (the task's config carries none in
  ``object_store`` mode).
- **Windows per fold where that is smaller.** When the folds together use no more windows than
  one copy of the data (e.g. within-subject folds), each fold task gets only its own rows;
  otherwise (LOSO: every fold uses every subject) one shared copy of the labelled windows goes
  into the object store once, and every node fetches it once.
- **A lost node costs one fold's retry.** Ray reruns a task whose worker process or node died,
  at most ``executor.max_retries`` times (a fold's own error is not retried: it would fail
  again). Each fold task sends its epoch checkpoint after every epoch to a small actor on the
  driver's node (:class:`EpochStates`); a rerun asks it for the newest one and continues from
  there, and the driver keeps the newest as ``folds/<name>/train_state.pt``, so that a run
  killed on the driver continues with ``--resume`` (finished folds skipped) like a serial one.
  The checkpoint of epoch *e* is sent when epoch *e + 1* reports (the engine writes it right
  after reporting), so a rerun repeats at most the epoch its node died in and the one before.
  A fold is written once: a second result of a fold already written is dropped.
- **Checks before any fold:** the address answers, every alive node imports physioaffect of the
  driver's version (a probe task pinned to each node), and some node has the CPUs and GPUs a
  fold asks for (``executor.cpus_per_fold``, ``executor.gpus_per_fold``; by default one GPU per
  fold when the cluster has GPUs).
- **Nested model search** (``search``): each outer fold's trials are Ray tasks; the fold task
  takes their results as arguments (Ray runs it when they are done), chooses the setting and
  trains it. The same functions run in-process with the serial executor.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.errors import PhysioAffectError
from physioaffect.training.config import TrainConfig, TrainingError
from physioaffect.training.data import PreparedData, cache_dir_of
from physioaffect.training.fold import compute_fold
from physioaffect.training.progress import choice_line, fold_line, trial_line
from physioaffect.training.rundir import store_trial, stored_trials, write_bytes, write_fold

__all__ = ["RayExecutor", "accept_result", "connect", "check_address", "probe_nodes",
           "fold_resources", "EpochStates", "FoldInputs", "fold_task", "trial_task",
           "windows_digest", "write_shared_windows", "read_shared_windows"]

#: Seconds between two looks of the driver at the epoch checkpoints that arrived.
POLL_S = 0.25
#: Seconds every node has to answer the probe before any fold starts.
PROBE_TIMEOUT_S = 180.0


def _import_ray():
    try:
        import ray
    except ImportError:
        raise TrainingError("executor ray: Ray is not installed (pip install "
                            "'physioaffect[ray]')") from None
    return ray


def _say(console: Any, msg: str) -> None:
    if console is not None:
        console.print(msg, soft_wrap=True)


# ------------------------------------------------------------------------- before any fold
def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a Ray address where nothing answers, in seconds (``ray.init`` would wait long).

    ``HOST:PORT`` and ``ray://HOST:PORT`` are tried with a TCP connection; ``auto`` and
    ``local`` are left to Ray.
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TrainingError(f"executor.address: expected HOST:PORT of a Ray head node (as "
                            f"printed by `ray start --head`), got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise TrainingError(f"executor.address {address}: no Ray head node answers there "
                            f"({why}); start one with `ray start --head --port {port}` on "
                            f"{host}, or fix --ray-address") from None


def connect(cfg: TrainConfig) -> bool:
    """Connect to the cluster of ``cfg`` (or start a local Ray); False if Ray already was
    connected by the caller (a notebook or test), whose connection is then used."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "ignore_reinit_error": True}
    if cfg.executor.address:
        check_address(cfg.executor.address)
        kw["address"] = cfg.executor.address
    else:
        kw["num_cpus"] = os.cpu_count() or 1
    try:
        ray.init(**kw)
    except Exception as err:  # noqa: BLE001 - connection errors differ by version
        raise TrainingError(f"executor ray: cannot start/connect Ray "
                            f"({str(err).splitlines()[0]})") from None
    return True


def _probe_function():
    """The probe task, defined here so that it is sent by value (a node without physioaffect
    can run it and say so). It imports what fold tasks import, so that its worker process is
    ready for them."""

    def probe() -> dict:
        import platform

        out = {"python": platform.python_version(), "host": platform.node()}
        try:
            import torch

            import physioaffect
            import physioaffect.training.cluster  # noqa: F401 - what fold tasks import

            out.update(physioaffect=physioaffect.__version__, torch=torch.__version__,
                       cuda_devices=torch.cuda.device_count())
        except Exception as err:  # noqa: BLE001 - reported by the driver, whatever it is
            out["error"] = f"{type(err).__name__}: {err}"
        return out

    return probe


def _node_name(node: dict) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (id {node.get('NodeID', '?')[:12]})"


def probe_nodes(timeout_s: float = PROBE_TIMEOUT_S) -> list[dict]:
    """Run a probe on every alive node: it must import physioaffect of the driver's version.

    Returns
    -------
    list of dict
        Per node: ``node_id``, ``address``, ``resources`` (Ray's), ``physioaffect``,
        ``torch``, ``python``, ``cuda_devices``.

    Raises
    ------
    TrainingError
        A node that cannot import physioaffect (or torch), has another version, or does not
        answer within ``timeout_s``.
    """
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from physioaffect import __version__

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        raise TrainingError("executor ray: the cluster has no alive node")
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe_function())
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(): n for n in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if late:
        for r in late:
            ray.cancel(r, force=True)
        raise TrainingError(f"executor ray: node {_node_name(refs[late[0]])} did not run a "
                            f"probe task within {timeout_s:g} s (overloaded, or its workers "
                            "cannot start)")
    out = []
    for r in ready:
        n = refs[r]
        try:
            info = ray.get(r)
        except Exception as err:  # noqa: BLE001 - any failure of the probe means the same
            raise TrainingError(f"executor ray: node {_node_name(n)} cannot run a task "
                                f"({str(err).strip().splitlines()[-1][:200]})") from None
        need = (f"install physioaffect {__version__} and its dependencies (with Python "
                f"{_python()} and Ray {ray.__version__}) on every node")
        if "error" in info:
            raise TrainingError(f"executor ray: node {_node_name(n)} cannot import "
                                f"physioaffect ({info['error']}); {need}")
        if info["physioaffect"] != __version__:
            raise TrainingError(f"executor ray: node {_node_name(n)} has physioaffect "
                                f"{info['physioaffect']}, the driver {__version__}; {need}")
        out.append({**info, "node_id": n["NodeID"], "address": n.get("NodeManagerAddress"),
                    "resources": dict(n.get("Resources") or {})})
    return out


def _python() -> str:
    import platform

    return platform.python_version()


def fold_resources(cfg: TrainConfig, nodes: list[dict]) -> tuple[float, float]:
    """CPUs and GPUs one fold task reserves; refuses what no node can give.

    ``executor.gpus_per_fold`` None: one GPU per fold when the cluster has GPUs and
    ``compute.device`` is not ``cpu``.
    """
    cpus = float(cfg.executor.cpus_per_fold)
    has_gpu = sum(n["resources"].get("GPU", 0.0) for n in nodes) >= 1
    gpus = cfg.executor.gpus_per_fold
    if gpus is None:
        gpus = 1.0 if has_gpu and cfg.compute.device != "cpu" else 0.0
    gpus = float(gpus)
    if cfg.compute.device == "cuda" and gpus == 0:
        raise TrainingError("compute.device: cuda, but the folds get no GPU ("
                            + ("executor.gpus_per_fold is 0" if has_gpu else
                               "the cluster has no GPU") + ")")
    fits = [n for n in nodes if n["resources"].get("CPU", 0.0) >= cpus
            and n["resources"].get("GPU", 0.0) >= gpus]
    if not fits:
        have = ", ".join(f"{n['address']}: {n['resources'].get('CPU', 0):g} CPU "
                         f"{n['resources'].get('GPU', 0):g} GPU" for n in nodes)
        raise TrainingError(f"executor: no node has {cpus:g} CPU and {gpus:g} GPU for a fold "
                            f"({have}); lower executor.cpus_per_fold or "
                            "executor.gpus_per_fold")
    return cpus, gpus


# ------------------------------------------------------------------------- epoch checkpoints
def _epoch_states_class() -> type:
    """:class:`EpochStates`, defined in a function so that Ray sends it by value: its actor
    process starts without importing physioaffect (seconds saved per run)."""

    class EpochStates:
        """Newest epoch checkpoint of every running fold, held on the driver's node.

        A Ray actor (``num_cpus=0``, pinned to the driver's node): fold tasks :meth:`push` their
        checkpoint after every epoch and ask for the newest one when they start (:meth:`begin`,
        which also counts the attempts); the driver :meth:`drain`\\ s what arrived and writes it
        into the run folder. A checkpoint older than the one held (from an attempt whose node was
        declared dead but still ran) never replaces a newer one.
        """

        def __init__(self) -> None:
            self.states: dict[str, tuple[int, bytes, str, int]] = {}
            self.attempts: dict[str, int] = {}
            self.new: dict[str, tuple[int, bytes, str, int]] = {}
            self.starts: list[tuple[str, int, str, int]] = []

        def seed(self, name: str, epoch: int, blob: bytes) -> None:
            """The checkpoint a resumed run found in its folder."""
            self.states[name] = (epoch, blob, "", 0)

        def begin(self, name: str, node: str) -> tuple[int, int, bytes | None]:
            """A fold task starts: its attempt number and the newest checkpoint (epoch, bytes)."""
            attempt = self.attempts.get(name, 0) + 1
            self.attempts[name] = attempt
            held = self.states.get(name)
            epoch = held[0] if held else 0
            self.starts.append((name, attempt, node, epoch))
            return attempt, epoch, held[1] if held else None

        def push(self, name: str, attempt: int, epoch: int, blob: bytes, node: str) -> None:
            held = self.states.get(name)
            if held is None or epoch > held[0]:
                self.states[name] = self.new[name] = (epoch, blob, node, attempt)

        def drain(self) -> dict[str, Any]:
            """Checkpoints and task starts since the last call."""
            out = {"states": self.new, "starts": self.starts}
            self.new, self.starts = {}, []
            return out

        def forget(self, name: str) -> None:
            """The fold is written: its checkpoint is no longer needed."""
            self.states.pop(name, None)
            self.new.pop(name, None)

    return EpochStates


EpochStates = _epoch_states_class()


# ------------------------------------------------------------------------------- the data
def _slim(data: PreparedData, rows: np.ndarray | None) -> PreparedData:
    """``data`` restricted to ``rows`` (all if None), without the driver's cache paths."""
    info = {k: v for k, v in data.info.items() if not str(k).endswith("_cache")}
    if rows is None:
        return dataclasses.replace(data, info=info)

    def take(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[rows])

    raw = take(data.raw)
    eeg_input = raw if data.eeg_input is data.raw else take(data.eeg_input)
    return dataclasses.replace(data, raw=raw, meta=data.meta.iloc[rows].reset_index(drop=True),
                               eeg_input=eeg_input, de=take(data.de),
                               peripheral=take(data.peripheral), face=take(data.face), info=info)


class FoldInputs:
    """Object-store references of the windows each task reads, and its rows in them.

    Folds that use the same windows share one object (the folds of one subject in a
    within-subject protocol). When the distinct sets of windows together are no more than one
    copy of the windows any fold uses, each fold gets only its own set; otherwise (LOSO: every
    fold uses every subject) one shared copy goes into the object store once.

    Parameters
    ----------
    mode : {"object_store", "shared_path"}
        ``shared_path``: no windows are sent (tasks read :func:`write_shared_windows`'s
        folder).
    """

    def __init__(self, data: PreparedData, y: np.ndarray, folds: list[dict], mode: str) -> None:
        self.data, self.y, self.mode = data, y, mode
        sets = {}
        for f in folds:
            rows = self._rows(f)
            sets.setdefault(rows.tobytes(), rows)
        self.sets = list(sets.values())
        self.union = np.unique(np.concatenate(self.sets)) if self.sets else np.zeros(0, int)
        self.per_fold = (mode == "object_store" and len(self.sets) > 1
                         and sum(len(r) for r in self.sets) <= len(self.union))
        self._refs: dict[bytes, tuple] = {}

    @staticmethod
    def _rows(fold: dict) -> np.ndarray:
        return np.unique(np.concatenate([fold["train"], fold["val"], fold["test"]])).astype(int)

    def describe(self) -> str:
        if self.mode == "shared_path":
            return "windows memory-mapped by each node from the shared cache folder"
        if self.per_fold:
            return (f"each fold's own windows through the object store ({len(self.sets)} sets, "
                    f"{self._nbytes(len(self.union)) / 2**20:.0f} MiB in all)")
        return (f"one shared copy of {len(self.union)} windows through the object store "
                f"({self._nbytes(len(self.union)) / 2**20:.0f} MiB)")

    def _nbytes(self, n_rows: int) -> int:
        d = self.data
        arrays = [d.raw, d.de, d.peripheral, d.face]
        if d.eeg_input is not d.raw:
            arrays.append(d.eeg_input)
        total = sum(a.nbytes for a in arrays if a is not None)
        return int(total * n_rows / max(len(d.meta), 1))

    def for_fold(self, fold: dict):
        """``(data_ref, y_ref, remap)``: what a fold's tasks read, and ``remap(rows)`` to
        turn the fold's row indices into indices of that data (put on first use)."""
        import ray

        if self.mode == "shared_path":
            if b"" not in self._refs:
                self._refs[b""] = (None, ray.put(self.y))
            return (*self._refs[b""], lambda r: np.asarray(r, dtype=int))
        rows = self._rows(fold) if self.per_fold else self.union
        key = rows.tobytes()
        if key not in self._refs:
            whole = len(rows) == len(self.data.meta)
            self._refs[key] = (ray.put(_slim(self.data, None if whole else rows)),
                               ray.put(self.y if whole else self.y[rows]))
        return (*self._refs[key],
                lambda r, rows=rows: np.searchsorted(rows, np.asarray(r, dtype=int)))


def windows_digest(data: PreparedData) -> str:
    """A digest of which windows ``data`` holds, in order (subject, session, trial, onset)."""
    import hashlib

    cols = data.meta[["subject", "session", "trial", "onset_s"]].astype(str)
    return hashlib.sha256(cols.to_csv(index=False).encode()).hexdigest()[:16]


_ARRAYS = ("raw", "eeg_input", "de", "peripheral", "face")


def write_shared_windows(data: PreparedData, cache_dir: str | Path) -> Path:
    """Write the prepared windows once under ``cache_dir/shared/`` for every node to read.

    One ``.npy`` file per array and per ``meta`` column (no pickle) and ``manifest.json``,
    written into a temporary folder and renamed, so that a reader never sees half of it. An
    existing folder of the same windows is reused.

    Returns
    -------
    Path
        The folder (absolute), read by :func:`read_shared_windows`.
    """
    import hashlib
    import json
    import shutil

    shapes = {k: list(getattr(data, k).shape) for k in _ARRAYS if getattr(data, k) is not None}
    key = hashlib.sha256(json.dumps(
        [windows_digest(data), shapes, data.eeg_kind, data.info.get("window_cache", ""),
         data.info.get("derived_cache", "")], sort_keys=True).encode()).hexdigest()[:16]
    folder = (Path(cache_dir) / "shared" / key).resolve()
    if (folder / "manifest.json").is_file():
        return folder
    tmp = folder.with_name(f"{key}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays = []
    for name in _ARRAYS:
        a = getattr(data, name)
        if a is None or (name == "eeg_input" and a is data.raw):
            continue
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
        arrays.append(name)
    columns = []
    for i, col in enumerate(data.meta.columns):
        v = data.meta[col].to_numpy()
        text = v.dtype == object
        np.save(tmp / f"meta-{i}.npy", v.astype(str) if text else v, allow_pickle=False)
        columns.append({"name": str(col), "text": bool(text)})
    info = {k: v for k, v in data.info.items() if not str(k).endswith("_cache")}
    (tmp / "manifest.json").write_text(json.dumps({
        "arrays": arrays, "eeg_input_is_raw": data.eeg_input is data.raw and data.raw is not None,
        "meta": columns, "ch_names": list(data.ch_names), "sfreq": float(data.sfreq),
        "eeg_kind": data.eeg_kind, "peripheral_names": list(data.peripheral_names),
        "peripheral_signals": list(data.peripheral_signals), "face_names": list(data.face_names),
        "info": info, "windows_digest": windows_digest(data)}, default=float) + "\n")
    try:
        tmp.rename(folder)
    except OSError:  # another run wrote it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


_SHARED: dict[str, PreparedData] = {}


def read_shared_windows(folder: str | Path, digest: str) -> PreparedData:
    """The windows :func:`write_shared_windows` wrote, memory-mapped read-only (once per
    process).

    Raises
    ------
    TrainingError
        The folder is missing on this node or holds other windows than the driver's.
    """
    import json

    import pandas as pd
    import ray

    folder = Path(folder)
    if str(folder) in _SHARED:
        return _SHARED[str(folder)]
    node = ray.get_runtime_context().get_node_id()[:12]
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r", allow_pickle=False)
                  for k in manifest["arrays"]}
        meta = pd.DataFrame({c["name"]: (np.load(folder / f"meta-{i}.npy", allow_pickle=False)
                                         .astype(object) if c["text"] else
                                         np.load(folder / f"meta-{i}.npy", allow_pickle=False))
                             for i, c in enumerate(manifest["meta"])})
    except (OSError, ValueError, KeyError) as err:
        raise TrainingError(f"executor.data shared_path: node {node} cannot read the windows at "
                            f"{folder} ({err}); cache_dir must be a folder every node reads "
                            "at the same path, or use executor.data object_store") from None
    if "eeg_input" not in arrays and manifest["eeg_input_is_raw"]:
        arrays["eeg_input"] = arrays.get("raw")
    data = PreparedData(meta=meta, ch_names=manifest["ch_names"], sfreq=manifest["sfreq"],
                        eeg_kind=manifest["eeg_kind"],
                        peripheral_names=manifest["peripheral_names"],
                        peripheral_signals=manifest["peripheral_signals"],
                        face_names=manifest["face_names"], info=manifest["info"],
                        **{k: arrays.get(k) for k in _ARRAYS})
    if windows_digest(data) != digest:
        raise TrainingError(f"executor.data shared_path: node {node} reads other windows at "
                            f"{folder} than the driver wrote; use executor.data object_store")
    _SHARED.clear()
    _SHARED[str(folder)] = data
    return data


# -------------------------------------------------------------------------------- tasks
def _task_config(cfg_dict: dict) -> dict:
    """The config a task runs: on a node without a GPU for it, ``device: auto`` means CPU."""
    import ray

    if not ray.get_gpu_ids() and (cfg_dict.get("compute") or {}).get("device") == "auto":
        cfg_dict = {**cfg_dict, "compute": {**cfg_dict["compute"], "device": "cpu"}}
    return cfg_dict


def fold_task(cfg_dict: dict, fold: dict, data: PreparedData | None, y: np.ndarray,
              states: Any, search: dict | None, *trials: dict):
    """One fold as a Ray task: continue from the newest epoch checkpoint, send each epoch's,
    return the :class:`~physioaffect.training.fold.FoldResult` (nothing is written outside
    this task's temporary folder)."""
    import ray

    cfg_dict = _task_config(cfg_dict)
    if data is None:
        data = read_shared_windows(fold["shared_windows"], fold["windows_digest"])
    node = ray.get_runtime_context().get_node_id()
    attempt, epoch, blob = ray.get(states.begin.remote(fold["name"], node))
    chosen = None
    if search is not None:
        from physioaffect.training.search import choose

        cfg_dict, chosen = choose(cfg_dict, search, list(trials))
    with tempfile.TemporaryDirectory(prefix="physioaffect-fold-") as tmp:
        state_path = Path(tmp) / "train_state.pt"
        if blob is not None:
            state_path.write_bytes(blob)
        sent = [epoch]

        def on_epoch(row: dict) -> None:
            # the engine writes epoch e's checkpoint right after reporting epoch e: the file
            # on disk now is that of epoch e - 1
            ready = int(row["epoch"]) - 1
            if not row.get("final") and ready > sent[0] and state_path.exists():
                states.push.remote(fold["name"], attempt, ready, state_path.read_bytes(), node)
                sent[0] = ready

        result = compute_fold(cfg_dict, fold, data, y, state_path=state_path,
                              progress=on_epoch, search=chosen)
    result.summary.update(attempts=attempt, node=node)
    return result


def trial_task(cfg_dict: dict, trial: dict, data: PreparedData | None, y: np.ndarray) -> dict:
    """One search trial as a Ray task."""
    from physioaffect.training.search import run_trial

    cfg_dict = _task_config(cfg_dict)
    if data is None:
        data = read_shared_windows(trial["shared_windows"], trial["windows_digest"])
    return run_trial(cfg_dict, trial, data, y)


# ------------------------------------------------------------------------------ the driver
def _worker_config(cfg_dict: dict) -> dict:
    """The config tasks get: no path of the driver (tasks read no dataset folder)."""
    out = dict(cfg_dict)
    out["root"], out["cache_dir"] = "", None
    out["face"] = {**out.get("face", {}), "folder": None, "trial_order": None}
    return out


def _task_error(ray, kind: str, name: str, err: BaseException, cfg: TrainConfig) -> Exception:
    """The error to raise for a failed task: the fold's own (one line), a lost node (one
    line), or a bug (the original, with its remote traceback)."""
    cause = getattr(err, "cause", None)
    what = f"fold {name}" if kind == "fold" else f"a search trial of fold {name}"
    if isinstance(cause, PhysioAffectError):
        return TrainingError(f"{what}: {str(cause).splitlines()[0]}")
    if isinstance(err, ray.exceptions.RayTaskError):
        return err
    last = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return TrainingError(f"{what} lost its worker or node {cfg.executor.max_retries + 1} "
                         f"time(s) (executor.max_retries {cfg.executor.max_retries}): "
                         f"{type(err).__name__}: {last}")


def _read_state(path: Path) -> int:
    """Epoch of a fold's epoch checkpoint in the run folder (the driver seeds reruns with it)."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception as err:  # noqa: BLE001 - torch raises many types for unsafe/bad files
        msg = (str(err).splitlines()[0] if str(err) else type(err).__name__)[:120]
        raise TrainingError(f"{path}: not a safe epoch checkpoint of this fold ({msg}); delete "
                            "it to restart the fold from epoch 1") from None


class RayExecutor:
    """The Ray side of a run: connected and checked when made, folds run by :meth:`run`.

    Making one connects to ``executor.address`` (or starts a local Ray), probes every node and
    checks the resources a fold asks for, so that a bad cluster fails in one line before the
    run folder exists. :meth:`run` disconnects at its end (if it connected).
    """

    def __init__(self, cfg: TrainConfig, console: Any = None) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.cfg, self.console = cfg, console
        self.ray = ray = _import_ray()
        self.started = connect(cfg)
        self.states = None
        try:
            # the checkpoint actor starts on the driver's node while the nodes are probed
            here = ray.get_runtime_context().get_node_id()
            self.states = ray.remote(num_cpus=0, max_restarts=0)(EpochStates).options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
            self.nodes = probe_nodes()
            self.cpus, self.gpus = fold_resources(cfg, self.nodes)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.states is not None:
            self.ray.kill(self.states)
            self.states = None
        if self.started:
            self.ray.shutdown()
            self.started = False

    def run(self, cfg_dict: dict, folds: list[dict], data: PreparedData, y: np.ndarray,
            run_dir: Path, searches: dict[str, dict] | None = None) -> list[dict]:
        """Run every unfinished fold as a Ray task; the driver writes each result.

        Returns the summaries of all folds (finished ones read from the run folder).
        """
        try:
            return self._run(cfg_dict, folds, data, y, Path(run_dir), searches or {})
        finally:
            self.close()

    def _run(self, cfg_dict: dict, folds: list[dict], data: PreparedData, y: np.ndarray,
             run_dir: Path, searches: dict[str, dict]) -> list[dict]:
        import json

        ray, cfg, console, states = self.ray, self.cfg, self.console, self.states
        summaries: dict[str, dict] = {}
        todo = []
        for f in folds:
            done = run_dir / "folds" / f["name"] / "fold.json"
            if done.exists():
                summaries[f["name"]] = json.loads(done.read_text())
            else:
                todo.append(f)
        if not todo:
            return [summaries[f["name"]] for f in folds]
        pending: dict[Any, tuple[str, str]] = {}
        try:
            seeded = []  # a resumed run: folds stopped mid-way continue from their checkpoint
            for f in todo:
                state = run_dir / "folds" / f["name"] / "train_state.pt"
                if state.exists():
                    seeded.append(states.seed.remote(f["name"], _read_state(state),
                                                     state.read_bytes()))
            ray.get(seeded)  # held before any fold task asks for it
            retry = {"max_retries": cfg.executor.max_retries, "retry_exceptions": False}
            res = {"num_cpus": self.cpus, "num_gpus": self.gpus}
            fold_remote = ray.remote(fold_task).options(**res, **retry)
            trial_remote = ray.remote(trial_task).options(**res, **retry)
            inputs = FoldInputs(data, y, folds, cfg.executor.data)
            worker_cfg = _worker_config(cfg_dict)
            digest = {"windows_digest": windows_digest(data)}
            if cfg.executor.data == "shared_path":
                digest["shared_windows"] = str(write_shared_windows(data, cache_dir_of(cfg)))
            n_trials = 0
            for f in todo:
                data_ref, y_ref, remap = inputs.for_fold(f)
                search = searches.get(f["name"])
                known = stored_trials(run_dir / "folds" / f["name"])  # a resumed run's
                trial_refs = []  # finished trials (dicts) and Ray tasks for the others
                for t in search["trials"] if search else []:
                    if (t["setting"], t["inner"]) in known:
                        trial_refs.append(known[(t["setting"], t["inner"])])
                        continue
                    r = trial_remote.remote(worker_cfg, {**t, **digest, "train": remap(t["train"]),
                                                         "val": remap(t["val"])}, data_ref, y_ref)
                    trial_refs.append(r)
                    pending[r] = ("trial", f["name"])
                    n_trials += 1
                spec = None if search is None else {k: v for k, v in search.items()
                                                    if k != "trials"}
                sub = {**f, **digest, **{k: remap(f[k]) for k in ("train", "val", "test")}}
                pending[fold_remote.remote(worker_cfg, sub, data_ref, y_ref, states, spec,
                                           *trial_refs)] = ("fold", f["name"])
            trials_text = f" and {n_trials} search trials" if n_trials else ""
            gpu_text = f", {self.gpus:g} GPU" if self.gpus else ""
            _say(console, f"ray: {len(todo)} fold(s){trials_text} as tasks on {len(self.nodes)} "
                          f"node(s) ({self.cpus:g} CPU{gpu_text} each, up to "
                          f"{cfg.executor.max_retries} retries); {inputs.describe()}")
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                _drain(ray, states, run_dir, summaries, console)
                for r in ready:
                    kind, name = pending.pop(r)
                    try:
                        value = ray.get(r)
                    except Exception as err:  # noqa: BLE001 - sorted out by _task_error
                        raise _task_error(ray, kind, name, err, cfg) from None
                    if kind == "trial":
                        if name not in summaries:
                            store_trial(run_dir / "folds" / name, value)
                        _say(console, trial_line(value))
                        continue
                    if not accept_result(run_dir, value, summaries, console):
                        continue
                    states.forget.remote(name)
                    if value.summary.get("search"):
                        _say(console, choice_line(value.summary))
                    _say(console, fold_line(cfg, value.summary)
                         + _attempts_note(value.summary) + f" ({len(summaries)}/{len(folds)})")
            return [summaries[f["name"]] for f in folds]
        finally:
            for r in pending:  # an error or an interrupt: nothing keeps running for this run
                try:
                    ray.cancel(r)  # interrupts the task; its worker process lives on
                except Exception:  # noqa: BLE001, S110 - the task may be gone already
                    pass


def accept_result(run_dir: Path, result: Any, summaries: dict[str, dict],
                  console: Any = None) -> bool:
    """Write a fold result into the run folder once (the driver's only way to write a fold).

    A second result of a fold already written in this run (``summaries``) or found finished
    in the folder is dropped with a line, and nothing in the folder changes.
    """
    if result.name in summaries or not write_fold(run_dir, result):
        _say(console, f"fold {result.name}: a second result arrived and was dropped (the fold is "
                      "already written)")
        return False
    summaries[result.name] = result.summary
    return True


def _attempts_note(summary: dict) -> str:
    n = int(summary.get("attempts", 1))
    if n <= 1:
        return ""
    return (f" after {n} attempts (resumed from epoch {summary.get('resumed_from_epoch', 0)})")


def _drain(ray, states: Any, run_dir: Path, summaries: dict, console: Any) -> None:
    """Write the epoch checkpoints that reached the driver; report reruns."""
    got = ray.get(states.drain.remote())
    for name, attempt, node, epoch in got["starts"]:
        if attempt > 1:
            _say(console, f"fold {name}: attempt {attempt} on node {node[:12]} (a worker or node "
                          f"of the previous attempt died); continues from epoch {epoch}")
    for name, (epoch, blob, node, attempt) in got["states"].items():
        if name in summaries:
            continue  # the fold is written; a late checkpoint must not come back
        fold_dir = run_dir / "folds" / name
        fold_dir.mkdir(parents=True, exist_ok=True)
        write_bytes(fold_dir / "train_state.pt", blob)
        _say(console, f"fold {name}: epoch {epoch} checkpoint at the driver (node {node}, "
                      f"attempt {attempt})")
