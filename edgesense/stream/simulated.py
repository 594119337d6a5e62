"""A live source driven by a simulator instead of hardware."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from edgesense.profiles import SensorProfile
from edgesense.stream.buffer import OverflowPolicy
from edgesense.stream.frame import SEQ_MODULUS, Frame
from edgesense.stream.source import ThreadedSource

PayloadFn = Callable[[int], np.ndarray]
"""Returns the payload of frame ``k`` (k counts from 0); raising StopIteration ends the stream."""


class SimulatedSource(ThreadedSource):
    """Streams frames from ``payload_fn`` at the profile's frame rate, like a device would.

    ``speed`` scales the pace (2.0 = twice real time); ``speed=None`` runs as fast as possible, and
    then the buffer blocks the simulator instead of dropping frames (unless ``overflow`` says otherwise).
    ``drops`` (a model from :mod:`edgesense.stream.faults`) loses frames the way a real link does:
    a lost frame still consumes its sequence number, so consumers see the gap. ``start_seq`` lets
    tests start near the u32 wrap.
    """

    def __init__(self, profile: SensorProfile, payload_fn: PayloadFn, *, speed: float | None = 1.0,
                 max_frames: int | None = None, duration_s: float | None = None, drops=None,
                 seed: int = 0, start_seq: int = 0, buffer_frames: int = 256,
                 overflow: OverflowPolicy | str | None = None) -> None:
        if overflow is None:
            overflow = OverflowPolicy.BLOCK if speed is None else OverflowPolicy.DROP_OLDEST
        super().__init__(profile, buffer_frames=buffer_frames, overflow=overflow)
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None, got {speed}")
        self.payload_fn = payload_fn
        self.speed = speed
        limit = max_frames
        if duration_s is not None:
            by_time = int(round(duration_s * profile.frame_rate_hz))
            limit = by_time if limit is None else min(limit, by_time)
        self.max_frames = limit
        self.drops = drops
        self.rng = np.random.default_rng(seed)
        self.start_seq = start_seq % SEQ_MODULUS

    def _read(self) -> Iterator[Frame]:
        period_s = 1.0 / self.profile.frame_rate_hz
        t0 = time.monotonic()
        k = 0
        drop_block = np.zeros(0, dtype=bool)
        while not self.closed and (self.max_frames is None or k < self.max_frames):
            try:
                payload = self.payload_fn(k)
            except StopIteration:
                return
            if self.speed is not None:
                due = t0 + (k + 1) * period_s / self.speed  # a frame is ready at the end of its capture
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if self.drops is not None:
                if k % 1024 == 0:
                    drop_block = self.drops.mask(1024, self.rng)
                if drop_block[k % 1024]:
                    k += 1
                    continue
            seq = (self.start_seq + k) % SEQ_MODULUS
            yield Frame(self.profile.kind, seq, int(round(k * period_s * 1e6)), time.monotonic(), payload)
            k += 1


def noise_payloads(profile: SensorProfile, seed: int = 0) -> PayloadFn:
    """A test signal for any profile: unit-variance white noise in the profile's dtype and shape."""
    rng = np.random.default_rng(seed)
    dtype, shape = profile.payload_dtype, profile.payload_shape

    def payload(_: int) -> np.ndarray:
        if dtype.kind == "c":
            data = rng.standard_normal((*shape, 2), dtype=np.float32)
            return data.view(np.complex64)[..., 0].astype(dtype, copy=False)
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)

    return payload
