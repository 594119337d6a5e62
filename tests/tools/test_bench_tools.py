"""The committed benchmark commands run end to end and report what their docs quote (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_json(*argv: str) -> dict:
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_bench_gesture_pipeline_reports_every_frame_and_stage():
    model = ROOT / "models" / "gesture_cnn" / "gesture_cnn_int8.tflite"
    if not model.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    d = _run_json("tools/bench_gesture_pipeline.py", "--model", str(model), "--seconds", "2", "--repeats", "1",
                  "--breakdown", "--json")
    cpu = d["cpu_us_per_frame"]
    assert cpu["n"] == d["frames"] > 0
    assert 0 < cpu["p50"] <= cpu["p95"] <= cpu["p99"] <= cpu["max"]
    # every frame is either a steady frame or a frame after a gap
    assert d["cpu_us_steady_frames"]["n"] + d["cpu_us_gap_frames"]["n"] == d["frames"]
    assert d["gap_frames"] > 0                     # 20 % drops over 80 frames leave gaps


def test_bench_excursion_real_time_factor_and_stages():
    model = ROOT / "models" / "hybrid" / "hybrid_int8.tflite"
    if not model.is_file():
        pytest.skip("hybrid INT8 model not shipped")
    d = _run_json("tools/bench_excursion.py", "--model", str(model), "--blocks", "60", "--repeat", "1", "--json")
    assert d["block_samples"] == 48 and d["blocks"] == 60
    assert d["real_time_factor_cpu"] > 0 and d["rtf_without_tracker_cpu"] > 0
    assert d["tracker_in_everything"] is True
    assert d["stages"]
