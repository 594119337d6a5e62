"""Gesture spotting: turn a stream of per-frame class probabilities into one event per gesture.

The gesture models are trained to say "gesture X has just ended" for the few frames around each
gesture's end and ``noise`` everywhere else (see :mod:`edgesense.nn.train_gesture`), so a gesture
shows up as a short burst of confident frames. The spotter turns bursts into events:

* **k-of-n onset**: an event starts when, among the last ``n`` frames, at least ``k`` have the
  same non-noise class as their top class with probability >= ``on_threshold``. A single
  confident frame never triggers (no flicker).
* **hysteresis release**: while an event is active nothing new is emitted; it ends when that
  class's probability stays below ``off_threshold`` for ``release_frames`` frames. Between two
  repetitions of the same gesture the model returns to ``noise``, so repeats each give an event.
* the ``noise`` class (and any class listed in ``ignore``) is never reported.
* **refractory period** (``refractory_frames``, 0 = off): an onset confirmed within that many frames
  of the previous emitted onset is taken as the same gesture seen again (e.g. a held palm read first as
  ``palm_hold``, then as ``finger_slide``): it is absorbed — not emitted, but held active until
  released like any event, so it cannot fire at the end of the period either. Real gestures are
  separated by the gesture itself plus an idle gap, so a period shorter than that costs no recall.

An event is emitted as soon as its onset is confirmed (``end`` is filled in when it is released),
so detection latency is the time from the gesture's end to the onset frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpotterConfig", "GestureEvent", "GestureSpotter", "spot"]


@dataclass(frozen=True)
class SpotterConfig:
    """Thresholds of :class:`GestureSpotter` (frames count model outputs)."""

    on_threshold: float = 0.6
    off_threshold: float = 0.4
    k: int = 2
    n: int = 3
    release_frames: int = 3
    refractory_frames: int = 0
    noise_label: str = "noise"
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"need 1 <= k <= n, got k={self.k} n={self.n}")
        if not 0.0 <= self.off_threshold <= self.on_threshold <= 1.0:
            raise ValueError("need 0 <= off_threshold <= on_threshold <= 1")
        if self.release_frames < 1:
            raise ValueError("release_frames must be >= 1")
        if self.refractory_frames < 0:
            raise ValueError("refractory_frames must be >= 0")


@dataclass
class GestureEvent:
    """One spotted gesture: frames ``start`` (first agreeing frame) .. ``end`` (exclusive, set on release).

    ``onset`` is the frame at which the event was confirmed and emitted; ``confidence`` the mean
    probability of ``label`` over the agreeing frames.
    """

    label: str
    start: int
    onset: int
    confidence: float
    end: int | None = None
    extra: dict = field(default_factory=dict)


class GestureSpotter:
    """Stateful k-of-n / hysteresis spotter; feed it one probability vector per frame."""

    def __init__(self, classes: list[str] | tuple[str, ...], config: SpotterConfig | None = None) -> None:
        self.classes = tuple(classes)
        self.config = config or SpotterConfig()
        skip = {self.config.noise_label, *self.config.ignore}
        self._reportable = [c not in skip for c in self.classes]
        self.reset()

    def reset(self) -> None:
        """Forget all state (e.g. after a long gap in the stream)."""
        self._recent: deque[tuple[int, int, float]] = deque(maxlen=self.config.n)  # (frame, class or -1, p)
        self._active: GestureEvent | None = None
        self._active_cls = -1
        self._below = 0
        self._absorbed = False
        self._last_onset: int | None = None

    @property
    def active(self) -> GestureEvent | None:
        """The event currently in progress, if any (an absorbed onset is not an event)."""
        return None if self._absorbed else self._active

    def update(self, frame: int, probs: np.ndarray) -> list[GestureEvent]:
        """Consume the probabilities for ``frame``; returns events whose onset is this frame (0 or 1).

        The comparisons are made on the values as Python floats (float64, exact for float32 input), in
        plain Python: the vector is a handful of values, and a live frame pays for every numpy call.
        """
        values = (probs if isinstance(probs, np.ndarray) else np.asarray(probs, dtype=np.float64)).ravel().tolist()
        return self.update_values(frame, values)

    def update_values(self, frame: int, values: list[float]) -> list[GestureEvent]:
        """:meth:`update` with the probabilities as a list of Python floats (what the live pipeline hands over)."""
        cfg = self.config
        if self._active is not None:
            if values[self._active_cls] < cfg.off_threshold:
                self._below += 1
                if self._below >= cfg.release_frames:
                    self._active.end = frame - cfg.release_frames + 1
                    self._active = None
                    self._active_cls = -1
                    self._recent.clear()
            else:
                self._below = 0
            return []
        p = max(values)
        top = values.index(p)           # the first of equal maxima, as np.argmax
        vote = top if (self._reportable[top] and p >= cfg.on_threshold) else -1
        self._recent.append((frame, vote, p))
        if vote < 0:
            return []
        agree = [(f, q) for f, c, q in self._recent if c == vote]
        if len(agree) < cfg.k:
            return []
        event = GestureEvent(self.classes[vote], start=agree[0][0], onset=frame,
                             confidence=float(np.mean([q for _, q in agree])))
        self._active, self._active_cls, self._below = event, vote, 0
        self._absorbed = (self._last_onset is not None and cfg.refractory_frames > 0
                          and frame - self._last_onset < cfg.refractory_frames)
        if self._absorbed:
            return []
        self._last_onset = frame
        return [event]

    def finish(self, frame: int) -> None:
        """Close an active event at the end of a stream (``frame`` = one past the last frame)."""
        if self._active is not None:
            self._active.end = frame
            self._active = None
            self._active_cls = -1


def spot(probs: np.ndarray, classes: list[str] | tuple[str, ...],
         config: SpotterConfig | None = None) -> list[GestureEvent]:
    """Batch form: spot events in a ``(frames, classes)`` probability array (same code as streaming)."""
    spotter = GestureSpotter(classes, config)
    events: list[GestureEvent] = []
    for i, row in enumerate(np.asarray(probs)):
        events.extend(spotter.update(i, row))
    spotter.finish(len(probs))
    return events
