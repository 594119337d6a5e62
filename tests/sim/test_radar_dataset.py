"""`edgesense simulate radar`: datasets in the recording format with splits by subject."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgesense.errors import EdgesenseError
from edgesense.profiles import load_profile
from edgesense.recording import Dataset, Recording
from edgesense.sim.radar_dataset import write_clip_dataset, write_stream_dataset

AD60 = load_profile("ad60")


def test_clip_dataset_has_one_labelled_recording_per_clip_and_subject_splits(tmp_path):
    summary = write_clip_dataset(tmp_path / "clips", AD60, users=4, clips_per_class=1, n_frames=40, seed=3)
    ds = Dataset.open(tmp_path / "clips")
    assert summary.recordings == len(ds.entries) == 20
    assert ds.classes == ["finger_slide", "noise", "palm_hold", "pull_push", "swipe"]
    by_subject = {}
    for e in ds.entries:
        by_subject.setdefault(e.subject, set()).add(e.split)
    assert len(by_subject) == 4 and all(len(s) == 1 for s in by_subject.values())   # a user is in one split
    entry = next(e for e in ds.entries if e.clip_label == "swipe")
    rec = ds.load(entry)
    assert rec.payloads.shape == (40, 32, 32) and rec.payloads.dtype == np.complex64
    assert rec.labels.clip_label == "swipe" and rec.labels.events == []          # clips carry no event list
    active = np.flatnonzero(rec.labels.activity)
    assert 0 < len(active) == active[-1] - active[0] + 1                          # one contiguous gesture
    assert rec.metadata["subject"] == entry.subject and rec.metadata["session"] in ("s0", "s1")
    assert np.array_equal(rec.seq, np.arange(40))


def test_same_seed_same_dataset(tmp_path):
    write_clip_dataset(tmp_path / "a", AD60, users=1, clips_per_class=1, n_frames=16, seed=7, classes=("swipe",))
    write_clip_dataset(tmp_path / "b", AD60, users=1, clips_per_class=1, n_frames=16, seed=7, classes=("swipe",))
    a = Recording.open(next((tmp_path / "a").rglob("*.esr")))
    b = Recording.open(next((tmp_path / "b").rglob("*.esr")))
    assert np.array_equal(a.payloads, b.payloads)


def test_stream_dataset_has_events_and_activity(tmp_path):
    summary = write_stream_dataset(tmp_path / "s", AD60, users=2, minutes=0.5, seed=1)
    ds = Dataset.open(tmp_path / "s")
    assert summary.recordings == 2 and summary.frames == 1600
    rec = ds.load(ds.entries[0])
    assert rec.labels.clip_label is None and len(rec.labels.events) >= 3
    mask = np.zeros(len(rec.seq), np.uint8)
    for e in rec.labels.events:
        mask[e.start:e.end] = 1
    assert np.array_equal(mask, rec.labels.activity)
    assert isinstance(rec.metadata["noise_motions"], list)


def test_refuses_to_overwrite_and_rejects_non_radar_profiles(tmp_path):
    write_clip_dataset(tmp_path / "c", AD60, users=1, clips_per_class=1, n_frames=16, classes=("noise",))
    with pytest.raises(EdgesenseError):
        write_clip_dataset(tmp_path / "c", AD60, users=1, clips_per_class=1, n_frames=16, classes=("noise",))
    with pytest.raises(EdgesenseError):
        write_clip_dataset(tmp_path / "d", load_profile("rdi32"), users=1, clips_per_class=1)


def test_cli_writes_a_dataset_and_reports_json(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "edgesense.cli.main", "simulate", "radar", "--out", str(out),
                           "--users", "2", "--clips-per-class", "1", "--frames", "16", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["recordings"] == 10 and summary["mode"] == "clip"
    bad = subprocess.run([sys.executable, "-m", "edgesense.cli.main", "simulate", "radar", "--out", str(out),
                          "--profile", "rdi32"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.strip().count("\n") == 0


def test_rdi_store_writes_rdi_only_recordings_matching_the_processor(tmp_path):
    from edgesense.profiles import RDIProfile
    from edgesense.radar.rdi import RDIProcessor
    from edgesense.sim.radar_gestures import make_session, make_users, simulate_clip

    write_clip_dataset(tmp_path / "r", AD60, users=1, clips_per_class=1, n_frames=24, seed=5, classes=("swipe",),
                       store="rdi")
    rec = Recording.open(next((tmp_path / "r").rglob("*.esr")))
    assert isinstance(rec.profile, RDIProfile) and rec.payloads.shape == (24, 2, 32, 32)
    user = make_users(1, 5)[0]
    clip = simulate_clip(AD60, "swipe", user, make_session(user, 0, 5), np.random.SeedSequence([5, 0, 0, 0]), 24)
    assert np.array_equal(rec.payloads, RDIProcessor(AD60).process_batch(clip.payloads))
    assert rec.payloads.shape[1] == RDIProcessor(AD60).output_profile.channels


def test_committed_sample_dataset_is_small_valid_and_has_every_class():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "datasets" / "samples" / "radar-clips"
    ds = Dataset.open(root)
    assert ds.classes == ["finger_slide", "noise", "palm_hold", "pull_push", "swipe"]
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 1_000_000
    assert ds.validate() == []
