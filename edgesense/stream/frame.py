"""The unit every source yields: one frame of one sensor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEQ_MODULUS = 1 << 32  # sequence numbers are u32 and wrap


@dataclass(frozen=True, slots=True)
class Frame:
    """One sensor frame.

    ``seq`` is the device's u32 frame counter (it wraps at 2**32); gaps in it are lost frames.
    ``device_time_us`` is the device clock at capture (µs), ``host_time`` the host's
    ``time.monotonic()`` when the frame was received. ``payload``'s dtype and shape come from the
    sensor profile.
    """

    kind: str
    seq: int
    device_time_us: int
    host_time: float
    payload: np.ndarray


def seq_distance(prev: int, cur: int) -> int:
    """Forward distance from ``prev`` to ``cur`` modulo 2**32 (1 means consecutive)."""
    return (cur - prev) % SEQ_MODULUS
