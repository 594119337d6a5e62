"""Fixtures shared by every test package."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="session")
def shipped_int8_tflite():
    """``name -> models/<name>/<name>_int8.tflite``; skips the test when that file is not shipped."""
    def find(name: str) -> Path:
        path = MODELS / name / f"{name}_int8.tflite"
        if not path.is_file():
            pytest.skip(f"{path} not shipped")
        return path
    return find


@pytest.fixture(scope="session")
def tiny_radar_clips(tmp_path_factory) -> Path:
    """A tiny simulated radar clip dataset: 4 users, one 60-frame clip per class, seed 3."""
    data = tmp_path_factory.mktemp("tiny_radar") / "radar"
    subprocess.run([sys.executable, "-m", "edgesense.cli.main", "simulate", "radar", "--out", str(data),
                    "--mode", "clip", "--users", "4", "--clips-per-class", "1", "--frames", "60", "--seed", "3"],
                   check=True, capture_output=True, cwd=ROOT)
    return data


@pytest.fixture(scope="session")
def build_zoo_tool():
    """``tools/build_zoo.py`` imported as the module ``build_zoo``."""
    spec = importlib.util.spec_from_file_location("build_zoo", ROOT / "tools" / "build_zoo.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules["build_zoo"] = tool
    spec.loader.exec_module(tool)
    return tool
