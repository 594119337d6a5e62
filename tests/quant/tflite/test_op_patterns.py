"""Each supported op pattern: LiteRT int8 output vs ONNX Runtime on the same QDQ model, within 1 LSB."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper as h

from tflite_export_helpers import (
    fftnet_stack, float_model, qdq_unary, quantize_qdq, rand, samples, singles_and_batch, tflite_ops,
)
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.parity import compare_with_onnx, tflite_interpreter

RNG = np.random.default_rng(0)


def _export_and_check(tmp_path, model, in_shape, n=40, io_dtype="int8"):
    qdq = quantize_qdq(model, tmp_path / "m.qdq.onnx", in_shape)
    out = export_tflite(qdq, tmp_path / "m.tflite", io_dtype=io_dtype)
    for xnnpack in (True, False):  # LiteRT's default delegate and its builtin kernels
        report = compare_with_onnx(qdq, out, samples(in_shape, n), xnnpack=xnnpack)
        assert report.samples == n
        assert report.passes(0.999), (xnnpack, report)
        assert report.max_lsb <= 2, (xnnpack, report)
    return out, report


def conv_model(w_shape, x_shape, y_shape, **attrs):
    return float_model([h.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)], {"x": x_shape}, {"y": y_shape},
                       {"w": rand(RNG, *w_shape), "b": rand(RNG, w_shape[0], scale=0.1)})


def test_conv2d_same_padding_is_one_conv(tmp_path):
    out, _ = _export_and_check(tmp_path, conv_model((6, 3, 3, 3), (1, 3, 8, 8), (1, 6, 8, 8), pads=[1, 1, 1, 1]),
                               (1, 3, 8, 8))
    assert tflite_ops(out) == ["TRANSPOSE", "CONV_2D", "TRANSPOSE"]  # NCHW in/out kept at the boundary


def test_conv2d_relu_stride2_explicit_pad(tmp_path):
    # stride 2 with pads 1 on an even input is not TFLite SAME (which pads 0 before, 1 after)
    m = float_model([h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
                     h.make_node("Relu", ["c"], ["y"])],
                    {"x": (1, 2, 8, 8)}, {"y": (1, 4, 4, 4)}, {"w": rand(RNG, 4, 2, 3, 3), "b": rand(RNG, 4)})
    out, _ = _export_and_check(tmp_path, m, (1, 2, 8, 8))
    assert "PAD" in tflite_ops(out)


def test_conv2d_dilated_valid(tmp_path):
    _export_and_check(tmp_path, conv_model((4, 1, 3, 3), (1, 1, 10, 10), (1, 4, 6, 6), dilations=[2, 2]),
                      (1, 1, 10, 10))


@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_conv2d(tmp_path, mult):
    out, _ = _export_and_check(
        tmp_path, conv_model((4 * mult, 1, 3, 3), (1, 4, 6, 6), (1, 4 * mult, 6, 6), pads=[1, 1, 1, 1], group=4),
        (1, 4, 6, 6))
    assert "DEPTHWISE_CONV_2D" in tflite_ops(out)


@pytest.mark.parametrize("dilation", [1, 2, 4, 8])
def test_fftnet_causal_dilated_conv1d_relu(tmp_path, dilation):
    """FFTNet layer: left zero padding (a Pad node), kernel-2 dilated Conv1d, ReLU."""
    m = float_model([h.make_node("Pad", ["x", "p"], ["xp"], mode="constant"),
                     h.make_node("Conv", ["xp", "w", "b"], ["c"], dilations=[dilation]),
                     h.make_node("Relu", ["c"], ["y"])],
                    {"x": (1, 8, 64)}, {"y": (1, 8, 64)},
                    {"p": np.array([0, 0, dilation, 0, 0, 0], np.int64), "w": rand(RNG, 8, 8, 2),
                     "b": rand(RNG, 8, scale=0.1)})
    out, _ = _export_and_check(tmp_path, m, (1, 8, 64))
    assert tflite_ops(out) == ["RESHAPE", "TRANSPOSE", "PAD", "CONV_2D", "TRANSPOSE", "RESHAPE"]


def test_fftnet_stack(tmp_path):
    """A 1-channel FFTNet stack keeps NHWC throughout (no transposes, one PAD + CONV_2D per layer) and agrees
    with ORT end to end."""
    qdq = quantize_qdq(fftnet_stack(RNG), tmp_path / "m.qdq.onnx", (1, 1, 64))
    out = export_tflite(qdq, tmp_path / "m.tflite")
    assert tflite_ops(out) == ["RESHAPE"] + ["PAD", "CONV_2D"] * 3 + ["CONV_2D", "RESHAPE"]
    # end to end with LiteRT's default (XNNPACK) kernels; see docs/tflite-export.md for the builtin kernels
    report = compare_with_onnx(qdq, out, samples((1, 1, 64), 50))
    assert report.passes(0.999), report
    it = tflite_interpreter(out)
    assert list(it.get_input_details()[0]["shape"]) == [1, 1, 64]
    assert list(it.get_output_details()[0]["shape"]) == [1, 1, 64]


def test_conv1d_same_padding(tmp_path):
    out, _ = _export_and_check(tmp_path, conv_model((5, 3, 5), (1, 3, 32), (1, 5, 32), pads=[2, 2]), (1, 3, 32))
    assert "PAD" not in tflite_ops(out)


def test_asymmetric_conv_pads_become_pad_op(tmp_path):
    out, _ = _export_and_check(tmp_path, conv_model((4, 2, 3), (1, 2, 16), (1, 4, 16), pads=[2, 0]), (1, 2, 16))
    assert "PAD" in tflite_ops(out)


@pytest.mark.parametrize("op,attrs,out_hw", [
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, (4, 4)),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (8, 8)),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}, (8, 8)),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, (4, 4)),
    ("GlobalAveragePool", {}, (1, 1)),
])
def test_pooling(tmp_path, op, attrs, out_hw):
    m = float_model([h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                     h.make_node(op, ["c"], ["y"], **attrs)],
                    {"x": (1, 2, 8, 8)}, {"y": (1, 3, *out_hw)}, {"w": rand(RNG, 3, 2, 3, 3), "b": rand(RNG, 3)})
    _export_and_check(tmp_path, m, (1, 2, 8, 8))


def test_flatten_gemm_softmax_permutes_weights_instead_of_transposing(tmp_path):
    m = float_model([h.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
                     h.make_node("Relu", ["c"], ["r"]),
                     h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                     h.make_node("Flatten", ["p"], ["f"]),
                     h.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
                     h.make_node("Softmax", ["g"], ["y"], axis=-1)],
                    {"x": (1, 2, 8, 8)}, {"y": (1, 5)},
                    {"w1": rand(RNG, 4, 2, 3, 3), "b1": rand(RNG, 4), "w2": rand(RNG, 5, 64, scale=0.2),
                     "b2": rand(RNG, 5)})
    out, _ = _export_and_check(tmp_path, m, (1, 2, 8, 8), n=60)
    ops = tflite_ops(out)
    assert ops.count("TRANSPOSE") == 1  # the input's NCHW -> NHWC only
    assert ops[ops.index("FULLY_CONNECTED") + 1] == "SOFTMAX"
    it = tflite_interpreter(out)
    sm = [d for d in it.get_tensor_details() if d["name"].endswith("/tflite_grid")]
    assert sm and sm[0]["quantization"] == (1.0 / 256.0, -128)  # TFLite's softmax grid, then requantized


def test_residual_add_mul_sub_and_constant_operand(tmp_path):
    m = float_model([h.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
                     h.make_node("Conv", ["x", "w2", "b2"], ["b"], pads=[1, 1, 1, 1]),
                     h.make_node("Add", ["a", "b"], ["s"]),
                     h.make_node("Mul", ["s", "a"], ["m"]),
                     h.make_node("Sub", ["m", "b"], ["d"]),
                     h.make_node("Mul", ["d", "k"], ["y"])],  # per-channel constant, broadcast (C, 1, 1)
                    {"x": (1, 3, 6, 6)}, {"y": (1, 4, 6, 6)},
                    {"w1": rand(RNG, 4, 3, 3, 3), "b1": rand(RNG, 4), "w2": rand(RNG, 4, 3, 3, 3), "b2": rand(RNG, 4),
                     "k": np.array([0.5, -1.0, 2.0, 0.25], np.float32).reshape(4, 1, 1)})
    out, _ = _export_and_check(tmp_path, m, (1, 3, 6, 6))
    ops = tflite_ops(out)
    assert ops.count("ADD") == 1 and ops.count("MUL") == 2 and ops.count("SUB") == 1
    assert ops.count("TRANSPOSE") == 2  # input and output only


@pytest.mark.parametrize("op,grid,requantized", [
    ("Sigmoid", (1.0 / 256.0, -128), False),  # LOGISTIC's own grid
    ("Sigmoid", (1.0 / 255.0, -128), True),   # onnxruntime's usual grid: LOGISTIC, then QUANTIZE
    ("Tanh", (1.0 / 128.0, 0), False),
    ("Tanh", (2.0 / 255.0, 0), True),
    ("Softmax", (1.0 / 255.0, -128), True),
    ("Relu", (0.02, -128), False),
    ("LeakyRelu", (0.03, -60), False),
])
def test_single_activation_ops(tmp_path, op, grid, requantized):
    """The op reads the quantized input directly, so the comparison sees this op's error alone."""
    qdq = qdq_unary(op, (1, 64), (0.04, -3), grid, tmp_path / "m.qdq.onnx")
    out = export_tflite(qdq, tmp_path / "m.tflite")
    for xnnpack in (True, False):
        report = compare_with_onnx(qdq, out, samples((1, 64), 40, scale=3.0), xnnpack=xnnpack)
        assert report.passes(0.999) and report.max_lsb <= 1, (xnnpack, report)
    ops = tflite_ops(out)
    assert ops[0] == {"Sigmoid": "LOGISTIC", "LeakyRelu": "LEAKY_RELU"}.get(op, op.upper())
    assert ("DEPTHWISE_CONV_2D" in ops) == requantized  # the precise requantization (see convert._requantize)


def test_matmul_rank3_reshape_concat_slice(tmp_path):
    m = float_model([h.make_node("MatMul", ["x", "w"], ["m"]),
                     h.make_node("Add", ["m", "b"], ["a"]),
                     h.make_node("Slice", ["a", "st", "en", "ax"], ["s"]),
                     h.make_node("Concat", ["a", "s"], ["c"], axis=1),
                     h.make_node("Reshape", ["c", "shape"], ["y"])],
                    {"x": (1, 6, 10)}, {"y": (1, 72)},
                    {"w": rand(RNG, 10, 6), "b": rand(RNG, 6), "st": np.array([2], np.int64),
                     "en": np.array([8], np.int64), "ax": np.array([1], np.int64),
                     "shape": np.array([1, -1], np.int64)})
    _export_and_check(tmp_path, m, (1, 6, 10))


def test_float_io(tmp_path):
    out, _ = _export_and_check(tmp_path, conv_model((4, 2, 3), (1, 2, 16), (1, 4, 16), pads=[1, 1]), (1, 2, 16),
                               io_dtype="float32")
    ops = tflite_ops(out)
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    it = tflite_interpreter(out)
    assert it.get_input_details()[0]["dtype"] == np.float32


def test_two_inputs_two_outputs(tmp_path):
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    m = float_model([h.make_node("Conv", ["a", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                     h.make_node("Add", ["c", "z"], ["y1"]),
                     h.make_node("GlobalAveragePool", ["y1"], ["g"]),
                     h.make_node("Flatten", ["g"], ["y2"])],
                    {"a": (1, 3, 8, 8), "z": (1, 4, 8, 8)}, {"y1": (1, 4, 8, 8), "y2": (1, 4)},
                    {"w": rand(RNG, 4, 3, 3, 3), "b": rand(RNG, 4)})
    onnx.save(m, str(tmp_path / "f.onnx"))
    rng = np.random.default_rng(0)
    feeds = [{"a": rng.normal(size=(1, 3, 8, 8)).astype(np.float32),
              "z": rng.normal(size=(1, 4, 8, 8)).astype(np.float32)} for _ in range(40)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds[:20])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    out = export_tflite(tmp_path / "q.onnx", tmp_path / "m.tflite")
    it = tflite_interpreter(out)
    assert sorted(d["name"] for d in it.get_input_details()) == ["a", "z"]
    assert sorted(d["name"] for d in it.get_output_details()) == ["y1", "y2"]
    report = compare_with_onnx(tmp_path / "q.onnx", out, feeds[20:])
    assert [o.name for o in report.outputs] == ["y1", "y2"]
    assert report.passes(0.999), report


@pytest.mark.parametrize("shape", [(1, 5, 3, 4), (1, 5, 7)])
def test_softmax_over_channels(tmp_path, shape):
    qdq = qdq_unary("Softmax", shape, (0.05, 2), (1.0 / 256.0, -128), tmp_path / "m.qdq.onnx", axis=1)
    out = export_tflite(qdq, tmp_path / "m.tflite")
    assert "SOFTMAX" in tflite_ops(out)
    for xnnpack in (True, False):
        report = compare_with_onnx(qdq, out, samples(shape, 20, scale=2.0), xnnpack=xnnpack)
        assert report.passes(0.999) and report.max_lsb <= 1, (xnnpack, report)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_weight_orientation(tmp_path, trans_b):
    w = rand(RNG, 5, 16) if trans_b else rand(RNG, 16, 5)
    m = float_model([h.make_node("Gemm", ["x", "w", "b"], ["y"], transB=trans_b)], {"x": (1, 16)}, {"y": (1, 5)},
                    {"w": w, "b": rand(RNG, 5)})
    out, _ = _export_and_check(tmp_path, m, (1, 16))
    assert tflite_ops(out) == ["FULLY_CONNECTED"]


def test_dynamic_batch_through_flatten_fc_softmax_requantization(tmp_path):
    m = float_model([h.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
                     h.make_node("Flatten", ["c"], ["f"]),
                     h.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
                     h.make_node("Softmax", ["g"], ["y"], axis=-1)],
                    {"x": ("N", 2, 4, 4)}, {"y": ("N", 5)},
                    {"w1": rand(RNG, 3, 2, 3, 3), "b1": rand(RNG, 3), "w2": rand(RNG, 5, 48), "b2": rand(RNG, 5)})
    qdq = quantize_qdq(m, tmp_path / "m.qdq.onnx", (1, 2, 4, 4))
    out = export_tflite(qdq, tmp_path / "m.tflite")
    ops = tflite_ops(out)
    assert "DEPTHWISE_CONV_2D" in ops  # softmax 1/256 -> onnxruntime's 1/255, requantized
    x = np.stack(samples((2, 4, 4), 4))
    for xnnpack in (True, False):
        singles, batch = singles_and_batch(tflite_interpreter(out, xnnpack=xnnpack), x)
        assert np.array_equal(batch, singles), xnnpack
