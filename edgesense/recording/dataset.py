"""Datasets: a directory of recordings plus ``index.json`` with splits by subject."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import EdgesenseError, FormatError
from edgesense.recording.reader import Recording

INDEX_NAME = "index.json"
DATASET_FORMAT = "edgesense-dataset"
DATASET_VERSION = 1
SUFFIX = ".esr"


@dataclass
class DatasetEntry:
    """One recording of a dataset, as listed in its index."""

    path: str  # relative to the dataset directory, '/'-separated
    subject: str
    split: str
    frames: int
    duration_s: float
    profile: str
    clip_label: str | None = None
    events: int = 0
    event_labels: list[str] = field(default_factory=list)
    session: str | None = None


@dataclass
class ValidationProblem:
    path: str
    reason: str


@dataclass
class Dataset:
    """An opened dataset directory."""

    root: Path
    entries: list[DatasetEntry]
    splits: dict[str, list[str]]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path) -> "Dataset":
        root = Path(root)
        if not root.is_dir():
            raise FormatError(f"dataset directory not found: {root}")
        index = root / INDEX_NAME
        if not index.exists():
            raise FormatError(f"{root} has no {INDEX_NAME}; create it with `edgesense dataset index {root}`")
        try:
            data = json.loads(index.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FormatError(f"{index}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
            raise FormatError(f"{index}: not an edgesense dataset index")
        try:
            entries = [DatasetEntry(**e) for e in data["recordings"]]
        except (KeyError, TypeError) as exc:
            raise FormatError(f"{index}: malformed recording list ({exc})") from None
        meta = {k: v for k, v in data.items() if k not in ("recordings", "splits")}
        return cls(root, entries, {k: list(v) for k, v in data.get("splits", {}).items()}, meta)

    @property
    def classes(self) -> list[str]:
        """Every class name used by clip labels or events, sorted."""
        names: set[str] = set()
        for e in self.entries:
            if e.clip_label is not None:
                names.add(e.clip_label)
            names.update(e.event_labels)
        return sorted(names)

    @property
    def subjects(self) -> list[str]:
        return sorted({e.subject for e in self.entries})

    def split(self, name: str) -> list[DatasetEntry]:
        known = {e.split for e in self.entries}
        if name not in known:
            raise EdgesenseError(f"dataset {self.root} has no split {name!r} (has {sorted(known)})")
        return [e for e in self.entries if e.split == name]

    def path_of(self, entry: DatasetEntry) -> Path:
        return self.root / entry.path

    def load(self, entry: DatasetEntry) -> Recording:
        return Recording.open(self.path_of(entry))

    def summary(self) -> dict[str, Any]:
        """Classes with counts, subjects, durations and split sizes."""
        clip_counts = Counter(e.clip_label for e in self.entries if e.clip_label is not None)
        split_counts = Counter(e.split for e in self.entries)
        profiles = sorted({e.profile for e in self.entries})
        return {
            "root": str(self.root),
            "recordings": len(self.entries),
            "profiles": profiles,
            "classes": self.classes,
            "clips_per_class": dict(sorted(clip_counts.items())),
            "events": sum(e.events for e in self.entries),
            "subjects": len(self.subjects),
            "frames": sum(e.frames for e in self.entries),
            "duration_s": round(sum(e.duration_s for e in self.entries), 3),
            "recordings_per_split": dict(sorted(split_counts.items())),
            "subjects_per_split": {k: len(v) for k, v in sorted(self.splits.items())},
        }

    def validate(self, verify_payloads: bool = True) -> list[ValidationProblem]:
        """Check every recording (and the index against the files); names each bad file and why."""
        problems: list[ValidationProblem] = []
        listed = set()
        for entry in self.entries:
            listed.add(entry.path)
            path = self.path_of(entry)
            if not path.exists():
                problems.append(ValidationProblem(entry.path, "listed in the index but missing"))
                continue
            try:
                if verify_payloads:
                    rec = Recording.open(path)
                    n, integ = rec.n_frames, rec.integrity
                    if not integ.ok:
                        problems.append(ValidationProblem(entry.path, integ.summary()))
                    if rec.labels.activity is not None and len(rec.labels.activity) != n:
                        problems.append(ValidationProblem(entry.path, "activity mask length differs from frame count"))
                    bad_events = [e for e in rec.labels.events if e.end > n]
                    if bad_events:
                        problems.append(ValidationProblem(entry.path, f"{len(bad_events)} events end past the last frame"))
                else:
                    n = Recording.scan(path).n_frames
            except EdgesenseError as exc:
                problems.append(ValidationProblem(entry.path, str(exc)))
                continue
            if n != entry.frames:
                problems.append(ValidationProblem(entry.path, f"index says {entry.frames} frames, file has {n}"))
        for path in _find_recordings(self.root):
            rel = path.relative_to(self.root).as_posix()
            if rel not in listed:
                problems.append(ValidationProblem(rel, "recording not listed in the index (re-run `edgesense dataset index`)"))
        return problems


def _find_recordings(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(SUFFIX)]
    return out


def assign_splits(subjects: list[str], fractions: dict[str, float], seed: int = 0) -> dict[str, str]:
    """Map each subject to a split so that split sizes follow ``fractions`` (by subject, seeded)."""
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise EdgesenseError(f"split fractions must be non-negative and not all zero, got {fractions}")
    order = sorted(subjects)
    np.random.default_rng(seed).shuffle(order)
    total = sum(fractions.values())
    names = list(fractions)
    counts = [int(np.floor(fractions[k] / total * len(order))) for k in names]
    # give the remainder, then make sure every non-empty split gets at least one subject when possible
    for k in np.argsort([-(fractions[n] / total * len(order) - c) for n, c in zip(names, counts)]):
        if sum(counts) >= len(order):
            break
        counts[k] += 1
    for k, name in enumerate(names):
        if fractions[name] > 0 and counts[k] == 0 and len(order) >= len(names):
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[k] += 1
    out: dict[str, str] = {}
    pos = 0
    for name, count in zip(names, counts):
        for subject in order[pos: pos + count]:
            out[subject] = name
        pos += count
    return out


def write_dataset_index(root: str | Path, split_by_subject: dict[str, float] | None = None, seed: int = 0,
                        name: str | None = None, progress_desc: str | None = "indexing") -> Dataset:
    """Scan ``root`` for recordings and write ``index.json`` with splits by subject.

    Every recording needs a ``subject`` metadata field. A recording whose metadata has a ``split``
    field keeps it (e.g. held-out signals of known speakers); the others are assigned by subject
    with ``split_by_subject`` fractions (default 70/15/15 train/val/test).
    """
    from edgesense.progress import progress

    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"dataset directory not found: {root}")
    fractions = split_by_subject or {"train": 0.7, "val": 0.15, "test": 0.15}
    infos = []
    paths = _find_recordings(root)
    if not paths:
        raise FormatError(f"no {SUFFIX} recordings under {root}")
    for path in progress(paths, desc=progress_desc or "", unit="files") if progress_desc else paths:
        info = Recording.scan(path)
        if "subject" not in info.metadata:
            raise FormatError(f"{path}: metadata has no 'subject' field, needed for splits by subject")
        infos.append(info)
    free_subjects = sorted({str(i.metadata["subject"]) for i in infos if "split" not in i.metadata})
    assigned = assign_splits(free_subjects, fractions, seed) if free_subjects else {}
    entries = []
    for info in infos:
        subject = str(info.metadata["subject"])
        split = str(info.metadata.get("split", assigned.get(subject, "train")))
        entries.append(DatasetEntry(
            path=info.path.relative_to(root).as_posix(), subject=subject, split=split, frames=info.n_frames,
            duration_s=round(info.duration_s, 6), profile=info.profile.name, clip_label=info.labels.clip_label,
            events=len(info.labels.events), event_labels=sorted({e.label for e in info.labels.events}),
            session=None if info.metadata.get("session") is None else str(info.metadata["session"])))
    splits: dict[str, list[str]] = {}
    for e in entries:
        splits.setdefault(e.split, [])
        if e.subject not in splits[e.split]:
            splits[e.split].append(e.subject)
    index = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "name": name or root.name, "seed": seed,
             "split_fractions": fractions, "splits": {k: sorted(v) for k, v in sorted(splits.items())},
             "recordings": [asdict(e) for e in entries]}
    tmp = root / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, root / INDEX_NAME)
    return Dataset.open(root)
