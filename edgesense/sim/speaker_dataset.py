"""Write simulated speaker datasets in the recording format (``edgesense simulate speaker``).

Every (speaker, scenario) pair is one continuous stream of program material, simulated in one
batch with the others, sensed (16-bit V/I, noise) and cut into clips of ``clip_s`` seconds, one
recording per clip. Recordings carry a :class:`SpeakerIVProfile` with channels ("v", "i", "x")
(V, A, mm positive outward; float32) whose ``speaker`` holds the published datasheet parameters,
and metadata ``subject`` = speaker name, ``session`` = scenario.

Splits. Clips of named (calibrated) speakers get a metadata ``split`` by position in their
stream -- of every six consecutive clips, the 3rd is ``val`` and the 6th ``test`` -- so known
speakers have held-out signals in every scenario. Random speakers get no ``split`` field and are
split by subject (speaker) by :func:`write_dataset_index` with ``random_splits`` fractions, so
test speakers are unseen; ``random_splits={"test": 1.0}`` makes a set of unseen speakers only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import EdgesenseError
from edgesense.profiles import SpeakerIVProfile
from edgesense.progress import progress
from edgesense.recording import RecordingWriter, write_dataset_index
from edgesense.sim.speaker import _SENSE_CHUNK, SenseConfig, _output_array, sense, simulate
from edgesense.sim.speaker_params import (NAMED_SPEAKERS, SCENARIOS, Scenario, SpeakerModel, max_drive_volts,
                                          parse_speaker_spec)
from edgesense.sim.speaker_program import program

__all__ = ["StreamSpec", "plan_streams", "write_speaker_dataset", "known_split"]

FS = 48_000.0
BLOCK = 48


@dataclass
class StreamSpec:
    """One continuous simulated stream: a speaker in a scenario playing seeded program material."""

    speaker: SpeakerModel
    scenario: Scenario
    seed: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.speaker.name}_{self.scenario.name}"


def known_split(clip_index: int) -> str:
    """Split of clip ``clip_index`` of a named speaker's stream: 3rd of six -> val, 6th -> test."""
    return {2: "val", 5: "test"}.get(clip_index % 6, "train")


def plan_streams(speakers: str, scenarios: str, seed: int) -> list[StreamSpec]:
    """Parse ``--speakers`` / ``--scenarios`` into the list of streams to simulate."""
    names = [s.strip() for s in scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown or not names:
        raise EdgesenseError(f"unknown scenarios {unknown or names}; known: {', '.join(SCENARIOS)}")
    out = []
    for k, sp in enumerate(parse_speaker_spec(speakers, seed)):
        for j, sc in enumerate(names):
            out.append(StreamSpec(sp, SCENARIOS[sc], (seed, k, j)))
    return out


def _profile(sp: SpeakerModel, scenario: Scenario) -> SpeakerIVProfile:
    return SpeakerIVProfile(name=f"sim-{sp.name}", description=f"simulated micro-speaker {sp.name} ({scenario.name})",
                            sample_rate_hz=FS, block_size=BLOCK, channels=("v", "i", "x"), speaker=sp.published())


def write_speaker_dataset(out: str | Path, speakers: str = "ref,lite4", scenarios: str = "nominal,hot,leak",
                          seconds: float = 60.0, seed: int = 0, clip_s: float = 10.0, oversample: int = 2,
                          random_splits: dict[str, float] | None = None, overwrite: bool = False,
                          max_batch_s: float = 600.0, show_progress: bool = True) -> dict[str, Any]:
    """Simulate every (speaker, scenario) stream and write one recording per clip plus ``index.json``.

    Returns a summary (recordings, seconds simulated, simulation speed, temperatures).
    """
    import time

    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if seconds <= 0 or clip_s <= 0:
        raise EdgesenseError("--seconds and --clip-seconds must be positive")
    streams = plan_streams(speakers, scenarios, seed)
    n = int(round(seconds * FS))
    n -= n % BLOCK
    if n < BLOCK:
        raise EdgesenseError(f"--seconds {seconds} is shorter than one {BLOCK}-sample block")
    clip_blocks = max(1, int(round(clip_s * FS / BLOCK)))
    per_batch = max(1, int(max_batch_s // max(seconds, 1e-9)))
    sense_cfg = SenseConfig()
    written = 0
    sim_cpu = sim_wall = program_cpu = sense_cpu = write_cpu = 0.0
    streams_info = []
    batches = [streams[k:k + per_batch] for k in range(0, len(streams), per_batch)]
    frames = np.empty((n, 3), dtype=np.float32)       # one stream's v, i, x (mm): the payload, reused
    scratch = np.empty(min(n, _SENSE_CHUNK), dtype=np.float32)   # the sense model's working buffer (one chunk)
    row = np.empty(n)                                 # one program in float64 (reused: stays in cache)
    for bi, batch in enumerate(progress(batches, desc="simulate speaker", unit="batch") if show_progress and
                               len(batches) > 1 else batches):
        # the batch's programs in float32 (the float32 simulator's input; the sensed voltage is 16-bit)
        u = _output_array((len(batch), n), np.float32)         # 4 KB pages: cheaper first touch
        segs = []
        models = []
        t0 = time.process_time()
        for r, st in enumerate(batch):
            rng = np.random.default_rng(list(st.seed))
            _, s = program(n / FS, rng, FS, max_volts=max_drive_volts(st.speaker.re), loud=st.scenario.loud,
                           out=row)
            u[r] = row
            segs.append(s)
            models.append(st.scenario.apply(st.speaker))
        t1 = time.process_time()
        program_cpu += t1 - t0
        w0 = time.perf_counter()
        res = simulate(models, u, FS, ambient_c=[st.scenario.ambient_c for st in batch], oversample=oversample,
                       show_progress=show_progress and len(batches) == 1, dtype=np.float32)
        sim_wall += time.perf_counter() - w0
        sim_cpu += time.process_time() - t1
        for r, st in enumerate(batch):
            t2 = time.process_time()
            rng = np.random.default_rng(list(st.seed) + [7])
            sense(res.u[r], res.i[r], rng, sense_cfg, out_v=frames[:, 0], out_i=frames[:, 1], scratch=scratch)
            np.multiply(res.x[r], np.float32(1e3), out=frames[:, 2])
            payload = frames.reshape(-1, BLOCK, 3)
            t3 = time.process_time()
            sense_cpu += t3 - t2
            profile = _profile(st.speaker, st.scenario)
            named = st.speaker.name in NAMED_SPEAKERS
            coil = res.coil_c[r]
            steps_per_block = res.thermal_step / BLOCK
            for c, b0 in enumerate(range(0, len(payload), clip_blocks)):
                b1 = min(len(payload), b0 + clip_blocks)
                s0, s1 = b0 * BLOCK, b1 * BLOCK
                th = coil[int(b0 / steps_per_block):max(int(b0 / steps_per_block) + 1, int(b1 / steps_per_block))]
                meta: dict[str, Any] = {
                    "subject": st.speaker.name, "session": st.scenario.name, "device": "sim",
                    "environment": st.scenario.description, "scenario": st.scenario.name,
                    "stream": st.name, "clip_index": c, "stream_start_sample": s0, "seed": list(st.seed),
                    "speaker_true": st.scenario.apply(st.speaker).to_dict(),
                    "ambient_c": st.scenario.ambient_c,
                    "coil_c_start": round(float(th[0]), 3), "coil_c_max": round(float(th.max()), 3),
                    "coil_c_100ms": [round(float(t), 2) for t in coil[int(b0 / steps_per_block):
                                                                      int(b1 / steps_per_block):10]],
                    "program_segments": [[k, max(a, s0) - s0, min(b, s1) - s0] for k, a, b in segs[r]
                                         if b > s0 and a < s1],
                    "generator": "edgesense simulate speaker",
                }
                if named:
                    meta["split"] = known_split(c)
                path = out / st.name / f"{st.name}_{c:03d}.esr"
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists() and not overwrite:
                    raise EdgesenseError(f"{path} exists (pass --overwrite to replace it)")
                with RecordingWriter(path, profile, meta, overwrite=overwrite, background_flush=False,
                                     durable=False) as w:
                    w.write_batch(np.arange(b0, b1, dtype=np.uint32), np.arange(b0, b1, dtype=np.int64) * 1000,
                                  payload[b0:b1])
                written += 1
            write_cpu += time.process_time() - t3
            streams_info.append({"stream": st.name, "speaker": st.speaker.name, "scenario": st.scenario.name,
                                 "peak_x_mm": round(float(np.max(np.abs(res.x[r]))) * 1e3, 4),
                                 "coil_c_max": round(float(coil.max()), 2)})
    splits = random_splits or {"train": 0.7, "val": 0.15, "test": 0.15}
    write_dataset_index(out, splits, seed=seed, progress_desc=None)
    audio_s = len(streams) * n / FS
    total_cpu = time.process_time() - cpu_start
    total_wall = time.perf_counter() - wall_start
    # speedup_vs_realtime: the simulator proper (simulate(): thermal network, interpolation, nonlinear
    # integration) in CPU time of this process (speedup_wall: the same in elapsed time); the
    # end-to-end figure adds program synthesis, the I/V sense model, writing recordings and the index
    # (command start-up and imports excluded; speedup_end_to_end_wall: the same in elapsed time); the
    # *_cpu_s fields split it
    summary = {"out": str(out), "recordings": written, "streams": len(streams), "audio_seconds": audio_s,
               "sim_cpu_s": round(sim_cpu, 2), "realtime_factor": round(sim_cpu / audio_s, 5),
               "speedup_vs_realtime": round(audio_s / max(sim_cpu, 1e-9), 1),
               "sim_wall_s": round(sim_wall, 2), "speedup_wall": round(audio_s / max(sim_wall, 1e-9), 1),
               "program_cpu_s": round(program_cpu, 2), "sense_cpu_s": round(sense_cpu, 2),
               "write_cpu_s": round(write_cpu, 2),
               "total_cpu_s": round(total_cpu, 2), "speedup_end_to_end": round(audio_s / max(total_cpu, 1e-9), 1),
               "total_wall_s": round(total_wall, 2),
               "speedup_end_to_end_wall": round(audio_s / max(total_wall, 1e-9), 1),
               "streams_info": streams_info}
    (out / "simulation.json").write_text(json.dumps(summary, indent=1))
    return summary
