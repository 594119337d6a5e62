"""edgesense.speaker.bench: the excursion pipeline's cost per block and its real-time factor."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgesense.errors import EdgesenseError, ModelError
from edgesense.profiles import load_profile
from edgesense.speaker import largesignal
from edgesense.speaker.bench import (WARMUP, bench_excursion_pipeline, block_summary, calibration_profile,
                                     speaker_frames, time_interleaved)

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_time_interleaved_runs_every_step_on_every_block_in_turns():
    calls = []
    steps = {"a": lambda k: calls.append(("a", k)), "b": lambda k: calls.append(("b", k))}
    entered = []
    out = time_interleaved(steps, 7, chunk=3, enter=entered.append)
    timed = calls[2 * WARMUP:]
    assert calls[:WARMUP] == [("a", k % 7) for k in range(WARMUP)]
    assert timed == [(s, k) for k0 in (0, 3, 6) for s in "ab" for k in range(k0, min(7, k0 + 3))]
    assert entered == ["a", "b"] + ["a", "b"] * 3
    for cpu, wall in out.values():
        assert cpu.shape == wall.shape == (7,) and np.all(cpu >= 0) and np.all(wall >= 0)


def test_block_summary_arithmetic():
    cpu = [np.array([1e-5, 2e-5, 3e-5]), np.array([2e-5, 2e-5, 2e-5])]
    s = block_summary(cpu, [c * 2 for c in cpu], 1e-3)
    assert s["cpu_mean_us"] == pytest.approx(20.0) and s["cpu_rtf"] == pytest.approx(0.02)
    assert s["cpu_mean_us_runs"] == pytest.approx([20.0, 20.0]) and s["cpu_p50_us"] == pytest.approx(20.0)
    assert s["cpu_max_us"] == pytest.approx(30.0) and s["wall_mean_us"] == pytest.approx(40.0)


def test_calibration_profile_carries_the_named_speakers_datasheet():
    from edgesense.sim.speaker_params import named_speaker

    lite = calibration_profile("sim-lite4")
    assert lite.name == "sim-lite4" and lite.speaker == named_speaker("lite4").published()
    assert lite.block_size == 48 and lite.channels == ("v", "i")
    assert calibration_profile("bench-unit-7") == load_profile("speaker-ref")


def test_speaker_frames_are_blocks_of_the_profile():
    prof = load_profile("speaker-ref")
    frames = speaker_frames(prof, 5, seed=2)
    assert [f.seq for f in frames] == list(range(5))
    assert all(f.payload.shape == (48, 2) and f.payload.dtype == np.float32 for f in frames)
    assert np.array_equal(frames[3].payload, speaker_frames(prof, 5, seed=2)[3].payload)


def _check_costs(r, blocks):
    assert r.blocks == blocks and r.block_us == pytest.approx(1000.0)
    for v in (r.cpu_mean_us, r.cpu_p50_us, r.cpu_p99_us, r.wall_mean_us, r.wall_p99_us):
        assert math.isfinite(v) and v > 0
    assert r.cpu_p50_us <= r.cpu_p99_us
    assert r.real_time_factor == pytest.approx(r.cpu_mean_us / r.block_us)


def test_a_network_without_tracker(onnx_model):
    cache = {}
    r = bench_excursion_pipeline(onnx_model, seconds=0.2, frames_cache=cache)
    _check_costs(r, 200)
    assert r.pipeline == "excursion" and r.backend == "ORT float" and r.profile == "speaker-ref"
    assert not r.tracker and not r.direct and r.largesignal_kernel is None
    assert len(cache) == 1
    bench_excursion_pipeline(onnx_model, seconds=0.2, frames_cache=cache)
    assert len(cache) == 1                      # the same blocks again


def test_the_int8_hybrid_runs_with_its_tracker_on_the_direct_path():
    model = MODELS / "hybrid" / "hybrid_int8.tflite"
    if not model.is_file():
        pytest.skip("hybrid INT8 model not shipped")
    r = bench_excursion_pipeline(model, seconds=0.3)
    _check_costs(r, 300)
    assert r.backend == "LiteRT INT8" and r.tracker and r.direct and r.model == "hybrid_int8"


def test_a_calibration_runs_the_large_signal_estimator():
    cal = MODELS / "speaker_calibration" / "lite4.json"
    if not cal.is_file():
        pytest.skip("lite4 calibration not shipped")
    r = bench_excursion_pipeline(cal, seconds=0.2, model_name="lite4")
    _check_costs(r, 200)
    assert r.pipeline == "large-signal" and r.backend == "large-signal estimator" and r.profile == "sim-lite4"
    assert r.tracker and r.largesignal_kernel == largesignal.KERNEL


def test_files_that_are_not_excursion_models_are_refused(tmp_path):
    gesture = MODELS / "gesture_cnn" / "gesture_cnn.onnx"
    if not gesture.is_file():
        pytest.skip("gesture_cnn not shipped")
    bare = tmp_path / "g.onnx"
    shutil.copy(gesture, bare)
    with pytest.raises(ModelError, match="no excursion model description"):
        bench_excursion_pipeline(bare, seconds=0.1)
    bad = tmp_path / "cal.json"
    bad.write_text("{}")
    with pytest.raises(EdgesenseError, match="no 'large_signal' calibration"):
        bench_excursion_pipeline(bad, seconds=0.1)
    with pytest.raises(EdgesenseError, match="seconds must be positive"):
        bench_excursion_pipeline(gesture, seconds=0)
