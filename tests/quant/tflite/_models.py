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
