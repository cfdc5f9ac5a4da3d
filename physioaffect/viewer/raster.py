"""Multichannel traces drawn at pixel resolution.

Drawing every sample of 64 channels at 1 kHz through a ``QPainterPath`` costs the rasteriser
far more than a frame (about 12.5 frames/s on a 2-core machine). A screen column can show
only the range of the samples that fall in it, so each channel is reduced to its minimum and
maximum per pixel column (the "peak" decimation of pyqtgraph), and the vertical spans are
filled straight into an ARGB image with numpy (a difference array and one cumulative sum).
Each column's span is widened to meet the neighbouring column so that a trace stays
connected. The image is then blitted into the plot once per frame: the cost depends on the
plot's pixel size, not on the sampling rate or the number of channels.

Between two frames only a few samples arrive (about 17 at 1 kHz and 60 frames/s), so the
columns are anchored to absolute sample numbers (:class:`ColumnCache`): a frame reduces only
the new samples, and :meth:`RasterTraces.scroll` shifts the image by the new columns and
rasterises only those; the whole image is redrawn only when the scale, the centre (once a
second), the channel selection or the size change.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

__all__ = ["ColumnCache", "RasterTraces", "minmax_columns", "rasterize"]


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


class ColumnCache:
    """Min/max per pixel column of the newest ``n_window`` samples of a ring buffer.

    Column ``J`` holds the absolute samples ``[J * n_window // n_cols, (J + 1) * n_window //
    n_cols)``: columns stay put while the stream grows, so each :meth:`update` reduces only the
    samples that completed new columns. The newest, incomplete column is not shown (it is
    less than a pixel of time).

    Attributes
    ----------
    lo, hi : ndarray, shape (n_cols, n_channels)
        Extremes of the shown columns, oldest first (NaN: no data).
    end : int
        Absolute sample number where the newest complete column ends.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self.lo = np.zeros((0, 0), dtype=np.float32)
        self.hi = np.zeros((0, 0), dtype=np.float32)
        self.j_last: int | None = None
        self.end = 0

    def update(self, buffer: object, n_window: int, n_cols: int,
               channels: np.ndarray | None = None) -> int:
        """Bring the columns up to date with ``buffer`` (a :class:`~physioaffect.streams.ring.RingBuffer`).

        Returns
        -------
        int
            Number of newest columns that changed (``n_cols``: all of them).
        """
        n_window, n_cols = max(int(n_window), 1), max(int(n_cols), 1)
        key = (id(buffer), n_window, n_cols,
               None if channels is None else tuple(np.asarray(channels).tolist()))
        total = int(buffer.total_written)  # type: ignore[attr-defined]
        j_last = (total * n_cols) // n_window - 1
        full = (key != self._key or self.j_last is None or j_last < self.j_last
                or j_last - self.j_last >= n_cols)
        if full:
            n_ch = buffer.n_channels if channels is None else len(key[3])  # type: ignore[attr-defined]
            self.lo = np.full((n_cols, n_ch), np.nan, dtype=np.float32)
            self.hi = self.lo.copy()
            self._key = key
            first = j_last - n_cols + 1
            changed = n_cols
        else:
            changed = j_last - self.j_last  # type: ignore[operator]
            if changed == 0:
                return 0
            self.lo[:-changed] = self.lo[changed:]
            self.hi[:-changed] = self.hi[changed:]
            first = j_last - changed + 1
        lo, hi = self._reduce(buffer, first, j_last, n_window, n_cols, channels)
        self.lo[-changed:] = lo
        self.hi[-changed:] = hi
        self.j_last = j_last
        self.end = ((j_last + 1) * n_window) // n_cols
        return changed

    @staticmethod
    def _reduce(buffer: object, j0: int, j1: int, n_window: int, n_cols: int,
                channels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        k = j1 - j0 + 1
        edges = (np.arange(j0, j1 + 2, dtype=np.int64) * n_window) // n_cols
        n_ch = buffer.n_channels if channels is None else len(channels)  # type: ignore[attr-defined]
        lo = np.full((k, n_ch), np.nan, dtype=np.float32)
        hi = lo.copy()
        first, _, x = buffer.read_range(max(int(edges[0]), 0), int(edges[-1]))  # type: ignore[attr-defined]
        if x.shape[0] == 0:
            return lo, hi
        if channels is not None:
            x = x[:, channels]
        rel = edges - first
        # a column is shown once all its samples are kept; an empty one (fewer samples than
        # columns) shows its next sample, which reduceat gives for an empty run
        ok = (rel[:-1] >= 0) & (rel[:-1] < x.shape[0]) & (rel[1:] <= x.shape[0])
        if not ok.any():
            return lo, hi
        starts = rel[:-1][ok]
        stop = max(int(rel[1:][ok][-1]), int(starts[-1]) + 1)
        part = x[:stop]
        lo[ok] = np.minimum.reduceat(part, starts, axis=0)
        hi[ok] = np.maximum.reduceat(part, starts, axis=0)
        return lo, hi


class RasterTraces(pg.GraphicsObject):
    """A plot item that shows many channels stacked, decimated to the pixel grid.

    Channel ``i`` is drawn around ``y = n_visible - 1 - rank`` (first channel on top); set the
    data with :meth:`set_data` and the item redraws at the view's current pixel size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._image: QtGui.QImage | None = None
        self._buf: np.ndarray | None = None
        self._key: tuple | None = None
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
        self._key = None
        self._set_buffer(img)
        self._show(x_range, y_range)

    def _set_buffer(self, img: np.ndarray) -> None:
        """Use ``img`` (height, width) ARGB as the image (shared memory, no copy)."""
        self._buf = np.ascontiguousarray(img)
        height, width = self._buf.shape
        self._image = QtGui.QImage(self._buf.data, width, height, 4 * width,
                                   QtGui.QImage.Format.Format_ARGB32)

    def _show(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        """Place the image over these plot coordinates and schedule a repaint."""
        rect = QtCore.QRectF(x_range[0], y_range[0], x_range[1] - x_range[0],
                             y_range[1] - y_range[0])
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def scroll(
        self, lo: np.ndarray, hi: np.ndarray, changed: int, x_range: tuple[float, float],
        y_range: tuple[float, float], offsets: np.ndarray, gains: np.ndarray,
        colors: np.ndarray, height: int, centre: np.ndarray | None = None,
    ) -> None:
        """Draw the columns of a :class:`ColumnCache`, rasterising only the ``changed`` newest.

        The whole image is redrawn when anything but the columns changed (scale, centre,
        lanes, colours, size); otherwise it is shifted left by ``changed`` columns.
        """
        n_cols = lo.shape[0]
        height = max(int(height), 2)
        key = (n_cols, height, tuple(y_range), offsets.tobytes(), gains.tobytes(),
               colors.tobytes(), None if centre is None else centre.tobytes())
        if centre is not None:
            lo, hi = lo - centre, hi - centre
        if key != self._key or self._buf is None or changed >= n_cols:
            self._set_buffer(rasterize(lo, hi, offsets, gains, height, y_range, colors))
            self._key = key
        elif changed > 0:
            # the column before the new ones joins them to the trace (rasterize connects
            # each column to its left neighbour)
            new = rasterize(lo[-changed - 1:], hi[-changed - 1:], offsets, gains, height,
                            y_range, colors)
            self._buf[:, :-changed] = self._buf[:, changed:]
            self._buf[:, -changed:] = new[:, 1:]
        self._show(x_range, y_range)

    def clear(self) -> None:
        self._image = None
        self._buf = None
        self._key = None
        self.update()
