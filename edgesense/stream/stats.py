"""Stream statistics: what arrived, what was lost, and why."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from edgesense.stream.frame import SEQ_MODULUS, seq_distance

# A forward jump larger than this is not a gap but a restart or a backwards step of the counter.
MAX_GAP = SEQ_MODULUS // 2


@dataclass
class SourceStats:
    """Counters every :class:`~edgesense.stream.source.Source` keeps.

    ``gaps`` counts holes in the sequence numbers and ``gap_sizes`` how many frames each hole
    lost (``{size: count}``), so ``frames_missing`` is every frame the device sent that never
    arrived. ``corrupt_frames`` were received but failed their integrity check; ``overflow_drops``
    were received but discarded because the consumer fell behind; ``out_of_order`` frames arrived
    with a sequence number at or behind the last one (duplicates, reordering, device restarts).
    """

    frames_received: int = 0
    gaps: int = 0
    gap_sizes: Counter = field(default_factory=Counter)
    corrupt_frames: int = 0
    overflow_drops: int = 0
    out_of_order: int = 0
    bytes_received: int = 0

    @property
    def frames_missing(self) -> int:
        return sum(size * count for size, count in self.gap_sizes.items())

    def to_dict(self) -> dict:
        return {
            "frames_received": self.frames_received,
            "gaps": self.gaps,
            "frames_missing": self.frames_missing,
            "gap_sizes": {str(k): v for k, v in sorted(self.gap_sizes.items())},
            "corrupt_frames": self.corrupt_frames,
            "overflow_drops": self.overflow_drops,
            "out_of_order": self.out_of_order,
            "bytes_received": self.bytes_received,
        }

    def summary(self) -> str:
        return (f"{self.frames_received} frames, {self.gaps} gaps ({self.frames_missing} missing), "
                f"{self.corrupt_frames} corrupt, {self.overflow_drops} overflow drops")


class GapTracker:
    """Detects gaps from u32 sequence numbers, wrap-around included, and counts them in stats."""

    def __init__(self, stats: SourceStats) -> None:
        self.stats = stats
        self.last_seq: int | None = None
        self._lock = threading.Lock()

    def observe(self, seq: int) -> int:
        """Record a received ``seq``; returns how many frames were missing right before it."""
        with self._lock:
            self.stats.frames_received += 1
            if self.last_seq is None:
                self.last_seq = seq
                return 0
            step = seq_distance(self.last_seq, seq)
            if step == 0 or step > MAX_GAP:
                self.stats.out_of_order += 1
                self.last_seq = seq
                return 0
            self.last_seq = seq
            missing = step - 1
            if missing:
                self.stats.gaps += 1
                self.stats.gap_sizes[missing] += 1
            return missing
