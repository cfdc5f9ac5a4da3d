"""Looking back at a live session: the recording (a session file with the signals, the markers
and the decoder's ``Prediction`` and status streams) turned into tables, block scores and
figures. Used by ``notebooks/live_session_analysis.ipynb``.

Everything is on the one LSL clock of the recording, so a prediction (stamped with its
window's last sample) lines up with the stimulus markers and the signals without conversion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from physioaffect.realtime.checkpoint import DecoderError
from physioaffect.recording import Session

__all__ = ["block_scores", "decoder_status", "prediction_table", "stimulus_blocks",
           "plot_session", "write_live_session"]


def prediction_table(session: Session, stream: str | None = None) -> pd.DataFrame:
    """The decoder's predictions: ``time`` (LSL s), ``t`` (s from the session start) and one
    column per output channel (e.g. ``arousal_low``, ``arousal_high``)."""
    preds = [s for s in session.streams.values() if s.info.type == "Prediction"
             and (stream is None or s.info.name == stream)]
    if not preds:
        have = ", ".join(f"{s.info.name} ({s.info.type})" for s in session.streams.values())
        raise DecoderError(f"{session.path}: no Prediction stream recorded; streams: {have}")
    p = preds[0]
    df = pd.DataFrame(np.asarray(p.samples, dtype=float), columns=p.info.labels)
    df.insert(0, "time", p.timestamps)
    df.insert(1, "t", p.timestamps - session.lsl_start)
    return df


def stimulus_blocks(session: Session) -> pd.DataFrame:
    """Stimulus blocks from JSON ``stimulus_onset``/``stimulus_offset`` markers.

    Returns ``trial, onset, offset`` (LSL s), ``t_onset``/``t_offset`` (s from start) and the
    numeric fields of the onset marker (``valence``, ``arousal`` ...). A block still open when
    the recording stopped ends at the last sample.
    """
    onsets: dict[Any, tuple[float, dict]] = {}
    rows = []
    end = max((float(s.timestamps[-1]) for s in session.signal_streams if s.n_samples),
              default=session.lsl_start)
    for m in session.markers:
        try:
            d = json.loads(m.text)
        except (ValueError, TypeError):
            continue
        if not isinstance(d, dict):
            continue
        if d.get("event") == "stimulus_onset":
            onsets[d.get("trial")] = (m.time, d)
        elif d.get("event") == "stimulus_offset" and d.get("trial") in onsets:
            t0, d0 = onsets.pop(d.get("trial"))
            rows.append((t0, m.time, d0))
    rows += [(t0, end, d0) for t0, d0 in onsets.values()]
    out = []
    for t0, t1, d in sorted(rows, key=lambda r: r[0]):
        num = {k: float(v) for k, v in d.items() if isinstance(v, int | float)
               and not isinstance(v, bool) and k not in ("trial", "stimulus")}
        out.append({"trial": d.get("trial"), "stimulus": d.get("stimulus"), "onset": t0,
                    "offset": t1, "t_onset": t0 - session.lsl_start,
                    "t_offset": t1 - session.lsl_start, **num})
    return pd.DataFrame(out)


def block_scores(preds: pd.DataFrame, blocks: pd.DataFrame, column: str, window_s: float,
                 settle_s: float = 3.0, target: str = "arousal",
                 neutral: float = 5.0) -> pd.DataFrame:
    """Mean prediction inside each block, from windows that lie wholly after ``settle_s``.

    Parameters
    ----------
    preds : DataFrame
        :func:`prediction_table`.
    blocks : DataFrame
        :func:`stimulus_blocks`.
    column : str
        Prediction column scored (e.g. ``arousal_high``).
    window_s : float
        Decoder window length (a prediction at time t used [t - window_s, t]).
    settle_s : float
        Seconds after onset before the affect is taken to be established.
    target : str
        Marker field giving the block's true rating.

    Returns
    -------
    DataFrame
        One row per block: ``trial``, ``truth`` (rating), ``high`` (rating > neutral),
        ``n`` (predictions), ``mean`` of ``column``.
    """
    rows = []
    for b in blocks.itertuples(index=False):
        sel = (preds["time"] >= b.onset + settle_s + window_s) & (preds["time"] <= b.offset)
        truth = float(getattr(b, target, np.nan))
        rows.append({"trial": b.trial, "truth": truth, "high": truth > neutral,
                     "n": int(sel.sum()),
                     "mean": float(preds.loc[sel, column].mean()) if sel.any() else np.nan})
    return pd.DataFrame(rows)


def decoder_status(session: Session) -> pd.DataFrame:
    """Status changes of the decoder (``time``, ``t``, ``state``, ``reason``)."""
    rows = []
    for s in session.streams.values():
        if s.info.type != "Markers" or not s.info.name.endswith("-status"):
            continue
        for t, row in zip(s.timestamps, s.samples, strict=True):
            try:
                d = json.loads(str(row[0]))
            except ValueError:
                continue
            rows.append({"time": float(t), "t": float(t) - session.lsl_start,
                         "state": d.get("state"), "reason": d.get("reason")})
    return pd.DataFrame(rows, columns=["time", "t", "state", "reason"])


def plot_session(session: Session, preds: pd.DataFrame, blocks: pd.DataFrame, column: str,
                 path: str | Path, target: str = "arousal") -> Path:
    """Figure: one EEG channel, the prediction time course with the blocks shaded (colour =
    rated ``target``), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eeg = next((s for s in session.streams.values() if s.info.type == "EEG"), None)
    fig, axes = plt.subplots(2, 1, figsize=(11, 5), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.4]})
    if eeg is not None and eeg.n_samples:
        axes[0].plot(eeg.timestamps - session.lsl_start, eeg.samples[:, 0], lw=0.4, color="k")
        axes[0].set_ylabel(f"{eeg.info.labels[0]} (\u00b5V)")
    cmap = plt.get_cmap("coolwarm")
    for b in blocks.itertuples(index=False):
        rating = float(getattr(b, target, 5.0))
        for ax in axes:
            ax.axvspan(b.t_onset, b.t_offset, color=cmap((rating - 1) / 8), alpha=0.25, lw=0)
    axes[1].plot(preds["t"], preds[column], color="tab:purple", lw=1.2)
    axes[1].axhline(0.5 if preds[column].max() <= 1 else 5.0, color="grey", lw=0.8, ls="--")
    axes[1].set_ylabel(column)
    axes[1].set_xlabel("time since the start of the recording (s)")
    axes[0].set_title(f"{Path(session.path).name}: blocks shaded by rated {target} "
                      "(blue low, red high)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_live_session(path: str | Path, bundle: Any, config: Any, seconds: float,
                       subject: int = 0, rate: float = 4.0, prefix: str = "sim") -> Path:
    """A small live-session file: the simulator's streams as a source would deliver them,
    decoded chunk by chunk by :class:`~physioaffect.realtime.OnlineDecoder`, with its
    ``Prediction`` and status streams, written by the recording stage's SessionWriter.

    For tests and the notebook where no lab session is at hand; a real one comes from
    ``physioaffect record`` running beside ``physioaffect decode``.
    """
    from physioaffect.realtime.decoder import OnlineDecoder, prediction_info, status_info
    from physioaffect.recording import SessionWriter
    from physioaffect.sources.sim import SimSource
    from physioaffect.streams import Chunk, StreamHub

    src = SimSource(config, subject=subject, speed=0, prefix=prefix)
    src.start()
    hub = StreamHub(src.streams, seconds=60)
    writer = SessionWriter(path, subject=f"sim{subject}", task="live",
                           config={"source": "sim (speed 0)", "decoder": bundle.path})
    for info in src.streams:
        writer.add_stream(info)
    pinfo = prediction_info(bundle, rate, f"{prefix}-prediction", source=f"{prefix}-EEG")
    sinfo = status_info(f"{prefix}-prediction")
    writer.add_stream(pinfo)
    writer.add_stream(sinfo)

    def on_pred(p: Any) -> None:
        writer.append(Chunk(pinfo.name, np.array([p.time]), p.sample()[None].astype(np.float32)))

    def on_status(ev: Any) -> None:
        t = float(hub.buffers[f"{prefix}-EEG"].latest(1)[0][-1])  # data clock (speed 0)
        writer.append(Chunk(sinfo.name, np.array([t]), np.array([[ev.to_json()]], dtype=object)))

    dec = OnlineDecoder(hub, bundle, rate=rate, stale_s=1e9, on_prediction=on_pred,
                        on_status=on_status)
    t_end = None
    try:
        while True:
            for chunk in src.read(0.0):
                writer.append(chunk)
                # in pieces of 10 ms, as a device delivers them (the unpaced simulator hands
                # out whole seconds, more than the decoder's backlog)
                step = max(1, int(hub.infos[chunk.stream].nominal_srate // 100)) \
                    if hub.infos[chunk.stream].is_regular else len(chunk)
                for i in range(0, len(chunk), step):
                    hub.push(Chunk(chunk.stream, chunk.timestamps[i:i + step],
                                   chunk.samples[i:i + step]))
                    if chunk.stream == f"{prefix}-EEG":
                        dec.step()
            last = hub.buffers[f"{prefix}-EEG"]
            if last.total_written:
                t_now = float(last.latest(1)[0][-1])
                t_end = t_end or t_now + seconds
                if t_now >= t_end:
                    break
        writer.close()
    finally:
        src.stop()
    return Path(path)
