"""Unsupported or malformed inputs give a one-line ModelError, never a traceback from deep inside."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as h

from tflite_export_helpers import float_model, qdq_unary, quantize_qdq, rand
from edgesense.errors import EdgesenseError, ModelError
from edgesense.quant.tflite import export_tflite
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

RNG = np.random.default_rng(0)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        export_tflite(tmp_path / "nope.onnx", tmp_path / "x.tflite")


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(EdgesenseError):
        export_tflite(bad, tmp_path / "x.tflite")
    assert not (tmp_path / "x.tflite").exists()


def test_float_model_is_rejected(tmp_path):
    m = float_model([h.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": (1, 4)}, {"y": (1, 3)},
                    {"w": rand(RNG, 3, 4), "b": rand(RNG, 3)})
    with pytest.raises(ModelError, match="not quantized|without QuantizeLinear"):
        export_tflite(m, tmp_path / "x.tflite")


def test_unsupported_op_is_named(tmp_path):
    qdq = qdq_unary("Sin", (1, 8), (0.05, 0), (0.01, 0), tmp_path / "sin.onnx")
    with pytest.raises(ModelError, match="unsupported ONNX op 'Sin'"):
        export_tflite(qdq, tmp_path / "x.tflite")


def test_grouped_conv_is_rejected(tmp_path):
    m = float_model([h.make_node("Conv", ["x", "w", "b"], ["y"], group=2)], {"x": (1, 4, 6, 6)},
                    {"y": (1, 4, 4, 4)}, {"w": rand(RNG, 4, 2, 3, 3), "b": rand(RNG, 4)})
    qdq = quantize_qdq(m, tmp_path / "g.onnx", (1, 4, 6, 6))
    with pytest.raises(ModelError, match="grouped convolution"):
        export_tflite(qdq, tmp_path / "x.tflite")


def test_uint8_activations_are_rejected(tmp_path):
    m = float_model([h.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": (1, 4)}, {"y": (1, 3)},
                    {"w": rand(RNG, 3, 4), "b": rand(RNG, 3)})
    f = tmp_path / "f.onnx"
    import onnx

    onnx.save(m, str(f))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": RNG.normal(size=(1, 4)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(f), str(tmp_path / "u8.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    with pytest.raises(ModelError, match="int8 activations"):
        export_tflite(tmp_path / "u8.onnx", tmp_path / "x.tflite")


def test_bad_io_dtype(tmp_path):
    qdq = qdq_unary("Relu", (1, 8), (0.05, 0), (0.05, 0), tmp_path / "r.onnx")
    with pytest.raises(ModelError, match="io_dtype"):
        export_tflite(qdq, tmp_path / "x.tflite", io_dtype="uint8")
