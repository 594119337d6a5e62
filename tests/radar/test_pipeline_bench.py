"""``tools/bench_gesture_pipeline.py --versus``: two models over the same passes, alternating."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_versus_runs_the_same_frames_on_both_models():
    model = ROOT / "models" / "gesture_cnn" / "gesture_cnn_int8.tflite"
    if not model.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gesture_pipeline.py"), "--model", str(model),
                           "--versus", str(ROOT / "models" / "gesture_cnn" / "gesture_cnn.onnx"), "--seconds", "2",
                           "--repeats", "2", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads(proc.stdout)
    v = d["versus"]
    assert v["model"].endswith("gesture_cnn.onnx")
    assert v["cpu_us_per_frame"]["n"] == d["cpu_us_per_frame"]["n"] == d["frames"] > 0
    assert v["cpu_us_steady_frames"]["n"] + v["cpu_us_gap_frames"]["n"] == d["frames"]
    assert len(v["cpu_p99_per_pass"]) == len(d["cpu_p99_per_pass"]) == 2


def test_against_an_older_tree_checks_equal_outputs_and_times_both(tmp_path):
    model = ROOT / "models" / "gesture_cnn" / "gesture_cnn_int8.tflite"
    if not model.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    radar = tmp_path / "edgesense" / "radar"
    radar.mkdir(parents=True)
    for name in ("rdi.py", "pipeline.py"):       # the current code as the "old" tree: outputs must agree
        (radar / name).write_text((ROOT / "edgesense" / "radar" / name).read_text())
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gesture_pipeline.py"), "--model", str(model),
                           "--against", str(tmp_path), "--seconds", "2", "--repeats", "2", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads(proc.stdout)
    a = d["against"]
    assert a["tree"] == str(tmp_path) and a["mismatched_frames"] == 0
    assert a["cpu_us_per_frame"]["n"] == d["cpu_us_per_frame"]["n"] == d["frames"] > 0
    assert len(a["cpu_p99_per_pass"]) == 2


def test_versus_whole_checks_the_split_against_the_whole_graph():
    model = ROOT / "models" / "gesture_cnn" / "gesture_cnn_int8.tflite"
    if not model.is_file():
        pytest.skip("gesture_cnn INT8 model not shipped")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gesture_pipeline.py"), "--model", str(model),
                           "--versus-whole", "--seconds", "2", "--repeats", "2", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads(proc.stdout)
    assert d["split"]["column_graphs"] >= 2 and d["split_reason"] is None
    v = d["versus"]
    assert v["model"] == "whole graph" and v["mismatched_frames"] == 0
    assert v["cpu_us_per_frame"]["n"] == d["cpu_us_per_frame"]["n"] == d["frames"] > 0


def test_host_probe_times_the_fixed_job_after_every_pause():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench", ROOT / "tools" / "bench_gesture_pipeline.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    probe = bench.host_probe(reps=2)
    assert set(probe) == {"none 0 ms"} | {f"{h} {ms} ms" for h in ("spin", "sleep") for ms in ("0.2", "1", "5", "25")}
    assert all(u["n"] == 2 and 0 < u["p50"] <= u["max"] for u in probe.values())
