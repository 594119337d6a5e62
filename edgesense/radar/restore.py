"""Restoring dropped RDI frames, live with bounded latency, and the same rule as training augmentation.

Gaps are found from u32 sequence numbers (wrap-around handled). A missing frame *i* between the last
received frame *a* and the next received frame *b* is filled by a rule that never looks more than
``lookahead`` frames past the missing frame (default 2, i.e. 50 ms at 40 frames/s)::

    anchor = max(a, b − lookahead − 1)
    i ≤ anchor:  rdi_i = rdi_a                                   (hold the last frame: b is too far away)
    i > anchor:  w = (i − anchor) / (b − anchor)
                 rdi_i = (1 − w)·rdi_a + w·rdi_b                 (linear ramp in time toward b)

Short gaps (≤ ``lookahead`` frames) are plain linear interpolation between the neighbours; in a long
burst the early frames hold the last image (that is all a live system can know at their deadline)
and the last ``lookahead`` frames ramp toward the frame after the burst, so the sequence stays
continuous. Frames before the first received frame copy it, frames after the last received one hold
it. Every filled frame is flagged, and :func:`add_validity_channel` turns the flags into an extra
input channel (1 received, 0 restored) so a model can learn to discount restored frames.

This is deliberately plain interpolation in time on the RDIs themselves: no transform of the sequence
into a frequency domain and back (see the patent note in /work/shared/reference/radar.md §0).

:class:`FrameRestorer` is the streaming form: it emits good frames at once (zero added latency) and a
gap's restored frames as soon as the frame after the gap arrives; :meth:`FrameRestorer.expire` lets a
clock-driven caller release hold-last frames of a long burst at their deadline without waiting for
the burst to end. :func:`restore_sequence` is the batch form with identical results, used for
evaluation and, with :func:`drop_and_restore`, for training augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgesense.stream.faults import random_plus_bursty
from edgesense.stream.frame import SEQ_MODULUS, seq_distance

__all__ = ["DEFAULT_LOOKAHEAD", "RestoredFrame", "RestorerStats", "FrameRestorer", "fill_gap", "restore_sequence", "restore_with_flags",
           "drop_and_restore", "long_gap_mask", "add_validity_channel"]

DEFAULT_LOOKAHEAD = 2         # frames a missing frame may wait for (50 ms at 40 frames/s)
_BACKWARD = SEQ_MODULUS // 2   # a forward step larger than this is a step backwards (or a duplicate at 0)


def _blend(a: np.ndarray, b: np.ndarray, w: np.ndarray | np.float32) -> np.ndarray:
    """(1 − w)·a + w·b in float32; the single formula both forms use, so they agree bit for bit."""
    w = np.asarray(w, dtype=np.float32)
    return ((np.float32(1.0) - w) * a + w * b).astype(np.float32, copy=False)


def _weights(i: np.ndarray, a: np.ndarray, b: np.ndarray, lookahead: int) -> np.ndarray:
    """Weight of the next frame for missing positions ``i`` between received ``a`` and ``b``."""
    anchor = np.maximum(a, b - lookahead - 1)
    w = np.where(i > anchor, (i - anchor) / np.maximum(b - anchor, 1), 0.0)
    return w.astype(np.float32)


@lru_cache(maxsize=256)
def _closed_gap_weights(first: int, step: int, lookahead: int, ndim: int) -> np.ndarray:
    """Weights of missing frames ``first .. step-1`` after a received frame at 0 and before one at ``step``,
    shaped to broadcast over frames of ``ndim`` dimensions (cached: gaps repeat)."""
    i = np.arange(first, step)
    w = _weights(i, np.zeros_like(i), np.full_like(i, step), lookahead).reshape(-1, *([1] * ndim))
    w.flags.writeable = False
    return w


@lru_cache(maxsize=256)
def _closed_gap_blend(first: int, step: int, lookahead: int, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(1 − w, w)`` of :func:`_closed_gap_weights`, both as :func:`_blend` computes them (cached)."""
    w = _closed_gap_weights(first, step, lookahead, ndim)
    keep = np.float32(1.0) - w
    keep.flags.writeable = False
    return keep, w


def fill_gap(prev: np.ndarray, cur: np.ndarray, missing: int, lookahead: int = DEFAULT_LOOKAHEAD) -> np.ndarray:
    """The ``missing`` restored frames between received ``prev`` and ``cur``, then ``cur``: ``(missing + 1, ...)``.

    The streaming rule for one gap closed by ``cur`` (what :meth:`FrameRestorer.push` emits), in one
    vectorised blend: for live pipelines, where a gap's frames are needed together.
    """
    cur = np.asarray(cur, dtype=np.float32)
    out = np.empty((missing + 1, *cur.shape), np.float32)
    if missing:     # _blend's (1 − w)·a + w·b, the same float32 products and sum, written into out
        keep, w = _closed_gap_blend(1, missing + 1, lookahead, cur.ndim)
        head = out[:missing]
        np.multiply(keep, np.asarray(prev, dtype=np.float32), head)
        np.add(head, w * cur, head)
    out[missing] = cur
    return out


@dataclass(frozen=True)
class RestoredFrame:
    """One output frame of :class:`FrameRestorer`."""

    seq: int
    rdi: np.ndarray
    restored: bool


@dataclass
class RestorerStats:
    """What a :class:`FrameRestorer` did."""

    received: int = 0
    restored: int = 0
    gaps: int = 0
    resets: int = 0           # gaps longer than ``max_gap``: not filled, the stream restarts
    discarded: int = 0        # duplicates and frames from the past


class FrameRestorer:
    """Streaming restoration: feed ``(seq, rdi)`` in arrival order, get every frame back in order.

    ``push`` returns the restored frames of the gap just closed (if any) followed by the new frame.
    A gap longer than ``max_gap`` frames (a device restart, a long outage) is not filled: the new
    frame starts afresh and ``stats.resets`` counts it. Duplicates and older frames are discarded.
    """

    def __init__(self, lookahead: int = DEFAULT_LOOKAHEAD, max_gap: int = 200) -> None:
        if lookahead < 0 or max_gap < 0:
            raise ValueError("lookahead and max_gap must be >= 0")
        self.lookahead = lookahead
        self.max_gap = max_gap
        self.stats = RestorerStats()
        self._last_seq: int | None = None
        self._last_rdi: np.ndarray | None = None
        self._emitted = 0      # frames after the last received one already emitted by expire()

    def reset(self) -> None:
        """Forget the stream (next frame starts afresh)."""
        self._last_seq = None
        self._last_rdi = None
        self._emitted = 0

    def push(self, seq: int, rdi: np.ndarray) -> list[RestoredFrame]:
        """Add a received frame; returns the frames now ready, in sequence order."""
        seq = int(seq) % SEQ_MODULUS
        rdi = np.asarray(rdi, dtype=np.float32)
        if self._last_seq is None:
            return self._accept(seq, rdi, [])
        step = seq_distance(self._last_seq, seq)
        if step == 0 or step > _BACKWARD:
            self.stats.discarded += 1
            return []
        missing = step - 1
        out: list[RestoredFrame] = []
        if missing > self.max_gap:
            self.stats.resets += 1
            return self._accept(seq, rdi, out)
        if missing:
            self.stats.gaps += 1
            first = self._emitted + 1
            if first < step:
                frames = _blend(self._last_rdi, rdi, _closed_gap_weights(first, step, self.lookahead, rdi.ndim))
                out += [RestoredFrame((self._last_seq + k) % SEQ_MODULUS, f, True)
                        for k, f in zip(range(first, step), frames)]
            self.stats.restored += max(step - first, 0)
        return self._accept(seq, rdi, out)

    def expire(self, due_seq: int) -> list[RestoredFrame]:
        """Frame ``due_seq`` should have arrived by now: release missing frames older than ``lookahead``.

        Call it from a clock (every frame period, with the sequence number due now, after pushing any
        frame that arrived in that period). Frames
        up to ``due_seq − lookahead`` that have not arrived are emitted as hold-last restorations (the
        frame after them is then at least ``lookahead`` + 1 away, so the batch rule holds them too),
        exactly what :func:`restore_sequence` computes for them once the burst is known.
        """
        if self._last_seq is None:
            return []
        ahead = seq_distance(self._last_seq, int(due_seq) % SEQ_MODULUS)
        if ahead > _BACKWARD:
            return []
        upto = min(ahead - self.lookahead, ahead - 1, self.max_gap)
        out = []
        while self._emitted < upto:
            self._emitted += 1
            out.append(RestoredFrame((self._last_seq + self._emitted) % SEQ_MODULUS, self._last_rdi.copy(), True))
        self.stats.restored += len(out)
        return out

    def _accept(self, seq: int, rdi: np.ndarray, out: list[RestoredFrame]) -> list[RestoredFrame]:
        self.stats.received += 1
        self._last_seq, self._last_rdi, self._emitted = seq, rdi, 0
        out.append(RestoredFrame(seq, rdi, False))
        return out


def restore_with_flags(rdis: np.ndarray, valid: np.ndarray, lookahead: int = DEFAULT_LOOKAHEAD) -> tuple[np.ndarray, np.ndarray]:
    """Batch restoration of ``rdis`` ``(N, ...)`` where ``valid`` is False: (restored float32, restored flags)."""
    rdis = np.array(rdis, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (len(rdis),):
        raise ValueError(f"valid must have one flag per frame ({len(rdis)}), got shape {valid.shape}")
    restored = ~valid
    if valid.all() or not valid.any():
        return rdis, restored         # nothing missing, or nothing to restore from
    n = len(rdis)
    idx = np.arange(n)
    prev = np.maximum.accumulate(np.where(valid, idx, -1))
    nxt = np.minimum.accumulate(np.where(valid, idx, n)[::-1])[::-1]
    miss = idx[restored]
    a, b = prev[miss], nxt[miss]
    lead = a < 0                      # before the first received frame: copy it
    trail = b >= n                    # after the last received frame: hold it
    inner = ~lead & ~trail
    rdis[miss[lead]] = rdis[b[lead]]
    rdis[miss[trail]] = rdis[a[trail]]
    mi, ai, bi = miss[inner], a[inner], b[inner]
    if len(mi):
        w = _weights(mi, ai, bi, lookahead).reshape(-1, *([1] * (rdis.ndim - 1)))
        rdis[mi] = _blend(rdis[ai], rdis[bi], w)
    return rdis, restored


def restore_sequence(rdis: np.ndarray, valid: np.ndarray, lookahead: int = DEFAULT_LOOKAHEAD) -> np.ndarray:
    """Batch restoration: ``rdis`` with the frames where ``valid`` is False filled (float32)."""
    return restore_with_flags(rdis, valid, lookahead)[0]


def drop_and_restore(rdis: np.ndarray, rate: float, rng: np.random.Generator, lookahead: int = DEFAULT_LOOKAHEAD,
                     burst_share: float = 0.5, mean_burst: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation: lose frames like a real link (random plus bursty, overall ``rate``), restore them.

    Returns (restored RDIs, valid flags); the flags feed :func:`add_validity_channel`.
    """
    valid = ~random_plus_bursty(rate, burst_share, mean_burst).mask(len(rdis), rng)
    return restore_sequence(rdis, valid, lookahead), valid


def long_gap_mask(valid: np.ndarray, max_gap: int) -> np.ndarray:
    """True for the missing frames of runs longer than ``max_gap`` (what a live pipeline pads instead of restoring)."""
    valid = np.asarray(valid, dtype=bool)
    miss = np.concatenate([[False], ~valid, [False]]).astype(np.int8)
    edges = np.diff(miss)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros(len(valid), dtype=bool)
    for a, b in zip(starts, stops):
        if b - a > max_gap:
            out[a:b] = True
    return out


def add_validity_channel(rdis: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Append a channel of 1 (received) / 0 (restored) to RDIs ``(N, C, D, R)`` -> ``(N, C+1, D, R)``."""
    rdis = np.asarray(rdis, dtype=np.float32)
    flag = np.broadcast_to(np.asarray(valid, np.float32).reshape(-1, 1, 1, 1), (len(rdis), 1, *rdis.shape[2:]))
    return np.concatenate([rdis, flag], axis=1)
