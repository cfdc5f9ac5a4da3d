"""MATLAB files: cheap completeness check and loading with clear errors.

v5/v7 (SEED, DREAMER, FACED's ratings): ``scipy.io.whosmat`` happily lists the variables of a
truncated file, and ``loadmat`` fails late with ``OSError: could not read bytes``.
:func:`check_mat` walks the top-level element tags (seeking, not reading the data), so a
truncated file is reported before any long work, naming the file.

v7.3 (THU-EP): an HDF5 file behind a 512-byte MATLAB user block (text header, version 0x0200,
endian ``IM``). :func:`check_mat73` checks the header and the HDF5 signature, :func:`open_mat73`
opens it with h5py and :func:`mat73_array` reads one numeric variable as h5py sees it (MATLAB
stores column-major, so an ``a x b x c`` MATLAB array reads as ``(c, b, a)``).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from physioaffect.datasets.errors import DatasetError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

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


def _mat_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        header = f.read(128)
    if len(header) < 128 or header[:6] != b"MATLAB":
        raise DatasetError(f"{path}: not a MATLAB .mat file (no MATLAB header)")
    return header


def is_mat73(path: str | Path) -> bool:
    """Whether ``path`` declares itself a MATLAB v7.3 file (version 0x0200 in its header)."""
    header = _mat_header(Path(path))
    version = header[124:126] if header[126:128] == b"IM" else header[125:123:-1]
    return version == b"\x00\x02"


def check_mat73(path: str | Path) -> None:
    """Raise :class:`DatasetError` unless ``path`` is a MATLAB v7.3 (HDF5) file h5py can open.

    A plain HDF5 file (no MATLAB header) is accepted too: it holds the same variables.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing (expected a MATLAB v7.3 file)")
    with open(path, "rb") as f:
        if f.read(8) == _HDF5_SIGNATURE:
            return  # plain HDF5 without MATLAB's user block (re-saved by h5py): h5py reads it
    if not is_mat73(path):
        raise DatasetError(f"{path}: a MATLAB v5/v7 file; expected v7.3 (HDF5) as distributed")
    with open(path, "rb") as f:
        f.seek(512)  # MATLAB's user block; HDF5 looks for its superblock at 0, 512, 1024 ...
        sig = f.read(8)
    if sig != _HDF5_SIGNATURE:
        raise DatasetError(f"{path}: MATLAB v7.3 header but no HDF5 superblock at byte 512 "
                           "(damaged or truncated file)")


def open_mat73(path: str | Path):
    """Open a MATLAB v7.3 file with h5py (read-only) after :func:`check_mat73`."""
    import h5py

    check_mat73(path)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: cannot read MATLAB v7.3 file ({err})") from err


def mat73_array(f, variable: str, ndim: int, where: str | None = None) -> Any:
    """The h5py dataset of numeric ``variable`` in an open v7.3 file, checked to have ``ndim``.

    Returns the dataset itself (not its values) so callers read only the slices they need.
    """
    import h5py

    where = where or f.filename
    if variable not in f:
        names = ", ".join(k for k in f if not k.startswith("#")) or "none"
        raise DatasetError(f"{where}: no variable {variable!r} (found {names})")
    ds = f[variable]
    cls = ds.attrs.get("MATLAB_class") if isinstance(ds, h5py.Dataset) else None
    cls = cls.decode() if isinstance(cls, bytes) else cls
    numeric = cls in ("double", "single") or (
        cls is None and isinstance(ds, h5py.Dataset) and np.issubdtype(ds.dtype, np.floating))
    if not isinstance(ds, h5py.Dataset) or not numeric or ds.ndim != ndim:
        what = (f"a {cls or 'non-MATLAB'} array of shape {ds.shape}"
                if isinstance(ds, h5py.Dataset) else "a group (struct or cell)")
        raise DatasetError(f"{where}: variable {variable!r} is {what}; expected a "
                           f"{ndim}-dimensional double array")
    return ds
