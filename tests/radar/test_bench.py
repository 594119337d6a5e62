"""edgesense.radar.bench: the gesture pipeline's per-frame cost on a simulated stream with drops."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgesense.errors import EdgesenseError, ModelError
from edgesense.radar.bench import FrameCosts, bench_gesture_pipeline, dist, gap_flags, run_pass, simulated_stream

MODEL = Path(__file__).resolve().parents[2] / "models" / "gesture_cnn" / "gesture_cnn_int8.tflite"


def test_gap_flags_and_dist():
    assert gap_flags(np.array([0, 1, 3, 4, 9])).tolist() == [False, False, True, False, True]
    assert gap_flags(np.array([5])).tolist() == [False]
    d = dist([1.0, 2.0, 3.0, 10.0])
    assert d["n"] == 4 and d["mean"] == 4.0 and d["p50"] == 2.5 and d["max"] == 10.0
    assert d["p50"] <= d["p95"] <= d["p99"] <= d["max"]
    assert dist([]) == {"n": 0}


def test_simulated_stream_loses_frames_and_keeps_order():
    from edgesense.profiles import load_profile

    idx, frames = simulated_stream(load_profile("ad60"), 2.0, 0.3, seed=1)
    assert len(idx) == len(frames) < 80 and [f.seq for f in frames] == idx.tolist()
    assert np.all(np.diff(idx) >= 1) and gap_flags(idx).any()
    again, _ = simulated_stream(load_profile("ad60"), 2.0, 0.3, seed=1)
    assert np.array_equal(idx, again)                 # seeded


@pytest.fixture(scope="module")
def cost_and_stream():
    if not MODEL.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    cache = {}
    r = bench_gesture_pipeline(MODEL, seconds=1.5, drop_rate=0.2, repeats=2, streams_cache=cache)
    return r, cache


def test_bench_gesture_pipeline_counts_every_frame_of_every_pass(cost_and_stream):
    r, cache = cost_and_stream
    (idx, frames), = cache.values()
    assert r.frames == 2 * len(frames) and r.repeats == 2
    assert r.restore_share == pytest.approx(gap_flags(idx).mean())
    assert r.restored_frames > 0 and 0 < r.restore_share < 1
    for v in (r.cpu_mean_us, r.cpu_p50_us, r.cpu_p99_us, r.wall_p50_us, r.wall_p99_us):
        assert math.isfinite(v) and v > 0
    assert r.cpu_p50_us <= r.cpu_p99_us and r.frames_per_s == pytest.approx(1e6 / r.cpu_mean_us)
    assert r.backend == "LiteRT INT8" and r.pipeline == "gesture" and r.profile == "ad60" and r.streaming_split
    assert r.to_dict()["model"] == "gesture_cnn_int8"


def test_the_cache_gives_the_next_model_the_same_frames(cost_and_stream):
    r, cache = cost_and_stream
    before = next(iter(cache.values()))
    other = bench_gesture_pipeline(MODEL.with_name("gesture_cnn.onnx"), seconds=1.5, drop_rate=0.2, repeats=1,
                                   streams_cache=cache)
    assert len(cache) == 1 and next(iter(cache.values())) is before
    assert other.backend == "ORT float" and not other.streaming_split
    assert other.frames == r.frames // 2 and other.restore_share == r.restore_share


def test_frame_costs_gather_what_the_pipeline_measured():
    if not MODEL.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    from edgesense.radar.pipeline import GesturePipeline

    pipe = GesturePipeline(MODEL)
    idx, frames = simulated_stream(pipe.profile, 1.0, 0.2, seed=3)
    costs = FrameCosts()
    for _ in range(2):
        run_pass(pipe, frames)
        assert pipe.stats.frames == len(frames)        # run_pass starts a fresh stream
        costs.add(pipe, idx)
    assert len(costs.cpu) == len(costs.wall) == len(costs.gaps) == 2 * len(frames)
    assert costs.gaps == 2 * gap_flags(idx).tolist() and len(costs.pass_p99) == 2


def test_a_model_without_a_gesture_description_is_refused(tmp_path):
    if not MODEL.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    bare = tmp_path / "bare.tflite"
    shutil.copy(MODEL, bare)
    with pytest.raises(ModelError, match="no gesture model description"):
        bench_gesture_pipeline(bare, seconds=0.5)
    with pytest.raises(EdgesenseError, match="drop_rate"):
        bench_gesture_pipeline(MODEL, seconds=0.5, drop_rate=1.0)
