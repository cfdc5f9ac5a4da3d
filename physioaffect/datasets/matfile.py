"""MATLAB v5/v7 files: cheap completeness check and loading with clear errors.

``scipy.io.whosmat`` happily lists the variables of a truncated file, and ``loadmat`` fails
late with ``OSError: could not read bytes``. :func:`check_mat` walks the top-level element
tags (seeking, not reading the data), so a truncated SEED/DREAMER file is reported before any
long work, naming the file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from physioaffect.datasets.base import DatasetError

_MI_MATRIX = 14
_MI_COMPRESSED = 15


def check_mat(path: str | Path) -> None:
    """Raise :class:`DatasetError` if ``path`` is not a complete MATLAB v5/v7 file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128:
            raise DatasetError(f"{path}: truncated MATLAB file ({size} bytes, no 128-byte header)")
        if header[:6] != b"MATLAB":
            raise DatasetError(f"{path}: not a MATLAB .mat file")
        version = header[124:126]
        endian = header[126:128]
        if endian not in (b"IM", b"MI"):
            raise DatasetError(f"{path}: damaged MATLAB header (endian indicator {endian!r})")
        if version == b"\x00\x02" or version == b"\x02\x00":
            raise DatasetError(f"{path}: MATLAB v7.3 (HDF5) file; expected a v5/v7 file as "
                               "distributed (re-save with -v7)")
        fmt = "<II" if endian == b"IM" else ">II"
        pos = 128
        n = 0
        while pos < size:
            f.seek(pos)
            tag = f.read(8)
            if len(tag) < 8:
                raise DatasetError(f"{path}: truncated MATLAB file (element tag at byte {pos})")
            mtype, nbytes = struct.unpack(fmt, tag)
            if mtype >> 16:  # small data element format: never at top level
                raise DatasetError(f"{path}: damaged MATLAB file (bad element tag at byte {pos})")
            nxt = pos + 8 + nbytes
            if mtype == _MI_MATRIX and nbytes % 8:
                nxt += 8 - nbytes % 8
            if nxt > size:
                raise DatasetError(
                    f"{path}: truncated MATLAB file (variable {n + 1} needs {nxt} bytes, "
                    f"file has {size}); download or copy it again"
                )
            pos = nxt
            n += 1


def load_mat(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``scipy.io.loadmat`` with errors turned into :class:`DatasetError` naming the file."""
    from scipy.io import loadmat

    try:
        return loadmat(path, **kwargs)
    except (OSError, ValueError, TypeError, NotImplementedError, zlib.error) as err:
        raise DatasetError(f"{path}: cannot read MATLAB file ({err})") from err
