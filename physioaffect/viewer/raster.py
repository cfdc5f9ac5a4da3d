"""Multichannel traces drawn at pixel resolution.

Drawing every sample of 64 channels at 1 kHz through a ``QPainterPath`` costs the rasteriser
far more than a frame (about 12.5 frames/s on a 2-core machine). A screen column can show
only the range of the samples that fall in it, so each channel is reduced to its minimum and
maximum per pixel column (the "peak" decimation of pyqtgraph), and the vertical spans are
filled straight into an ARGB image with numpy (a difference array and one cumulative sum).
Each column's span is widened to meet the neighbouring column so that a trace stays
connected. The image is then blitted into the plot once per frame: the cost depends on the
plot's pixel size, not on the sampling rate or the number of channels.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

__all__ = ["RasterTraces", "minmax_columns", "rasterize"]


def minmax_columns(data: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of each channel in ``n_cols`` equal runs of samples.

    Parameters
    ----------
    data : ndarray, shape (n_samples, n_channels)
        Oldest sample first; columns hold ``n_samples / n_cols`` samples (rounded down or up).
    n_cols : int
        Pixel columns.

    Returns
    -------
    lo, hi : ndarray, shape (n_cols, n_channels)
        NaN for columns without samples (fewer samples than columns).
    """
    n, c = data.shape
    if n == 0:
        nan = np.full((n_cols, c), np.nan, dtype=np.float32)
        return nan, nan.copy()
    if n >= n_cols:
        # column j holds samples [j*n//n_cols, (j+1)*n//n_cols): every sample is shown once
        edges = (np.arange(n_cols) * n) // n_cols
        return np.minimum.reduceat(data, edges, axis=0), np.maximum.reduceat(data, edges, axis=0)
    # fewer samples than columns: each sample covers a few columns (right-aligned)
    idx = np.floor(np.arange(n_cols) * n / n_cols).astype(int)
    v = data[idx]
    return v, v.copy()


def rasterize(
    lo: np.ndarray, hi: np.ndarray, offsets: np.ndarray, gains: np.ndarray, height: int,
    y_range: tuple[float, float], colors: np.ndarray, background: int = 0,
) -> np.ndarray:
    """Fill the vertical span of every channel in every column.

    Parameters
    ----------
    lo, hi : ndarray, shape (n_cols, n_channels)
        Per-column extremes in signal units (NaN: nothing drawn).
    offsets : ndarray, shape (n_channels,)
        Baseline of each channel in plot units.
    gains : ndarray, shape (n_channels,)
        Plot units per signal unit, per channel.
    height : int
        Image height in pixels.
    y_range : (float, float)
        Plot units at the bottom and the top of the image.
    colors : ndarray of uint32, shape (n_channels,)
        ARGB colour per channel; a pixel takes the colour of the lane (nearest channel
        baseline) it lies in, so all channels are drawn in one pass.
    background : int
        ARGB of empty pixels (0: transparent).

    Returns
    -------
    ndarray of uint32, shape (height, n_cols)
        Row 0 is the bottom of the plot (``y_range[0]``), as a view box draws an image.
    """
    n_cols, n_ch = lo.shape
    y0, y1 = y_range
    scale = height / (y1 - y0)
    a = lo * gains + offsets
    b = hi * gains + offsets
    # connect neighbouring columns: each span reaches the previous column's range
    pa = np.vstack([a[:1], a[:-1]])
    pb = np.vstack([b[:1], b[:-1]])
    a2 = np.fmin(a, pb)
    b2 = np.fmax(b, pa)
    first = np.floor((a2 - y0) * scale)  # image row of the span's minimum (row 0: bottom)
    last = np.floor((b2 - y0) * scale)
    valid = np.isfinite(first) & np.isfinite(last) & (last >= 0) & (first <= height - 1)
    first = np.clip(np.nan_to_num(first), 0, height - 1).astype(np.int64)
    last = np.clip(np.nan_to_num(last), 0, height - 1).astype(np.int64)
    cols = np.broadcast_to(np.arange(n_cols)[:, None], (n_cols, n_ch))
    size = (height + 1) * n_cols
    f, la, cc = first[valid], last[valid], cols[valid]
    acc = np.bincount(f * n_cols + cc, minlength=size)
    acc -= np.bincount((la + 1) * n_cols + cc, minlength=size)
    cover = np.cumsum(acc.reshape(height + 1, n_cols)[:-1], axis=0, dtype=np.int32) > 0
    # colour of a row: that of the channel whose baseline is nearest (one pass for all
    # channels; an excursion into the next lane takes that lane's colour)
    row_y = y0 + (np.arange(height) + 0.5) / scale
    order = np.argsort(offsets)
    so = np.asarray(offsets, dtype=np.float64)[order]
    mid = (so[1:] + so[:-1]) / 2
    lane = order[np.searchsorted(mid, row_y)]
    row_color = np.asarray(colors, dtype=np.uint32)[lane]
    return np.where(cover, row_color[:, None], np.uint32(background))


class RasterTraces(pg.GraphicsObject):
    """A plot item that shows many channels stacked, decimated to the pixel grid.

    Channel ``i`` is drawn around ``y = n_visible - 1 - rank`` (first channel on top); set the
    data with :meth:`set_data` and the item redraws at the view's current pixel size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._image: QtGui.QImage | None = None
        self._buf: np.ndarray | None = None
        self._rect = QtCore.QRectF(0, 0, 1, 1)

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt API
        return self._rect

    def paint(self, painter: QtGui.QPainter, *args: object) -> None:
        if self._image is not None:
            painter.drawImage(self._rect, self._image)

    def set_data(
        self, data: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float],
        offsets: np.ndarray, gains: np.ndarray, colors: np.ndarray, size: tuple[int, int],
        x_fill: float = 1.0, centre: np.ndarray | None = None,
    ) -> None:
        """Redraw from samples.

        Parameters
        ----------
        data : ndarray, shape (n_samples, n_channels)
            Visible channels, oldest first, spanning the right ``x_fill`` part of ``x_range``.
        x_range, y_range : (float, float)
            Plot coordinates covered by the image.
        offsets, gains, colors
            As :func:`rasterize`.
        size : (int, int)
            Width and height of the image in pixels (the view's size on screen).
        x_fill : float
            Fraction of the width the data covers (less while the buffer fills).
        centre : ndarray, shape (n_channels,), optional
            Value drawn on each channel's baseline (subtracted from the column extremes,
            so the samples themselves are never copied).
        """
        width, height = max(int(size[0]), 2), max(int(size[1]), 2)
        n_cols = max(1, int(round(width * min(max(x_fill, 0.0), 1.0))))
        lo, hi = minmax_columns(data, n_cols)
        if centre is not None:
            lo = lo - centre
            hi = hi - centre
        img = rasterize(lo, hi, offsets, gains, height, y_range, colors)
        if n_cols < width:
            full = np.zeros((height, width), dtype=np.uint32)
            full[:, width - n_cols:] = img
            img = full
        self._buf = np.ascontiguousarray(img)
        self._image = QtGui.QImage(self._buf.data, width, height, 4 * width,
                                   QtGui.QImage.Format.Format_ARGB32)
        rect = QtCore.QRectF(x_range[0], y_range[0], x_range[1] - x_range[0],
                             y_range[1] - y_range[0])
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def clear(self) -> None:
        self._image = None
        self._buf = None
        self.update()
