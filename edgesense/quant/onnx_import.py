"""Float ONNX in: an ONNX model made of supported ops, as the op list :class:`~edgesense.quant.sim.QuantSim` runs.

So a float model exported by any tool (``torch.onnx.export``, edgesense's trainers) can be quantized
without its Python class. Understood: Conv, Gemm, MatMul(+Add) with constant weights,
BatchNormalization (folded), Relu, Clip(0, 6), Add, MaxPool, AveragePool, GlobalAveragePool,
Flatten, Reshape, Squeeze, Unsqueeze, Softmax, Identity, Dropout. Shapes come from ONNX shape
inference with batch 1. Anything else raises :class:`~edgesense.errors.ModelError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgesense.errors import ModelError
from edgesense.quant.graph import OpNode, _fold_all_bn

__all__ = ["import_onnx", "OnnxFloatModel"]


class OnnxFloatModel:
    """The pieces of a float ONNX model: op list, input shape, I/O names and metadata."""

    def __init__(self, nodes: list[OpNode], input_shape: tuple[int, ...], input_names: list[str],
                 output_names: list[str], metadata: dict[str, str], input_dims: list[list], output_dims: list[list]) -> None:
        self.nodes, self.input_shape = nodes, input_shape
        self.input_names, self.output_names, self.metadata = input_names, output_names, metadata
        self.input_dims, self.output_dims = input_dims, output_dims   # None / symbol names for dynamic axes

    @property
    def input_name(self) -> str:
        return self.input_names[0]


def _fold_constants(path: str | Path):
    """Constant-fold with onnxruntime's basic optimizations (turns exporter shape arithmetic into constants)."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgesense-onnx-") as tmp:
        out = Path(tmp) / "folded.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(out)
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return onnx.load(str(out))


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def import_onnx(path: str | Path) -> OnnxFloatModel:
    """Read float ONNX ``path`` into an :class:`OnnxFloatModel` (BN folded)."""
    from onnx import numpy_helper, shape_inference

    try:
        model = _fold_constants(path)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts: dict[str, np.ndarray] = dict(inits)
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    inputs = [i for i in g.input if i.name not in inits]
    if not inputs:
        raise ModelError(f"{path}: the model has no inputs")

    def sym(vi) -> list:
        return [d.dim_value if d.dim_value > 0 else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]

    input_dims = [sym(i) for i in inputs]
    output_dims = [sym(o) for o in g.output]
    all_dims = []
    for inp in inputs:
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
        all_dims.append(dims)
        for d, v in zip(inp.type.tensor_type.shape.dim, dims):
            d.Clear()
            d.dim_value = v
    for o in g.output:
        o.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(model)
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    alias: dict[str, str] = {}
    nodes: list[OpNode] = [OpNode("input", inp.name, [], attrs={"index": k}, shape=tuple(d))
                           for k, (inp, d) in enumerate(zip(inputs, all_dims))]

    pending_pad: dict[str, tuple[str, list[int]]] = {}

    def src(name: str) -> str:
        return alias.get(name, name)

    def add(kind, name, ins, module=None, **attrs):
        nodes.append(OpNode(kind, name, ins, module, attrs, shapes.get(name, ())))

    for n in g.node:
        op, a = n.op_type, _attrs(n)
        out = n.output[0]
        if op == "Constant":
            continue
        if op == "Conv":
            w = inits[n.input[1]]
            b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ModelError(f"Conv {n.name}: auto_pad is not supported")
            nd = w.ndim - 2
            if nd not in (1, 2):
                raise ModelError(f"Conv {n.name}: only 1-D and 2-D convolutions are supported")
            groups = int(a.get("group", 1))
            cls = nn.Conv1d if nd == 1 else nn.Conv2d
            m = cls(w.shape[1] * groups, w.shape[0], w.shape[2:], stride=a.get("strides", [1] * nd),
                    dilation=a.get("dilations", [1] * nd), groups=groups, bias=b is not None)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(w.copy()))
                if b is not None:
                    m.bias.copy_(torch.from_numpy(b.copy()))
            pads = list(a.get("pads", [0] * 2 * nd))
            x_in = src(n.input[0])
            if x_in in pending_pad:            # a zero Pad in front of the conv becomes conv padding
                x_in, extra = pending_pad[x_in]
                pads = [p + e for p, e in zip(pads, extra)]
            add("conv", out, [x_in], m, dims=nd, kernel=list(w.shape[2:]), stride=list(m.stride),
                dilation=list(m.dilation), groups=groups, pads=pads)
        elif op in ("Gemm", "MatMul"):
            if n.input[1] not in inits:
                raise ModelError(f"{op} {n.name}: the second input must be a constant weight")
            w = inits[n.input[1]]
            if op == "Gemm":
                if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                    raise ModelError(f"Gemm {n.name}: only transA=0, alpha=beta=1 is supported")
                w = w if a.get("transB", 0) else w.T
                b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            else:
                w, b = w.T, None
            m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
                if b is not None:
                    m.bias.copy_(torch.from_numpy(b.reshape(-1).copy()))
            add("linear", out, [src(n.input[0])], m)
        elif op == "Add" and any(i in consts for i in n.input):
            prev = nodes[-1]
            c = consts[n.input[1] if n.input[1] in consts else n.input[0]]
            other = n.input[0] if n.input[1] in consts else n.input[1]
            if prev.kind != "linear" or src(other) != prev.name or prev.module.bias is not None:
                raise ModelError(f"Add {n.name}: adding a constant is only supported as a MatMul bias")
            lin = prev.module
            new = nn.Linear(lin.in_features, lin.out_features)
            with torch.no_grad():
                new.weight.copy_(lin.weight)
                new.bias.copy_(torch.from_numpy(np.broadcast_to(c, (lin.out_features,)).copy()))
            prev.module = new
            alias[out] = prev.name
        elif op == "Add":
            add("add", out, [src(n.input[0]), src(n.input[1])])
        elif op == "BatchNormalization":
            scale, bias, mean, var = (inits[i] for i in n.input[1:5])
            m = nn.BatchNorm1d(len(scale), eps=float(a.get("epsilon", 1e-5)))
            with torch.no_grad():
                for t, v in ((m.weight, scale), (m.bias, bias), (m.running_mean, mean), (m.running_var, var)):
                    t.copy_(torch.from_numpy(np.asarray(v, np.float32)))
            add("bn", out, [src(n.input[0])], m.eval())
        elif op == "Relu":
            add("relu", out, [src(n.input[0])])
        elif op == "Clip":
            lo = a.get("min", consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else None)
            hi = a.get("max", consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None)
            if lo is None or hi is None or float(lo) != 0.0 or float(hi) != 6.0:
                raise ModelError(f"Clip {n.name}: only Clip(0, 6) (ReLU6) is supported")
            add("relu6", out, [src(n.input[0])])
        elif op in ("MaxPool", "AveragePool"):
            k = list(a["kernel_shape"])
            nd = len(k)
            if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1] * nd)):
                raise ModelError(f"{op} {n.name}: ceil_mode and dilation are not supported")
            pads = list(a.get("pads", [0] * 2 * nd))
            if op == "AveragePool" and any(pads) and not a.get("count_include_pad", 0):
                raise ModelError(f"AveragePool {n.name}: padding needs count_include_pad=1")
            add("maxpool" if op == "MaxPool" else "avgpool", out, [src(n.input[0])], dims=nd, kernel=k,
                stride=list(a.get("strides", [1] * nd)), pads=pads)
        elif op == "Pad":
            mode = a.get("mode", b"constant")
            p = consts.get(n.input[1]) if len(n.input) > 1 else a.get("pads")
            value = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else 0.0
            if mode not in (b"constant", "constant") or p is None or float(np.asarray(value)) != 0.0:
                raise ModelError(f"Pad {n.name}: only constant zero padding with constant pads is supported")
            p = [int(v) for v in np.asarray(p).reshape(-1)]
            rank = len(p) // 2
            if p[0] or p[1] or p[rank] or p[rank + 1]:
                raise ModelError(f"Pad {n.name}: padding the batch or channel axis is not supported")
            pending_pad[out] = (src(n.input[0]), p[2:rank] + p[rank + 2:])
        elif op == "GlobalAveragePool":
            add("gap", out, [src(n.input[0])])
        elif op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
            if op == "Flatten" and a.get("axis", 1) != 1:
                raise ModelError(f"Flatten {n.name}: only axis=1 is supported")
            add("reshape", out, [src(n.input[0])])
        elif op == "Concat":
            add("concat", out, [src(i) for i in n.input], axis=int(a["axis"]))
        elif op == "Slice":
            if len(n.input) < 3 or any(i and i not in consts for i in n.input[1:]):
                raise ModelError(f"Slice {n.name}: starts, ends, axes and steps must be constants")
            vals = [np.asarray(consts[i]).reshape(-1).tolist() if i else None for i in list(n.input[1:]) + [None] * 4]
            starts, ends, axes, steps = vals[:4]
            axes = axes if axes is not None else list(range(len(starts)))
            steps = steps if steps is not None else [1] * len(starts)
            add("slice", out, [src(n.input[0])], starts=[int(v) for v in starts], ends=[int(v) for v in ends],
                axes=[int(v) for v in axes], steps=[int(v) for v in steps])
        elif op == "Softmax":
            add("softmax", out, [src(n.input[0])], dim=int(a.get("axis", -1)))
        elif op in ("Identity", "Dropout"):
            alias[out] = src(n.input[0])
        else:
            raise ModelError(f"{path}: unsupported ONNX op {op} ({n.name}) for INT8 quantization")
    used = {i for nd in nodes for i in nd.inputs}
    if any(k in used for k in pending_pad):
        raise ModelError(f"{path}: a Pad that does not feed a Conv is not supported")
    outputs = [src(o.name) for o in g.output]
    reserved = {o.name for o in g.output} | {"input", "output"}
    rename = {nd.name: nd.name + "_t" for nd in nodes if nd.kind != "input" and nd.name in reserved}
    for nd in nodes:               # internal tensors never carry a graph I/O name (the exporter assigns those)
        nd.name = rename.get(nd.name, nd.name)
        nd.inputs = [rename.get(i, i) for i in nd.inputs]
    outputs = [rename.get(o, o) for o in outputs]
    nodes = _fold_all_bn(nodes, outputs)
    for o in outputs:
        nodes.append(OpNode("output", f"output:{o}", [o]))
    meta = {p.key: p.value for p in model.metadata_props}
    return OnnxFloatModel(nodes, tuple(all_dims[0]), [i.name for i in inputs], [o.name for o in g.output], meta,
                          input_dims, output_dims)
