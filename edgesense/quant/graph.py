"""Graph capture: a torch model as a flat list of supported ops, with BatchNorm folded.

``capture(model, example_input)`` traces the model with ``torch.fx`` (standard layers are leaves,
including their subclasses), propagates shapes with the example input, and lowers the trace to a
list of :class:`OpNode` in execution order. Supported: Conv1d, Conv2d (a Conv1d subclass that only
pads on the left exposes ``context``, the number of left-padded steps, like
:class:`edgesense.nn.fftnet.CausalConv1d`), Linear, BatchNorm (folded into the preceding conv or
linear), ReLU, ReLU6, Add, MaxPool, AvgPool, global average pooling (AdaptiveAvgPool(1) or a mean
over the spatial axes), Flatten/Reshape/View, Softmax, constant slicing (``x[:, a:b]``), Dropout/Identity (removed). Anything else
raises :class:`~edgesense.errors.ModelError` naming the op.

BatchNorm folding (AIMET ``batch_norm_fold``, quantization.md §4.5): with ``k = gamma / sqrt(var + eps)``,
``W' = W * k`` per output channel and ``b' = beta + (b - mu) * k``.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from edgesense.errors import ModelError

__all__ = ["OpNode", "capture", "fold_batchnorm"]

_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.MaxPool1d,
           nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten,
           nn.Softmax, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)


@dataclass
class OpNode:
    """One op: ``kind`` in conv, linear, bn, relu, relu6, add, maxpool, avgpool, gap, reshape, softmax, input.

    ``name`` names the tensor it produces; ``module`` is the (copied) layer for conv/linear/bn;
    ``attrs`` hold static parameters (kernel, stride, pads, shape, ...); ``shape`` is the traced output shape.
    """

    kind: str
    name: str
    inputs: list[str]
    module: nn.Module | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] = ()


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


def _pair(v, n: int) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [int(v)] * n


def _conv_attrs(m: nn.Conv1d | nn.Conv2d) -> dict[str, Any]:
    n = 1 if isinstance(m, nn.Conv1d) else 2
    if isinstance(m.padding, str):
        raise ModelError(f"conv padding={m.padding!r} is not supported; use explicit integer padding")
    if m.padding_mode != "zeros":
        raise ModelError(f"conv padding_mode={m.padding_mode!r} is not supported")
    pad = _pair(m.padding, n)
    begin, end = list(pad), list(pad)
    base = nn.Conv1d if n == 1 else nn.Conv2d
    if type(m).forward is not base.forward:
        context = getattr(m, "context", None)
        if n != 1 or not isinstance(context, int):
            raise ModelError(f"{type(m).__name__} overrides forward; only Conv1d subclasses that left-pad by "
                             f"`context` steps are understood")
        begin[0] += context
    return {"dims": n, "kernel": _pair(m.kernel_size, n), "stride": _pair(m.stride, n),
            "dilation": _pair(m.dilation, n), "groups": m.groups, "pads": begin + end}


def _slice_attrs(index, ndim: int) -> dict[str, list[int]]:
    """ONNX-Slice attributes of a constant basic index (slices and ``...`` only)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if any(not isinstance(i, slice) and i is not Ellipsis for i in items):
        raise ModelError(f"indexing with {index!r} is not supported (only constant slices)")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items = items[:k] + [slice(None)] * (ndim - len(items) + 1) + items[k + 1:]
    out: dict[str, list[int]] = {"starts": [], "ends": [], "axes": [], "steps": []}
    for axis, sl in enumerate(items):
        if sl == slice(None):
            continue
        for v in (sl.start, sl.stop, sl.step):
            if v is not None and not isinstance(v, int):
                raise ModelError(f"slice bounds must be constants, got {sl!r}")
        out["starts"].append(sl.start or 0)
        out["ends"].append(sl.stop if sl.stop is not None else 2 ** 31 - 1)
        out["axes"].append(axis)
        out["steps"].append(sl.step or 1)
    return out


def fold_batchnorm(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A copy of conv/linear ``layer`` with ``bn`` (which follows it) folded into weight and bias."""
    out = copy.deepcopy(layer)
    with torch.no_grad():
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
        beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        w = out.weight * k.reshape(-1, *([1] * (out.weight.ndim - 1)))
        b = out.bias if out.bias is not None else torch.zeros_like(bn.running_mean)
        out.weight = nn.Parameter(w.detach().clone())
        out.bias = nn.Parameter((beta + (b - bn.running_mean) * k).detach().clone())
    return out


def _shape(n: fx.Node) -> tuple[int, ...]:
    meta = n.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else ()


def capture(model: nn.Module, example_input: torch.Tensor) -> list[OpNode]:
    """Trace ``model`` (in eval mode, on ``example_input``) into a flat op list with BN folded."""
    model = model.eval()
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model))
    except Exception as exc:  # fx raises many types for untraceable code
        raise ModelError(f"cannot capture {type(model).__name__} with torch.fx: {exc}") from None
    with torch.no_grad():
        ShapeProp(gm).propagate(example_input)
    modules = dict(gm.named_modules())
    nodes: list[OpNode] = []
    alias: dict[str, str] = {}

    def src(a) -> str:
        if not isinstance(a, fx.Node):
            raise ModelError(f"expected a tensor argument, got {a!r}")
        return alias.get(a.name, a.name)

    def add(kind, n, inputs, module=None, **attrs):
        nodes.append(OpNode(kind, n.name, inputs, module, attrs, _shape(n)))

    outputs: list[str] = []
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            if nodes:
                raise ModelError("only single-input models are supported")
            add("input", n, [])
        elif n.op == "output":
            outs = n.args[0]
            outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
            outputs = [src(o) for o in outs]
        elif n.op == "call_module":
            m = modules[n.target]
            x = src(n.args[0])
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                add("conv", n, [x], copy.deepcopy(m), **_conv_attrs(m))
            elif isinstance(m, nn.Linear):
                add("linear", n, [x], copy.deepcopy(m))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                add("bn", n, [x], copy.deepcopy(m))
            elif isinstance(m, nn.ReLU6):
                add("relu6", n, [x])
            elif isinstance(m, nn.ReLU):
                add("relu", n, [x])
            elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
                dims = 1 if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)) else 2
                if getattr(m, "ceil_mode", False) or _pair(getattr(m, "dilation", 1), dims) != [1] * dims:
                    raise ModelError(f"{type(m).__name__} with ceil_mode or dilation is not supported")
                kind = "maxpool" if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) else "avgpool"
                pad = _pair(m.padding, dims)
                if kind == "avgpool" and any(pad) and not m.count_include_pad:
                    raise ModelError("AvgPool with padding and count_include_pad=False is not supported")
                add(kind, n, [x], dims=dims, kernel=_pair(m.kernel_size, dims),
                    stride=_pair(m.stride if m.stride is not None else m.kernel_size, dims), pads=pad + pad)
            elif isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
                if set(_pair(m.output_size, 1)) != {1}:
                    raise ModelError("AdaptiveAvgPool is supported only with output_size 1 (global average)")
                add("gap", n, [x])
            elif isinstance(m, nn.Flatten):
                add("reshape", n, [x])
            elif isinstance(m, nn.Softmax):
                add("softmax", n, [x], dim=m.dim)
            elif isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)):
                alias[n.name] = x
            else:
                raise ModelError(f"unsupported layer {type(m).__name__} ({n.target}) for INT8 quantization")
        elif n.op in ("call_function", "call_method"):
            t = n.target
            name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
            if name in ("size", "dim", "getattr") or t is getattr:
                continue
            if t in (F.relu, torch.relu) or name in ("relu", "relu_"):
                add("relu", n, [src(n.args[0])])
            elif t is F.relu6:
                add("relu6", n, [src(n.args[0])])
            elif t in (operator.add, torch.add) or name in ("add", "__add__"):
                a, b = n.args[0], n.args[1]
                if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
                    raise ModelError("adding a constant is not supported; only tensor + tensor")
                add("add", n, [src(a), src(b)])
            elif t in (torch.flatten,) or name in ("flatten", "view", "reshape", "squeeze", "unsqueeze"):
                add("reshape", n, [src(n.args[0])])
            elif t in (F.softmax, torch.softmax) or name == "softmax":
                dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
                add("softmax", n, [src(n.args[0])], dim=dim)
            elif t in (torch.mean,) or name == "mean":
                x = n.args[0]
                dims = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
                dims = [dims] if isinstance(dims, int) else list(dims or [])
                nd = len(_shape(x))
                dims = sorted(d % nd for d in dims)
                if dims != list(range(2, nd)):
                    raise ModelError(f"mean over dims {dims} is not supported (only over all spatial axes)")
                add("gap", n, [src(x)])
                if not n.kwargs.get("keepdim", False):
                    nodes[-1].name = n.name + "_gap"
                    nodes[-1].shape = _shape(x)[:2] + (1,) * (nd - 2)
                    add("reshape", n, [n.name + "_gap"])
            elif t in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d):
                add("gap", n, [src(n.args[0])])
            elif t is operator.getitem:
                add("slice", n, [src(n.args[0])], **_slice_attrs(n.args[1], len(_shape(n.args[0]))))
            elif name in ("contiguous", "clone", "dropout") or t in (F.dropout,):
                alias[n.name] = src(n.args[0])
            else:
                raise ModelError(f"unsupported operation {name} for INT8 quantization")
        elif n.op == "get_attr":
            raise ModelError(f"direct use of parameter {n.target!r} in forward is not supported")
    nodes = _fold_all_bn(nodes, outputs)
    for o in outputs:
        nodes.append(OpNode("output", f"output:{o}", [o]))
    return nodes


def _fold_all_bn(nodes: list[OpNode], outputs: list[str]) -> list[OpNode]:
    users: dict[str, int] = {}
    for nd in nodes:
        for i in nd.inputs:
            users[i] = users.get(i, 0) + 1
    for o in outputs:
        users[o] = users.get(o, 0) + 1
    by_name = {nd.name: nd for nd in nodes}
    rename: dict[str, str] = {}
    kept: list[OpNode] = []
    for nd in nodes:
        nd.inputs = [rename.get(i, i) for i in nd.inputs]
        if nd.kind == "bn":
            prev = by_name.get(nd.inputs[0])
            if prev is None or prev.kind not in ("conv", "linear") or users.get(prev.name, 0) != 1:
                raise ModelError(f"BatchNorm {nd.name} does not directly follow a conv/linear; cannot fold it")
            prev.module = fold_batchnorm(prev.module, nd.module)
            rename[nd.name] = prev.name
            prev.attrs["folded_bn"] = nd.name
            bn = nd.module
            with torch.no_grad():   # per-channel pre-activation mean and std after folding (for bias absorption)
                prev.attrs["bn_beta"] = (bn.bias if bn.affine else torch.zeros(bn.num_features)).detach().clone()
                prev.attrs["bn_gamma"] = (bn.weight if bn.affine else torch.ones(bn.num_features)).detach().abs().clone()
            continue
        kept.append(nd)
    for i, o in enumerate(outputs):
        outputs[i] = rename.get(o, o)
    return kept
