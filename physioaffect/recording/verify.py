"""Checking a session file against what was written into it.

Every dataset of a session file carries HDF5's Fletcher-32 filter (a damaged chunk fails
to read, in any HDF5 reader) and, once the file is complete, a ``crc32`` attribute: the
CRC-32 of its whole content as written (see :mod:`physioaffect.recording.writer`).
:func:`verify_session` reads everything back, chunk by chunk, and reports what does not
match, with the rows that cannot be read; ``recover`` uses the same block reader to
salvage the intact rows of a damaged file that has no journal left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from physioaffect.recording.format import content_crc, open_session_h5

#: Datasets of a stream group, in the order they are checked.
STREAM_DATASETS = ("timestamps", "samples", "escaped_rows", "gaps", "dropped")


@dataclass
class Damage:
    """Part of a session file that does not read back as written."""

    stream: str
    dataset: str
    rows: tuple[int, int] | None  # [first, last + 1) unreadable rows; None: not located
    reason: str

    def __str__(self) -> str:
        where = f"stream {self.stream!r} {self.dataset}" if self.stream else self.dataset
        if self.rows is not None:
            where += f" rows {self.rows[0]}-{self.rows[1] - 1}"
        return f"{where} {self.reason}"


def read_blocks(ds: h5py.Dataset, rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """``(first, stop, values)`` for consecutive blocks of ``rows`` rows (default: the
    dataset's chunk rows); ``values`` is None where HDF5 cannot read the block."""
    n = ds.shape[0]
    step = rows or (ds.chunks[0] if ds.chunks else n) or 1
    for a in range(0, n, step):
        b = min(n, a + step)
        try:
            yield a, b, ds[a:b]
        except (OSError, RuntimeError, ValueError, KeyError):
            yield a, b, None


def check_dataset(ds: h5py.Dataset, stream: str, name: str) -> list[Damage]:
    """Read one dataset completely; unreadable blocks and a CRC-32 mismatch."""
    out: list[Damage] = []
    crc = 0
    for a, b, values in read_blocks(ds):
        if values is None:
            if out and out[-1].rows is not None and out[-1].rows[1] == a:
                out[-1].rows = (out[-1].rows[0], b)
            else:
                out.append(Damage(stream, name, (a, b), "cannot be read (checksum or "
                                                        "filter failure)"))
            continue
        crc = content_crc(ds, crc, values)
    expected = ds.attrs.get("crc32")
    if not out and expected is not None and int(expected) != crc:
        out.append(Damage(stream, name, None, "does not match its CRC-32"))
    return out


def find_damage(f: h5py.File) -> list[Damage]:
    """Every part of an open session file that does not read back as written."""
    out: list[Damage] = []
    if "events" in f:
        out += _guarded(lambda: check_dataset(f["events"], "", "events"), "", "events")
    try:
        keys = list(f["streams"])
    except (OSError, RuntimeError, KeyError) as err:
        return [*out, Damage("", "streams", None, f"cannot be listed ({_first_line(err)})")]
    for key in keys:
        try:
            g = f["streams"][key]
            name = str(g.attrs.get("name", key))
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
        except (OSError, RuntimeError, KeyError) as err:
            out.append(Damage(key, "group", None, f"cannot be opened ({_first_line(err)})"))
            continue
        for ds_name in STREAM_DATASETS:
            if ds_name not in ("escaped_rows",) or ds_name in g:
                out += _guarded(lambda g=g, n=ds_name, s=name: check_dataset(g[n], s, n),
                                name, ds_name)
    return out


def _guarded(fn, stream: str, name: str) -> list[Damage]:
    try:
        return fn()
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        return [Damage(stream, name, None, f"cannot be opened ({_first_line(err)})")]


def _first_line(err: Exception) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def verify_session(path: str | os.PathLike[str]) -> list[Damage]:
    """Read a session file completely and compare it with its checksums.

    Returns
    -------
    list of Damage
        Empty when everything reads back as written. Files written before checksums
        existed are checked as far as HDF5's own filters go.

    Raises
    ------
    SessionFileError
        The file cannot be opened as a session file at all.
    """
    with open_session_h5(Path(path)) as f:
        return find_damage(f)
