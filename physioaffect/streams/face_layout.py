"""The channel layout of a ``Face`` stream: one sample per video frame.

It is a stream definition, not face analysis: the face analyser
(:mod:`physioaffect.face`), the simulator, dataset readers and the viewer all produce or read
streams of this layout, so it lives with the other stream definitions.
"""

from __future__ import annotations

from physioaffect.streams.info import ChannelInfo, StreamInfo

#: Version of this layout. 1: the channels up to ``pulse_snr``; 2: ``pulse_reason`` appended
#: (readers that look channels up by label read both).
FACE_LAYOUT_VERSION = 2

#: Expression measures (ratios of landmark distances; see :mod:`physioaffect.face.features`).
EXPRESSION_LABELS: tuple[str, ...] = (
    "eye_open_l",
    "eye_open_r",
    "brow_raise_l",
    "brow_raise_r",
    "brow_furrow",
    "mouth_open",
    "mouth_width",
    "lip_corner_pull",
)

#: Status of a frame, as the code published in the ``status`` channel.
STATUS_CODES: dict[str, int] = {
    "ok": 0,  # one face, landmarks, all features
    "several_faces": 1,  # features of the largest face; n_faces says how many
    "box_only": 2,  # a face box without landmarks (cascade): expression and pose NaN
    "no_face": 3,  # no face: all features NaN
    "dropped": 4,  # the frame never arrived (timestamp gap): all features NaN
    "unreadable": 5,  # the frame could not be decoded: all features NaN
}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}

#: Why ``pulse_rate`` is NaN (or not), as the code published in the ``pulse_reason`` channel.
#: Every row carries one, so a consumer can tell a withheld rate from a missing face.
PULSE_REASON_CODES: dict[str, int] = {
    "ok": 0,  # a rate is reported
    "warming_up": 1,  # less uninterrupted face than the tracker's warm-up (6 s by default)
    "face_lost": 2,  # no face in this frame (none found, dropped or unreadable)
    "too_small": 3,  # fewer skin pixels than the tracker needs
    "too_dark": 4,  # the skin is too dark (8-bit levels too coarse for a ~1 % pulse)
    "motion": 5,  # the skin region moved too much at pulse frequencies
    "low_snr": 6,  # pulse_snr below the quality gate for the window's length
}
PULSE_REASON_NAMES = {v: k for k, v in PULSE_REASON_CODES.items()}

#: (label, unit) of every channel of the ``Face`` stream, in column order.
FEATURE_CHANNELS: tuple[tuple[str, str], ...] = (
    ("status", "code"),
    ("n_faces", "count"),
    ("face_x", "pixels"),
    ("face_y", "pixels"),
    ("face_w", "pixels"),
    ("face_h", "pixels"),
    *((label, "ratio") for label in EXPRESSION_LABELS),
    ("head_yaw", "degrees"),
    ("head_pitch", "degrees"),
    ("head_roll", "degrees"),
    ("motion_energy", "grey levels"),
    ("landmark_speed", "interocular/s"),
    ("rppg", "a.u."),
    ("pulse_rate", "bpm"),
    ("pulse_snr", "dB"),
    # layout 2 (issue 28) appended this channel: the columns before it are unchanged
    ("pulse_reason", "code"),
)
FEATURE_LABELS: tuple[str, ...] = tuple(c[0] for c in FEATURE_CHANNELS)

#: Channels that describe the frame or the picture, not the face's behaviour: they are kept in
#: recordings but are not affect features (a face's position in the image says nothing of how
#: the person feels; the rPPG waveform is summarised by ``pulse_rate``; ``pulse_reason`` says why a
#: rate is missing).
BOOKKEEPING_LABELS: tuple[str, ...] = ("status", "n_faces", "face_x", "face_y", "face_w",
                                       "face_h", "rppg", "pulse_reason")


def face_stream_info(
    name: str = "face", nominal_srate: float = 30.0, source_id: str = "", device: dict | None = None
) -> StreamInfo:
    """The :class:`StreamInfo` of a ``Face`` stream (float32, one sample per frame)."""
    return StreamInfo(
        name=name,
        type="Face",
        channels=tuple(ChannelInfo(label, "Face", unit) for label, unit in FEATURE_CHANNELS),
        nominal_srate=float(nominal_srate),
        channel_format="float32",
        source_id=source_id or f"physioaffect-face-{name}",
        device=dict(device or {}),
    )
