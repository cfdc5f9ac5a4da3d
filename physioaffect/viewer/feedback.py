"""Neurofeedback targets and the mapping from a prediction stream to the valence-arousal plane."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from physioaffect.errors import PhysioAffectError

__all__ = ["FeedbackTarget", "parse_targets", "va_from_prediction"]

#: Metrics a target can name: from the signals alone (``faa``, ``alpha`` from the EEG, ``hr``
#: from the ECG or else the PPG) or from a decoder's prediction stream (``valence``,
#: ``arousal``).
TARGET_METRICS = ("faa", "alpha", "hr", "valence", "arousal")

#: Metrics that need no decoder: neurofeedback on them works without a Prediction stream.
FEATURE_METRICS = ("faa", "alpha", "hr")


class FeedbackTargetError(PhysioAffectError, ValueError):
    """A neurofeedback target spec cannot be parsed (one-line message)."""


@dataclass(frozen=True)
class FeedbackTarget:
    """A training goal such as "increase FAA above 0.1" or "keep arousal below 4".

    Parameters
    ----------
    metric : {"faa", "alpha", "hr", "valence", "arousal"}
        ``faa``: ln alpha(right) - ln alpha(left) frontal pair; ``alpha``: relative alpha power
        (0-1); ``hr``: heart rate in beats/min (ECG, else PPG pulse); ``valence``/``arousal``:
        decoded state on the 1-9 scale (needs a Prediction stream).
    direction : {"increase", "decrease"}
    threshold : float
        The value to exceed (increase) or stay under (decrease).
    """

    metric: str
    direction: str
    threshold: float

    def __post_init__(self) -> None:
        if self.metric not in TARGET_METRICS:
            raise FeedbackTargetError(f"feedback target: metric {self.metric!r} is not one of "
                             f"{', '.join(TARGET_METRICS)}")
        if self.direction not in ("increase", "decrease"):
            raise FeedbackTargetError(f"feedback target: direction must be increase or decrease, got "
                             f"{self.direction!r}")

    def met(self, value: float) -> bool | None:
        """Whether ``value`` meets the target (None when the value is unknown)."""
        if value is None or not math.isfinite(value):
            return None
        return value >= self.threshold if self.direction == "increase" else value <= self.threshold

    @property
    def text(self) -> str:
        arrow = "\u2191" if self.direction == "increase" else "\u2193"
        sign = "\u2265" if self.direction == "increase" else "\u2264"
        name = {"faa": "FAA", "hr": "HR (bpm)", "alpha": "relative alpha"}.get(self.metric,
                                                                             self.metric)
        return f"{name} {arrow} (goal {sign} {self.threshold:g})"

    @property
    def span(self) -> float:
        """Range shown by the target's bar (centred on the threshold), in the metric's unit."""
        return {"faa": 1.0, "alpha": 1.0, "hr": 40.0}.get(self.metric, 8.0)


def parse_targets(text: str | None) -> list[FeedbackTarget]:
    """Targets from ``"faa>0.1,arousal<4"`` (``>``: increase past, ``<``: decrease below).

    Raises
    ------
    ValueError
        A part that is not ``metric>number`` or ``metric<number``.
    """
    out: list[FeedbackTarget] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        op = ">" if ">" in part else "<" if "<" in part else None
        if op is None:
            raise FeedbackTargetError(f"feedback target {part!r}: expected metric>value or metric<value, "
                             "e.g. faa>0.1 or arousal<4")
        metric, _, value = part.partition(op)
        try:
            threshold = float(value.strip().lstrip("="))
        except ValueError:
            raise FeedbackTargetError(f"feedback target {part!r}: {value!r} is not a number") from None
        out.append(FeedbackTarget(metric.strip().lower(),
                                  "increase" if op == ">" else "decrease", threshold))
    return out


def va_from_prediction(labels: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    """Valence and arousal (1-9) from one prediction sample.

    A regression stream carries ``valence``/``arousal`` directly; a classifier's
    ``arousal_high`` probability p maps to ``1 + 8 p`` (so p = 0.5 is neutral 5). Dimensions the
    stream does not decode are absent from the result.
    """
    by = {str(k).lower(): float(v) for k, v in zip(labels, values, strict=False)}
    out: dict[str, float] = {}
    for dim in ("valence", "arousal"):
        if dim in by:
            out[dim] = by[dim]
        elif f"{dim}_high" in by:
            out[dim] = 1.0 + 8.0 * by[f"{dim}_high"]
        elif f"{dim}_low" in by:
            out[dim] = 9.0 - 8.0 * by[f"{dim}_low"]
    return out


def metric_values(eeg: Mapping[str, object] | None, va: Mapping[str, float],
                  heart_rate: float = float("nan")) -> dict[str, float]:
    """Current value of every target metric (NaN when unknown).

    Parameters
    ----------
    eeg : mapping
        The EEG stream's metrics (``faa``, ``bands``, ``relative``).
    va : mapping
        Decoded ``valence``/``arousal`` (empty without a prediction stream).
    heart_rate : float
        Beats/min from the ECG (or PPG).
    """
    nan = float("nan")
    vals = {"faa": nan, "alpha": nan, "hr": float(heart_rate),
            "valence": va.get("valence", nan), "arousal": va.get("arousal", nan)}
    if eeg:
        vals["faa"] = float(eeg.get("faa", nan))  # type: ignore[arg-type]
        rel = eeg.get("relative")
        bands = eeg.get("bands")
        if rel and bands:
            names = [b[0] for b in bands]  # type: ignore[index]
            if "alpha" in names:
                vals["alpha"] = float(rel[names.index("alpha")])  # type: ignore[index]
    return vals
