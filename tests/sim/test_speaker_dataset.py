"""``edgesense simulate speaker`` writes recordings in the recording format with splits."""

import numpy as np
import pytest

from edgesense.recording import Dataset
from edgesense.sim.speaker_dataset import known_split, write_speaker_dataset


def test_writes_recordings_with_profile_metadata_and_splits(tmp_path):
    summary = write_speaker_dataset(tmp_path, "ref,random:2", "nominal,leak", seconds=0.5, seed=4, clip_s=0.1,
                                    random_splits={"train": 0.5, "test": 0.5}, show_progress=False)
    assert summary["recordings"] == 3 * 2 * 5 and summary["audio_seconds"] == 3.0
    # both speed figures are CPU-time based; the end-to-end one includes the simulation
    assert 0 < summary["sim_cpu_s"] <= summary["total_cpu_s"]
    assert summary["speedup_end_to_end"] <= summary["speedup_vs_realtime"]
    parts = [summary[k] for k in ("program_cpu_s", "sim_cpu_s", "sense_cpu_s", "write_cpu_s")]
    assert min(parts) >= 0 and sum(parts) <= summary["total_cpu_s"] + 0.03     # the split (rounded to 10 ms)
    assert summary["sim_wall_s"] > 0 and summary["speedup_wall"] > 0
    assert summary["sim_wall_s"] <= summary["total_wall_s"]                     # elapsed: the whole includes the part
    # both figures are rounded (seconds to 0.01, the speed-up to 0.1): the bound is what the rounding allows, which
    # grows as the run gets shorter on a fast machine
    t = summary["total_wall_s"]
    assert summary["speedup_end_to_end_wall"] == pytest.approx(3.0 / t, abs=3.0 * 0.005 / (t * (t - 0.005)) + 0.05)
    ds = Dataset.open(tmp_path)
    assert len(ds.entries) == 30
    ref = [e for e in ds.entries if e.subject == "ref"]
    assert sorted(e.split for e in ref) == sorted([known_split(k) for k in range(5)] * 2)
    rand_splits = {e.subject: e.split for e in ds.entries if e.subject != "ref"}
    assert sorted(rand_splits.values()) == ["test", "train"]
    rec = ds.load(ref[0])
    assert rec.profile.channels == ("v", "i", "x") and rec.profile.speaker.bl == 1.0
    assert rec.metadata["session"] in ("nominal", "leak")
    payload = rec.payloads.reshape(-1, 3)
    assert payload.dtype == np.float32 and payload.shape == (4800, 3)
    assert 0.001 < np.max(np.abs(payload[:, 2])) < 1.0          # mm
    assert np.max(np.abs(payload[:, 0])) <= 8.0 and np.max(np.abs(payload[:, 1])) <= 1.5
