"""``input_layout="nwhc"``: a rank-4 ONNX input ``(N, C, H, W)`` taken as ``(N, W, H, C)``. The export computes
exactly what the ONNX-layout export computes on the transposed input (every int8 output bit-identical, on
XNNPACK and on the builtin kernels, at batch 1 and at a resized batch): convolutions and pools run column by
column without a TRANSPOSE (kernels turned), row pairs are a free RESHAPE, a whole-height convolution is a 1x1
convolution, a flatten feeding a fully-connected layer permutes its weights, and everything else reads an NHWC
or NCHW view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper as h

from tflite_export_helpers import float_model, quantize_qdq, rand, samples, tflite_ops
from edgesense.errors import ModelError
from edgesense.quant.tflite.convert import convert_qdq_model
from edgesense.quant.tflite.flatbuffer import read_model
from edgesense.quant.tflite.parity import compare_with_onnx, tflite_interpreter

RNG = np.random.default_rng(5)
ROOT = Path(__file__).resolve().parents[3]
NWHC = (0, 3, 2, 1)


def _run(data: bytes, xs: list[np.ndarray], xnnpack: bool) -> list[np.ndarray]:
    it = tflite_interpreter(data, xnnpack=xnnpack)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    if tuple(d["shape"]) != xs[0].shape:
        it.resize_tensor_input(d["index"], list(xs[0].shape))
        it.allocate_tensors()
    out = []
    for x in xs:
        it.set_tensor(d["index"], x)
        it.invoke()
        out.append(it.get_tensor(o["index"]).copy())
    return out


def _assert_same_on_transposed_input(onnx_layout: bytes, nwhc: bytes, shape: tuple, batches=(1, 2), n: int = 12):
    rng = np.random.default_rng(0)
    for batch in batches:
        xs = [rng.integers(-128, 128, size=(batch, *shape[1:])).astype(np.int8) for _ in range(n)]
        xt = [np.ascontiguousarray(x.transpose(NWHC)) for x in xs]
        for xnnpack in (True, False):
            for a, b in zip(_run(onnx_layout, xs, xnnpack), _run(nwhc, xt, xnnpack)):
                np.testing.assert_array_equal(a, b)


def _both(tmp_path: Path, model: onnx.ModelProto, shape: tuple, **kw) -> tuple[bytes, bytes]:
    qdq = onnx.load(str(quantize_qdq(model, tmp_path / "m.qdq.onnx", shape)))
    return convert_qdq_model(qdq, **kw), convert_qdq_model(qdq, input_layout="nwhc", **kw)


def _conv(x, y, w, b, **attrs):
    return [h.make_node("Conv", [x, w, b], [y + "_c"], **attrs), h.make_node("Relu", [y + "_c"], [y])]


def _column_stack(c: int, rows: int, cols: int) -> onnx.ModelProto:
    """gesture_crnn's encoder in small: (5, 1)/2 on c channels, (5, 1)/2 on 8, a whole-height convolution,
    then a (1, 3) convolution along the columns."""
    r2 = rows // 4
    nodes = (_conv("x", "a", "w1", "b1", kernel_shape=[5, 1], pads=[2, 0, 2, 0], strides=[2, 1])
             + _conv("a", "b", "w2", "b2", kernel_shape=[5, 1], pads=[2, 0, 2, 0], strides=[2, 1])
             + _conv("b", "e", "w3", "b3", kernel_shape=[r2, 1])
             + [h.make_node("Conv", ["e", "w4", "b4"], ["y"], kernel_shape=[1, 3], pads=[0, 1, 0, 1])])
    return float_model(nodes, {"x": ("N", c, rows, cols)}, {"y": ("N", 6, 1, cols)},
                       {"w1": rand(RNG, 8, c, 5, 1), "b1": rand(RNG, 8, scale=0.1),
                        "w2": rand(RNG, 8, 8, 5, 1), "b2": rand(RNG, 8, scale=0.1),
                        "w3": rand(RNG, 6, 8, r2, 1, scale=0.1), "b3": rand(RNG, 6, scale=0.1),
                        "w4": rand(RNG, 6, 6, 1, 3), "b4": rand(RNG, 6, scale=0.1)})


@pytest.mark.parametrize("pair_rows", [True, False])
def test_column_stack_needs_no_transpose_and_is_identical(tmp_path, pair_rows):
    shape = (1, 3, 16, 10)
    ref, cols = _both(tmp_path, _column_stack(3, 16, 10), shape, pair_rows=pair_rows)
    # the ONNX layout transposes the input and the (N, 6, 1, W) output; nwhc only the output
    assert tflite_ops(ref).count("TRANSPOSE") == 2 and tflite_ops(cols).count("TRANSPOSE") == 1
    fb = read_model(cols)
    assert fb.shape(fb.inputs[0]) == (1, 10, 16, 3)
    assert json.loads(fb.metadata["edgesense.input_layout"]) == {"x": list(NWHC)}
    convs = [op for op, name in zip(fb.operators, tflite_ops(cols)) if name == "CONV_2D"]
    assert [fb.shape(op.inputs[1]) for op in convs] == (
        [(8, 1, 3, 6) if pair_rows else (8, 1, 5, 3), (8, 1, 5, 8), (6, 1, 1, 4 * 8), (6, 1, 3, 6)])
    assert tflite_ops(cols).count("PAD") == (1 if pair_rows else 2)   # pairs: SAME padding of whole pairs
    _assert_same_on_transposed_input(ref, cols, shape)


@pytest.mark.parametrize("c,kernel,pads,strides,dil", [
    (2, (3, 1), [1, 0, 1, 0], [2, 1], [1, 1]),   # row pairs behind an explicit PAD (stride 2, pads 1)
    (6, (3, 1), [2, 0, 2, 0], [1, 1], [2, 1]),   # dilated down the rows: SAME
    (6, (3, 1), [1, 0, 2, 0], [1, 1], [1, 1]),   # asymmetric padding: PAD along the stored width
    (5, (4, 1), [0, 0, 0, 0], [2, 1], [1, 1]),   # 5 channels: not paired, strided
    (3, (3, 3), [1, 1, 1, 1], [1, 1], [1, 1]),   # 2-D, stride 1: two output rows per row pair
    (2, (3, 3), [1, 1, 1, 1], [2, 2], [1, 1]),   # 2-D, stride 2 both ways: pairs behind a PAD
    (6, (3, 2), [1, 0, 1, 1], [1, 2], [1, 2]),   # 2-D turned: strides, dilation, asymmetric column padding
])
def test_single_convolutions_are_identical(tmp_path, c, kernel, pads, strides, dil):
    rows, cols, o = 12, 7, 8
    out_rows = (rows + pads[0] + pads[2] - (kernel[0] - 1) * dil[0] - 1) // strides[0] + 1
    out_cols = cols + pads[1] + pads[3] - kernel[1] + 1
    m = float_model([h.make_node("Conv", ["x", "w", "b"], ["c"], pads=pads, strides=strides, dilations=dil),
                     h.make_node("Relu", ["c"], ["y"])],
                    {"x": ("N", c, rows, cols)}, {"y": ("N", o, out_rows, out_cols)},
                    {"w": rand(RNG, o, c, *kernel), "b": rand(RNG, o, scale=0.1)})
    shape = (1, c, rows, cols)
    ref, cols_ = _both(tmp_path, m, shape)
    assert tflite_ops(cols_).count("TRANSPOSE") == 1   # only the output, back to NCHW
    _assert_same_on_transposed_input(ref, cols_, shape)


def test_add_of_two_column_branches_and_float_io(tmp_path):
    """An Add of two column-by-column activations stays column by column; float32 I/O quantizes in the new layout."""
    nodes = (_conv("x", "p", "w1", "b1", kernel_shape=[3, 1], pads=[1, 0, 1, 0])
             + _conv("x", "q", "w2", "b2", kernel_shape=[5, 1], pads=[2, 0, 2, 0])
             + [h.make_node("Add", ["p", "q"], ["y"])])
    m = float_model(nodes, {"x": ("N", 2, 8, 5)}, {"y": ("N", 4, 8, 5)},
                    {"w1": rand(RNG, 4, 2, 3, 1), "b1": rand(RNG, 4, scale=0.1),
                     "w2": rand(RNG, 4, 2, 5, 1), "b2": rand(RNG, 4, scale=0.1)})
    shape = (1, 2, 8, 5)
    ref, cols = _both(tmp_path, m, shape)
    ops = tflite_ops(cols)
    assert ops.count("ADD") == 1 and ops.count("TRANSPOSE") == 1     # only the output goes back to NCHW
    _assert_same_on_transposed_input(ref, cols, shape)
    qdq = onnx.load(str(tmp_path / "m.qdq.onnx"))
    ref_f = convert_qdq_model(qdq, io_dtype="float32")
    cols_f = convert_qdq_model(qdq, io_dtype="float32", input_layout="nwhc")
    xs = samples(shape, n=6)
    for a, b in zip(_run(ref_f, xs, True), _run(cols_f, [np.ascontiguousarray(x.transpose(NWHC)) for x in xs], True)):
        np.testing.assert_array_equal(a, b)


def _cnn(c: int, rows: int, cols: int) -> onnx.ModelProto:
    """gesture_cnn in small: 3x3 conv + 2x2 max pool, depthwise 3x3, 2x2 average pool counting its padding,
    flatten, Gemm, softmax."""
    nodes = (_conv("x", "a", "w1", "b1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
             + [h.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
             + _conv("p", "d", "w2", "b2", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8)
             + [h.make_node("AveragePool", ["d"], ["q"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 1, 0],
                            count_include_pad=1),
                h.make_node("Flatten", ["q"], ["f"]), h.make_node("Gemm", ["f", "wf", "bf"], ["g"], transB=1),
                h.make_node("Softmax", ["g"], ["y"], axis=1)])
    feats = 8 * (rows // 4 + 1) * (cols // 4)
    return float_model(nodes, {"x": ("N", c, rows, cols)}, {"y": ("N", 5)},
                       {"w1": rand(RNG, 8, c, 3, 3), "b1": rand(RNG, 8, scale=0.1),
                        "w2": rand(RNG, 8, 1, 3, 3), "b2": rand(RNG, 8, scale=0.1),
                        "wf": rand(RNG, 5, feats, scale=0.1), "bf": rand(RNG, 5, scale=0.1)})


def test_cnn_runs_column_by_column_without_transpose(tmp_path):
    shape = (1, 3, 16, 12)
    ref, cols = _both(tmp_path, _cnn(3, 16, 12), shape)
    ops = tflite_ops(cols)
    assert "TRANSPOSE" not in ops and "TRANSPOSE" in tflite_ops(ref)
    # (quantize_static's softmax grid 1/255 adds a requantizing 1x1 DEPTHWISE_CONV_2D to both)
    assert ops.count("DEPTHWISE_CONV_2D") == tflite_ops(ref).count("DEPTHWISE_CONV_2D") == 2
    assert ops.count("AVERAGE_POOL_2D") == 1
    fb = read_model(cols)
    conv = fb.operators[ops.index("CONV_2D")]
    assert fb.shape(conv.inputs[0])[-1] == 6 and fb.shape(conv.outputs[0])[-1] == 16   # row pairs in, two rows out
    pad = fb.operators[ops.index("PAD")]
    assert fb.shape(pad.inputs[0]) == (1, 12, 16 * 3)          # 3-channel pixels padded as whole rows of bytes
    _assert_same_on_transposed_input(ref, cols, shape)


def test_only_rank4_inputs_and_known_layouts(tmp_path):
    m = float_model([h.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1])], {"x": (1, 4, 6)}, {"y": (1, 3, 6)},
                    {"w": rand(RNG, 3, 4, 3), "b": rand(RNG, 3, scale=0.1)})
    qdq = onnx.load(str(quantize_qdq(m, tmp_path / "r.qdq.onnx", (1, 4, 6))))
    with pytest.raises(ModelError, match="rank-4"):
        convert_qdq_model(qdq, input_layout="nwhc")
    with pytest.raises(ModelError, match="input_layout"):
        convert_qdq_model(qdq, input_layout="nhwc")


@pytest.mark.parametrize("name", ["gesture_crnn", "gesture_cnn"])
def test_shipped_gesture_models_nwhc_are_the_shipped_graphs_on_transposed_input(name):
    """The zoo's gesture models: no TRANSPOSE (gesture_crnn: its 16-row convolution a 1x1 convolution;
    gesture_cnn: the pairing RESHAPEs too), outputs bit-identical to the default export and exact against
    ORT on the QDQ model."""
    qdq_path = ROOT / "models" / name / f"{name}_int8.onnx"
    if not qdq_path.is_file():
        pytest.skip(f"models/{name} is not shipped")
    qdq = onnx.load(str(qdq_path))
    ref, cols = convert_qdq_model(qdq), convert_qdq_model(qdq, input_layout="nwhc")
    # the same operators but the TRANSPOSE (RESHAPEs aside: free views of the same bytes)
    assert [o for o in tflite_ops(cols) if o != "RESHAPE"] == [o for o in tflite_ops(ref) if o not in ("RESHAPE", "TRANSPOSE")]
    _assert_same_on_transposed_input(ref, cols, (1, 3, 64, 40), batches=(1,), n=8)
    rep = compare_with_onnx(qdq_path, cols, samples((1, 3, 64, 40), n=8))
    assert all(o.max_lsb == 0 for o in rep.outputs)


def test_command_input_layout_check_and_versus(tmp_path, capsys):
    """``python -m edgesense.quant.tflite ... --input-layout nwhc --check N --versus FLOAT``: parity on ONNX-layout
    samples, the nwhc and the ONNX-layout exports timed side by side."""
    from edgesense.quant.tflite.__main__ import main

    m = _column_stack(3, 16, 10)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(m, str(tmp_path / "f.onnx"))
    qdq = quantize_qdq(m, tmp_path / "m.qdq.onnx", (1, 3, 16, 10))
    assert main([str(qdq), str(tmp_path / "m.tflite"), "--input-layout", "nwhc", "--check", "4",
                 "--versus", str(tmp_path / "f.onnx"), "--rounds", "1", "--calls", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["parity"]["passes"] and result["parity"]["samples"] == 4
    assert set(result["versus"]["cases"]) == {"ORT float", "ORT INT8", "LiteRT INT8 (nwhc input)",
                                              "LiteRT INT8 (onnx input)", "LiteRT INT8 (plain)"}
    assert (tmp_path / "m.tflite").read_bytes() == convert_qdq_model(onnx.load(str(qdq)), input_layout="nwhc")


torch = pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", ["gesture_crnn", "gesture_cnn"])
def test_gesture_architecture_nwhc_matches_integer_sim(tmp_path, name):
    """Untrained gesture models through edgesense's own QDQ export: the nwhc .tflite gives IntegerSim's codes."""
    from edgesense.nn import create_model
    from edgesense.quant import IntegerSim, QuantSim, calibrate, export_qdq_onnx

    torch.manual_seed(0)
    shape = (3, 64, 40)
    model = create_model(name, in_channels=3).eval()
    calib = torch.randn((16, *shape), generator=torch.Generator().manual_seed(0))
    sim = QuantSim(model, calib[:1], target="ort-cpu")
    calibrate(sim, calib.split(8))
    graph = sim.eval().lower()
    qdq = onnx.load(str(export_qdq_onnx(sim, tmp_path / "m.onnx", graph)))
    cols = convert_qdq_model(qdq, input_layout="nwhc")
    x = torch.randn((10, *shape), generator=torch.Generator().manual_seed(2)).numpy()
    xq = graph.ops[0].out_encoding.quantize(x)
    codes, _ = IntegerSim(graph, add="xnnpack").outputs(x)[0]
    ys = np.concatenate(_run(cols, [np.ascontiguousarray(xq[i:i + 1].transpose(NWHC)) for i in range(len(x))], True))
    np.testing.assert_array_equal(ys.astype(np.int64), codes.astype(np.int64))
