"""Labels stored with a recording: a whole-clip class, events, and a per-frame activity mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgesense.errors import FormatError


@dataclass(frozen=True)
class Event:
    """A labelled gesture or episode: frames ``start`` (inclusive) to ``end`` (exclusive)."""

    label: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise FormatError(f"event {self.label!r}: need 0 <= start < end, got start={self.start} end={self.end}")


@dataclass
class Labels:
    """All labels of one recording; frame numbers are row indices in the recording, not sequence numbers.

    ``activity`` is a uint8 mask, one entry per frame: 1 where a labelled event is going on.
    """

    clip_label: str | None = None
    events: list[Event] = field(default_factory=list)
    activity: np.ndarray | None = None

    def to_chunk(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"clip_label": self.clip_label,
                "events": [{"label": e.label, "start": e.start, "end": e.end} for e in self.events]}
        arrays = {} if self.activity is None else {"activity": np.asarray(self.activity, dtype=np.uint8)}
        return meta, arrays

    @classmethod
    def from_chunk(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Labels":
        try:
            events = [Event(str(e["label"]), int(e["start"]), int(e["end"])) for e in meta.get("events", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"bad event list in labels: {exc}") from None
        clip = meta.get("clip_label")
        activity = arrays.get("activity")
        return cls(None if clip is None else str(clip), events,
                   None if activity is None else np.array(activity, dtype=np.uint8))

    def classes(self) -> set[str]:
        out = {e.label for e in self.events}
        if self.clip_label is not None:
            out.add(self.clip_label)
        return out

    @staticmethod
    def activity_from_events(events: list[Event], n_frames: int) -> np.ndarray:
        mask = np.zeros(n_frames, dtype=np.uint8)
        for e in events:
            mask[e.start: min(e.end, n_frames)] = 1
        return mask
