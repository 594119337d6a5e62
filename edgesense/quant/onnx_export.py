"""ONNX export of a :class:`~edgesense.quant.sim.QuantSim`: a QDQ INT8 model and its float twin.

The QDQ graph (opset 13) carries exactly the simulation's encodings; its shape is specified in
docs/quantization.md ("QDQ graph contract") so other exporters (the TFLite writer) can rely on it:

* input ``input`` (float32, batch axis ``N``) -> ``QuantizeLinear`` -> ``DequantizeLinear``;
* weights stored int8 (``<layer>.weight_q``), ``DequantizeLinear`` with per-channel float32 scales on
  axis 0 and int8 zero points 0 (or per-tensor scalars for per-tensor targets);
* biases stored int32 (``<layer>.bias_q``), ``DequantizeLinear`` with scale ``s_in * s_w`` (float32
  product) on axis 0 and int32 zero points 0;
* Conv / Gemm(transB=1) / Add / MaxPool / AveragePool / GlobalAveragePool / Reshape / Softmax take
  dequantized inputs; each quantized tensor is followed by one ``QuantizeLinear`` -> ``DequantizeLinear``
  pair with per-tensor scale and int8 (or uint8) zero point; a Relu or Clip(0, 6) sits between a
  Conv/Gemm/Add and its Q when fused;
* the last DequantizeLinear writes the graph output ``output`` (float32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgesense.errors import ModelError
from edgesense.quant.encoding import Encoding

__all__ = ["export_qdq_onnx", "export_float_onnx", "OPSET", "ENCODINGS_METADATA_KEY"]

OPSET = 13
#: Model metadata key holding the JSON encodings (tensor name -> Encoding.to_dict()).
ENCODINGS_METADATA_KEY = "edgesense.encodings"

_ONNX_INT = {"int8": "INT8", "uint8": "UINT8", "int32": "INT32"}


class _Builder:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._names: set[str] = set()

    def init(self, name: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper
        if name not in self._names:
            self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
            self._names.add(name)
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        from onnx import helper
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))

    def qdq_params(self, base: str, enc: Encoding) -> tuple[str, str]:
        s = self.init(base + ".scale", enc.scale.astype(np.float32))
        z = self.init(base + ".zero_point", enc.zero_point.astype(enc.numpy_dtype))
        return s, z

    def qdq(self, tensor: str, enc: Encoding, out: str | None = None) -> str:
        s, z = self.qdq_params(tensor, enc)
        self.node("QuantizeLinear", [tensor, s, z], [tensor + "_q"], tensor + "_Q")
        out = out or tensor + "_dq"
        self.node("DequantizeLinear", [tensor + "_q", s, z], [out], tensor + "_DQ")
        return out

    def dq_const(self, name: str, q: np.ndarray, enc: Encoding) -> str:
        self.init(name + "_q", q)
        s, z = self.qdq_params(name, enc)
        kw = {"axis": enc.axis} if enc.axis is not None else {}
        self.node("DequantizeLinear", [name + "_q", s, z], [name], name + "_DQ", **kw)
        return name


def _emit_graph(graph, quantized: bool, opset: int):
    """Build ONNX nodes/initializers for a LoweredGraph; float twin when not ``quantized``."""
    b = _Builder()
    tensor: dict[str, str] = {}
    final = set(graph.outputs)
    for op in graph.ops:
        k, nm = op.kind, op.name
        if k == "input":
            n_in = sum(1 for o in graph.ops if o.kind == "input")
            src = "input" if n_in == 1 else f"input{op.attrs.get('index', 0)}"
        else:
            x = tensor[op.inputs[0]]
            src = nm
            if k in ("conv", "linear"):
                if quantized:
                    w = b.dq_const(nm + ".weight", op.weight_q, op.weight_encoding)
                    bias = b.dq_const(nm + ".bias", op.bias_q, op.bias_encoding)
                else:
                    w = b.init(nm + ".weight", op.weight.astype(np.float32))
                    bias = b.init(nm + ".bias", op.bias.astype(np.float32))
                if k == "conv":
                    a = op.attrs
                    b.node("Conv", [x, w, bias], [nm], nm, kernel_shape=a["kernel"], strides=a["stride"],
                           dilations=a["dilation"], pads=a["pads"], group=a["groups"])
                else:
                    if len(op.shape) != 2:
                        raise ModelError(f"Linear {nm} on a {len(op.shape)}-D input is not exportable; flatten first")
                    b.node("Gemm", [x, w, bias], [nm], nm, transB=1)
            elif k == "relu":
                b.node("Relu", [x], [nm], nm)
            elif k == "relu6":
                lo = b.init("relu6.min", np.array(0.0, np.float32))
                hi = b.init("relu6.max", np.array(6.0, np.float32))
                b.node("Clip", [x, lo, hi], [nm], nm)
            elif k == "add":
                b.node("Add", [x, tensor[op.inputs[1]]], [nm], nm)
            elif k == "maxpool":
                a = op.attrs
                b.node("MaxPool", [x], [nm], nm, kernel_shape=a["kernel"], strides=a["stride"], pads=a["pads"])
            elif k == "avgpool":
                a = op.attrs
                b.node("AveragePool", [x], [nm], nm, kernel_shape=a["kernel"], strides=a["stride"], pads=a["pads"],
                       count_include_pad=1)
            elif k == "gap":
                b.node("GlobalAveragePool", [x], [nm], nm)
            elif k == "reshape":
                shape = b.init(nm + ".shape", np.array([-1, *op.shape[1:]], np.int64))
                b.node("Reshape", [x, shape], [nm], nm)
            elif k == "concat":
                b.node("Concat", [tensor[i] for i in op.inputs], [nm], nm, axis=int(op.attrs["axis"]))
            elif k == "slice":
                a = op.attrs
                ins = [x] + [b.init(f"{nm}.{key}", np.array(a[key], np.int64))
                             for key in ("starts", "ends", "axes", "steps")]
                b.node("Slice", ins, [nm], nm)
            elif k == "softmax":
                dim = op.attrs["dim"]
                b.node("Softmax", [x], [nm], nm, axis=int(dim if dim is not None else -1))
            else:
                raise ModelError(f"cannot export op {k}")
        if quantized and op.out_encoding is not None:
            out_name = "output" if nm in final and len(final) == 1 else None
            tensor[nm] = b.qdq(src, op.out_encoding, out_name)
        else:
            tensor[nm] = src
    return b, tensor


def _dims(shape, declared, i_list: int, tag: str) -> list:
    """Declared dims (dynamic axes as symbols) when known, else batch ``N`` + traced shape."""
    if declared is not None and i_list < len(declared) and declared[i_list] is not None:
        d = declared[i_list]
        return [v if isinstance(v, int) and v > 0 else (v or f"{tag}_{j}") for j, v in enumerate(d)]
    return ["N", *shape[1:]]


def _finish(b: _Builder, graph, tensor: dict, path: Path, metadata: dict[str, str], name: str,
            io_names: tuple[list[str], list[str]] | None = None, io_dims=None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    outs = []
    multi = len(graph.outputs) > 1
    for i, o in enumerate(graph.outputs):
        out_name = f"output{i}" if multi else "output"
        if tensor[o] != out_name:
            b.node("Identity", [tensor[o]], [out_name], f"{out_name}_Identity")
        outs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT,
                                                  _dims(graph.op(o).shape, io_dims[1] if io_dims else None, i,
                                                        f"out{i}")))
    in_ops = [o for o in graph.ops if o.kind == "input"]
    ins = []
    for k, op in enumerate(in_ops):
        nm = "input" if len(in_ops) == 1 else f"input{k}"
        ins.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT,
                                                 _dims(op.shape, io_dims[0] if io_dims else None, k, f"in{k}")))
    if io_names is not None:     # keep the float model's input/output names (pipelines may look them up)
        for vi, new in zip(ins, io_names[0]):
            _rename(b, vi.name, new, vi)
        for vi, new in zip(outs, io_names[1]):
            _rename(b, vi.name, new, vi)
    g = helper.make_graph(b.nodes, name, ins, outs, b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgesense")
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _rename(b: _Builder, old: str, new: str, value_info) -> None:
    if old == new:
        return
    used = {t for n in b.nodes for t in list(n.input) + list(n.output)}
    if new in used:                # an inner tensor already carries the name: move it aside first
        for n in b.nodes:
            n.input[:] = [new + "_inner" if i == new else i for i in n.input]
            n.output[:] = [new + "_inner" if o == new else o for o in n.output]
    for n in b.nodes:
        n.input[:] = [new if i == old else i for i in n.input]
        n.output[:] = [new if o == old else o for o in n.output]
    value_info.name = new


def export_qdq_onnx(sim, path: str | Path, graph=None, metadata: dict[str, str] | None = None) -> Path:
    """Write the QDQ INT8 ONNX model of calibrated ``sim`` to ``path`` (encodings also in metadata).

    A sim built with :meth:`QuantSim.from_onnx` keeps the float model's I/O names and metadata.
    """
    graph = graph or sim.lower()
    b, tensor = _emit_graph(graph, True, OPSET)
    encs = {k: v.to_dict() for k, v in graph.encodings().items()}
    meta = dict(getattr(sim, "source_metadata", None) or {})
    meta.update(metadata or {})
    meta.update({ENCODINGS_METADATA_KEY: json.dumps(encs), "edgesense.target": graph.target.name})
    return _finish(b, graph, tensor, path, meta, "edgesense_qdq", getattr(sim, "io_names", None),
                   getattr(sim, "io_dims", None))


def export_float_onnx(sim, path: str | Path, graph=None, metadata: dict[str, str] | None = None) -> Path:
    """Write the BN-folded float model captured by ``sim`` (the QDQ model's float twin)."""
    graph = graph or sim.lower(quantized=False)
    b, tensor = _emit_graph(graph, False, OPSET)
    meta = dict(getattr(sim, "source_metadata", None) or {})
    meta.update(metadata or {})
    return _finish(b, graph, tensor, path, meta, "edgesense_float", getattr(sim, "io_names", None),
                   getattr(sim, "io_dims", None))
