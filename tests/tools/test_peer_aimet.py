"""tools/peer_aimet.py: the optional aimet-onnx peer fails cleanly where aimet-onnx is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "peer_aimet.py"


@pytest.mark.skipif(importlib.util.find_spec("aimet_onnx") is not None, reason="aimet-onnx is installed here")
def test_without_aimet_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tmp_path / "m.onnx"), "--calib",
                        str(tmp_path / "c.npy"), "--out", str(tmp_path / "o.onnx")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: aimet-onnx is not installed")
    assert "Traceback" not in r.stderr


def test_help_explains_the_separate_environment():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "--scheme" in r.stdout and "aimet-onnx" in r.stdout


@pytest.mark.skipif(importlib.util.find_spec("aimet_onnx") is not None, reason="aimet-onnx is installed here")
def test_build_zoo_reports_a_failing_aimet_peer_as_a_row(tmp_path):
    """An interpreter without aimet-onnx gives one error row per scheme, never a crash."""
    import numpy as np

    spec = importlib.util.spec_from_file_location("build_zoo_for_aimet", ROOT / "tools" / "build_zoo.py")
    zoo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = zoo                   # dataclasses look their module up there
    spec.loader.exec_module(zoo)

    class NeverScored:
        def score(self, path):
            raise AssertionError("nothing was written, so nothing is scored")

    rows = zoo.aimet_peer_rows("m", tmp_path / "m.onnx", np.zeros((2, 3), np.float32), tmp_path,
                               Path(sys.executable), NeverScored())
    assert [r["model"] for r in rows] == [f"aimet-onnx {s} (ORT)" for s in zoo.AIMET_SCHEMES]
    assert all(r["error"].startswith("error: aimet-onnx is not installed") for r in rows)
