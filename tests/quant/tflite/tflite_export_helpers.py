"""Small float ONNX graphs, quantized to QDQ INT8 with onnxruntime's quantize_static, for export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class _Reader(CalibrationDataReader):
    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._it = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self._it, None)


def float_model(nodes, inputs: dict[str, tuple], outputs: dict[str, tuple], weights: dict[str, np.ndarray],
                opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize_qdq(model: onnx.ModelProto | str | Path, out: Path, input_shape: tuple, n_calib: int = 32,
                 seed: int = 0, input_name: str | None = None) -> Path:
    """QDQ, per-channel int8 weights, int8 activations (every option passed explicitly)."""
    src = Path(model) if not isinstance(model, onnx.ModelProto) else out.with_suffix(".float.onnx")
    if isinstance(model, onnx.ModelProto):
        onnx.save(model, str(src))
        input_name = model.graph.input[0].name
    elif input_name is None:
        input_name = onnx.load(str(src)).graph.input[0].name
    rng = np.random.default_rng(seed)
    batches = [rng.normal(size=input_shape).astype(np.float32) for _ in range(n_calib)]
    quantize_static(
        str(src), str(out), _Reader(input_name, batches),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )
    return out


def rand(rng: np.random.Generator, *shape: int, scale: float = 0.3) -> np.ndarray:
    return (rng.normal(size=shape) * scale).astype(np.float32)


def samples(shape: tuple, n: int = 40, seed: int = 1, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=shape) * scale).astype(np.float32) for _ in range(n)]


def tflite_ops(model: Path | bytes) -> list[str]:
    """Builtin operator names of a .tflite file or flatbuffer, in execution order (read with the schema package)."""
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    model = tflite.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    return [names[model.OperatorCodes(sub.Operators(i).OpcodeIndex()).BuiltinCode()]
            for i in range(sub.OperatorsLength())]


def qdq_unary(op_type: str, shape: tuple, in_grid: tuple[float, int], out_grid: tuple[float, int],
              path: Path, **attrs) -> Path:
    """Hand-written QDQ model x -> Q -> DQ -> op -> Q -> DQ -> y with the given int8 grids."""
    inits = [numpy_helper.from_array(np.array(in_grid[0], np.float32), "xs"),
             numpy_helper.from_array(np.array(in_grid[1], np.int8), "xz"),
             numpy_helper.from_array(np.array(out_grid[0], np.float32), "ys"),
             numpy_helper.from_array(np.array(out_grid[1], np.int8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node(op_type, ["xd"], ["t"], **attrs),
             helper.make_node("QuantizeLinear", ["t", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tie_concat_grids(qdq_path: Path, out_path: Path) -> Path:
    """Put every Concat's inputs on its output grid (what TFLite's int8 spec asks of CONCATENATION) by
    rewriting the scale/zero-point initializers of the DequantizeLinear nodes that feed it."""
    model = onnx.load(str(qdq_path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    changed = True
    while changed:
        changed = False
        for node in (n for n in g.node if n.op_type == "Concat"):
            q = next(c for c in g.node if c.op_type == "QuantizeLinear" and c.input[0] == node.output[0])
            grid = (numpy_helper.to_array(inits[q.input[1]]), numpy_helper.to_array(inits[q.input[2]]))
            for name in node.input:
                dq = producer[name]
                for init_name, value in zip(dq.input[1:3], grid):
                    current = numpy_helper.to_array(inits[init_name])
                    if not np.array_equal(current, value):
                        inits[init_name].CopyFrom(numpy_helper.from_array(value.astype(current.dtype), init_name))
                        changed = True
    onnx.save(model, str(out_path))
    return out_path


def fftnet_stack(rng: np.random.Generator) -> onnx.ModelProto:
    """A 1-channel FFTNet-like stack (x (1, 1, 64) -> y (1, 1, 64)): three causal Pad + dilated Conv + Relu
    layers (dilations 1, 2, 4, 8 channels) and a 1x1 output Conv, float weights drawn from ``rng``."""
    nodes, weights, x = [], {}, "x"
    for i, dil in enumerate([1, 2, 4]):
        nodes += [helper.make_node("Pad", [x, f"p{i}"], [f"pad{i}"], mode="constant"),
                  helper.make_node("Conv", [f"pad{i}", f"w{i}", f"b{i}"], [f"c{i}"], dilations=[dil]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        weights |= {f"p{i}": np.array([0, 0, dil, 0, 0, 0], np.int64), f"w{i}": rand(rng, 8, 8 if i else 1, 2),
                    f"b{i}": rand(rng, 8, scale=0.1)}
        x = f"r{i}"
    nodes.append(helper.make_node("Conv", [x, "wo", "bo"], ["y"]))
    weights |= {"wo": rand(rng, 1, 8, 1), "bo": rand(rng, 1, scale=0.1)}
    return float_model(nodes, {"x": (1, 1, 64)}, {"y": (1, 1, 64)}, weights)


def singles_and_batch(it, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize float ``x`` (N, ...) with the interpreter's input grid, run each sample at batch 1, then all at
    batch N (after ``resize_tensor_input``); returns (stacked single outputs, batch output), both int8."""
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    s, z = i["quantization"]
    xq = np.clip(np.rint(x / s) + z, -128, 127).astype(np.int8)
    singles = []
    for sample in xq:
        it.set_tensor(i["index"], sample[None])
        it.invoke()
        singles.append(it.get_tensor(o["index"])[0])
    it.resize_tensor_input(i["index"], list(xq.shape))
    it.allocate_tensors()
    it.set_tensor(i["index"], xq)
    it.invoke()
    return np.stack(singles), it.get_tensor(it.get_output_details()[0]["index"])
