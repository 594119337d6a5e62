"""`edgesense demo` runs the whole live pipeline with the shipped model, without torch."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgesense.cli import cmd_demo

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_model_is_found_with_its_description():
    path = cmd_demo.find_model("gesture_cnn")
    assert path.suffix in (".onnx", ".tflite") and path.is_file()


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
