"""A bounded, thread-safe frame queue between a reader thread and a consumer."""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class OverflowPolicy(str, enum.Enum):
    """What :class:`BoundedBuffer` does when a producer meets a full buffer."""

    DROP_OLDEST = "drop_oldest"  # keep the freshest data: real-time consumers want the present
    DROP_NEWEST = "drop_newest"  # keep what is queued; discard the incoming item
    BLOCK = "block"              # make the producer wait (only for sources that can be paused)


class BoundedBuffer(Generic[T]):
    """A FIFO of at most ``capacity`` items with an explicit overflow policy and a drop counter.

    Memory never grows past ``capacity`` items, however slow the consumer. ``dropped`` counts every
    item discarded by the policy. ``close()`` wakes waiting consumers; ``get`` then drains what is
    left and finally raises :class:`BufferClosed`.
    """

    def __init__(self, capacity: int, policy: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.policy = OverflowPolicy(policy)
        self.dropped = 0
        self.high_water = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``; returns False if it (or, for BLOCK, nothing) could not be queued."""
        with self._cond:
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                if self.policy is OverflowPolicy.DROP_OLDEST:
                    self._items.popleft()
                    self.dropped += 1
                elif self.policy is OverflowPolicy.DROP_NEWEST:
                    self.dropped += 1
                    return False
                else:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    while len(self._items) >= self.capacity and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            return False
                        self._cond.wait(remaining)
                    if self._closed:
                        return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T:
        """Next item; raises :class:`TimeoutError` after ``timeout`` s, :class:`BufferClosed` when drained."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise BufferClosed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class BufferClosed(Exception):
    """Raised by :meth:`BoundedBuffer.get` once the buffer is closed and empty."""
