"""HDF5 cache of prepared windows, keyed by the configuration, written one subject at a time.

:func:`prepare` validates the folder (the reader does, at construction), then for each subject
reads it, cuts and featurises its windows and writes them to ``<cache>/<dataset>-<key>.h5``
before reading the next one, so memory stays bounded by one subject. The key hashes the
:class:`~physioaffect.datasets.windows.WindowConfig`, the dataset name and the name/size/mtime
of every input file: a second run with the same configuration reuses the file (subjects marked
complete are skipped), any change of configuration or input gives a new file.

The file is written as ``<dataset>-<key>.h5.partial`` and renamed when every subject is in, so
a run killed at any moment never leaves a damaged file under the name readers open. The next
run resumes the partial file when it opens and its complete subjects read back, and otherwise
starts it again with one warning line; a damaged final file (a disk fault, an older version) is
rebuilt the same way.

File layout::

    /                       attrs: dataset, root, key, config (JSON), ch_names, sfreq,
                                   feature_names, fingerprint (JSON), format_version
    /subjects/<id>/X        (n_windows, n_chans, n_bands|n_times)
    /subjects/<id>/X_baseline   optional, same shape
    /subjects/<id>/meta/<column>  one 1-D dataset per metadata column (strings as UTF-8)
                            attrs: complete = True once everything of the subject is written

:class:`WindowDataset` is a ``torch.utils.data.Dataset`` that reads single windows from the file
on demand (the file is opened lazily in each worker process).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from physioaffect.datasets.base import DatasetError, DatasetReader, natural_key
from physioaffect.datasets.windows import WindowConfig, WindowSet, subject_windows
from physioaffect.log import logger, progress_enabled, verbose

FORMAT_VERSION = 1


def cache_path(reader: DatasetReader, cfg: WindowConfig, cache_dir: str | Path) -> Path:
    """Where the windows of ``reader`` under ``cfg`` are (or will be) cached."""
    key = cfg.key(reader.name, str(reader.root.resolve()), reader.fingerprint(), FORMAT_VERSION)
    return Path(cache_dir) / f"{reader.name}-{key}.h5"


@verbose
def prepare(reader: DatasetReader, cfg: WindowConfig, cache_dir: str | Path,
            subjects: Sequence[str] | None = None, progress: bool = True,
            on_subject: Callable[[str, bool], None] | None = None, n_jobs: int = 1, *,
            verbose: bool | str | int | None = None) -> Path:
    """Prepare (or reuse) the cached windows of every subject; returns the HDF5 path.

    Parameters
    ----------
    reader : DatasetReader
        An opened (validated) reader.
    cfg : WindowConfig
    cache_dir : path
        Folder of cache files (created).
    subjects : list of str, optional
        Only these subjects (default all).
    progress : bool
        Show a progress bar (tqdm) on stderr.
    on_subject : callable(subject, reused), optional
        Called after each subject (used by tests and the CLI report).
    n_jobs : int
        Threads for filtering inside one subject (results do not depend on it).
    verbose : bool, str, int or None
        Level of the package logger for this call (:func:`physioaffect.set_log_level`); the
        progress bar is drawn only when INFO messages are shown.
    """
    if cfg.baseline != "none" and not reader.has_baseline:
        raise DatasetError(f"{reader.root}: baseline '{cfg.baseline}' requested but {reader.name} "
                           "trials have no pre-stimulus baseline (use baseline 'none')")
    todo = list(reader.subjects if subjects is None else subjects)
    for s in todo:
        reader._check_subject(s)
    path = cache_path(reader, cfg, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    if path.exists():
        problem = _damage(path)
        if problem is None:
            with _open(path, "r") as h5:
                done = {s for s in h5["subjects"] if h5["subjects"][s].attrs.get("complete")}
            if done.issuperset(todo):
                for s in todo:
                    if on_subject:
                        on_subject(s, True)
                return path
            # more subjects wanted: the file is extended under its partial name, so a kill
            # while it is written never leaves a damaged file under the final name
            os.replace(path, partial)
        else:
            logger.warning(f"{path}: damaged cache file ({problem}); rebuilding it")
            path.unlink()
    if partial.exists():  # left by an interrupted run: resumed if intact, else rebuilt
        problem = _damage(partial)
        if problem is not None:
            logger.warning(f"{partial}: unusable leftover of an interrupted run ({problem}); "
                           "starting again")
            partial.unlink()
    with _open(partial, "a") as h5:
        if "key" not in h5.attrs:
            h5.attrs["dataset"] = reader.name
            h5.attrs["root"] = str(reader.root.resolve())
            h5.attrs["key"] = path.stem.split("-", 1)[1]
            h5.attrs["config"] = json.dumps(cfg.to_dict(), sort_keys=True)
            h5.attrs["fingerprint"] = json.dumps(reader.fingerprint())
            h5.attrs["format_version"] = FORMAT_VERSION
        grp = h5.require_group("subjects")
        bar = _bar(todo, progress, f"{reader.name}: preparing windows")
        for s in bar:
            if s in grp and grp[s].attrs.get("complete", False):
                if on_subject:
                    on_subject(s, True)
                continue
            if s in grp:  # left incomplete by an interrupted run
                del grp[s]
            ws = subject_windows(reader.read_subject(s), cfg, n_jobs)
            _write_subject(grp, s, ws)
            if "ch_names" not in h5.attrs:
                h5.attrs["ch_names"] = json.dumps(ws.ch_names)
                h5.attrs["sfreq"] = ws.sfreq
                h5.attrs["feature_names"] = json.dumps(ws.feature_names)
            h5.flush()
            del ws
            if on_subject:
                on_subject(s, False)
    os.replace(partial, path)  # complete: only now under the name readers look for
    return path


def partial_path(path: str | Path) -> Path:
    """Where :func:`prepare` writes the cache ``path`` until it is complete."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _open(path: Path, mode: str) -> h5py.File:
    """Open a cache file; a damaged one or one another process writes is one line."""
    try:
        return h5py.File(path, mode)
    except OSError as err:
        text = str(err)
        if _locked(err):
            raise _busy(path) from None
        raise DatasetError(f"{path}: damaged cache file ({text.splitlines()[0]}); delete it "
                           "and prepare again") from None


def _locked(err: OSError) -> bool:
    # HDF5 locks a file open for writing: "unable to lock file, errno = 11"
    return "unable to lock file" in str(err).lower()


def _busy(path: Path) -> DatasetError:
    return DatasetError(f"{path}: being written by another process (a prepare or a training "
                        "run with the same settings); wait for it to end")


def _damage(path: Path) -> str | None:
    """Why the cache file ``path`` cannot be used (None: it can).

    Opens it and reads every subject marked complete (its first and last window and its
    metadata columns), so a file cut short by a killed process is found here rather than in
    the middle of training.
    """
    try:
        with h5py.File(path, "r") as h5:
            if "subjects" not in h5 or "key" not in h5.attrs:
                return "no header; not written to the end"
            for s, g in h5["subjects"].items():
                if not g.attrs.get("complete", False):
                    continue
                n = g["X"].shape[0]
                for name in ("X", "X_baseline"):
                    if name in g and n:
                        g[name][0], g[name][n - 1]  # noqa: B018 - reading is the check
                for col in g["meta"].values():
                    if col.shape[0] != n:
                        return f"subject {s}: {col.shape[0]} metadata rows for {n} windows"
                    col[()]  # noqa: B018
    except OSError as err:
        if _locked(err):
            raise _busy(path) from None
        return str(err).splitlines()[0]
    except (KeyError, ValueError, RuntimeError) as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def _write_subject(grp: h5py.Group, s: str, ws: WindowSet) -> None:
    g = grp.create_group(s)
    # Chunks of about 64 KiB: one read for a single window stays small, writing stays fast.
    per_window = max(int(np.prod(ws.X.shape[1:])) * ws.X.dtype.itemsize, 1)
    chunk = (int(min(max(65536 // per_window, 1), max(len(ws.X), 1))), *ws.X.shape[1:])
    g.create_dataset("X", data=ws.X, chunks=chunk if len(ws.X) else None)
    if ws.X_baseline is not None:
        g.create_dataset("X_baseline", data=ws.X_baseline, chunks=chunk if len(ws.X) else None)
    m = g.create_group("meta")
    for col in ws.meta.columns:
        v = ws.meta[col].to_numpy()
        if v.dtype == object:
            m.create_dataset(col, data=v.astype(str).astype(object), dtype=h5py.string_dtype())
        else:
            m.create_dataset(col, data=v)
    # Windows the feature step marked unusable (NaN: flat, clipped, NaN input): counted, kept.
    flat = ws.X.reshape(len(ws.X), -1)
    g.attrs["n_nonfinite"] = int((~np.isfinite(flat).all(axis=1)).sum()) if len(ws.X) else 0
    g.attrs["complete"] = True


def _bar(items: list, enabled: bool, desc: str):
    if not progress_enabled(enabled):
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="subject")


def _read_meta(g: h5py.Group) -> pd.DataFrame:
    cols = {}
    for col in g["meta"]:
        v = g["meta"][col][()]
        if v.dtype == object:
            v = np.array([x.decode() if isinstance(x, bytes) else x for x in v], dtype=object)
        cols[col] = v
    order = [c for c in ("subject", "session", "trial", "stimulus", "onset_s") if c in cols]
    return pd.DataFrame({c: cols[c] for c in order + sorted(set(cols) - set(order))})


def read_info(path: str | Path) -> dict:
    """Attributes of a cache file (dataset, config, channels, subjects, ``n_nonfinite``: windows
    per subject whose features are NaN because the signal was unusable)."""
    with _open(Path(path), "r") as h5:
        info = {k: h5.attrs[k] for k in h5.attrs}
        info["config"] = json.loads(info["config"])
        for k in ("ch_names", "feature_names", "fingerprint"):
            if k in info:
                info[k] = json.loads(info[k])
        info["subjects"] = [s for s in h5["subjects"] if h5["subjects"][s].attrs.get("complete")]
        info["n_nonfinite"] = {s: int(h5["subjects"][s].attrs.get("n_nonfinite", 0))
                               for s in info["subjects"]}
    return info


def read_meta(path: str | Path, subjects: Sequence[str] | None = None) -> pd.DataFrame:
    """Metadata table of all windows in the cache (without loading ``X``)."""
    with _open(Path(path), "r") as h5:
        subs = _subjects(h5, subjects, path)
        return pd.concat([_read_meta(h5["subjects"][s]) for s in subs], ignore_index=True)


def load_windows(path: str | Path, subjects: Sequence[str] | None = None) -> WindowSet:
    """Load the windows of ``subjects`` (default all) into memory as one :class:`WindowSet`."""
    info = read_info(path)
    with _open(Path(path), "r") as h5:
        sets = []
        for s in _subjects(h5, subjects, path):
            g = h5["subjects"][s]
            base = g["X_baseline"][()] if "X_baseline" in g else None
            sets.append(WindowSet(g["X"][()], _read_meta(g), info["ch_names"],
                                  float(info["sfreq"]), info["feature_names"], base))
    return WindowSet.concat(sets)


def _subjects(h5: h5py.File, subjects: Sequence[str] | None, path: str | Path) -> list[str]:
    grp = h5["subjects"]
    done = [s for s in grp if grp[s].attrs.get("complete", False)]
    done.sort(key=natural_key)
    if subjects is None:
        return done
    missing = [s for s in subjects if s not in done]
    if missing:
        raise DatasetError(f"{path}: subject(s) {', '.join(missing)} not in the cache")
    return list(subjects)


class WindowDataset:
    """``torch.utils.data.Dataset`` over a cache file, reading one window per item.

    Parameters
    ----------
    path : path
        Cache file written by :func:`prepare`.
    rows : DataFrame or None
        Rows of :func:`read_meta` to expose (e.g. one fold's training windows); must keep the
        columns ``subject`` and ``_row`` (added by :meth:`index`). Default: all windows.
    targets : array_like or None
        One target per exposed row (e.g. from :func:`physioaffect.datasets.labels.make_labels`).
    baseline : bool
        Also return the window's ``X_baseline``.
    transform : callable, optional
        Applied to the numpy window (e.g. a fitted :class:`~physioaffect.datasets.protocols.FoldNormaliser`).

    Items are ``(x, y)`` tensors (``x`` float32) or ``(x, x_baseline, y)``.
    """

    def __init__(self, path: str | Path, rows: pd.DataFrame | None = None,
                 targets: Sequence | np.ndarray | None = None, baseline: bool = False,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.path = str(path)
        self.rows = self.index(path) if rows is None else rows.reset_index(drop=True)
        if "_row" not in self.rows.columns:
            raise DatasetError("rows: needs the '_row' column of WindowDataset.index(path)")
        self.targets = None if targets is None else np.asarray(targets)
        if self.targets is not None and len(self.targets) != len(self.rows):
            raise DatasetError(f"targets: {len(self.targets)} values for {len(self.rows)} rows")
        self.baseline = baseline
        self.transform = transform
        self._subj = self.rows["subject"].astype(str).to_numpy()
        self._row = self.rows["_row"].to_numpy()
        self._h5: h5py.File | None = None
        self._pid = 0

    @staticmethod
    def index(path: str | Path, subjects: Sequence[str] | None = None) -> pd.DataFrame:
        """Metadata of every window plus ``_row`` (row within its subject's arrays)."""
        meta = read_meta(path, subjects)
        meta["_row"] = meta.groupby("subject", sort=False).cumcount().to_numpy()
        return meta

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        # h5py handles do not survive pickling into DataLoader workers: reopen there.
        d = self.__dict__.copy()
        d["_h5"] = None
        return d

    def __getitem__(self, i: int):
        import torch

        if self._h5 is None or self._pid != os.getpid():
            # HDF5 handles are not fork-safe: a forked DataLoader worker opens its own.
            self._h5 = _open(Path(self.path), "r")
            self._pid = os.getpid()
        g = self._h5["subjects"][self._subj[i]]
        x = g["X"][self._row[i]]
        if self.transform is not None:
            x = self.transform(x)
        out = [torch.as_tensor(np.asarray(x, dtype=np.float32))]
        if self.baseline:
            xb = g["X_baseline"][self._row[i]]
            if self.transform is not None:
                xb = self.transform(xb)
            out.append(torch.as_tensor(np.asarray(xb, dtype=np.float32)))
        if self.targets is not None:
            out.append(torch.as_tensor(self.targets[i]))
        return tuple(out)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
