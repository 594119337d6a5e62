"""Parity of an exported ``.tflite`` against ONNX Runtime running the QDQ model it came from.

Both runtimes get the same int8 input (the float input quantized on the model's input grid) and
the outputs are compared on the output grid, in units of one quantization step (LSB).

The reference is ONNX Runtime with basic graph optimizations only: that executes the QDQ graph as
written (dequantize, float operator, quantize), which is the model's defined meaning. At the
extended level ORT fuses QDQ groups into its own integer kernels, which on some x86 CPUs deviate
from that meaning by tens of LSB (see docs/tflite-export.md); pass ``ort_level="all"`` to measure
that instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgesense.errors import ModelError

__all__ = ["OutputParity", "ParityReport", "tflite_interpreter", "ort_session", "compare_with_onnx"]


@dataclass
class OutputParity:
    """Agreement of one output tensor, in LSB of its int8 grid."""

    name: str
    values: int
    max_lsb: int
    exact: float
    within_1_lsb: float


@dataclass
class ParityReport:
    """Per-output agreement over all compared samples."""

    samples: int
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def within_1_lsb(self) -> float:
        return min(o.within_1_lsb for o in self.outputs)

    @property
    def max_lsb(self) -> int:
        return max(o.max_lsb for o in self.outputs)

    def passes(self, fraction: float = 0.999) -> bool:
        """True when at least ``fraction`` of every output's values are within 1 LSB."""
        return self.within_1_lsb >= fraction


def tflite_interpreter(model: str | os.PathLike | bytes, num_threads: int = 1, xnnpack: bool = True):
    """A LiteRT interpreter (``ai_edge_litert``; ``tflite_runtime`` as a fallback), tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - depends on the installation
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError as exc:
            raise ModelError("running .tflite models needs ai-edge-litert (pip install ai-edge-litert)") from exc
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    kwargs = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
    try:
        it = Interpreter(num_threads=num_threads, experimental_op_resolver_type=resolver, **kwargs)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load the model: {exc}") from exc
    return it


def ort_session(path: str | os.PathLike, num_threads: int = 1, level: str = "basic"):
    """An onnxruntime CPU session; ``level`` is "disable", "basic", "extended" or "all"."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float64) / scale) + zero_point, -128, 127).astype(np.int8)


def compare_with_onnx(
    qdq_onnx: str | os.PathLike,
    tflite_model: str | os.PathLike | bytes,
    inputs: Iterable[np.ndarray | Mapping[str, np.ndarray]],
    *,
    ort_level: str = "basic",
    xnnpack: bool = True,
) -> ParityReport:
    """Run both models on every sample of ``inputs`` (float arrays in the ONNX input shapes; an input the
    ``.tflite`` takes in another layout, ``input_layout="nwhc"``, is transposed for it)."""
    from edgesense.runtime.litert_backend import input_perms
    from edgesense.runtime.model import onnx_shape

    sess = ort_session(qdq_onnx, level=ort_level)
    it = tflite_interpreter(tflite_model, xnnpack=xnnpack)
    perms = input_perms(bytes(tflite_model) if isinstance(tflite_model, (bytes, bytearray))
                        else Path(tflite_model).read_bytes())
    t_in = {d["name"]: d for d in it.get_input_details()}
    t_out = {d["name"]: d for d in it.get_output_details()}
    o_in = [i.name for i in sess.get_inputs()]
    o_out = [o.name for o in sess.get_outputs()]
    missing = [n for n in o_in if n not in t_in] + [n for n in o_out if n not in t_out]
    if missing:
        raise ModelError(f"the .tflite model lacks the ONNX inputs/outputs {missing}")
    diffs: dict[str, list[np.ndarray]] = {n: [] for n in o_out}
    steps = _output_steps(qdq_onnx, o_out)
    samples = 0
    for sample in inputs:
        feed = sample if isinstance(sample, Mapping) else {o_in[0]: sample}
        ort_feed = {}
        for name in o_in:
            d = t_in[name]
            perm = perms.get(name)
            shape = onnx_shape(d["shape"], perm)
            x = np.asarray(feed[name], np.float32).reshape(shape)
            if d["dtype"] == np.int8:
                s, z = d["quantization"]
                xq = _quantize(x, s, z)
                it.set_tensor(d["index"], xq if perm is None else np.ascontiguousarray(xq.transpose(perm)))
                ort_feed[name] = ((xq.astype(np.float32) - z) * np.float32(s)).astype(np.float32)
            else:
                it.set_tensor(d["index"], x if perm is None else np.ascontiguousarray(x.transpose(perm)))
                ort_feed[name] = x
        it.invoke()
        ys = dict(zip(o_out, sess.run(o_out, ort_feed)))
        for name in o_out:
            d = t_out[name]
            got = it.get_tensor(d["index"])
            if d["dtype"] == np.int8:
                s, z = d["quantization"]
                ref = np.rint(np.asarray(ys[name], np.float64) / s) + z
                diffs[name].append(np.abs(got.astype(np.float64) - ref).ravel())
            else:  # float I/O: the step is the scale of the ONNX output's DequantizeLinear
                # both are dequantized from the same grid: the difference is a whole number of steps
                diffs[name].append(np.rint(np.abs(got.astype(np.float64) - ys[name]).ravel() / steps[name]))
        samples += 1
    report = ParityReport(samples)
    for name in o_out:
        d = np.concatenate(diffs[name]) if diffs[name] else np.zeros(0)
        report.outputs.append(OutputParity(
            name, int(d.size), int(np.ceil(d.max() - 1e-6)) if d.size else 0,
            float(np.mean(d < 0.5)) if d.size else 1.0, float(np.mean(d <= 1.0 + 1e-6)) if d.size else 1.0,
        ))
    return report


def _output_steps(qdq_onnx: str | os.PathLike, names: list[str]) -> dict[str, float]:
    """Scale of the DequantizeLinear that produces each ONNX output (1.0 where there is none)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qdq_onnx))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    steps = {n: 1.0 for n in names}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in steps and node.input[1] in inits:
            steps[node.output[0]] = float(np.ravel(inits[node.input[1]])[0])
    return steps
