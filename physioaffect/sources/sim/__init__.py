"""The built-in physiological simulator: virtual subjects with ground-truth affect.

Offline: :func:`simulate_subject`. Live: the ``sim`` source (:class:`SimSource`).
``SimConfig(face=True)`` (``sim?face=1``) adds a ``Face`` stream of facial features per video
frame that follows the same ground-truth affect.
"""

from physioaffect.sources.sim.model import (
    NEUTRAL,
    R_PHASE,
    ScheduledTrial,
    SimConfig,
    SimRecording,
    Stimulus,
    SubjectModel,
    face_params,
    scenario_cycle,
    simulate_subject,
    stimulus_set,
    stream_infos,
    subject_params,
)
from physioaffect.sources.sim.source import SimSource

__all__ = [
    "NEUTRAL",
    "R_PHASE",
    "SimConfig",
    "SimRecording",
    "SimSource",
    "Stimulus",
    "SubjectModel",
    "ScheduledTrial",
    "face_params",
    "scenario_cycle",
    "simulate_subject",
    "stimulus_set",
    "stream_infos",
    "subject_params",
]
