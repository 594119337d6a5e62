"""``python -m edgesense.quant.tflite``: export, parity check, JSON output, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgesense.quant.tflite.__main__ import main

DATA = Path(__file__).resolve().parents[1] / "data"


def test_export_and_check_json(tmp_path, capsys):
    qdq = DATA / "example_conv1d_int8.onnx"
    if not qdq.exists():
        pytest.skip("example model not committed")
    out = tmp_path / "m.tflite"
    assert main([str(qdq), str(out), "--check", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert out.stat().st_size == result["bytes"] > 0
    assert result["parity"]["passes"] is True and result["parity"]["samples"] == 5
    assert result["parity"]["outputs"][0]["within_1_lsb"] >= 0.999


def test_missing_model_is_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "none.onnx"), str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not found" in err and "\n" not in err
