"""IntegerSim's Add arithmetics against the runtimes, on every one of the 65,536 int8 code pairs.

``add="xnnpack"`` must reproduce LiteRT with its default XNNPACK delegate bit for bit; ``add="float"`` (the
default) is ONNX Runtime's dequantize-add-quantize. The two differ on a few pairs for most scale ratios
(docs/tflite-export.md §4), which is why the zoo's LiteRT parity is measured against ``add="xnnpack"``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgesense.quant.encoding import Encoding
from edgesense.quant.integer import xnnpack_add
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.parity import tflite_interpreter

SHAPE = (1, 256, 256)


def _qdq_add(grids: dict[str, tuple[float, int]], relu: bool) -> onnx.ModelProto:
    inits = []
    for name, (s, z) in grids.items():
        inits += [numpy_helper.from_array(np.array(s, np.float32), f"{name}.s"),
                  numpy_helper.from_array(np.array(z, np.int8), f"{name}.z")]
    nodes = []
    for name in ("a", "b"):
        nodes += [helper.make_node("QuantizeLinear", [name, f"{name}.s", f"{name}.z"], [f"{name}_q"]),
                  helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}.s", f"{name}.z"], [f"{name}_dq"])]
    nodes.append(helper.make_node("Add", ["a_dq", "b_dq"], ["sum"]))
    last = "sum"
    if relu:
        nodes.append(helper.make_node("Relu", ["sum"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "o.s", "o.z"], ["o_q"]),
              helper.make_node("DequantizeLinear", ["o_q", "o.s", "o.z"], ["y"])]
    graph = helper.make_graph(nodes, "add", [helper.make_tensor_value_info(n, TensorProto.FLOAT, SHAPE)
                                             for n in ("a", "b")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _enc(s: float, z: int) -> Encoding:
    return Encoding(np.float32(s), np.int64(z), None, "int8", 8, False)


@pytest.mark.parametrize("seed", range(6))
def test_xnnpack_add_is_litert_bit_for_bit(tmp_path, seed):
    rng = np.random.default_rng(seed)
    grids = {n: (float(np.float32(10 ** rng.uniform(-3, -1))), int(rng.integers(-128, 128))) for n in "abo"}
    relu = bool(seed % 2)
    onnx_path, tfl = tmp_path / "add.onnx", tmp_path / "add.tflite"
    onnx.save(_qdq_add(grids, relu), str(onnx_path))
    export_tflite(onnx_path, tfl)
    qa, qb = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    it = tflite_interpreter(tfl, xnnpack=True)
    ins = {d["name"]: d["index"] for d in it.get_input_details()}
    it.set_tensor(ins["a"], qa.astype(np.int8)[None])
    it.set_tensor(ins["b"], qb.astype(np.int8)[None])
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])[0]
    ea, eb, eo = (_enc(*grids[n]) for n in "abo")
    want = xnnpack_add(qa.astype(np.int8), ea, qb.astype(np.int8), eb, eo, lower=grids["o"][1] if relu else None)
    assert want.dtype == np.int8
    np.testing.assert_array_equal(got, want)


def test_integer_sim_add_modes_differ_only_by_rounding():
    """Float and XNNPACK Add agree within 1 LSB everywhere and exactly almost everywhere (seed 2 has differences:
    the modes are not the same function)."""
    rng = np.random.default_rng(2)
    grids = {n: (float(np.float32(10 ** rng.uniform(-3, -1))), int(rng.integers(-128, 128))) for n in "abo"}
    qa, qb = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    ea, eb, eo = (_enc(*grids[n]) for n in "abo")
    x = xnnpack_add(qa.astype(np.int8), ea, qb.astype(np.int8), eb, eo).astype(np.int64)
    real = (ea.dequantize(qa.astype(np.int8)) + eb.dequantize(qb.astype(np.int8))).astype(np.float32)
    f = np.clip(np.rint(real / np.float32(eo.scale)) + grids["o"][1], -128, 127).astype(np.int64)
    d = np.abs(x - f)
    assert d.max() == 1
    assert 0 < (d == 1).sum() < 0.001 * d.size
