"""`edgesense demo` runs the whole live pipeline with the shipped model, without torch."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from edgesense.cli import cmd_demo

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_model_is_found_with_its_description():
    path = cmd_demo.find_model("gesture_cnn")
    assert path.suffix in (".onnx", ".tflite") and path.is_file()


def test_int8_tflite_is_the_default_model_when_shipped(tmp_path, monkeypatch):
    folder = tmp_path / "gesture_cnn"
    folder.mkdir()
    shipped = ROOT / "models" / "gesture_cnn"
    for name in ("gesture_cnn.onnx", "gesture_cnn.json", "gesture_cnn_int8.tflite", "gesture_cnn_int8.json",
                 "gesture_cnn_int8.onnx"):
        (folder / name).write_bytes((shipped / name).read_bytes())
    monkeypatch.setenv("EDGESENSE_MODELS", str(tmp_path))
    assert cmd_demo.find_model("gesture_cnn") == folder / "gesture_cnn_int8.tflite"
    (folder / "gesture_cnn_int8.tflite").unlink()
    assert cmd_demo.find_model("gesture_cnn").name != "gesture_cnn_int8.tflite"


def test_help_names_the_default_model_and_the_cpu_figure():
    proc = subprocess.run([sys.executable, "-m", "edgesense.cli.main", "demo", "--help"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0
    assert "gesture_cnn_int8.tflite" in proc.stdout and "CPU time per frame" in proc.stdout


def test_demo_prints_cpu_per_frame_and_consistent_counts(capsys):
    from edgesense.cli.main import main

    assert main(["demo", "--seconds", "2", "--speed", "4", "--seed", "1", "--drop-rate", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "LiteRT, int8 input" in out
    done = next(line for line in out.splitlines() if line.startswith("done:"))
    assert re.search(r"CPU per frame p50 [1-9]\d* us / p99 [1-9]\d* us", done)
    detected = re.search(r"(\d+) of (\d+) performed gestures detected", out)
    assert detected and int(detected[1]) <= int(detected[2])


def test_demo_runs_live_without_torch_and_reports_events_and_stats(tmp_path):
    # A torch import is made to fail: the demo must not need it.
    code = textwrap.dedent("""
        import sys
        class _NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, _NoTorch())
        from edgesense.cli.main import main
        rc = main(["demo", "--seconds", "6", "--speed", "4", "--seed", "3", "--drop-rate", "0.1", "--json"])
        assert "torch" not in sys.modules
        sys.exit(rc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    stats = out["pipeline"]
    assert stats["frames"] > 150                       # ~240 frames minus drops
    assert stats["frames_restored"] + stats["frames_padded"] > 0
    assert stats["cpu_us_per_frame"]["p50"] > 0
    assert out["source_stats"]["gaps"] == stats["gaps"]
    for ev in out["events"]:
        assert ev["label"] != "noise" and 0 < ev["confidence"] <= 1


def test_demo_rejects_bad_drop_rate():
    proc = subprocess.run([sys.executable, "-m", "edgesense.cli.main", "demo", "--drop-rate", "1.5"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "drop-rate" in proc.stderr and "Traceback" not in proc.stderr
