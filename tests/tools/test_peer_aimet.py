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
