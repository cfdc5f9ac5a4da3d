"""Markers as events: what MNE annotations, BIDS ``events.tsv`` and the datasets layer see.

Stimulus programs (and the simulator) send JSON markers::

    {"event": "stimulus_onset",  "trial": 3, "stimulus": "clip07", "valence": 6.5}
    {"event": "stimulus_offset", "trial": 3, "stimulus": "clip07", "valence": 6.5}
    {"event": "rating", "trial": 3, "valence": 6, "arousal": 4}

:func:`marker_events` makes them events the way MNE and BIDS users expect: an ``<name>_onset``
marker and the next ``<name>_offset`` marker of the same ``trial`` become **one** event named
``<name>`` (``stimulus``) with its duration (offset minus onset) and the onset marker's fields
(``trial``, ``stimulus``, ``valence`` ...; fields only the offset carries are added); plain-text
markers ``<name>_onset``/``<name>_offset`` pair the same way (no trial to match). Every other
marker is an event of its own with duration 0: a JSON marker named by its ``event`` field
(``rating``), a plain-text marker by its text. An onset whose offset never came (the
recording stopped during the stimulus) keeps its marker's name (``stimulus_onset``), duration
0 and ``complete=False``, so it is never mistaken for a whole stimulus.

This module is the one place that parses and pairs markers: the lazily read Raw's annotations
(:mod:`physioaffect.recording.raw`), the BIDS export and the session reader of the datasets
layer (:mod:`physioaffect.datasets.sessions`) all use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MarkerEvent", "marker_annotation_fields", "marker_events", "parse_marker"]

#: ``<name>_onset`` / ``<name>_offset`` (also ``-`` or a space before onset/offset).
_EDGE = re.compile(r"^(?P<name>.+?)[_\- ](?P<edge>onset|offset)$")


@dataclass
class MarkerEvent:
    """One event made of one marker, or of an onset and its offset marker.

    Attributes
    ----------
    name : str
        ``stimulus`` for a stimulus_onset/stimulus_offset pair; a single JSON marker's
        ``event``; a plain-text marker's text.
    onset : float
        LSL time of the (onset) marker, s.
    duration : float
        Offset minus onset in s; 0 for single markers.
    fields : dict
        The JSON marker's fields other than ``event`` (values int, float, str or None;
        booleans as 0/1, nested values as JSON text). Empty for plain-text markers.
    text : str
        The (onset) marker's text as recorded.
    complete : bool
        False for an onset marker whose offset was never recorded.
    """

    name: str
    onset: float
    duration: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    complete: bool = True

    @property
    def trial(self) -> Any:
        """The ``trial`` field (None when the marker has none)."""
        return self.fields.get("trial")


def parse_marker(text: str) -> dict[str, Any]:
    """A marker's JSON object, or ``{"text": text}`` for anything else."""
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return {"text": text}
    return value if isinstance(value, dict) else {"text": text}


def _field_value(v: Any) -> Any:
    """A marker field as MNE annotation extras and BIDS columns hold it."""
    if isinstance(v, bool):
        return int(v)
    if v is None or isinstance(v, int | float | str):
        return v
    return json.dumps(v, ensure_ascii=False)


def marker_annotation_fields(text: str) -> tuple[str, dict[str, Any]]:
    """Description and extra fields of one marker, unpaired.

    A JSON object marker ``{"event": "stimulus_onset", "trial": 3, "valence": 6.5}`` gives
    ``("stimulus_onset", {"trial": 3, "valence": 6.5})`` (nested values as JSON text); any
    other text is its own description with no fields.
    """
    d = parse_marker(text)
    if set(d) == {"text"}:
        return text, {}
    return str(d.get("event", "marker")), {str(k): _field_value(v) for k, v in d.items()
                                           if k != "event"}


def marker_events(markers: Iterable[Any]) -> list[MarkerEvent]:
    """Pair onset/offset markers into events with durations (see the module docstring).

    Parameters
    ----------
    markers : iterable
        Objects with ``time`` (LSL s) and ``text`` (a session's :attr:`Session.markers`).

    Returns
    -------
    list of MarkerEvent
        In order of onset time.
    """
    out: list[MarkerEvent] = []
    open_: dict[tuple[str, str], MarkerEvent] = {}
    for m in sorted(markers, key=lambda m: m.time):
        desc, fields = marker_annotation_fields(m.text)
        edge = _EDGE.match(desc)
        if edge is None:  # a single marker (rating, plain text ...)
            out.append(MarkerEvent(desc, float(m.time), 0.0, fields, m.text))
            continue
        name = edge["name"]
        key = (name, json.dumps(fields.get("trial")))
        if edge["edge"] == "onset":
            if key in open_:  # a second onset before any offset: the first never ended
                out.append(open_.pop(key))
            open_[key] = MarkerEvent(desc, float(m.time), 0.0, fields, m.text, complete=False)
        elif key in open_:
            ev = open_.pop(key)
            ev.name, ev.complete = name, True
            ev.duration = max(0.0, float(m.time) - ev.onset)
            ev.fields = {**fields, **ev.fields}  # the onset's values win
            out.append(ev)
        else:  # an offset whose onset was not recorded (the recording started late)
            out.append(MarkerEvent(desc, float(m.time), 0.0, fields, m.text, complete=False))
    out += open_.values()
    return sorted(out, key=lambda e: e.onset)
