from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # edgesense.quant (the parent package) needs it
pytest.importorskip("onnx")
pytest.importorskip("tflite")
pytest.importorskip("ai_edge_litert")

sys.path.insert(0, str(Path(__file__).parent))
