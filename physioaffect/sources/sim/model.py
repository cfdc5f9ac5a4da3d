"""The physiological model behind the simulator.

Every signal is generated block by block (one block = ``block_seconds``) from a
random generator seeded by ``(seed, subject)`` and filters whose state is
carried from block to block. The blocks are the same whether they are made
offline in one go or live, chunk by chunk, so a live recording can be checked
sample by sample against :func:`simulate_subject`.

Affect drives physiology the way the psychophysiology literature describes it
(arousal: faster heart, less respiratory sinus arrhythmia, more and larger
skin-conductance responses, higher tonic EDA, vasoconstriction (smaller PPG
pulses), less posterior alpha; valence: frontal alpha asymmetry, more left
frontal activity (less left alpha) for positive valence). Every effect has a
per-subject gain drawn around 1, some subjects barely responding, so decoding
across subjects is learnable but not trivial.

With ``SimConfig(face=True)`` a ``Face`` stream joins them: one sample per video
frame in the layout of :mod:`physioaffect.streams.face_layout` (what the face
analyser publishes), with expression ratios that follow affect (arousal: wider
eyes, raised brows, more movement; valence: smile (wider mouth, lip corners
up), negative valence: brows drawn together), eyelid dips at the EEG blinks, a
remote-PPG pulse at the model's heart rate and short no-face dropouts. It is
drawn from generators of its own, so the other streams are the same sample for
sample whether it is on or off.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps

from physioaffect.sources.base import SourceSpecError
from physioaffect.streams import IRREGULAR_RATE, StreamInfo
from physioaffect.streams.face_layout import (
    FEATURE_LABELS,
    PULSE_REASON_CODES,
    STATUS_CODES,
    face_stream_info,
)
from physioaffect.streams.montage import Montage, montage_for_channels

#: Neutral point of the 1-9 rating scale used for valence and arousal.
NEUTRAL = 5.0

# ECG waveform in beat phase (0..1): (centre, width, amplitude in mV) of P, Q, R, S, T.
_ECG_WAVES = np.array(
    [
        [0.20, 0.025, 0.15],
        [0.33, 0.008, -0.15],
        [0.35, 0.010, 1.20],
        [0.37, 0.010, -0.25],
        [0.65, 0.045, 0.30],
    ]
)
#: Beat phase at which the R wave peaks (R-peak times are phase crossings of n + this).
R_PHASE = 0.35
# PPG pulse in beat phase: systolic peak then the dicrotic wave (centre, width, amplitude).
_PPG_WAVES = np.array([[0.58, 0.07, 1.0], [0.82, 0.06, 0.35]])
# Paul Kellet's economy pink-noise filter (1/f within a few percent over 3 decades).
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


@dataclass(frozen=True)
class SimConfig:
    """Configuration of the simulator (also the ``sim?key=value`` options).

    Parameters
    ----------
    subjects : int
        Size of the virtual population (subject indices 0 .. subjects-1).
    eeg_channels : int
        EEG channels (14, 32, 62, 8, 16 and 64 use the DREAMER, DEAP, SEED,
        OpenBCI and BioSemi sets; other counts take a spread of BioSemi 64).
    rate : int
        EEG sampling rate in Hz.
    periph_rate : int or None
        Rate of ECG, EDA, PPG and respiration in Hz (default: ``rate``).
    seed : int
        Master seed; the same seed gives the same signals, sample for sample.
    line_freq : float
        Mains frequency in Hz (50 or 60).
    n_trials : int
        Stimuli per scenario cycle (a balanced valence x arousal design).
    stimulus_seconds, rest_seconds, baseline_seconds : float
        Scenario timing in seconds.
    effect : float
        Scales every affect effect (0 = physiology ignores affect), the face's included.
    block_seconds : float
        Generation block in seconds (rates x block_seconds must be whole samples; the
        face's frame rate need not be).
    face : bool
        Also simulate a ``Face`` stream (facial features per video frame, the layout of
        :data:`physioaffect.streams.face_layout.FEATURE_CHANNELS`). Off by default; the
        other streams are identical either way.
    face_rate : float
        Frame rate of the ``Face`` stream in frames per second (5-120).
    """

    subjects: int = 12
    eeg_channels: int = 32
    rate: int = 256
    periph_rate: int | None = None
    seed: int = 0
    line_freq: float = 50.0
    n_trials: int = 16
    stimulus_seconds: float = 30.0
    rest_seconds: float = 10.0
    baseline_seconds: float = 10.0
    effect: float = 1.0
    block_seconds: float = 1.0
    face: bool = False
    face_rate: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**63:
            raise SourceSpecError(f"sim: seed must be a whole number 0 to 2**63-1, got {self.seed}")
        for key, lo, hi in (("line_freq", 0.0, 1000.0), ("stimulus_seconds", 0.01, 1e6),
                            ("rest_seconds", 0.0, 1e6), ("baseline_seconds", 0.0, 1e6),
                            ("effect", -100.0, 100.0), ("block_seconds", 0.001, 60.0)):
            value = getattr(self, key)
            if not (math.isfinite(value) and lo <= value <= hi):  # NaN fails too
                raise SourceSpecError(f"sim: {key} must be a number from {lo:g} to {hi:g}, "
                                      f"got {value}")
        if not 5 <= self.face_rate <= 120:
            raise SourceSpecError(f"sim: face_rate must be 5-120 frames/s, got {self.face_rate}")
        if self.block_seconds <= 0:
            raise SourceSpecError(f"sim: block_seconds must be > 0, got {self.block_seconds}")
        if self.eeg_channels < 1 or self.eeg_channels > 64:
            raise SourceSpecError(f"sim: eeg_channels must be 1-64, got {self.eeg_channels}")
        for key in ("rate", "periph_rate"):
            value = getattr(self, key)
            if value is not None and not (16 <= value <= 4000):
                raise SourceSpecError(f"sim: {key} must be 16-4000 Hz, got {value}")
        if not 1 <= self.subjects <= 100_000:
            raise SourceSpecError(f"sim: subjects must be 1-100000, got {self.subjects}")
        if not 1 <= self.n_trials <= 10_000:
            raise SourceSpecError(f"sim: n_trials must be 1-10000, got {self.n_trials}")
        fs_p = self.periph_rate or self.rate
        for key, fs in (("rate", self.rate), ("periph_rate", fs_p)):
            if abs(fs * self.block_seconds - round(fs * self.block_seconds)) > 1e-9:
                raise SourceSpecError(f"sim: {key} x block_seconds must be a whole number of samples")

    @property
    def peripheral_rate(self) -> int:
        return int(self.periph_rate or self.rate)

    def face_frames_before(self, t: float) -> int:
        """Number of face frames (frame k at ``k / face_rate`` s) before scenario time ``t``."""
        # exact for block boundaries even when block_seconds * face_rate is not whole
        return int(np.ceil(t * self.face_rate - 1e-9))

    @property
    def cycle_seconds(self) -> float:
        """Length of one scenario cycle (baseline + all trials with their rests), s."""
        return self.baseline_seconds + self.n_trials * (self.stimulus_seconds + self.rest_seconds)


@dataclass(frozen=True)
class Stimulus:
    """A stimulus of the shared set, with its nominal affect on the 1-9 scale."""

    id: int
    valence: float
    arousal: float


def stimulus_set(config: SimConfig) -> list[Stimulus]:
    """The stimuli every subject sees (a balanced low/high valence x arousal design)."""
    rng = np.random.default_rng([config.seed, 7])
    out = []
    for i in range(config.n_trials):
        hi_a = i % 2 == 1
        hi_v = (i // 2) % 2 == 1
        a = NEUTRAL + (1 if hi_a else -1) * rng.uniform(1.5, 3.8)
        v = NEUTRAL + (1 if hi_v else -1) * rng.uniform(1.5, 3.8)
        out.append(Stimulus(i, round(float(v), 2), round(float(a), 2)))
    return out


def subject_params(config: SimConfig, subject: int) -> dict[str, float]:
    """Individual differences of one virtual subject (deterministic in seed and index)."""
    if not 0 <= subject < config.subjects:
        raise SourceSpecError(f"sim: subject must be 0-{config.subjects - 1}, got {subject}")
    rng = np.random.default_rng([config.seed, subject, 0xA11])
    g = lambda: float(config.effect * rng.uniform(0.3, 1.7))  # noqa: E731  (per-effect gain)
    return {
        "heart_rate_bpm": float(rng.uniform(58, 82)),
        "hr_arousal_bpm": 9.0 * g(),  # bpm change at the extreme of the arousal scale
        "rsa_bpm": float(rng.uniform(3, 7)),
        "rsa_arousal": 0.5 * g(),  # fraction of RSA lost at maximal arousal
        "resp_rate_bpm": float(rng.uniform(11, 17)),
        "resp_arousal": 0.15 * g(),
        "alpha_hz": float(rng.uniform(8.8, 11.6)),
        "alpha_uv": float(rng.uniform(6, 14)),
        "alpha_arousal": 0.45 * g(),  # log-amplitude drop of alpha at maximal arousal
        "faa_valence": 0.35 * g(),  # log-amplitude left/right shift at the valence extremes
        "beta_arousal": 0.25 * g(),
        "background_uv": float(rng.uniform(6, 11)),
        "noise_uv": float(rng.uniform(0.5, 2.0)),
        "line_uv": float(rng.uniform(0.3, 3.0)),
        "blink_rate_hz": float(rng.uniform(0.15, 0.35)),
        "blink_uv": float(rng.uniform(70, 150)),
        "eda_tonic_us": float(rng.uniform(2, 10)),
        "eda_arousal_us": 1.2 * g(),
        "scr_rate_hz": float(rng.uniform(1, 3) / 60),
        "scr_arousal": 2.0 * g(),  # relative increase of SCR rate at maximal arousal
        "scr_evoked_us": 0.5 * g(),
        "ppg_amplitude": float(rng.uniform(0.6, 1.4)),
        "ppg_arousal": 0.5 * g(),
        "rating_noise": float(rng.uniform(0.2, 0.8)),
        "channel_gain_sd": 0.1,
    }


def face_params(config: SimConfig, subject: int) -> dict[str, float]:
    """Individual face of one virtual subject: resting expression, head pose, affect gains.

    Drawn from a generator of its own (seed, subject, 0xFACE), so that turning the face on
    changes nothing else. Ratios as the face analyser measures them (see
    :mod:`physioaffect.face.features`); ``*_arousal``/``*_valence`` are the change at the
    extreme of the scale (z = 1), scaled by ``config.effect`` like every other effect.
    """
    if not 0 <= subject < config.subjects:
        raise SourceSpecError(f"sim: subject must be 0-{config.subjects - 1}, got {subject}")
    rng = np.random.default_rng([config.seed, subject, 0xFACE])
    g = lambda: float(config.effect * rng.uniform(0.3, 1.7))  # noqa: E731  (per-effect gain)
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    scale = u(0.9, 1.1)  # face size in the picture
    return {
        "eye_open": u(0.24, 0.32),  # lid gap / eye width
        "eye_open_arousal": 0.035 * g(),  # AU5: eyes widen with arousal
        "brow_raise": u(0.50, 0.60),  # brow height / inter-ocular distance
        "brow_raise_arousal": 0.035 * g(),  # AU1+2
        "brow_furrow": u(0.50, 0.60),  # inner-brow distance / inter-ocular distance
        "brow_furrow_valence": 0.035 * g(),  # AU4: brows drawn together at negative valence
        "mouth_open": u(0.03, 0.07),
        "mouth_open_arousal": 0.01 * g(),
        "mouth_width": u(0.78, 0.92),
        "mouth_width_valence": 0.05 * g(),  # AU12 widens the mouth
        "lip_corner_pull": u(0.0, 0.04),
        "lip_corner_valence": 0.025 * g(),  # AU12 up (smile), AU15 down
        "motion_energy": u(1.5, 3.0),  # grey levels
        "motion_arousal": 0.3 * g(),  # log change
        "landmark_speed": u(0.08, 0.15),  # inter-ocular distances per second
        "landmark_speed_arousal": 0.35 * g(),  # log change
        "head_yaw": u(-8, 8),  # degrees; person-dependent offsets of the generic head model
        "head_pitch": u(-20, 20),
        "head_roll": u(-4, 4),
        "face_x": 200 + u(-20, 20),  # pixels
        "face_y": 150 + u(-15, 15),
        "face_w": 220 * scale,
        "face_h": 260 * scale,
        "pulse_snr_db": u(3.5, 6.5),
        "dropout_rate_hz": u(0.01, 0.03),  # no-face bursts per second (mean 1 s long)
    }


@dataclass
class ScheduledTrial:
    """One stimulus presentation the simulator schedules in a subject's scenario (times in
    scenario seconds, the affect the subject feels). Not a dataset trial: the data of a trial
    read back from a recording is :class:`physioaffect.datasets.base.Trial`."""

    trial: int
    stimulus: int
    onset: float
    offset: float
    valence: float
    arousal: float

    def marker(self, event: str) -> str:
        """Marker text: a compact JSON object (readable by any LSL marker consumer)."""
        return json.dumps(
            {"event": event, "trial": self.trial, "stimulus": self.stimulus,
             "valence": self.valence, "arousal": self.arousal},
            separators=(",", ":"),
        )


def scenario_cycle(config: SimConfig, subject: int, cycle: int) -> list[ScheduledTrial]:
    """The trials of one scenario cycle, starting at ``cycle * cycle_seconds``.

    Every subject sees every stimulus once per cycle in its own order; the
    affect it feels is the stimulus' nominal affect plus its own rating noise.
    """
    stims = stimulus_set(config)
    params = subject_params(config, subject)
    rng = np.random.default_rng([config.seed, subject, cycle, 0x5CE])
    order = rng.permutation(len(stims))
    t = cycle * config.cycle_seconds + config.baseline_seconds
    trials = []
    for k, idx in enumerate(order):
        st = stims[idx]
        v = float(np.clip(st.valence + rng.normal(0, params["rating_noise"]), 1, 9))
        a = float(np.clip(st.arousal + rng.normal(0, params["rating_noise"]), 1, 9))
        trials.append(
            ScheduledTrial(cycle * config.n_trials + k, st.id, t, t + config.stimulus_seconds,
                  round(v, 2), round(a, 2))
        )
        t += config.stimulus_seconds + config.rest_seconds
    return trials


def stream_infos(config: SimConfig, prefix: str = "sim", subject: int = 0) -> dict[str, StreamInfo]:
    """StreamInfos of the simulator's streams, keyed by stream type (``"Face"`` only with
    ``config.face``)."""
    mont = montage_for_channels(config.eeg_channels)
    dev = {"manufacturer": "physioaffect", "model": "simulator", "serial": f"seed{config.seed}-sub{subject}",
           "montage": mont.name}
    fs_p = float(config.peripheral_rate)
    sid = f"{prefix}-seed{config.seed}-sub{subject}"
    infos = {
        "EEG": StreamInfo.from_labels(f"{prefix}-EEG", "EEG", mont.ch_names, float(config.rate),
                                      "microvolts", source_id=f"{sid}-eeg", device=dev),
        "ECG": StreamInfo.from_labels(f"{prefix}-ECG", "ECG", ["ECG"], fs_p, "millivolts",
                                      source_id=f"{sid}-ecg", device=dev),
        "GSR": StreamInfo.from_labels(f"{prefix}-EDA", "GSR", ["EDA"], fs_p, "microsiemens",
                                      source_id=f"{sid}-eda", device=dev),
        "PPG": StreamInfo.from_labels(f"{prefix}-PPG", "PPG", ["PPG"], fs_p, "au",
                                      source_id=f"{sid}-ppg", device=dev),
        "RESP": StreamInfo.from_labels(f"{prefix}-RESP", "RESP", ["RESP"], fs_p, "au",
                                       source_id=f"{sid}-resp", device=dev),
        "Markers": StreamInfo.from_labels(f"{prefix}-Markers", "Markers", ["Marker"],
                                          IRREGULAR_RATE, "", channel_format="string",
                                          source_id=f"{sid}-markers", device=dev),
    }
    if config.face:
        infos["Face"] = face_stream_info(f"{prefix}-Face", float(config.face_rate),
                                         source_id=f"{sid}-face", device=dev)
    return infos


def _unit_gain(b: np.ndarray, a: np.ndarray, fs: float, seconds: float = 8.0) -> float:
    """Standard deviation of a filter's response to unit white noise (for normalising), from
    the first ``seconds`` of its impulse response."""
    imp = np.zeros(int(seconds * fs))
    imp[0] = 1.0
    return float(np.sqrt(np.sum(sps.lfilter(b, a, imp) ** 2)))


class _Filter:
    """An IIR filter that carries its state across blocks (rows filtered independently)."""

    def __init__(self, b: np.ndarray, a: np.ndarray, n_rows: int, scale: float = 1.0):
        self.b = np.asarray(b, float) * scale
        self.a = np.asarray(a, float)
        self.zi = np.zeros((n_rows, max(len(self.a), len(self.b)) - 1))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self.zi = sps.lfilter(self.b, self.a, x, axis=-1, zi=self.zi)
        return y


class _AR1:
    """Independent first-order autoregressive (Ornstein-Uhlenbeck) processes, one per row,
    with their own time constants and standard deviations, state carried across blocks.

    Starts from a draw of the stationary distribution, so there is no warm-up.
    """

    def __init__(self, tau_s: np.ndarray, sd: np.ndarray, fs: float, rng: np.random.Generator):
        self.a = np.exp(-1.0 / (np.asarray(tau_s, float) * fs))
        self.b = np.asarray(sd, float) * np.sqrt(1 - self.a**2)
        self.y = np.asarray(sd, float) * rng.standard_normal(self.a.size)

    def __call__(self, white: np.ndarray) -> np.ndarray:
        """Filter unit white noise (n_rows, n) into the processes' next n values."""
        out = np.empty_like(white)
        y = self.y
        for j in range(white.shape[1]):  # a few dozen frames per block: a loop over time is cheap
            y = self.a * y + self.b * white[:, j]
            out[:, j] = y
        self.y = y
        return out


# Slow processes of the face (time constant s, standard deviation): how a face wanders
# between and within trials besides affect. They set the per-trial noise the affect
# effects compete with (a per-trial classifier is well above chance, not perfect).
_FACE_SLOW = {
    "expressivity": (15.0, 0.4),  # how much of the felt affect the face shows (x effects)
    "eye_open": (10.0, 0.04),
    "eye_asym": (10.0, 0.005),
    "brow_raise": (10.0, 0.04),
    "brow_asym": (10.0, 0.005),
    "brow_furrow": (10.0, 0.035),
    "mouth_open": (4.0, 0.01),
    "mouth_width": (10.0, 0.06),
    "lip_corner_pull": (10.0, 0.03),
    "head_yaw": (4.0, 3.0),  # degrees
    "head_pitch": (4.0, 3.0),
    "head_roll": (4.0, 2.0),
    "motion": (10.0, 0.35),  # log
    "landmark_speed": (10.0, 0.4),  # log
    "pulse_error": (3.0, 2.0),  # bpm: the rPPG estimate wanders around the true rate
    "pulse_snr": (5.0, 1.0),  # dB
    "face_x": (2.0, 3.0),  # pixels
    "face_y": (2.0, 3.0),
    "face_scale": (2.0, 0.01),
}
# Frame-to-frame measurement jitter (standard deviation per frame).
_FACE_JITTER = {
    "eye_open": 0.012, "brow_raise": 0.01, "brow_furrow": 0.01, "mouth_open": 0.006,
    "mouth_width": 0.01, "lip_corner_pull": 0.006, "pose": 0.8, "motion": 0.15,
    "landmark_speed": 0.2, "box": 1.0, "rppg": 0.6,
}
_PHASE_GRID = np.linspace(0, 1, 1000, endpoint=False)
_PULSE_GRID = sum(amp * np.exp(-((_PHASE_GRID - mu) ** 2) / (2 * sd**2)) for mu, sd, amp in _PPG_WAVES)


class _FaceModel:
    """The ``Face`` stream of one subject, frame by frame, driven by the subject's model.

    Its random numbers come from generators of its own (seed, subject, 0xFACE, ...): the
    other streams do not change when it is on.
    """

    def __init__(self, config: SimConfig, subject: int):
        self.config = config
        self.fr = float(config.face_rate)
        self.params = face_params(config, subject)
        self.rng = np.random.default_rng([config.seed, subject, 0xFACE, 1])  # per-frame noise
        self.gap_rng = np.random.default_rng([config.seed, subject, 0xFACE, 2])  # dropouts
        self.col = {label: i for i, label in enumerate(FEATURE_LABELS)}
        self.slow_keys = list(_FACE_SLOW)
        tau, sd = np.array(list(_FACE_SLOW.values())).T
        self.slow = _AR1(tau, sd, self.fr, self.rng)
        self.next_frame = 0
        self.blinks: list[tuple[float, float]] = []  # (scenario time, depth) still in effect
        self.gap = self._next_gap(0.0)
        self.pulse_mean, self.pulse_sd = float(_PULSE_GRID.mean()), float(_PULSE_GRID.std())

    def _next_gap(self, after: float) -> tuple[float, float]:
        """The next no-face burst (start, end) after scenario time ``after`` (someone turns
        away or leaves the picture for a moment: mean 1 s)."""
        start = after + self.gap_rng.exponential(1.0 / self.params["dropout_rate_hz"])
        return start, start + self.gap_rng.uniform(0.3, 1.7)

    def block(
        self, t0: float, t1: float, t_p: np.ndarray, z_v: np.ndarray, z_a: np.ndarray,
        hr: np.ndarray, heart_phase: np.ndarray, blinks: list[tuple[float, float]],
    ) -> np.ndarray:
        """Frames with timestamps in [t0, t1): (n_frames, n_channels) float32.

        ``t_p``, ``z_v``, ``z_a``, ``hr`` (bpm) and ``heart_phase`` (beats, unwrapped) are
        the model's peripheral-rate state of the block; ``blinks`` are (time, size) of the
        blinks the EEG shows in it.
        """
        p, rng, c = self.params, self.rng, self.col
        k = np.arange(self.next_frame, self.config.face_frames_before(t1))
        self.next_frame += k.size
        n = k.size
        t = k / self.fr
        out = np.full((n, len(FEATURE_LABELS)), np.nan)
        if n == 0:
            return out.astype(np.float32)
        slow = dict(zip(self.slow_keys, self.slow(rng.standard_normal((len(self.slow_keys), n))),
                        strict=True))
        # The face shows affect more at some moments than at others (shared by every feature).
        shown = np.maximum(1.0 + slow["expressivity"], 0.0)
        za = np.interp(t, t_p, z_a) * shown
        zv = np.interp(t, t_p, z_v) * shown
        jit = rng.standard_normal((16, n))

        # Eyes: wider with arousal; blinks close them for ~0.1 s at the EEG's blink times.
        self.blinks = [b for b in self.blinks if b[0] > t0 - 0.5] + list(blinks)
        closed = np.zeros(n)
        for tb, size in self.blinks:
            # lid closure peaks ~50 ms after the blink starts, as the EEG artefact does
            closed = np.maximum(closed, min(0.95, 0.85 * size) * np.exp(-0.5 * ((t - tb - 0.05) / 0.04) ** 2))
        eye = p["eye_open"] + p["eye_open_arousal"] * za + slow["eye_open"]
        for j, (label, sign) in enumerate((("eye_open_l", 1), ("eye_open_r", -1))):
            out[:, c[label]] = np.maximum(
                (eye + sign * slow["eye_asym"]) * (1 - closed) + _FACE_JITTER["eye_open"] * jit[j], 0.0)
        brow = p["brow_raise"] + p["brow_raise_arousal"] * za + slow["brow_raise"]
        out[:, c["brow_raise_l"]] = brow + slow["brow_asym"] + _FACE_JITTER["brow_raise"] * jit[2]
        out[:, c["brow_raise_r"]] = brow - slow["brow_asym"] + _FACE_JITTER["brow_raise"] * jit[3]
        # Frowning (AU4) at negative valence; positive valence relaxes the brows a little.
        frown = np.minimum(zv, 0) + 0.25 * np.maximum(zv, 0)
        out[:, c["brow_furrow"]] = (p["brow_furrow"] + p["brow_furrow_valence"] * frown
                                    + slow["brow_furrow"] + _FACE_JITTER["brow_furrow"] * jit[4])
        out[:, c["mouth_open"]] = np.maximum(
            p["mouth_open"] + p["mouth_open_arousal"] * za + slow["mouth_open"]
            + _FACE_JITTER["mouth_open"] * jit[5], 0.0)
        # Smile (AU12): wider mouth, lip corners up; lip corners down (AU15) when negative.
        out[:, c["mouth_width"]] = (p["mouth_width"] + p["mouth_width_valence"] * zv
                                    + slow["mouth_width"] + _FACE_JITTER["mouth_width"] * jit[6])
        out[:, c["lip_corner_pull"]] = (p["lip_corner_pull"] + p["lip_corner_valence"] * zv
                                        + slow["lip_corner_pull"] + _FACE_JITTER["lip_corner_pull"] * jit[7])

        # Head pose: slow wandering of a few degrees around the person's offsets.
        for j, label in enumerate(("head_yaw", "head_pitch", "head_roll")):
            out[:, c[label]] = p[label] + slow[label] + _FACE_JITTER["pose"] * jit[8 + j]
        # Movement: more with arousal (log-normal, always positive).
        out[:, c["motion_energy"]] = p["motion_energy"] * np.exp(
            p["motion_arousal"] * za + slow["motion"] + _FACE_JITTER["motion"] * jit[11])
        out[:, c["landmark_speed"]] = p["landmark_speed"] * np.exp(
            p["landmark_speed_arousal"] * za + slow["landmark_speed"]
            + _FACE_JITTER["landmark_speed"] * jit[12])

        # Remote PPG: the pulse wave at the heart's own phase (unit variance, plus noise).
        dt_p = t_p[1] - t_p[0] if t_p.size > 1 else 1.0
        t_ext = np.append(t_p, t_p[-1] + dt_p)
        ph_ext = np.append(heart_phase, heart_phase[-1] + hr[-1] / 60.0 * dt_p)
        ph = np.interp(t, t_ext, ph_ext) % 1.0
        pulse = np.interp(ph, _PHASE_GRID, _PULSE_GRID, period=1.0)
        out[:, c["rppg"]] = ((pulse - self.pulse_mean) / self.pulse_sd
                             + _FACE_JITTER["rppg"] * jit[13]) / np.hypot(1.0, _FACE_JITTER["rppg"])
        out[:, c["pulse_rate"]] = np.interp(t, t_p, hr) + slow["pulse_error"]
        out[:, c["pulse_snr"]] = p["pulse_snr_db"] + slow["pulse_snr"]

        # Face box: where the face is in the picture, a few pixels of sway.
        size = 1 + slow["face_scale"]
        out[:, c["face_x"]] = p["face_x"] + slow["face_x"] + _FACE_JITTER["box"] * jit[14]
        out[:, c["face_y"]] = p["face_y"] + slow["face_y"] + _FACE_JITTER["box"] * jit[15]
        out[:, c["face_w"]] = p["face_w"] * size
        out[:, c["face_h"]] = p["face_h"] * size
        out[:, c["status"]] = STATUS_CODES["ok"]
        out[:, c["pulse_reason"]] = PULSE_REASON_CODES["ok"]
        out[:, c["n_faces"]] = 1

        # No-face bursts: status no_face, no face counted, nothing measured (NaN), as the
        # analyser reports them.
        gone = np.zeros(n, bool)
        while self.gap[0] < t1:
            gone |= (t >= self.gap[0]) & (t < self.gap[1])
            if self.gap[1] >= t1:
                break
            self.gap = self._next_gap(self.gap[1])
        out[gone] = np.nan
        out[gone, c["status"]] = STATUS_CODES["no_face"]
        out[gone, c["n_faces"]] = 0
        out[gone, c["pulse_reason"]] = PULSE_REASON_CODES["face_lost"]
        return out.astype(np.float32)


@dataclass
class Block:
    """One generated block: samples per stream type and the markers inside it."""

    t0: float  # scenario time of the first sample, s
    signals: dict[str, np.ndarray]  # type -> (n, n_ch) float32
    markers: list[tuple[float, str]] = field(default_factory=list)  # (scenario time, text)
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))  # R-peak scenario times, s
    state: dict[str, np.ndarray] = field(default_factory=dict)  # per peripheral sample


class SubjectModel:
    """Generates one virtual subject, block after block, deterministically.

    Parameters
    ----------
    config : SimConfig
    subject : int
        Index of the subject (0 .. config.subjects - 1).
    """

    def __init__(self, config: SimConfig, subject: int = 0):
        self.config = config
        self.subject = subject
        self.params = subject_params(config, subject)
        self.montage: Montage = montage_for_channels(config.eeg_channels)
        self.fs = float(config.rate)
        self.fs_p = float(config.peripheral_rate)
        self.n_block = int(round(config.rate * config.block_seconds))
        self.n_block_p = int(round(config.peripheral_rate * config.block_seconds))
        self.block_index = 0
        self.rng = np.random.default_rng([config.seed, subject, 0xB10C])
        self._trials: dict[int, list[ScheduledTrial]] = {}
        p = self.params
        n_ch = config.eeg_channels
        setup = np.random.default_rng([config.seed, subject, 0x5E7])

        # Spatial structure from real electrode positions (metres).
        pos = self.montage.positions
        d2 = np.sum((pos[:, None, :] - pos[None, :, :]) ** 2, axis=-1)
        mix = np.exp(-d2 / (2 * 0.03**2))
        self.background_mix = mix / np.sqrt(np.sum(mix**2, axis=1, keepdims=True))
        self.gains = 1 + p["channel_gain_sd"] * setup.standard_normal(n_ch)
        self.line_amp = p["line_uv"] * setup.uniform(0.3, 1.0, n_ch)
        self.line_phase = setup.uniform(0, 2 * np.pi, n_ch)

        def topo(centre: np.ndarray, width: float) -> np.ndarray:
            return np.exp(-np.sum((pos - centre) ** 2, axis=1) / (2 * width**2))

        # Alpha sources: left/right occipito-parietal and left/right frontal.
        ref = {k: self._template(k) for k in ("O1", "O2", "F3", "F4", "Fpz")}
        self.alpha_topo = np.stack(
            [topo(ref["O1"], 0.045), topo(ref["O2"], 0.045),
             topo(ref["F3"], 0.03), topo(ref["F4"], 0.03)]
        )  # (4, n_ch)
        self.alpha_base = np.array([1.0, 1.0, 0.55, 0.55]) * p["alpha_uv"]
        eyes = ref["Fpz"] + np.array([0.0, 0.015, -0.02])  # in front of and below Fpz
        self.blink_topo = topo(eyes, 0.045)
        self.beta_topo = np.ones(n_ch) / 1.0

        # Filters with state carried across blocks.
        fs = self.fs
        self.pink = _Filter(_PINK_B, _PINK_A, n_ch, 1 / _unit_gain(_PINK_B, _PINK_A, fs))
        ba, aa = sps.iirpeak(p["alpha_hz"], Q=p["alpha_hz"] / 1.6, fs=fs)
        self.alpha = _Filter(ba, aa, 4, 1 / _unit_gain(ba, aa, fs))
        bb, ab = sps.butter(2, [13 / (fs / 2), min(30, 0.45 * fs) / (fs / 2)], "bandpass")
        self.beta = _Filter(bb, ab, 1, 1 / _unit_gain(bb, ab, fs))
        r = np.exp(-1 / (0.05 * fs))  # blink: t*exp(-t/50 ms), peak normalised to 1
        self.blink = _Filter([0, 1], [1, -2 * r, r * r], 1, np.e / (0.05 * fs))
        fs_p = self.fs_p
        r1, r2 = np.exp(-1 / (0.75 * fs_p)), np.exp(-1 / (2.0 * fs_p))  # SCR rise/decay
        t = np.arange(int(20 * fs_p)) / fs_p
        scr_peak = np.max(np.exp(-t / 2.0) - np.exp(-t / 0.75))
        self.scr_slow = _Filter([1], [1, -r2], 1, 1 / scr_peak)
        self.scr_fast = _Filter([1], [1, -r1], 1, 1 / scr_peak)
        tau = 2.0  # affect follows the scenario with a 2 s time constant
        self.affect = _Filter([1 - np.exp(-1 / (tau * fs_p))], [1, -np.exp(-1 / (tau * fs_p))], 2)
        self.affect.zi[:] = NEUTRAL * np.exp(-1 / (tau * fs_p))  # start at rest, not at 0
        # Tonic drift: second order below 0.01 Hz, so it has no power left in the SCR band
        # (a first-order drift leaves 0.06 uS of wiggles above 0.05 Hz, which any SCR detector
        # counts as 20-60 responses a minute, where spontaneous SCRs at rest are 1-3 a minute)
        bd, ad = sps.butter(2, 0.01 / (fs_p / 2))
        self.drift = _Filter(bd, ad, 1, 1 / _unit_gain(bd, ad, fs_p, seconds=400.0))
        self.heart_phase = float(setup.uniform(0, 1))
        self.resp_phase = float(setup.uniform(0, 1))
        self.mayer_phase = float(setup.uniform(0, 2 * np.pi))
        self.pending_scr: list[tuple[float, float]] = []  # (scenario time, amplitude)
        self.face = _FaceModel(config, subject) if config.face else None

    @staticmethod
    def _template(label: str) -> np.ndarray:
        from physioaffect.streams.montage import template_positions

        return template_positions([label])[label]

    # -- scenario ----------------------------------------------------------
    def trials_of_cycle(self, cycle: int) -> list[ScheduledTrial]:
        if cycle not in self._trials:
            self._trials[cycle] = scenario_cycle(self.config, self.subject, cycle)
            self._trials.pop(cycle - 2, None)
        return self._trials[cycle]

    def trials_between(self, t_start: float, t_end: float) -> list[ScheduledTrial]:
        """Trials overlapping [t_start, t_end) in scenario seconds."""
        cyc = self.config.cycle_seconds
        out = []
        for c in range(max(0, int(t_start // cyc)), max(0, int(t_end // cyc)) + 1):
            out += [tr for tr in self.trials_of_cycle(c) if tr.offset > t_start and tr.onset < t_end]
        return out

    def affect_targets(self, t: np.ndarray) -> np.ndarray:
        """Scripted (valence, arousal) at scenario times ``t``: the trial's affect while a
        stimulus is on, neutral (5) at rest. Shape (2, n)."""
        target = np.full((2, t.size), NEUTRAL)
        for tr in self.trials_between(float(t[0]), float(t[-1]) + 1e-9):
            on = (t >= tr.onset) & (t < tr.offset)
            target[0, on] = tr.valence
            target[1, on] = tr.arousal
        return target

    # -- generation ----------------------------------------------------------
    def next_block(self) -> Block:
        """Generate the next block of every stream."""
        cfg, p, rng = self.config, self.params, self.rng
        t0 = self.block_index * cfg.block_seconds
        self.block_index += 1
        n, n_p = self.n_block, self.n_block_p
        t_p = t0 + np.arange(n_p) / self.fs_p
        t_e = t0 + np.arange(n) / self.fs

        affect = self.affect(self.affect_targets(t_p))  # smoothed (valence, arousal), (2, n_p)
        z_v = (affect[0] - NEUTRAL) / 4
        z_a = (affect[1] - NEUTRAL) / 4
        z_a_e = np.interp(t_e, t_p, z_a)
        z_v_e = np.interp(t_e, t_p, z_v)

        # Respiration: rate rises with arousal.
        resp_rate = p["resp_rate_bpm"] * (1 + p["resp_arousal"] * z_a) / 60.0
        resp_phase = self.resp_phase + np.cumsum(resp_rate) / self.fs_p
        self.resp_phase = float(resp_phase[-1] % 1.0)
        resp = np.sin(2 * np.pi * resp_phase) + 0.25 * np.sin(4 * np.pi * resp_phase + 0.6)

        # Heart: rate rises with arousal; RSA (HRV) shrinks with arousal.
        rsa = p["rsa_bpm"] * (1 - p["rsa_arousal"] * np.clip(z_a, 0, 1))
        mayer = 1.5 * np.sin(2 * np.pi * 0.1 * t_p + self.mayer_phase)
        hr = p["heart_rate_bpm"] + p["hr_arousal_bpm"] * z_a + rsa * np.sin(2 * np.pi * resp_phase) + mayer
        phase = self.heart_phase + np.cumsum(hr / 60.0) / self.fs_p
        start_phase = self.heart_phase
        self.heart_phase = float(phase[-1])
        # R peaks: where the phase passes n + R_PHASE (linear interpolation between samples).
        prev = np.concatenate([[start_phase], phase[:-1]])
        k = np.floor(phase - R_PHASE)
        crossed = np.nonzero(k > np.floor(prev - R_PHASE))[0]
        frac = (k[crossed] + R_PHASE - prev[crossed]) / (phase[crossed] - prev[crossed])
        beats = t_p[crossed] - (1 - frac) / self.fs_p
        ph = phase % 1.0
        ecg = np.zeros(n_p)
        for mu, sd, amp in _ECG_WAVES:
            ecg += amp * np.exp(-((ph - mu) ** 2) / (2 * sd**2))
        ecg += 0.05 * resp + 0.01 * rng.standard_normal(n_p)
        ecg += 0.02 * np.sin(2 * np.pi * cfg.line_freq * t_p)

        # PPG: the pulse follows each beat; amplitude falls with arousal (vasoconstriction).
        ppg_amp = p["ppg_amplitude"] * np.exp(-p["ppg_arousal"] * z_a)
        pulse = np.zeros(n_p)
        for mu, sd, amp in _PPG_WAVES:
            pulse += amp * np.exp(-((ph - mu) ** 2) / (2 * sd**2))
        ppg = ppg_amp * pulse + 0.1 * resp + 0.02 * rng.standard_normal(n_p)

        # EDA: tonic level and drift, spontaneous SCRs (more with arousal), evoked SCRs.
        rate = p["scr_rate_hz"] * (1 + p["scr_arousal"] * np.clip(z_a, 0, None))
        n_scr = rng.poisson(float(np.mean(rate)) * cfg.block_seconds)
        impulses = np.zeros(n_p)
        where = rng.integers(0, n_p, n_scr)
        # spontaneous SCRs at rest are counted from 0.05 uS (the usual amplitude criterion of the
        # 1-3 per minute found at rest), so every one reaches it: 0.05 uS plus an exponential tail
        amp = 0.05 + rng.exponential(0.1, n_scr)
        np.add.at(impulses, where, amp * (1 + np.clip(z_a[where], 0, None)))
        for tr in self.trials_between(t0 - 2.0, t0 + cfg.block_seconds - 2.0):
            te = tr.onset + 2.0  # evoked SCR about 2 s after the onset
            if t0 <= te < t0 + cfg.block_seconds:
                za = (tr.arousal - NEUTRAL) / 4
                amp = max(0.02, p["scr_evoked_us"] * (0.4 + za))
                impulses[int((te - t0) * self.fs_p)] += amp
        phasic = (self.scr_slow(impulses[None]) - self.scr_fast(impulses[None]))[0]
        tonic = p["eda_tonic_us"] + p["eda_arousal_us"] * z_a + 0.12 * self.drift(rng.standard_normal((1, n_p)))[0]
        eda = np.maximum(tonic + phasic + 0.003 * rng.standard_normal(n_p), 0.05)

        # EEG: 1/f background, alpha (arousal, valence asymmetry), beta, blinks, line, noise.
        n_ch = cfg.eeg_channels
        bg = self.background_mix @ self.pink(rng.standard_normal((n_ch, n)))
        alpha_src = self.alpha(rng.standard_normal((4, n)))
        log_amp = -p["alpha_arousal"] * z_a_e
        faa = p["faa_valence"] * z_v_e  # positive valence: less left, more right frontal alpha
        scale = np.stack([log_amp, log_amp, log_amp - faa, log_amp + faa])
        alpha_src *= self.alpha_base[:, None] * np.exp(scale)
        beta = self.beta(rng.standard_normal((1, n)))[0] * 2.0 * (1 + p["beta_arousal"] * z_a_e)
        n_blink = rng.poisson(p["blink_rate_hz"] * cfg.block_seconds)
        blink_imp = np.zeros((1, n))
        blink_at, blink_size = rng.integers(0, n, n_blink), rng.uniform(0.7, 1.3, n_blink)
        np.add.at(blink_imp[0], blink_at, blink_size)
        blink = self.blink(blink_imp)[0] * p["blink_uv"]
        eeg = p["background_uv"] * bg + self.alpha_topo.T @ alpha_src
        eeg += self.beta_topo[:, None] * beta[None] + self.blink_topo[:, None] * blink[None]
        eeg += self.line_amp[:, None] * np.sin(2 * np.pi * cfg.line_freq * t_e[None] + self.line_phase[:, None])
        eeg += p["noise_uv"] * rng.standard_normal((n_ch, n))
        eeg *= self.gains[:, None]

        markers = []
        for tr in self.trials_between(t0 - cfg.stimulus_seconds, t0 + cfg.block_seconds):
            for when, event in ((tr.onset, "stimulus_onset"), (tr.offset, "stimulus_offset")):
                if t0 <= when < t0 + cfg.block_seconds:
                    markers.append((when, tr.marker(event)))
        markers.sort()
        signals = {
            "EEG": eeg.T.astype(np.float32),
            "ECG": ecg[:, None].astype(np.float32),
            "GSR": eda[:, None].astype(np.float32),
            "PPG": ppg[:, None].astype(np.float32),
            "RESP": resp[:, None].astype(np.float32),
        }
        if self.face is not None:
            # face frames: a variable count per block when block_seconds * face_rate is not whole
            signals["Face"] = self.face.block(
                t0, self.block_index * cfg.block_seconds, t_p, z_v, z_a, hr, phase,
                list(zip(t_e[blink_at], blink_size, strict=True)))
        return Block(
            t0=t0,
            signals=signals,
            markers=markers,
            beats=beats,
            state={"valence": affect[0], "arousal": affect[1], "heart_rate_bpm": hr},
        )


@dataclass
class SimRecording:
    """An offline simulation of one subject.

    Attributes
    ----------
    signals : dict
        Stream type (``"EEG"``, ``"ECG"``, ``"GSR"``, ``"PPG"``, ``"RESP"``, and
        ``"Face"`` with ``config.face``) ->
        ``(StreamInfo, timestamps (n,), samples (n, n_channels))``; timestamps in
        seconds from the start of the scenario (plus ``t0``).
    markers : list of (float, str)
        Stimulus onset/offset markers (time in s, JSON text).
    trials : list of dict
        ``trial, stimulus, onset, offset, valence, arousal`` (times in s, affect 1-9).
    subject : dict
        The subject's parameters (see :func:`subject_params`), plus ``index``.
    beats : ndarray
        True R-peak times in s.
    state : dict
        ``time``, ``valence``, ``arousal``, ``heart_rate_bpm`` at the peripheral rate.
    """

    config: SimConfig
    signals: dict[str, tuple[StreamInfo, np.ndarray, np.ndarray]]
    markers: list[tuple[float, str]]
    trials: list[dict[str, Any]]
    subject: dict[str, Any]
    beats: np.ndarray
    state: dict[str, np.ndarray]


def simulate_subject(
    config: SimConfig, subject: int = 0, duration: float | None = None, t0: float = 0.0,
    prefix: str = "sim",
) -> SimRecording:
    """Simulate one subject offline, as fast as the machine allows.

    Parameters
    ----------
    config : SimConfig
    subject : int
        Subject index.
    duration : float or None
        Seconds to simulate; default one scenario cycle (baseline + every trial).
    t0 : float
        Time of the first sample in the returned timestamps, s.
    prefix : str
        Stream-name prefix.

    Returns
    -------
    SimRecording
    """
    duration = config.cycle_seconds if duration is None else float(duration)
    model = SubjectModel(config, subject)
    n_blocks = int(np.ceil(duration / config.block_seconds - 1e-9))
    blocks = [model.next_block() for _ in range(n_blocks)]
    infos = stream_infos(config, prefix, subject)
    signals = {}
    for kind, info in infos.items():
        if kind == "Markers":
            continue
        if kind == "Face":  # frames k / face_rate before the end (the rate need not divide it)
            n_keep = config.face_frames_before(duration)
        else:
            n_keep = int(round(duration * info.nominal_srate))
        data = np.concatenate([b.signals[kind] for b in blocks])[:n_keep]
        signals[kind] = (info, t0 + np.arange(n_keep) / info.nominal_srate, data)
    markers = [(t0 + t, m) for b in blocks for t, m in b.markers if t < duration]
    n_p = int(round(duration * config.peripheral_rate))
    state = {k: np.concatenate([b.state[k] for b in blocks])[:n_p] for k in blocks[0].state}
    state["time"] = t0 + np.arange(n_p) / config.peripheral_rate
    trials = [asdict(tr) for tr in model.trials_between(0.0, duration) if tr.offset <= duration]
    for tr in trials:
        tr["onset"] += t0
        tr["offset"] += t0
    beats = np.concatenate([b.beats for b in blocks])
    return SimRecording(
        config=config,
        signals=signals,
        markers=markers,
        trials=trials,
        subject={"index": subject, **model.params},
        beats=t0 + beats[beats < duration],
        state=state,
    )
