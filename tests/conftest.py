"""Fixtures shared by every test package."""

from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="session")
def shipped_int8_tflite():
    """``name -> models/<name>/<name>_int8.tflite``; skips the test when that file is not shipped."""
    def find(name: str) -> Path:
        path = MODELS / name / f"{name}_int8.tflite"
        if not path.is_file():
            pytest.skip(f"{path} not shipped")
        return path
    return find
