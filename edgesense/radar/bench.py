"""End-to-end cost of the gesture pipeline per frame: CIR -> RDI -> restoration -> model -> spotting.

A simulated radar stream with random+bursty frame drops (the ``sim://`` source of the model's sensor
profile, collected up front) is fed to :meth:`GesturePipeline.process
<edgesense.radar.pipeline.GesturePipeline.process>` frame by frame, back to back, with the model on one
thread. The cost of each frame is what the pipeline measures itself (:class:`~edgesense.radar.pipeline.PipelineStats`:
CPU time of the processing thread, ``time.thread_time``, so preemption by other processes is not counted; and
wall time), pooled over a few passes over the same frames. A frame that follows a gap is where restoration
runs (the missing frames are restored, or padded beyond ``max_restore``).

:func:`bench_gesture_pipeline` is what ``edgesense bench`` runs per gesture model file;
``tools/bench_gesture_pipeline.py`` builds its pacing, breakdown and A/B options on :func:`run_pass`,
:class:`FrameCosts` and :func:`dist`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GesturePipelineCost", "FrameCosts", "dist", "gap_flags", "run_pass", "simulated_stream",
           "bench_gesture_pipeline"]


def dist(values) -> dict[str, float]:
    """mean / p50 / p95 / p99 / max of ``values`` (us); empty -> count 0 only."""
    c = np.asarray(values, dtype=float)
    if not c.size:
        return {"n": 0}
    return {"n": int(c.size), "mean": float(c.mean()), "p50": float(np.percentile(c, 50)),
            "p95": float(np.percentile(c, 95)), "p99": float(np.percentile(c, 99)), "max": float(c.max())}


def gap_flags(idx: np.ndarray) -> np.ndarray:
    """For received stream indices ``idx``: True where frames were lost before that frame."""
    idx = np.asarray(idx)
    return np.diff(idx, prepend=idx[0] - 1) > 1


def run_pass(pipe, frames: Iterable) -> None:
    """One pass: a fresh stream (``pipe.reset()``), then every frame through ``pipe.process``."""
    pipe.reset()
    for fr in frames:
        pipe.process(fr)


@dataclass
class FrameCosts:
    """Per-frame costs a pipeline measured (its ``stats``), gathered pass by pass."""

    cpu: list[float] = field(default_factory=list)      # us
    wall: list[float] = field(default_factory=list)     # us
    gaps: list[bool] = field(default_factory=list)      # the frame followed a gap
    pass_p99: list[float] = field(default_factory=list)

    def add(self, pipe, idx: np.ndarray) -> None:
        """The frames of the pass just run by ``pipe`` over received indices ``idx`` (its stats keep the last 4096)."""
        cpu = pipe.stats.cpu_us
        self.cpu.extend(cpu)
        self.wall.extend(pipe.stats.wall_us)
        self.gaps.extend(gap_flags(idx)[-len(cpu):])
        self.pass_p99.append(float(np.percentile(cpu, 99)))


def simulated_stream(profile, seconds: float, drop_rate: float, seed: int = 0) -> tuple[np.ndarray, list]:
    """``(received stream indices, frames)`` of ``seconds`` of the ``sim://`` source for ``profile`` (random
    gestures for a CIR radar), as fast as it simulates, losing ``drop_rate`` of the frames (random + bursty)."""
    from edgesense.sources import open_source

    with open_source(f"sim://?speed=0&seconds={seconds}&drop={drop_rate}&seed={seed}", profile=profile) as src:
        frames = list(src)
    if not frames:
        from edgesense.errors import EdgesenseError

        raise EdgesenseError(f"no frames in {seconds} s of simulated stream")
    return np.array([f.seq for f in frames], np.int64), frames


@dataclass(frozen=True)
class GesturePipelineCost:
    """CPU (and wall) time per frame of one gesture pipeline, back to back, model on one thread."""

    model: str
    path: str
    backend: str              # "ORT float", "ORT INT8", "LiteRT INT8"
    pipeline: str             # "gesture"
    profile: str
    stream_seconds: float
    drop_rate: float
    repeats: int              # passes over the stream
    frames: int               # timed frames (all passes)
    restore_share: float      # share of the timed frames that followed a gap (restoration ran)
    restored_frames: int      # missing frames restored (all passes)
    cpu_mean_us: float
    cpu_p50_us: float
    cpu_p99_us: float
    wall_p50_us: float
    wall_p99_us: float
    frames_per_s: float       # 1 / mean CPU time per frame: the frame rate one core would sustain
    streaming_split: bool     # an INT8 .tflite run as the streaming split (else the whole graph)

    def to_dict(self) -> dict:
        return asdict(self)


def bench_gesture_pipeline(model: str | Path, seconds: float = 10.0, drop_rate: float = 0.2, repeats: int = 3,
                           seed: int = 0, model_name: str | None = None,
                           streams_cache: dict | None = None) -> GesturePipelineCost:
    """Time ``GesturePipeline(model)`` over ``repeats`` passes of ``seconds`` of simulated stream.

    The stream is the model's sensor profile's ``sim://`` source with ``drop_rate`` of its frames lost; one
    untimed second of it warms the pipeline first. ``streams_cache`` (a dict), if given, keeps the simulated
    streams between calls (the simulation costs more than the pipeline), so every model of a run sees the same
    frames. Raises :class:`~edgesense.errors.ModelError` for a file without a gesture model description.
    """
    from edgesense.errors import EdgesenseError
    from edgesense.radar.pipeline import GesturePipeline
    from edgesense.runtime.bench import backend_label

    path = Path(model)
    if not seconds > 0 or repeats < 1 or not 0.0 <= drop_rate < 1.0:
        raise EdgesenseError("seconds must be positive, repeats >= 1 and drop_rate in [0, 1)")
    pipe = GesturePipeline(path, threads=1)
    profile = pipe.profile
    cache = streams_cache if streams_cache is not None else {}
    key = (repr(profile), seconds, drop_rate, seed)
    if key not in cache:
        cache[key] = simulated_stream(profile, seconds, drop_rate, seed)
    idx, frames = cache[key]
    run_pass(pipe, frames[:max(1, int(profile.frame_rate_hz))])      # warm-up (caches, first calls)
    costs, restored = FrameCosts(), 0
    for _ in range(repeats):
        run_pass(pipe, frames)
        costs.add(pipe, idx)
        restored += pipe.stats.frames_restored
    cpu, wall = np.asarray(costs.cpu), np.asarray(costs.wall)
    return GesturePipelineCost(
        model_name or path.stem, str(path), backend_label(path, pipe.model.backend), "gesture", profile.name,
        float(seconds), float(drop_rate), repeats, int(cpu.size), float(np.mean(costs.gaps)), restored,
        float(cpu.mean()), float(np.percentile(cpu, 50)), float(np.percentile(cpu, 99)),
        float(np.percentile(wall, 50)), float(np.percentile(wall, 99)), float(1e6 / cpu.mean()),
        pipe.split is not None)
