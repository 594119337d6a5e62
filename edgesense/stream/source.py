"""The :class:`Source` interface every frame producer implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator

from edgesense.errors import SourceError
from edgesense.profiles import SensorProfile
from edgesense.stream.buffer import BoundedBuffer, BufferClosed, OverflowPolicy
from edgesense.stream.frame import Frame
from edgesense.stream.stats import GapTracker, SourceStats


class Source(ABC):
    """An iterable of :class:`Frame` with statistics; use it as a context manager.

    Subclasses implement :meth:`_frames`. Iteration counts every frame and every gap in the
    sequence numbers into :attr:`stats`; nothing is dropped without being counted.
    """

    def __init__(self, profile: SensorProfile) -> None:
        self.profile = profile
        self.stats = SourceStats()
        self._gaps = GapTracker(self.stats)
        self._closed = threading.Event()

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Yield frames in arrival order (the base class does the bookkeeping)."""

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames():
            if self._closed.is_set():
                return
            self._gaps.observe(frame.seq)
            yield frame

    def close(self) -> None:
        """Stop producing frames and release resources; safe to call twice."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadedSource(Source):
    """A source whose frames are produced by a reader thread into a bounded buffer.

    The thread runs :meth:`_read` (subclasses implement it) and starts on first iteration. A slow
    consumer never makes memory grow: the buffer holds at most ``buffer_frames`` frames and applies
    ``overflow`` (drop-oldest by default), counting every discarded frame in
    ``stats.overflow_drops``. An exception in the reader thread is re-raised to the consumer.
    """

    def __init__(self, profile: SensorProfile, buffer_frames: int = 256,
                 overflow: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST) -> None:
        super().__init__(profile)
        self.buffer: BoundedBuffer[Frame] = BoundedBuffer(buffer_frames, overflow)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @abstractmethod
    def _read(self) -> Iterator[Frame]:
        """Produce frames (runs on the reader thread); stop when :attr:`closed` is set."""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}-reader", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self._read():
                if self.closed:
                    break
                self._gaps.observe(frame.seq)
                self.buffer.put(frame)
                self.stats.overflow_drops = self.buffer.dropped
        except BaseException as exc:  # handed to the consumer, not lost on a thread
            self._error = exc
        finally:
            self.buffer.close()

    def _frames(self) -> Iterator[Frame]:  # pragma: no cover - ThreadedSource overrides __iter__
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        while True:
            try:
                frame = self.buffer.get(timeout=0.1)
            except TimeoutError:
                if self.closed:
                    break
                continue
            except BufferClosed:
                break
            yield frame
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, SourceError):
                raise err
            raise SourceError(f"{type(self).__name__} failed: {err}") from err

    def close(self) -> None:
        super().close()
        self.buffer.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
