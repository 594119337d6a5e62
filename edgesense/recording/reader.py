"""Reading ``.esr`` recordings, including ones cut short by a crash."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import EdgesenseError, FormatError
from edgesense.profiles import SensorProfile, profile_from_dict
from edgesense.recording.chunks import ScanReport, iter_chunks
from edgesense.recording.labels import Labels
from edgesense.recording.writer import FORMAT_NAME, FORMAT_VERSION
from edgesense.stream.frame import Frame


@dataclass
class Integrity:
    """How intact a recording is. ``clean_close`` is False for a recording cut short by a crash."""

    clean_close: bool = False
    chunks: int = 0
    corrupt_chunks: int = 0
    skipped_bytes: int = 0
    truncated_tail_bytes: int = 0
    unknown_chunks: int = 0
    problems: list[str] = field(default_factory=list)
    end_stats: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True for a cleanly closed recording with no damage."""
        return self.clean_close and not self.corrupt_chunks and not self.truncated_tail_bytes

    def summary(self) -> str:
        if self.ok:
            return "ok"
        parts = [] if self.clean_close else ["not closed cleanly (recording was interrupted)"]
        parts += self.problems[:3]
        return "; ".join(parts)


_FRAME_ARRAYS = ("seq", "device_time_us", "host_time", "payload")


@dataclass
class Recording:
    """A recording loaded into memory: frames as arrays, plus profile, metadata and labels."""

    path: Path
    profile: SensorProfile
    metadata: dict[str, Any]
    seq: np.ndarray
    device_time_us: np.ndarray
    host_time: np.ndarray
    payloads: np.ndarray
    labels: Labels
    integrity: Integrity
    created_utc: str | None = None

    @property
    def n_frames(self) -> int:
        return len(self.seq)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.profile.frame_rate_hz

    def frames(self) -> Iterator[Frame]:
        """The frames in file order (host_time is the recorded one)."""
        kind = self.profile.kind
        for k in range(self.n_frames):
            yield Frame(kind, int(self.seq[k]), int(self.device_time_us[k]), float(self.host_time[k]), self.payloads[k])

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> "Recording":
        """Load a recording. Damage is reported in :attr:`integrity`; only an unreadable head raises."""
        path = Path(path)
        with _mapped(path) as buf:
            report = ScanReport()
            state = _State(path)
            for chunk in iter_chunks(buf, report, verify=verify):
                state.add(chunk.kind, chunk.meta, chunk.arrays, chunk.offset)
            return state.build(cls, report)

    @staticmethod
    def scan(path: str | Path) -> "RecordingInfo":
        """Profile, metadata, labels (without the activity mask) and frame count, without reading payloads."""
        path = Path(path)
        with _mapped(path) as buf:
            report = ScanReport()
            state = _State(path, counting_only=True)
            for chunk in iter_chunks(buf, report, verify=False, load_data=False):
                state.add(chunk.kind, chunk.meta, chunk.arrays, chunk.offset)
            integrity = state.integrity(report)
            if state.profile is None:
                raise FormatError(f"{path}: no header chunk")
            return RecordingInfo(path, state.profile, state.metadata, state.n_frames, state.labels,
                                 integrity.clean_close)


@dataclass
class RecordingInfo:
    """The cheap facts about a recording (see :meth:`Recording.scan`)."""

    path: Path
    profile: SensorProfile
    metadata: dict[str, Any]
    n_frames: int
    labels: Labels
    clean_close: bool

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.profile.frame_rate_hz


class _mapped:
    """Context manager giving a read-only mmap (or bytes for an empty file) of ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        try:
            self._file = open(self.path, "rb")
        except FileNotFoundError:
            raise FormatError(f"recording not found: {self.path}") from None
        except IsADirectoryError:
            raise FormatError(f"{self.path} is a directory, not a recording") from None
        except OSError as exc:
            raise FormatError(f"cannot open {self.path}: {exc.strerror}") from None
        size = self.path.stat().st_size
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        return self._map if self._map is not None else b""

    def __exit__(self, *exc: object) -> None:
        # Arrays decoded from the map are copied before it closes (see _State.build).
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive; the OS unmaps with the last reference
                pass
        self._file.close()


class _State:
    """Accumulates chunks into a recording."""

    def __init__(self, path: Path, counting_only: bool = False) -> None:
        self.path = path
        self.counting_only = counting_only
        self.profile: SensorProfile | None = None
        self.metadata: dict[str, Any] = {}
        self.created: str | None = None
        self.labels = Labels()
        self.frame_parts: list[dict[str, np.ndarray]] = []
        self.n_frames = 0
        self.clean_close = False
        self.unknown = 0
        self.problems: list[str] = []
        self.end_stats: dict[str, Any] | None = None

    def add(self, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray], offset: int) -> None:
        if self.profile is None:
            if kind != "HEAD":
                raise FormatError(f"{self.path}: first chunk is {kind!r}, expected 'HEAD'")
            if meta.get("format") != FORMAT_NAME:
                raise FormatError(f"{self.path}: header says format {meta.get('format')!r}, expected {FORMAT_NAME!r}")
            version = meta.get("version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise FormatError(f"{self.path}: format version {version!r} is newer than this edgesense "
                                  f"understands ({FORMAT_VERSION}); upgrade edgesense")
            try:
                self.profile = profile_from_dict(meta.get("profile"))
            except EdgesenseError as exc:
                raise FormatError(f"{self.path}: bad sensor profile in header: {exc}") from None
            self.metadata = dict(meta.get("metadata") or {})
            self.created = meta.get("created_utc")
            return
        if kind == "FRMS":
            self._add_frames(meta, arrays, offset)
        elif kind == "LABL":
            try:
                self.labels = Labels.from_chunk(meta, arrays)
            except FormatError as exc:
                self.problems.append(f"labels chunk at byte {offset}: {exc}")
        elif kind == "META":
            update = meta.get("metadata")
            if isinstance(update, dict):
                self.metadata.update(update)
        elif kind == "ENDS":
            self.clean_close = True
            stats = meta.get("stats")
            self.end_stats = stats if isinstance(stats, dict) else None
        elif kind == "HEAD":
            self.problems.append(f"second header chunk at byte {offset} ignored")
        else:
            self.unknown += 1

    def _add_frames(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], offset: int) -> None:
        assert self.profile is not None
        specs = {s.get("name"): s for s in meta.get("arrays", []) if isinstance(s, dict)}
        missing = [n for n in _FRAME_ARRAYS if n not in specs]
        if missing:
            self.problems.append(f"frames chunk at byte {offset} lacks arrays {missing}")
            return
        try:
            n = int(specs["seq"]["shape"][0])
            shapes_ok = (all(list(specs[k]["shape"]) == [n] for k in _FRAME_ARRAYS[:3])
                         and list(specs["payload"]["shape"]) == [n, *self.profile.payload_shape]
                         and np.dtype(specs["payload"]["dtype"]) == self.profile.payload_dtype)
        except (KeyError, IndexError, TypeError, ValueError):
            shapes_ok = False
        if not shapes_ok:
            self.problems.append(f"frames chunk at byte {offset} does not match the profile "
                                 f"({self.profile.payload_dtype}{list(self.profile.payload_shape)} per frame)")
            return
        self.n_frames += n
        if not self.counting_only:
            self.frame_parts.append(arrays)

    def integrity(self, report: ScanReport) -> Integrity:
        return Integrity(self.clean_close, report.chunks, report.corrupt_chunks, report.skipped_bytes,
                         report.truncated_tail_bytes, self.unknown, report.problems + self.problems, self.end_stats)

    def build(self, cls, report: ScanReport) -> Recording:
        if self.profile is None:
            raise FormatError(f"{self.path}: empty or truncated before the header; nothing to recover")
        p = self.profile
        if self.frame_parts:
            cat = {k: np.concatenate([part[k] for part in self.frame_parts]) for k in _FRAME_ARRAYS}
        else:
            cat = {"seq": np.zeros(0, np.uint32), "device_time_us": np.zeros(0, np.int64),
                   "host_time": np.zeros(0, np.float64), "payload": np.zeros((0, *p.payload_shape), p.payload_dtype)}
        labels = self.labels
        if labels.activity is not None and len(labels.activity) != len(cat["seq"]):
            self.problems.append(f"activity mask has {len(labels.activity)} entries for {len(cat['seq'])} frames")
        return cls(self.path, p, self.metadata, cat["seq"].astype(np.uint32, copy=False),
                   cat["device_time_us"].astype(np.int64, copy=False), cat["host_time"].astype(np.float64, copy=False),
                   cat["payload"], labels, self.integrity(report), self.created)
