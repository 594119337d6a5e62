"""Write simulated radar gesture datasets in the recording format (clips or continuous streams).

Layout: ``DIR/<subject>/<label>-<session>-<k>.esr`` for clips (one recording per clip, with
``clip_label`` and the per-frame activity mask marking where the gesture is; no event list, which is
what marks a recording as a stream) and ``DIR/<subject>/stream-<session>.esr``
for streams (events and activity mask; noise motions are not events and are listed in the metadata
field ``noise_motions``). Every recording carries ``subject``, ``session``, ``device``,
``environment`` and the generator settings in its metadata; ``index.json`` splits by subject.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import FormatError, ProfileError
from edgesense.profiles import RadarCIRProfile
from edgesense.progress import progress
from edgesense.recording import Event, Labels, RecordingWriter, write_dataset_index
from edgesense.sim.radar_gestures import GESTURES, SimUser, make_session, make_users, simulate_clip, simulate_stream

__all__ = ["DatasetSummary", "write_clip_dataset", "write_stream_dataset"]

SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


@dataclass
class DatasetSummary:
    """What a dataset writer produced."""

    out: str
    mode: str
    profile: str
    users: int
    recordings: int
    frames: int
    events: int
    seconds: float
    splits: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(profile: RadarCIRProfile, out: Path, users: int, overwrite: bool) -> None:
    if not isinstance(profile, RadarCIRProfile):
        raise ProfileError(f"the radar simulator needs a radar_cir profile, got {profile.kind!r} ({profile.name})")
    if users < 1:
        raise FormatError(f"need at least one user, got {users}")
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and any(out.rglob("*.esr")):
        raise FormatError(f"{out} already holds recordings (pass --overwrite to replace them)")


def _metadata(profile: RadarCIRProfile, user: SimUser, session: str, seed: int, **extra: Any) -> dict[str, Any]:
    return {"subject": user.subject, "session": session, "device": f"sim:{profile.name}",
            "environment": f"sim-{user.subject}-{session}", "generator": "edgesense.sim.radar", "seed": seed,
            "user": asdict(user), **extra}


def _write(path: Path, profile, payloads: np.ndarray, labels: Labels, meta: dict[str, Any],
           overwrite: bool) -> None:
    """One recording, without fsync: a generated file can simply be generated again."""
    n = len(payloads)
    if path.exists() and not overwrite:
        raise FormatError(f"{path} already exists (pass --overwrite to replace it)")
    with RecordingWriter(path, profile, meta, overwrite=True, background_flush=False, durable=False) as w:
        w.write_batch(np.arange(n, dtype=np.uint32), np.arange(n, dtype=np.int64) * profile.frame_period_us, payloads)
        w.set_labels(labels)


def write_clip_dataset(out: str | Path, profile: RadarCIRProfile, users: int = 30, clips_per_class: int = 40,
                       seed: int = 0, n_frames: int = 80, sessions: int = 2, classes: tuple[str, ...] = GESTURES,
                       overwrite: bool = False, store: str = "cir") -> DatasetSummary:
    """``users`` x ``classes`` x ``clips_per_class`` clips of ``n_frames`` frames, indexed with splits by subject.

    ``store="rdi"`` writes the clips' RDIs (:class:`~edgesense.radar.rdi.RDIProcessor` defaults, an
    RDI-only recording, half the size) instead of the raw complex frames.
    """
    out = Path(out)
    _check(profile, out, users, overwrite)
    if clips_per_class < 1 or n_frames < 8:
        raise FormatError("need clips_per_class >= 1 and at least 8 frames per clip")
    t0 = time.monotonic()
    people = make_users(users, seed)
    jobs = [(u, c, k) for u in range(users) for c in range(len(classes)) for k in range(clips_per_class)]
    envs = {(u, s): make_session(people[u], s, seed) for u in range(users) for s in range(sessions)}
    if store not in ("cir", "rdi"):
        raise FormatError(f"store must be 'cir' or 'rdi', got {store!r}")
    _clips(out, profile, people, envs, jobs, classes, seed, n_frames, sessions, overwrite, store)
    frames = len(jobs) * n_frames
    ds = write_dataset_index(out, split_by_subject=SPLITS, seed=seed, name=out.name, progress_desc=None)
    return DatasetSummary(str(out), "clip", profile.name, users, len(jobs), frames,
                          sum(1 for _, c, _ in jobs if classes[c] != "noise"), round(time.monotonic() - t0, 1),
                          _splits(ds))


def _clips(out, profile, people, envs, jobs, classes, seed, n_frames, sessions, overwrite, store) -> None:
    from edgesense.radar.rdi import RDIProcessor

    rdi = RDIProcessor(profile) if store == "rdi" else None
    for u, c, k in progress(jobs, desc="simulating clips", unit="clips"):
        user, label = people[u], classes[c]
        session = envs[(u, k % sessions)]
        clip = simulate_clip(profile, label, user, session, np.random.SeedSequence([seed, u, c, k]), n_frames)
        folder = out / user.subject
        folder.mkdir(exist_ok=True)
        meta = _metadata(profile, user, session.name, seed, variant=clip.variant, clip_index=k)
        payloads, written_profile = clip.payloads, profile
        if rdi is not None:
            rdi.reset()
            payloads, written_profile = rdi.process_batch(clip.payloads), rdi.output_profile
            meta["computed_from"] = profile.name
        _write(folder / f"{label}-{session.name}-{k:03d}.esr", written_profile, payloads,
               Labels(clip_label=label, activity=clip.activity), meta, overwrite)


def write_stream_dataset(out: str | Path, profile: RadarCIRProfile, users: int = 30, minutes: float = 10.0,
                         seed: int = 0, sessions: int = 1, overwrite: bool = False) -> DatasetSummary:
    """``minutes`` of continuous recordings spread over ``users`` x ``sessions`` recordings (>= 20 s each)."""
    out = Path(out)
    _check(profile, out, users, overwrite)
    if not minutes > 0:
        raise FormatError(f"minutes must be positive, got {minutes}")
    t0 = time.monotonic()
    people = make_users(users, seed)
    jobs = [(u, s) for u in range(users) for s in range(sessions)]
    seconds = max(20.0, minutes * 60.0 / len(jobs))
    frames = events = 0
    for u, s in progress(jobs, desc="simulating streams", unit="recordings"):
        user = people[u]
        session = make_session(user, s, seed)
        stream = simulate_stream(profile, user, session, seconds, np.random.SeedSequence([seed, u, 1000 + s]))
        folder = out / user.subject
        folder.mkdir(exist_ok=True)
        meta = _metadata(profile, user, session.name, seed,
                         noise_motions=[{"kind": k, "start": a, "end": b} for k, a, b in stream.noise])
        labels = Labels(events=[Event(lab, a, b) for lab, a, b in stream.events], activity=stream.activity)
        _write(folder / f"stream-{session.name}.esr", profile, stream.payloads, labels, meta, overwrite)
        frames += len(stream.payloads)
        events += len(stream.events)
    ds = write_dataset_index(out, split_by_subject=SPLITS, seed=seed, name=out.name, progress_desc=None)
    return DatasetSummary(str(out), "stream", profile.name, users, len(jobs), frames, events,
                          round(time.monotonic() - t0, 1), _splits(ds))


def _splits(ds) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in ds.entries:
        out.setdefault(e.split, [])
        if e.subject not in out[e.split]:
            out[e.split].append(e.subject)
    return {k: sorted(v) for k, v in sorted(out.items())}
