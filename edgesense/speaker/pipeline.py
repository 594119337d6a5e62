"""Excursion pipeline: speaker I/V frames -> features -> model (via edgesense.runtime) -> excursion.

Run-time core (numpy only). :class:`ExcursionPipeline` consumes :class:`~edgesense.stream.Frame`
payloads of a :class:`~edgesense.profiles.SpeakerIVProfile` (columns ``v``, ``i``), runs the online
impedance tracker when the model is the physics-informed hybrid (its linear prediction is the
network's third input), and yields one :class:`ExcursionBlock` per frame. Lost frames (sequence
gaps) reset the model's history, so a gap never feeds stale state into later predictions.

:func:`load_signals` reads whole speaker recordings (``v``, ``i`` and, in labelled data, ``x``) for
training and evaluation.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import FormatError, ProfileError
from edgesense.profiles import SpeakerIVProfile, SpeakerParams
from edgesense.speaker.streaming import ExcursionStreamer
from edgesense.stream.frame import SEQ_MODULUS, Frame

__all__ = ["SpeakerSignal", "ExcursionBlock", "ExcursionPipeline", "load_signals", "make_tracker",
           "tracked_prediction"]


@dataclass
class SpeakerSignal:
    """One speaker recording as contiguous signals (48 kHz): v (V), i (A), x (mm, None if unlabeled)."""

    name: str
    v: np.ndarray
    i: np.ndarray
    x: np.ndarray | None
    profile: SpeakerIVProfile
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def speaker(self) -> SpeakerParams:
        return self.profile.speaker

    @property
    def fs(self) -> float:
        return self.profile.sample_rate_hz


def _signal_from_recording(rec, name: str) -> SpeakerSignal:
    profile = rec.profile
    if not isinstance(profile, SpeakerIVProfile):
        raise FormatError(f"{name}: not a speaker I/V recording (profile kind {profile.kind!r})")
    flat = np.asarray(rec.payloads, np.float32).reshape(-1, len(profile.channels))
    col = {c: flat[:, k] for k, c in enumerate(profile.channels)}
    if "v" not in col or "i" not in col:
        raise FormatError(f"{name}: speaker recording needs channels v and i, has {list(profile.channels)}")
    return SpeakerSignal(name, col["v"], col["i"], col.get("x"), profile, dict(rec.metadata))


def load_signals(path: str | Path, split: str | None = None, limit: int | None = None,
                 spread: bool = False) -> list[SpeakerSignal]:
    """Speaker recordings of a dataset directory (optionally one split) or a single ``.esr`` file.

    ``limit``: at most that many recordings, the first ones in the index's (path) order, or with ``spread``
    evenly spaced over it, so that a sample covers every speaker and condition of the split."""
    from edgesense.recording import Dataset, Recording

    path = Path(path)
    if path.is_file():
        return [_signal_from_recording(Recording.open(path), path.name)]
    ds = Dataset.open(path)
    entries = ds.entries if split is None else ds.split(split)
    if limit is not None and spread and 0 < limit < len(entries):
        picks = np.unique(np.round(np.linspace(0, len(entries) - 1, limit)).astype(int))
        entries = [entries[k] for k in picks]
    elif limit is not None:
        entries = entries[:limit]
    return [_signal_from_recording(ds.load(e), e.path) for e in entries]


def make_tracker(profile: SpeakerIVProfile, config=None):
    """The online impedance tracker (edgesense.speaker.tracking) for this speaker's datasheet
    (``config``: a :class:`~edgesense.speaker.tracking.TrackerConfig`, default the defaults)."""
    from edgesense.speaker import tracking

    return tracking.ImpedanceTracker(profile.speaker, fs=profile.sample_rate_hz,
                                     config=config if config is not None else tracking.TrackerConfig())


#: Environment variable naming a directory that caches whole-signal tracked predictions (.npy).
TRACK_CACHE_ENV = "EDGESENSE_TRACK_CACHE"


def _tracker_fingerprint(tracker) -> bytes:
    """The tracker's configuration and the source of the module that implements it."""
    module = sys.modules[type(tracker).__module__]
    return repr(tracker.config).encode() + hashlib.sha1(Path(module.__file__).read_bytes()).digest()


def tracked_prediction(v: np.ndarray, i: np.ndarray, profile: SpeakerIVProfile) -> np.ndarray:
    """Causal excursion prediction (mm) of the online impedance-tracked linear model over a whole signal.

    Deterministic in (v, i, datasheet, tracker), so with ``EDGESENSE_TRACK_CACHE`` set the result is
    cached there (training and evaluation run the tracker over the same recordings many times). The
    cache key includes the tracker's configuration and source code, so a changed tracker never reads
    an older tracker's results.
    """
    v = np.asarray(v, np.float32)
    i = np.asarray(i, np.float32)
    cache = os.environ.get(TRACK_CACHE_ENV)
    tracker = make_tracker(profile)
    path = None
    if cache:
        key = hashlib.sha1(v.tobytes() + i.tobytes() + repr(profile.speaker).encode()
                           + _tracker_fingerprint(tracker)).hexdigest()
        path = Path(cache) / f"{key}.npy"
        if path.is_file():
            return np.load(path, allow_pickle=False)
    x = np.asarray(tracker.process(v, i), np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, x, allow_pickle=False)
    return x


@dataclass(slots=True)   # not frozen: a frozen dataclass's __init__ costs ~1 us per 1 ms block
class ExcursionBlock:
    """Excursion (mm) predicted for one frame's samples, with the frame's sequence number and time."""

    seq: int
    device_time_us: int
    x: np.ndarray
    reset: bool = False  # True when a gap before this frame reset the model's history


class ExcursionPipeline:
    """Frames of a speaker I/V profile in, :class:`ExcursionBlock` out (one per frame).

    ``model``: an excursion model file (``.onnx``/``.tflite``), a loaded runtime model, or a known
    speaker's large-signal calibration (``.json`` written by ``edgesense calibrate speaker``, e.g.
    ``models/speaker_calibration/ref.json``), which runs
    :class:`~edgesense.speaker.largesignal.LargeSignalEstimator` instead of a network (no ``bl``:
    the calibration holds it; the profile's datasheet runs its drift-following tracker). ``bl``
    defaults to the profile's datasheet Bl. ``direct`` is passed to
    :class:`~edgesense.speaker.streaming.ExcursionStreamer` (INT8 LiteRT direct path; same numbers).
    ``tracker_config`` configures the tracker (default: the one the shipped models were trained with).
    A gap resets the network's history, or the estimator back to its calibration and to rest.
    """

    def __init__(self, profile: SpeakerIVProfile, model, bl: float | None = None, direct: bool = True,
                 tracker_config=None) -> None:
        if not isinstance(profile, SpeakerIVProfile):
            raise ProfileError(f"the excursion pipeline needs a speaker_iv profile, got {profile.kind!r}")
        self.profile = profile
        self.iv = (profile.channel_index("v"), profile.channel_index("i"))
        self._iv0, self._iv1 = self.iv
        self.estimator = self.streamer = self.tracker = None
        if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".json":
            from edgesense.speaker.largesignal import LargeSignalEstimator, load_calibration

            if bl is not None:
                raise ProfileError("a large-signal calibration carries its own Bl; do not pass bl with it")
            self.estimator = LargeSignalEstimator(load_calibration(model), profile.speaker, profile.sample_rate_hz,
                                                  tracker_config=tracker_config)
        else:
            self.streamer = ExcursionStreamer(model, profile.speaker.bl if bl is None else bl, direct=direct)
            self.tracker = make_tracker(profile, tracker_config) if self.streamer.spec.needs_tracker else None
        # the streamer's direct INT8 block (one whole interpreter call, nothing pending): called
        # straight from process() when the frame is exactly one call, skipping the streamer's dispatch
        direct = None if self.streamer is None else self.streamer._direct
        self._hot_block = None if direct is None else direct.block
        self._hot_len = None if direct is None else self.streamer._block
        self._last_seq: int | None = None
        self.resets = 0

    def reset(self) -> None:
        if self.estimator is not None:
            self.estimator.reset()
        else:
            self.streamer.reset()
        if self.tracker is not None:
            self.tracker.reset()
        self._last_seq = None

    def process(self, frame: Frame) -> ExcursionBlock:
        """Predict the excursion of one frame."""
        seq, last = frame.seq, self._last_seq
        gap = last is not None and (seq - last) % SEQ_MODULUS != 1      # seq_distance(last, seq) != 1
        if gap:
            (self.streamer if self.estimator is None else self.estimator).reset()
            self.resets += 1
        self._last_seq = seq
        payload = frame.payload
        v = payload[:, self._iv0]
        i = payload[:, self._iv1]
        if self.estimator is not None:
            return ExcursionBlock(seq, frame.device_time_us, self.estimator.process(v, i), gap)
        # the tracker's float64 output goes to the streamer as is: it converts to float32 itself
        tracker = self.tracker
        track = None if tracker is None else tracker.process(v, i)
        streamer = self.streamer
        if streamer._clean and v.shape[0] == self._hot_len:   # what streamer.process would run
            x = self._hot_block(v, i, track)
        else:
            x = streamer.process(v, i, track)
        return ExcursionBlock(seq, frame.device_time_us, x, gap)

    def run(self, frames: Iterable[Frame]) -> Iterator[ExcursionBlock]:
        """Predict every frame of ``frames`` (a Source or any iterable)."""
        for frame in frames:
            yield self.process(frame)
