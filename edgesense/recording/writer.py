"""Crash-safe writing of ``.esr`` recordings while a stream is running."""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import FormatError
from edgesense.profiles import SensorProfile
from edgesense.recording.chunks import MAGIC, encode_chunk
from edgesense.recording.labels import Labels
from edgesense.stream.frame import Frame

FORMAT_NAME = "edgesense-recording"
FORMAT_VERSION = 1


class RecordingWriter:
    """Appends frames to a recording in small self-checking chunks.

    Pending frames are written as one chunk at least every ``flush_interval_s`` (a background
    thread makes sure of it even when frames stop arriving) and handed to the operating system
    immediately, so a process killed with SIGKILL loses at most the last ``flush_interval_s`` of
    data and never corrupts earlier chunks. ``fsync_interval_s`` additionally bounds the loss on
    power failure; ``durable=False`` skips every fsync (bulk dataset generation, where a file can
    simply be written again, and where an fsync per file would dominate the cost). Use as a context
    manager; :meth:`close` marks the file as cleanly finished.
    """

    def __init__(self, path: str | Path, profile: SensorProfile, metadata: dict[str, Any] | None = None, *,
                 overwrite: bool = False, flush_interval_s: float = 0.25, fsync_interval_s: float = 1.0,
                 max_chunk_frames: int = 4096, background_flush: bool = True, durable: bool = True) -> None:
        self.path = Path(path)
        self.profile = profile
        self.flush_interval_s = flush_interval_s
        self.fsync_interval_s = fsync_interval_s
        self.max_chunk_frames = max_chunk_frames
        self.durable = durable
        self.frames_written = 0
        self._pending: list[Frame] = []
        self._lock = threading.RLock()
        self._last_flush = time.monotonic()
        self._last_fsync = self._last_flush
        if self.path.exists() and not overwrite:
            raise FormatError(f"{self.path} already exists (pass overwrite=True / --overwrite to replace it)")
        if not self.path.parent.exists():
            raise FormatError(f"directory does not exist: {self.path.parent}")
        self._file = open(self.path, "wb")
        head = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "profile": profile.to_dict(),
                "metadata": dict(metadata or {}),
                "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self._append(MAGIC + encode_chunk(b"HEAD", head), sync=True)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if background_flush:
            self._flusher = threading.Thread(target=self._flush_loop, name="recording-flush", daemon=True)
            self._flusher.start()

    # -- writing -----------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        """Queue one frame; it reaches the file within ``flush_interval_s``."""
        self.profile.check_payload(frame.payload)
        with self._lock:
            self._check_open()
            self._pending.append(frame)
            if (len(self._pending) >= self.max_chunk_frames
                    or time.monotonic() - self._last_flush >= self.flush_interval_s):
                self.flush()

    def write_batch(self, seq: np.ndarray, device_time_us: np.ndarray, payloads: np.ndarray,
                    host_time: np.ndarray | None = None) -> None:
        """Write many frames at once (simulators, converters); they are on disk when this returns."""
        payloads = np.asarray(payloads)
        n = len(payloads)
        if payloads.dtype != self.profile.payload_dtype or tuple(payloads.shape[1:]) != self.profile.payload_shape:
            raise FormatError(f"payloads must be {self.profile.payload_dtype}(n, {list(self.profile.payload_shape)}), "
                              f"got {payloads.dtype}{list(payloads.shape)}")
        seq = np.asarray(seq)
        device_time_us = np.asarray(device_time_us)
        if seq.shape != (n,) or device_time_us.shape != (n,):
            raise FormatError("seq and device_time_us must have one entry per payload")
        host = np.full(n, np.nan) if host_time is None else np.asarray(host_time, dtype=np.float64)
        with self._lock:
            self._check_open()
            self.flush()
            for lo in range(0, n, self.max_chunk_frames):
                hi = min(n, lo + self.max_chunk_frames)
                self._write_frames(seq[lo:hi], device_time_us[lo:hi], host[lo:hi], payloads[lo:hi])
            self._maybe_fsync(force=False)

    def set_labels(self, labels: Labels) -> None:
        """Store labels; a later call replaces earlier labels."""
        meta, arrays = labels.to_chunk()
        with self._lock:
            self._check_open()
            self.flush()
            self._append(encode_chunk(b"LABL", meta, arrays), sync=False)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        """Add or override free metadata fields (subject, session, device, environment, ...)."""
        with self._lock:
            self._check_open()
            self._append(encode_chunk(b"META", {"metadata": dict(metadata)}), sync=False)

    def flush(self) -> None:
        """Write pending frames as one chunk and hand them to the operating system."""
        with self._lock:
            if self._file.closed:
                return
            if self._pending:
                frames, self._pending = self._pending, []
                self._write_frames(
                    np.fromiter((f.seq for f in frames), dtype=np.uint32, count=len(frames)),
                    np.fromiter((f.device_time_us for f in frames), dtype=np.int64, count=len(frames)),
                    np.fromiter((f.host_time for f in frames), dtype=np.float64, count=len(frames)),
                    np.stack([f.payload for f in frames]),
                )
            self._last_flush = time.monotonic()
            self._maybe_fsync(force=False)

    def close(self, stats: dict[str, Any] | None = None) -> None:
        """Flush, write the end marker (with optional source statistics) and close the file."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=2.0)
        with self._lock:
            if self._file.closed:
                return
            self.flush()
            end = {"frames": self.frames_written}
            if stats is not None:
                end["stats"] = stats
            self._append(encode_chunk(b"ENDS", end), sync=True)
            self._file.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _write_frames(self, seq, device_time_us, host_time, payloads) -> None:
        arrays = {"seq": np.asarray(seq, dtype=np.uint32), "device_time_us": np.asarray(device_time_us, dtype=np.int64),
                  "host_time": np.asarray(host_time, dtype=np.float64), "payload": payloads}
        self._append(encode_chunk(b"FRMS", {"first_frame": self.frames_written}, arrays), sync=False)
        self.frames_written += len(payloads)

    def _append(self, data: bytes, sync: bool) -> None:
        self._file.write(data)
        self._file.flush()
        if sync:
            self._maybe_fsync(force=True)

    def _maybe_fsync(self, force: bool) -> None:
        if not self.durable:
            return
        now = time.monotonic()
        if force or now - self._last_fsync >= self.fsync_interval_s:
            os.fsync(self._file.fileno())
            self._last_fsync = now

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s / 2):
            with self._lock:
                if self._file.closed:
                    return
                if self._pending and time.monotonic() - self._last_flush >= self.flush_interval_s:
                    self.flush()

    def _check_open(self) -> None:
        if self._file.closed:
            raise FormatError(f"recording {self.path} is already closed")
