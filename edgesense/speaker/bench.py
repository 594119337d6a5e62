"""End-to-end cost of the excursion pipeline per block: CPU time per 1 ms block and the real-time factor.

The product path is timed block by block on the calling thread: a speaker V/I frame in,
:meth:`ExcursionPipeline.process <edgesense.speaker.pipeline.ExcursionPipeline.process>` (with the
online impedance tracker where the model needs it: the hybrid, and the large-signal estimator's
drift following), excursion out. CPU time is the thread's (``time.thread_time``: preemption by other
processes is not counted); wall time is reported too. Real-time factor = mean CPU time per block /
block duration. The input is simulated program material for the profile's speaker (the
``sim://`` source's material, :func:`edgesense.sim.speaker.live_payloads`).

:func:`bench_excursion_pipeline` is what ``edgesense bench`` runs per excursion model file and per
large-signal calibration; ``tools/bench_excursion.py`` builds its stage breakdown and A/B options on
the same frames, timing loop and summary (:func:`speaker_frames`, :func:`time_interleaved`,
:func:`block_summary`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgesense.profiles import SpeakerIVProfile, load_profile

__all__ = ["WARMUP", "ExcursionPipelineCost", "speaker_frames", "time_interleaved", "block_summary",
           "calibration_profile", "bench_excursion_pipeline"]

WARMUP = 100   # untimed blocks before every pass (caches, first-call allocations)


@dataclass(frozen=True)
class ExcursionPipelineCost:
    """CPU (and wall) time per block of one excursion pipeline, back to back, one thread."""

    model: str
    path: str
    backend: str             # "ORT float", "ORT INT8", "LiteRT INT8", "large-signal estimator"
    pipeline: str            # "excursion" (a network) or "large-signal" (a calibration)
    profile: str
    block_us: float          # block duration
    blocks: int              # timed blocks
    cpu_mean_us: float
    cpu_p50_us: float
    cpu_p99_us: float
    wall_mean_us: float
    wall_p99_us: float
    real_time_factor: float  # mean CPU per block / block duration
    tracker: bool            # the impedance tracker runs in the pipeline
    direct: bool             # the INT8 LiteRT direct interpreter path
    largesignal_kernel: str | None   # the estimator's integration loop ("c" or "python"); None for a network

    def to_dict(self) -> dict:
        return asdict(self)


def speaker_frames(profile: SpeakerIVProfile, n_blocks: int, data: str | None = None, seed: int = 0) -> list:
    """``n_blocks`` frames of the profile's block size (v, i columns as the profile says): simulated program
    material for the profile's speaker, or the first recording of ``data`` (a speaker ``.esr``), looped."""
    from edgesense.stream.frame import Frame

    block = profile.block_size
    if data:
        from edgesense.speaker.pipeline import load_signals

        sig = load_signals(data)[0]
        cols = {"v": sig.v, "i": sig.i, "x": sig.x if sig.x is not None else np.zeros_like(sig.v)}
        flat = np.stack([cols[c] for c in profile.channels], axis=1).astype(np.float32)
        reps = -(-n_blocks * block // len(flat))
        flat = np.concatenate([flat] * reps)[:n_blocks * block]
        pays = flat.reshape(n_blocks, block, -1)
        payload = lambda k: pays[k]  # noqa: E731
    else:
        from edgesense.sim.speaker import live_payloads

        payload = live_payloads(profile, seed=seed, loop=n_blocks * block / profile.sample_rate_hz)
    return [Frame(profile.kind, k, k * 1000, 0.0, np.ascontiguousarray(payload(k))) for k in range(n_blocks)]


def time_interleaved(steps: dict, n: int, chunk: int = 250, enter=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-block (CPU, wall) seconds of every ``steps[name](k)``, k = 0..n-1, after WARMUP untimed calls.

    The stages take turns in chunks of ``chunk`` blocks, so a change in the machine's load during the
    run affects them alike (separate back-to-back passes made the first one look worse).
    ``enter(name)``, if given, runs untimed before each stage's warm-up and each of its chunks.
    """
    for name, step in steps.items():
        if enter is not None:
            enter(name)
        for k in range(WARMUP):
            step(k % n)
    out = {name: (np.empty(n), np.empty(n)) for name in steps}
    tc, tw = time.thread_time, time.perf_counter
    for k0 in range(0, n, chunk):
        for name, step in steps.items():
            if enter is not None:
                enter(name)
            cpu, wall = out[name]
            for k in range(k0, min(n, k0 + chunk)):
                w0 = tw()
                c0 = tc()
                step(k)
                cpu[k] = tc() - c0
                wall[k] = tw() - w0
    return out


def block_summary(cpu_runs: list[np.ndarray], wall_runs: list[np.ndarray], block_s: float) -> dict:
    """CPU mean (median over runs), p50 / p99 / p99.9 / max (pooled) and real-time factor, wall mean and p99 (us)."""
    pooled = np.concatenate(cpu_runs)
    means = [float(c.mean()) for c in cpu_runs]
    mean = float(np.median(means))
    return {"cpu_mean_us": mean * 1e6, "cpu_mean_us_runs": [m * 1e6 for m in means],
            "cpu_p50_us": float(np.median(pooled)) * 1e6, "cpu_p99_us": float(np.percentile(pooled, 99)) * 1e6,
            # 99.9 %: of 3 x 3000 blocks the 9th largest: a refit block (12 per 3000 blocks) rather than one outlier
            "cpu_p999_us": float(np.percentile(pooled, 99.9)) * 1e6,
            "cpu_max_us": float(pooled.max()) * 1e6, "cpu_rtf": mean / block_s,
            "wall_mean_us": float(np.median([w.mean() for w in wall_runs])) * 1e6,
            "wall_p99_us": float(np.percentile(np.concatenate(wall_runs), 99)) * 1e6}


def calibration_profile(speaker: str) -> SpeakerIVProfile:
    """The speaker profile a calibration of ``speaker`` runs on: for a named simulated speaker (``sim-ref``,
    ``sim-lite4``) the ``speaker-ref`` profile with that speaker's datasheet, else ``speaker-ref`` itself."""
    from edgesense.sim.speaker_params import NAMED_SPEAKERS, named_speaker

    base = load_profile("speaker-ref")
    name = speaker[len("sim-"):] if speaker.startswith("sim-") else None
    if name not in NAMED_SPEAKERS:
        return base
    return dataclasses.replace(base, name=speaker, description=f"simulated micro-speaker {name}",
                               speaker=named_speaker(name).published())


def bench_excursion_pipeline(model: str | Path, profile: SpeakerIVProfile | None = None, seconds: float = 10.0,
                             seed: int = 0, model_name: str | None = None,
                             frames_cache: dict | None = None) -> ExcursionPipelineCost:
    """Time ``ExcursionPipeline(profile, model)`` over ``seconds`` of simulated material, block by block.

    ``model``: an excursion model file (``.onnx`` / ``.tflite``, run on one thread) or a large-signal
    calibration (``.json``; its profile from :func:`calibration_profile` unless ``profile`` is given).
    ``profile`` defaults to ``speaker-ref``. ``frames_cache`` (a dict), if given, keeps the simulated frames per
    profile and length between calls, so every model of a run sees the same blocks. Raises
    :class:`~edgesense.errors.ModelError` for a file that is not an excursion model.
    """
    from edgesense.errors import EdgesenseError
    from edgesense.speaker import largesignal
    from edgesense.speaker.pipeline import ExcursionPipeline

    path = Path(model)
    if not seconds > 0:
        raise EdgesenseError(f"seconds must be positive, got {seconds}")
    calibration = path.suffix.lower() == ".json"
    if calibration:
        params = largesignal.load_calibration(path)
        profile = profile or calibration_profile(params.speaker)
        pipe = ExcursionPipeline(profile, path)
        backend = "large-signal estimator"
    else:
        from edgesense.runtime import load_model
        from edgesense.runtime.bench import backend_label

        profile = profile or load_profile("speaker-ref")
        m = load_model(path, threads=1)
        pipe = ExcursionPipeline(profile, m)
        backend = backend_label(path, m.backend)
    block_s = profile.block_size / profile.sample_rate_hz
    n = max(1, int(round(seconds / block_s)))
    cache = frames_cache if frames_cache is not None else {}
    key = (profile.name, profile.speaker, profile.block_size, n, seed)
    if key not in cache:
        cache[key] = speaker_frames(profile, n, seed=seed)
    frames = cache[key]
    # (after the warm-up the timed pass starts again at block 0: a sequence gap, so the pipeline resets as a
    # stream restart would; the network's tracker runs on, the estimator's restarts)
    cpu, wall = time_interleaved({"pipeline": lambda k: pipe.process(frames[k])}, n)["pipeline"]
    s = block_summary([cpu], [wall], block_s)
    streamer = pipe.streamer
    return ExcursionPipelineCost(
        model_name or path.stem, str(path), backend, "large-signal" if calibration else "excursion", profile.name,
        block_s * 1e6, n, s["cpu_mean_us"], s["cpu_p50_us"], s["cpu_p99_us"], s["wall_mean_us"], s["wall_p99_us"],
        s["cpu_rtf"], pipe.tracker is not None or (pipe.estimator is not None and pipe.estimator.tracker is not None),
        streamer is not None and streamer._direct is not None, largesignal.KERNEL if calibration else None)
