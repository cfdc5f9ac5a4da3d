"""BIDS physiological recordings: ``_physio.tsv.gz`` + ``_physio.json``, written and read back.

The export (:func:`physioaffect.recording.export_bids`) writes every non-EEG stream of a
session into such pairs (:func:`write_physio`), following the BIDS specification's
"Physiological recordings" (BIDS 1.10):

- ``_physio.tsv.gz``: one row per sample, one column per channel, no header, tab-separated,
  ``n/a`` for missing values, gzip with a reproducible header (modification time 0 and no
  file name, as the validator asks: the same data give the same bytes);
- ``_physio.json``: ``SamplingFrequency`` (Hz), ``StartTime`` (s, relative to the first EEG
  sample), ``Columns`` (required), ``PhysioType: "generic"`` and ``TaskName`` (recommended),
  the device (``Manufacturer``, ``ManufacturersModelName``, ``DeviceSerialNumber``), and per
  column ``Units`` (as BIDS spells them, ``n/a`` where the device states none) and a
  ``Description`` that starts with the channel's MNE type (``"ecg channel from stream ..."``).

mne-bids (0.20) finds and parses these files (``mne_bids.find_matching_paths(root,
suffixes="physio", extensions=".tsv.gz")``) but has no reader for generic physio recordings;
:func:`read_physio` reads one back as an ``mne.io.RawArray`` (SI units and channel types as
:func:`~physioaffect.recording.to_raw` gives them), the columns in their recorded units with
:func:`read_physio_table`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.recording.errors import RecordingError

__all__ = ["read_physio", "read_physio_table", "write_physio"]


def write_physio(tsv: Path, blocks: Iterator[np.ndarray], sidecar: Path,
                 meta: dict[str, Any]) -> None:
    """Write one physio pair: ``blocks`` of ``(n_samples, n_columns)`` rows and the sidecar.

    The gzip header carries no modification time and no file name, so the bytes depend on the
    data only.
    """
    with open(tsv, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as fh:
        for block in blocks:
            np.savetxt(fh, block, delimiter="\t", fmt="%.7g")
    sidecar.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _sidecar_of(path: Path) -> Path:
    name = path.name
    for ext in (".tsv.gz", ".json"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + ".json")
    raise RecordingError(f"{path}: not a BIDS physio file (expected *_physio.tsv.gz or "
                         "*_physio.json)")


def read_physio_table(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The samples ``(n_samples, n_columns)`` in their recorded units and the sidecar.

    Parameters
    ----------
    path : path
        The ``_physio.tsv.gz`` file or its ``_physio.json`` sidecar.

    Raises
    ------
    RecordingError
        A file is missing or unreadable, or the table does not have the sidecar's columns.
    """
    path = Path(path)
    side = _sidecar_of(path)
    tsv = side.with_name(side.name[: -len(".json")] + ".tsv.gz")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RecordingError(f"{side}: cannot read the physio sidecar ({err})") from None
    for key in ("SamplingFrequency", "StartTime", "Columns"):
        if key not in meta:
            raise RecordingError(f"{side}: field {key!r} missing (required by BIDS)")
    cols = list(meta["Columns"])
    try:
        with gzip.open(tsv, "rt", encoding="utf-8") as fh:
            data = np.loadtxt(fh, delimiter="\t", ndmin=2,
                              converters=lambda s: np.nan if s.strip() == "n/a" else float(s))
    except (OSError, ValueError, EOFError) as err:
        raise RecordingError(f"{tsv}: cannot read the physio table ({err})") from None
    if data.size and data.shape[1] != len(cols):
        raise RecordingError(f"{tsv}: {data.shape[1]} columns, the sidecar lists {len(cols)}")
    return data.reshape(-1, len(cols)), meta


def read_physio(path: str | os.PathLike[str], verbose: str | bool | None = "error"):
    """A BIDS physio file as an ``mne.io.RawArray``.

    Channel types come from each column's ``Description`` (its first word, as written by the
    export; ``misc`` otherwise) and its ``Units``, through
    :func:`~physioaffect.recording.raw.mne_channel`: volts, siemens and degrees Celsius in SI
    units, columns without a unit ``misc`` (``resp`` for respiration) with FIFF unit "none".
    ``raw.info["description"]`` states the sidecar's ``StartTime`` (s after the first sample of
    the recording's EEG).
    """
    import mne

    from physioaffect.recording.raw import mne_channel
    from physioaffect.streams.units import unit_symbol

    data, meta = read_physio_table(path)
    cols = [str(c) for c in meta["Columns"]]
    types, units, factors = [], [], []
    for c in cols:
        col = meta.get(c) if isinstance(meta.get(c), dict) else {}
        first = str(col.get("Description", "")).split(" ", 1)[0].lower()
        unit = str(col.get("Units", "n/a")).replace("oC", "°C")
        kind, code, factor = mne_channel(first if first in mne.io.get_channel_type_constants()
                                         else "misc", unit)
        types.append(kind)
        units.append((code, unit))
        factors.append(factor)
    info = mne.create_info(cols, float(meta["SamplingFrequency"]), types, verbose=verbose)
    with info._unlock():
        for ch, (code, _) in zip(info["chs"], units, strict=True):
            ch["unit"] = code
        info["description"] = (f"BIDS physio {Path(path).name}: StartTime "
                               f"{float(meta['StartTime']):g} s")
    raw = mne.io.RawArray(data.T * np.asarray(factors)[:, None], info, verbose=verbose)
    raw._orig_units = {c: unit_symbol(u, "n/a") for c, (_, u) in zip(cols, units, strict=True)}
    return raw
