"""Play a recording back as a live source."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from edgesense.recording.reader import Recording
from edgesense.stream.buffer import OverflowPolicy
from edgesense.stream.frame import Frame
from edgesense.stream.source import ThreadedSource


class ReplaySource(ThreadedSource):
    """Replays a recording with its original sequence numbers, so recorded gaps replay as gaps.

    ``speed=1.0`` paces frames by their recorded device timestamps (real time), ``speed=N`` plays N
    times faster, and ``speed=None`` as fast as the consumer takes them (then the buffer blocks
    instead of dropping, since nothing is real-time). ``loop=True`` starts over at the end.
    Damage found while loading is in :attr:`integrity`; its lost frames show up as gaps.
    """

    def __init__(self, recording: Recording | str | Path, *, speed: float | None = 1.0, loop: bool = False,
                 buffer_frames: int = 256) -> None:
        rec = recording if isinstance(recording, Recording) else Recording.open(recording)
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None, got {speed}")
        policy = OverflowPolicy.BLOCK if speed is None else OverflowPolicy.DROP_OLDEST
        super().__init__(rec.profile, buffer_frames=buffer_frames, overflow=policy)
        self.recording = rec
        self.integrity = rec.integrity
        self.speed = speed
        self.loop = loop

    def _read(self) -> Iterator[Frame]:
        rec = self.recording
        if rec.n_frames == 0:
            return
        t_dev = rec.device_time_us
        while True:
            t0 = time.monotonic()
            for k in range(rec.n_frames):
                if self.closed:
                    return
                if self.speed is not None:
                    delay = t0 + (int(t_dev[k]) - int(t_dev[0])) * 1e-6 / self.speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield Frame(rec.profile.kind, int(rec.seq[k]), int(t_dev[k]), time.monotonic(), rec.payloads[k])
            if not self.loop:
                return
