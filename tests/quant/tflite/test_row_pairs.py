"""Row-pair packing of a first convolution on few input channels (``convert_qdq_model(pair_rows=...)``): the
packed graph computes exactly what the plain one does (every int8 output bit-identical, on XNNPACK and on the
builtin kernels, at batch 1 and at a resized batch) and, for the gesture architectures, exactly what
edgesense's IntegerSim computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper as h

from tflite_export_helpers import float_model, quantize_qdq, rand, tflite_ops
from edgesense.quant.tflite.convert import convert_qdq_model
from edgesense.quant.tflite.parity import tflite_interpreter

RNG = np.random.default_rng(3)


def _tensor_ranks(data: bytes, op_name: str) -> list[int]:
    """Rank of the first input of every ``op_name`` operator of a .tflite flatbuffer."""
    import tflite

    code = getattr(tflite.BuiltinOperator, op_name)
    model = tflite.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    ranks = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if model.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == code:
            ranks.append(sub.Tensors(op.Inputs(0)).ShapeLength())
    return ranks


def _run_all(data: bytes, xs: list[np.ndarray], xnnpack: bool) -> list[np.ndarray]:
    it = tflite_interpreter(data, xnnpack=xnnpack)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    if tuple(d["shape"]) != xs[0].shape:
        it.resize_tensor_input(d["index"], list(xs[0].shape))
        it.allocate_tensors()
    ys = []
    for x in xs:
        it.set_tensor(d["index"], x)
        it.invoke()
        ys.append(it.get_tensor(o["index"]).copy())
    return ys


def _assert_identical(plain: bytes, packed: bytes, shape: tuple, batches=(1,), n: int = 20) -> None:
    rng = np.random.default_rng(0)
    for batch in batches:
        xs = [rng.integers(-128, 128, size=(batch, *shape[1:])).astype(np.int8) for _ in range(n)]
        for xnnpack in (True, False):
            for a, b in zip(_run_all(plain, xs, xnnpack), _run_all(packed, xs, xnnpack)):
                np.testing.assert_array_equal(a, b)


def _both(tmp_path: Path, model: onnx.ModelProto, shape: tuple) -> tuple[bytes, bytes]:
    qdq = onnx.load(str(quantize_qdq(model, tmp_path / "m.qdq.onnx", shape)))
    return convert_qdq_model(qdq, pair_rows=False), convert_qdq_model(qdq)


def _conv_pool(c: int, rows: int, cols: int, kernel: tuple, pads: list, pool: tuple | None, batch="N"):
    o = 8
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=pads), h.make_node("Relu", ["c"], ["r"])]
    out_rows = rows + pads[0] + pads[2] - kernel[0] + 1
    out_cols = cols + pads[1] + pads[3] - kernel[1] + 1
    if pool is not None:
        nodes.append(h.make_node("MaxPool", ["r"], ["y"], kernel_shape=list(pool), strides=list(pool)))
        out_rows, out_cols = out_rows // pool[0], out_cols // pool[1]
    else:
        nodes[-1].output[0] = "y"
    return float_model(nodes, {"x": (batch, c, rows, cols)}, {"y": (batch, o, out_rows, out_cols)},
                       {"w": rand(RNG, o, c, *kernel), "b": rand(RNG, o, scale=0.1)})


@pytest.mark.parametrize("c,kernel,pads,pool", [
    (3, (3, 3), [1, 1, 1, 1], (2, 2)),     # gesture_cnn's first block
    (1, (3, 3), [1, 1, 1, 1], (2, 2)),
    (4, (3, 3), [1, 1, 1, 1], (2, 1)),
    (2, (5, 3), [2, 1, 2, 1], (2, 2)),
    (3, (3, 3), [0, 0, 0, 0], (2, 2)),
])
def test_stride1_conv_then_row_pool_is_packed_and_identical(tmp_path, c, kernel, pads, pool):
    shape = (1, c, 16, 10)
    plain, packed = _both(tmp_path, _conv_pool(c, 16, 10, kernel, pads, pool), shape)
    assert 5 in _tensor_ranks(packed, "TRANSPOSE") and 5 not in _tensor_ranks(plain, "TRANSPOSE")
    assert tflite_ops(packed).count("CONV_2D") == 1 and tflite_ops(packed).count("MAX_POOL_2D") == 1
    _assert_identical(plain, packed, shape, batches=(1, 3))


@pytest.mark.parametrize("c,kernel,pads,dw", [
    (3, (5, 1), [2, 0, 2, 0], 1),   # gesture_crnn's first layer: whole pairs of padding, no PAD at all
    (2, (3, 3), [1, 1, 1, 1], 1),   # an explicit PAD (stride 2 with pads 1 is not TFLite SAME)
    (4, (4, 1), [1, 0, 1, 0], 1),
    (3, (5, 3), [2, 2, 2, 2], 2),   # dilated along the columns: kept on the packed convolution
    (3, (3, 3), [1, 0, 1, 0], 2),
])
def test_stride2_conv_is_packed_and_identical(tmp_path, c, kernel, pads, dw):
    rows, cols, o = 16, 6, 8
    out_rows = (rows + pads[0] + pads[2] - kernel[0]) // 2 + 1
    out_cols = cols + pads[1] + pads[3] - (kernel[1] - 1) * dw
    m = float_model([h.make_node("Conv", ["x", "w", "b"], ["c"], pads=pads, strides=[2, 1], dilations=[1, dw]),
                     h.make_node("Relu", ["c"], ["y"])],
                    {"x": ("N", c, rows, cols)}, {"y": ("N", o, out_rows, out_cols)},
                    {"w": rand(RNG, o, c, *kernel), "b": rand(RNG, o, scale=0.1)})
    shape = (1, c, rows, cols)
    plain, packed = _both(tmp_path, m, shape)
    assert 5 in _tensor_ranks(packed, "TRANSPOSE")
    if pads == [2, 0, 2, 0]:
        assert "PAD" not in tflite_ops(packed) and "PAD" in tflite_ops(plain)
    _assert_identical(plain, packed, shape, batches=(1, 2))


@pytest.mark.parametrize("case", ["no-pool", "many-channels", "pool-stride1"])
def test_not_packed_where_it_does_not_pay(tmp_path, case):
    """Stride 1 without a row pool after it, 5+ input channels, a pool that does not halve the rows: plain."""
    if case == "no-pool":
        m, c = _conv_pool(3, 16, 10, (3, 3), [1, 1, 1, 1], None), 3
    elif case == "many-channels":
        m, c = _conv_pool(6, 16, 10, (3, 3), [1, 1, 1, 1], (2, 2)), 6
    else:
        m, c = _conv_pool(3, 16, 10, (3, 3), [1, 1, 1, 1], (1, 2)), 3
    plain, packed = _both(tmp_path, m, (1, c, 16, 10))
    assert packed == plain


torch = pytest.importorskip("torch")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name", ["gesture_cnn", "gesture_crnn"])
def test_gesture_architectures_packed_match_integer_sim_bit_for_bit(tmp_path, name):
    """The zoo's gesture models (3-channel input, untrained weights): the packed .tflite is what IntegerSim
    computes, every output code, and what the plain .tflite computes."""
    from edgesense.nn import create_model
    from edgesense.quant import IntegerSim, QuantSim, calibrate, export_qdq_onnx

    torch.manual_seed(0)
    shape = (3, 64, 40)
    model = create_model(name, in_channels=3).eval()
    g = torch.Generator().manual_seed(0)
    calib = torch.randn((16, *shape), generator=g)
    sim = QuantSim(model, calib[:1], target="ort-cpu")
    calibrate(sim, calib.split(8))
    graph = sim.eval().lower()
    qdq = onnx.load(str(export_qdq_onnx(sim, tmp_path / "m.onnx", graph)))
    plain, packed = convert_qdq_model(qdq, pair_rows=False), convert_qdq_model(qdq)
    assert 5 in _tensor_ranks(packed, "TRANSPOSE")
    x = torch.randn((12, *shape), generator=torch.Generator().manual_seed(2)).numpy()
    xq = graph.ops[0].out_encoding.quantize(x)
    codes, _ = IntegerSim(graph, add="xnnpack").outputs(x)[0]
    ys = np.concatenate(_run_all(packed, [xq[i:i + 1] for i in range(len(x))], xnnpack=True))
    np.testing.assert_array_equal(ys.astype(np.int64), codes.astype(np.int64))
    _assert_identical(plain, packed, (1, *shape), n=5)


def test_read_model_round_trip_and_per_op_timing(tmp_path):
    """read_model gives back the graph the writer wrote (identical bytes again after a round trip, identical
    outputs); op_latency times one row per operator plus the whole model."""
    from edgesense.quant.tflite.flatbuffer import read_model
    from edgesense.quant.tflite.latency import op_latency

    shape = (1, 3, 16, 10)
    _, packed = _both(tmp_path, _conv_pool(3, 16, 10, (3, 3), [1, 1, 1, 1], (2, 2)), shape)
    again = read_model(packed).serialize()
    assert read_model(again).serialize() == again
    _assert_identical(packed, again, shape, n=3)
    rows = op_latency(packed, rounds=1, calls=3)
    assert [r["op"] for r in rows] == tflite_ops(packed) + ["whole model"]
    assert rows[-1]["inputs"] == [list(shape)] and all(r["cpu_median_us"] > 0 for r in rows)


def test_command_versus_and_per_op_json(tmp_path, capsys):
    """``python -m edgesense.quant.tflite ... --versus FLOAT --per-op --json``: every case timed, plain vs packed."""
    import json

    from edgesense.quant.tflite.__main__ import main

    m = _conv_pool(3, 16, 10, (3, 3), [1, 1, 1, 1], (2, 2), batch=1)
    onnx.save(m, str(tmp_path / "f.onnx"))
    qdq = quantize_qdq(m, tmp_path / "m.qdq.onnx", (1, 3, 16, 10))
    assert main([str(qdq), str(tmp_path / "m.tflite"), "--versus", str(tmp_path / "f.onnx"), "--per-op",
                 "--rounds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["versus"]["cases"]) == {"ORT float", "ORT INT8", "LiteRT INT8 (row pairs)", "LiteRT INT8 (plain)"}
    assert all(c["cpu_median_us"] > 0 for c in result["versus"]["cases"].values())
    assert result["per_op"][-1]["op"] == "whole model"
    assert main([str(qdq), str(tmp_path / "p.tflite"), "--no-pair-rows"]) == 0
    assert (tmp_path / "p.tflite").read_bytes() == convert_qdq_model(onnx.load(str(qdq)), pair_rows=False)
