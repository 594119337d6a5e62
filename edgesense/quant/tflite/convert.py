"""Lower a QDQ INT8 ONNX graph to full-integer TFLite operators in NHWC layout.

Reading of the QDQ graph: every float value produced by a ``DequantizeLinear`` stands for the int8
(or int32) tensor that feeds it, with that node's scale and zero point; every ``QuantizeLinear``
names the int8 grid of the float value it consumes. The float operators in between (Conv, Gemm,
Add, Softmax, ...) become TFLite integer kernels whose input grids come from the preceding
``DequantizeLinear`` and whose output grid comes from the ``QuantizeLinear`` that follows them.
The quantization parameters are copied as they are -- nothing is recalibrated -- so ranges chosen
by edgesense (including QAT-learned ones) reach the ``.tflite`` file unchanged. Where TFLite's int8
kernels force a grid (SOFTMAX and LOGISTIC write scale 1/256, zero point -128; TANH 1/128, 0;
CONCATENATION inputs share the output's grid) and the QDQ model uses another, an explicit
requantization is inserted (see ``_Converter._requantize``); biases whose scale differs from
``input_scale * weight_scale`` are rescaled to it.

Layout: ONNX is NCHW, TFLite is NHWC. Rank-4 activations are kept as NHWC and rank-3 ones
``(N, C, L)`` as ``(N, 1, L, C)`` (a Conv1d is a Conv2D of unit height). Conversions are emitted
lazily where an operator needs another layout; a transpose that only moves unit dimensions is
written as a RESHAPE. A flatten of an NHWC tensor feeding fully-connected layers is not transposed
back: the FC weight columns are permuted to the NHWC order instead. The model's inputs and outputs
keep the ONNX shapes, so a ``.tflite`` and its ``.onnx`` take and return the same arrays -- unless
``input_layout="nwhc"``: then a rank-4 input is taken column by column, ``(N, W, H, C)`` (recorded in the
model's metadata), and convolutions along the rows run in that layout without a transpose
(``_Converter._cols_conv``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
from tflite import ActivationFunctionType as Act_, BuiltinOperator as Op, Padding

from edgesense.errors import ModelError
from edgesense.quant.tflite.flatbuffer import ModelBuilder, QuantParams
from edgesense.runtime.litert_backend import INPUT_LAYOUT_METADATA

__all__ = ["convert_qdq_model", "SUPPORTED_OPS", "INPUT_LAYOUTS", "INPUT_LAYOUT_METADATA"]

#: ``input_layout`` choices: "onnx" (the .tflite takes the ONNX shapes) or "nwhc" (a rank-4 NCHW input is taken
#: as (N, W, H, C), each column of the image contiguous; see ``_Converter._cols_conv``)
INPUT_LAYOUTS = ("onnx", "nwhc")

SOFTMAX_QP = QuantParams.make(1.0 / 256.0, -128)
LOGISTIC_QP = QuantParams.make(1.0 / 256.0, -128)
TANH_QP = QuantParams.make(1.0 / 128.0, 0)

SUPPORTED_OPS = (
    "QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "MatMul", "Relu", "LeakyRelu", "Clip", "MaxPool",
    "AveragePool", "GlobalAveragePool", "ReduceMean", "Add", "Sub", "Mul", "Softmax", "Sigmoid", "Tanh",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Pad", "Slice", "Concat",
    "Identity", "Dropout",
)


@dataclass(frozen=True)
class _Act:
    """An int8 activation tensor of the TFLite graph standing for one ONNX value."""

    index: int
    qp: QuantParams
    shape: tuple[int, ...]  # the ONNX shape
    # "plain" (as ONNX), "nhwc" (rank 3/4 stored NHWC), "flat" (NHWC flattened), "hpair" (rank 4 stored
    # NHWC with each pair of rows side by side in the channels: (N, H/2, W, 2*C), see _Converter._row_pair_conv),
    # "cols" (rank 4 stored (N, W, H, C): column by column, see _Converter._cols_conv), "colsflat" ("cols" flattened)
    layout: str
    src4: tuple[int, ...] | None = None  # for "flat"/"colsflat": the NCHW shape that was flattened


@dataclass(frozen=True)
class _Const:
    """A quantized constant (weights, biases, constant operands) in ONNX layout."""

    q: np.ndarray
    qp: QuantParams
    name: str


def _nchw4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 4:
        return tuple(shape)  # type: ignore[return-value]
    if len(shape) == 3:
        return (shape[0], shape[1], 1, shape[2])
    raise ModelError(f"expected a rank-3 or rank-4 activation, got shape {list(shape)}")


def _stored_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout == "nhwc":
        n, c, h, w = _nchw4(shape)
        return (n, h, w, c)
    if layout == "hpair":
        n, c, h, w = shape
        return (n, h // 2, w, 2 * c)
    if layout == "cols":
        n, c, h, w = shape
        return (n, w, h, c)
    return tuple(shape)


def _flat_perm(src4: tuple[int, ...], cols: bool = False) -> np.ndarray:
    """perm[j] = ONNX (NCHW-flattened) feature index of stored (NHWC-, or with ``cols`` (N, W, H, C)-flattened)
    feature j."""
    _, c, h, w = src4
    return np.arange(c * h * w).reshape(c, h, w).transpose((2, 1, 0) if cols else (1, 2, 0)).ravel()


def _nhwc_axis(axis: int, rank: int) -> int:
    """Stored-tensor axis of ONNX axis ``axis`` for an activation kept as NHWC."""
    axis = axis + rank if axis < 0 else axis
    axis4 = axis if rank == 4 else (0, 1, 3)[axis]
    return (0, 3, 1, 2)[axis4]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Converter:
    def __init__(self, model: onnx.ModelProto, io_dtype: str, input_shapes: dict | None = None,
                 precise_requantize: bool = True, pair_rows: bool = True, input_layout: str = "onnx") -> None:
        self.io_dtype = io_dtype
        self.input_layout = input_layout
        self.input_perms: dict[str, list[int]] = {}
        self.precise_requantize = precise_requantize
        self.pair_rows = pair_rows
        # a symbolic batch stays resizable: shape constants then say -1 where the batch leads
        self.dynamic_batch = _symbolic_batch(model, input_shapes)
        model = _infer_shapes(_fold_shape_arithmetic(_infer_shapes(_with_static_shapes(model, input_shapes))))
        self.graph = model.graph
        self.inits: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.elem_type: dict[str, int] = {}
        for vi in list(self.graph.input) + list(self.graph.value_info) + list(self.graph.output):
            t = vi.type.tensor_type
            self.elem_type[vi.name] = t.elem_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self.shapes[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.graph_inputs = {i.name for i in self.graph.input if i.name not in self.inits}
        self.vals: dict[str, _Act | _Const] = {}
        self.input_acts: dict[str, _Act] = {}
        self.views: dict[tuple[int, str], _Act] = {}
        self.skip: set[int] = set()
        self.fb = ModelBuilder()

    # ------------------------------------------------------------------ driver

    def run(self) -> bytes:
        for node in self.graph.node:
            if id(node) in self.skip:
                continue
            if node.op_type == "Constant":
                self.inits[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
                continue
            if self._is_shape_arithmetic(node):
                continue
            handler = getattr(self, f"_op_{node.op_type}", None)
            if handler is None or (node.domain not in ("", "ai.onnx")):
                raise ModelError(
                    f"unsupported ONNX op {node.op_type!r} (node {node.name!r}) for TFLite export; "
                    f"supported: {', '.join(SUPPORTED_OPS)}"
                )
            handler(node)
        for inp in self.graph.input:
            if inp.name in self.graph_inputs and not any(
                self.vals.get(c.output[0]) is not None for c in self.consumers[inp.name]
            ):
                raise ModelError(f"graph input {inp.name!r} is not quantized (no QuantizeLinear reads it)")
        order = {self.fb.tensors[i].name: i for i in self.fb.inputs}
        self.fb.inputs = [order[i.name] for i in self.graph.input if i.name in order]  # ONNX input order
        for out in self.graph.output:
            self.fb.outputs.append(self._graph_output(out.name))
        if self.input_perms:
            self.fb.metadata[INPUT_LAYOUT_METADATA] = json.dumps(self.input_perms, sort_keys=True).encode()
        return self.fb.serialize()

    def _is_shape_arithmetic(self, node: onnx.NodeProto) -> bool:
        """Integer shape computations (Shape, Gather, Concat on int64...) feeding Reshape's shape."""
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            return False
        return all(self.elem_type.get(o) in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) for o in node.output)

    # ------------------------------------------------------------------ values

    def _shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise ModelError(f"shape of {name!r} is unknown after ONNX shape inference; export with static shapes")
        return self.shapes[name]

    def _act(self, name: str) -> _Act:
        v = self.vals.get(name)
        if isinstance(v, _Act):
            return v
        if name in self.graph_inputs:
            raise ModelError(f"graph input {name!r} is used without QuantizeLinear; the model is not full-integer")
        raise ModelError(f"tensor {name!r} is not quantized (no DequantizeLinear produces it)")

    def _const(self, name: str, what: str) -> _Const:
        v = self.vals.get(name)
        if isinstance(v, _Const):
            return v
        raise ModelError(f"{what} {name!r} must be a quantized constant (DequantizeLinear of an initializer)")

    def _qparams(self, node: onnx.NodeProto) -> tuple[QuantParams, np.dtype]:
        scale = self.inits.get(node.input[1])
        if scale is None:
            raise ModelError(f"{node.op_type} {node.name!r}: scale must be a constant")
        if len(node.input) > 2 and node.input[2]:
            zp = self.inits.get(node.input[2])
            if zp is None:
                raise ModelError(f"{node.op_type} {node.name!r}: zero point must be a constant")
        else:
            zp = np.zeros(scale.shape, np.uint8)  # ONNX default
        axis = int(_attrs(node).get("axis", 1))
        return QuantParams.make(scale, zp, axis), zp.dtype

    def _new_act(self, name: str, shape: tuple[int, ...], layout: str, qp: QuantParams,
                 src4: tuple[int, ...] | None = None) -> _Act:
        stored = (shape[0], int(np.prod(shape[1:]))) if layout in ("flat", "colsflat") else _stored_shape(shape, layout)
        index = self.fb.add_tensor(name, stored, np.int8, qp)
        return _Act(index, qp, tuple(shape), layout, src4)

    def _int32_const(self, name: str, values) -> int:
        arr = np.asarray(values, dtype=np.int32)
        return self.fb.add_tensor(name, arr.shape, np.int32, data=arr)

    # ------------------------------------------------------------------ layout

    def _permute(self, index: int, in_shape: tuple[int, ...], perm: tuple[int, ...], qp: QuantParams,
                 name: str) -> int:
        out_shape = tuple(in_shape[p] for p in perm)
        moved = [p for p in perm if in_shape[p] != 1]
        out = self.fb.add_tensor(name, out_shape, np.int8, qp)
        if moved == sorted(moved):  # only unit dimensions move: the bytes are already in order
            batch_axis = 0 if perm[0] == 0 else None
            self.fb.add_operator(Op.RESHAPE, [index, self._shape_const(name + "/shape", out_shape, batch_axis)], [out])
        else:
            version = 2 if len(perm) <= 4 else 4  # rank 5 needs TRANSPOSE version 4
            self.fb.add_operator(Op.TRANSPOSE, [index, self._int32_const(name + "/perm", perm)], [out], version=version)
        return out

    def _reshape(self, index: int, shape: tuple[int, ...], qp: QuantParams, name: str,
                 batch_axis: int | None = 0) -> int:
        """RESHAPE to ``shape``; with a dynamic batch, ``shape[batch_axis]`` is written as -1."""
        out = self.fb.add_tensor(name, shape, np.int8, qp)
        self.fb.add_operator(Op.RESHAPE, [index, self._shape_const(name + "/shape", shape, batch_axis)], [out])
        return out

    def _shape_const(self, name: str, shape: tuple[int, ...], batch_axis: int | None = 0) -> int:
        values = list(shape)
        if self.dynamic_batch and batch_axis is not None:
            values[batch_axis] = -1
        return self._int32_const(name, values)

    def _nhwc(self, a: _Act) -> _Act:
        if a.layout == "nhwc":
            return a
        if a.layout == "hpair":  # only the max pool that _row_pair_plan checked reads row pairs
            raise ModelError(f"internal: {self.fb.tensors[a.index].name!r} holds row pairs; only a row max pool reads them")
        if a.layout == "cols":
            key = (a.index, "nhwc")
            if key not in self.views:
                name = self.fb.tensors[a.index].name + "/nhwc"
                index = self._permute(a.index, self.fb.shape(a.index), (0, 2, 1, 3), a.qp, name)
                self.views[key] = _Act(index, a.qp, a.shape, "nhwc")
            return self.views[key]
        a = self._plain(a)
        key = (a.index, "nhwc")
        if key not in self.views:
            n, c, h, w = _nchw4(a.shape)
            name = self.fb.tensors[a.index].name + "/nhwc"
            if c == 1 or h * w == 1:  # same byte order: one RESHAPE
                index = self._reshape(a.index, (n, h, w, c), a.qp, name)
            else:
                src = a.index if len(a.shape) == 4 else self._reshape(a.index, (n, c, h, w), a.qp, name + "/4d")
                index = self._permute(src, (n, c, h, w), (0, 2, 3, 1), a.qp, name)
            self.views[key] = _Act(index, a.qp, a.shape, "nhwc")
        return self.views[key]

    def _plain(self, a: _Act) -> _Act:
        if a.layout == "plain":
            return a
        if a.layout == "hpair":
            self._nhwc(a)  # raises
        key = (a.index, "plain")
        if key not in self.views and a.layout == "cols":
            index = self._permute(a.index, self.fb.shape(a.index), (0, 3, 2, 1), a.qp,
                                  self.fb.tensors[a.index].name + "/nchw")
            self.views[key] = _Act(index, a.qp, a.shape, "plain")
        if key not in self.views:
            name = self.fb.tensors[a.index].name + "/nchw"
            n, c, h, w = _nchw4(a.shape) if a.layout == "nhwc" else a.src4
            if c == 1 or h * w == 1:  # same byte order: one RESHAPE
                index = self._reshape(a.index, a.shape, a.qp, name)
            elif a.layout == "colsflat":
                src = self._reshape(a.index, (n, w, h, c), a.qp, name + "/4d")
                index = self._reshape(self._permute(src, (n, w, h, c), (0, 3, 2, 1), a.qp, name), a.shape, a.qp,
                                      name + "/r")
            else:
                src = a.index
                if a.layout == "flat":
                    src = self._reshape(src, (n, h, w, c), a.qp, name + "/4d")
                index = self._permute(src, (n, h, w, c), (0, 3, 1, 2), a.qp, name)
                if len(a.shape) != 4:
                    index = self._reshape(index, a.shape, a.qp, name + "/r")
            self.views[key] = _Act(index, a.qp, a.shape, "plain")
        return self.views[key]

    def _requantize(self, a: _Act, qp: QuantParams, name: str) -> _Act:
        """Move ``a`` onto grid ``qp``. With ``precise_requantize`` this is a 1x1 depthwise convolution
        (weight 127 on scale 1/127, zero bias): TFLite's int8->int8 QUANTIZE rounds coarsely (XNNPACK
        uses an 8-bit multiplier; the builtin kernel rounds twice with almost no fractional bits), while
        a convolution requantizes its 127x larger accumulator with a 31-bit multiplier (builtin) or in
        fp32 (XNNPACK) -- close to the single float rounding of ORT's DequantizeLinear/QuantizeLinear."""
        out = self._new_act(name, a.shape, a.layout, qp, a.src4)
        if not self.precise_requantize:
            self.fb.add_operator(Op.QUANTIZE, [a.index], [out.index], version=2)
            return out
        stored = self.fb.shape(a.index)
        src, dst = a.index, out.index
        if len(stored) != 4:
            shape4 = (1, 1, int(np.prod(stored)), 1)
            src = self._reshape(a.index, shape4, a.qp, name + "/4d", batch_axis=2)
            dst = self.fb.add_tensor(name + "/requant", shape4, np.int8, qp)
        c = self.fb.shape(src)[3]
        w = self.fb.add_tensor(name + "/one", (1, 1, 1, c), np.int8,
                               QuantParams(np.full(c, 1.0 / 127.0, np.float32), np.zeros(c, np.int64), 3),
                               np.full((1, 1, 1, c), 127, np.int8))
        b = self.fb.add_tensor(name + "/zero", (c,), np.int32,
                               QuantParams(np.full(c, np.float64(a.qp.scale[0]) / 127.0, np.float32),
                                           np.zeros(c, np.int64), 0), np.zeros(c, np.int32))
        self.fb.add_operator(Op.DEPTHWISE_CONV_2D, [src, w, b], [dst], "DepthwiseConv2DOptions", version=3,
                             Padding=Padding.VALID, StrideW=1, StrideH=1, DepthMultiplier=1,
                             DilationWFactor=1, DilationHFactor=1, FusedActivationFunction=Act_.NONE)
        if dst != out.index:
            self.fb.add_operator(Op.RESHAPE, [dst, self._shape_const(name + "/shape", stored)], [out.index])
        return out

    # ------------------------------------------------------------------ output grid look-ahead

    def _fusable_activation(self, node: onnx.NodeProto) -> int | None:
        if node.op_type == "Relu":
            return Act_.RELU
        if node.op_type == "Clip":
            lo, hi = self._clip_bounds(node)
            return {(0.0, 6.0): Act_.RELU6, (-1.0, 1.0): Act_.RELU_N1_TO_1}.get((lo, hi))
        return None

    def _clip_bounds(self, node: onnx.NodeProto) -> tuple[float, float]:
        a = _attrs(node)
        lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.inits[node.input[1]]) if node.input[1] in self.inits else None
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.inits[node.input[2]]) if node.input[2] in self.inits else None
        if lo is None or hi is None:
            raise ModelError(f"Clip {node.name!r}: min and max must be constants")
        return float(lo), float(hi)

    def _quant_consumer(self, name: str) -> QuantParams | None:
        for c in self.consumers[name]:
            if c.op_type == "QuantizeLinear":
                qp, dtype = self._qparams(c)
                self._check_act_dtype(dtype, c)
                return qp
        return None

    def _output_grid(self, node: onnx.NodeProto, fuse: bool = True) -> tuple[QuantParams, int, str]:
        """(output grid, fused activation, ONNX name to register) from the QuantizeLinear after ``node``."""
        out = node.output[0]
        cons = self.consumers[out]
        graph_outputs = {o.name for o in self.graph.output}
        if fuse and len(cons) == 1 and out not in graph_outputs:
            act = self._fusable_activation(cons[0])
            if act is not None:
                qp = self._quant_consumer(cons[0].output[0])
                if qp is not None:
                    self.skip.add(id(cons[0]))
                    return qp, act, cons[0].output[0]
        qp = self._quant_consumer(out)
        if qp is None:
            raise ModelError(
                f"output {out!r} of {node.op_type} node {node.name!r} is not quantized (no QuantizeLinear "
                "follows it); TFLite export needs a full-integer QDQ model"
            )
        return qp, Act_.NONE, out

    @staticmethod
    def _check_act_dtype(dtype: np.dtype, node: onnx.NodeProto) -> None:
        if np.dtype(dtype) != np.int8:
            raise ModelError(
                f"{node.op_type} {node.name!r} quantizes to {np.dtype(dtype)}; TFLite export needs int8 "
                "activations (quantize with activation_type=QInt8)"
            )

    # ------------------------------------------------------------------ graph I/O

    def _graph_input(self, name: str, qp: QuantParams, q_name: str) -> _Act:
        shape = self._shape(name)
        layout = "plain"
        if self.input_layout == "nwhc":
            if len(shape) != 4:
                raise ModelError(f"input_layout 'nwhc' needs rank-4 (N, C, H, W) inputs; {name!r} has shape {list(shape)}")
            layout = "cols"
            self.input_perms[name] = [0, 3, 2, 1]
        if self.io_dtype == "float32":
            fi = self.fb.add_tensor(name, _stored_shape(shape, layout), np.float32)
            act = self._new_act(q_name, shape, layout, qp)
            self.fb.add_operator(Op.QUANTIZE, [fi], [act.index], version=2)
        else:
            act = self._new_act(name, shape, layout, qp)
            fi = act.index
        self._mark_dynamic_batch(fi)
        self.fb.inputs.append(fi)
        return act

    def _mark_dynamic_batch(self, index: int) -> None:
        if self.dynamic_batch:
            self.fb.tensors[index].signature = (-1,) + tuple(self.fb.shape(index)[1:])

    def _graph_output(self, name: str) -> int:
        v = self.vals.get(name)
        if not isinstance(v, _Act):
            raise ModelError(f"graph output {name!r} is not quantized (it must come from DequantizeLinear)")
        a = self._plain(v)
        if self.io_dtype == "float32":
            out = self.fb.add_tensor(name, a.shape, np.float32)
            self.fb.add_operator(Op.DEQUANTIZE, [a.index], [out], version=2)
            self._mark_dynamic_batch(out)
            return out
        if a.index in self.fb.inputs or a.index in self.fb.outputs:
            a = self._requantize(a, a.qp, name)  # an output must be its own tensor
        self.fb.rename(a.index, name)
        self._mark_dynamic_batch(a.index)
        return a.index

    # ------------------------------------------------------------------ Q / DQ

    def _op_QuantizeLinear(self, node: onnx.NodeProto) -> None:
        qp, dtype = self._qparams(node)
        x, out = node.input[0], node.output[0]
        if x in self.inits:  # a float constant quantized in the graph
            q = np.clip(np.rint(self.inits[x] / _bcast(qp, self.inits[x].ndim)) + _bcast(qp, self.inits[x].ndim, zp=True),
                        np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
            self.vals[out] = _Const(q, qp, x)
            return
        self._check_act_dtype(dtype, node)
        if not qp.per_tensor:
            raise ModelError(f"QuantizeLinear {node.name!r}: activations must be quantized per tensor")
        if x in self.graph_inputs:
            first = self.input_acts.get(x)
            if first is None:
                self.vals[out] = self.input_acts[x] = self._graph_input(x, qp, out)
            else:  # the same input quantized on a second grid
                self.vals[out] = first if first.qp.same_as(qp) else self._requantize(first, qp, out)
            return
        a = self._act(x)
        self.vals[out] = a if a.qp.same_as(qp) else self._requantize(a, qp, out)

    def _op_DequantizeLinear(self, node: onnx.NodeProto) -> None:
        qp, _ = self._qparams(node)
        x, out = node.input[0], node.output[0]
        if x in self.inits:
            self.vals[out] = _Const(self.inits[x], qp, x)
            return
        v = self.vals.get(x)
        if isinstance(v, _Const):
            self.vals[out] = _Const(v.q, qp, v.name)
            return
        a = self._act(x)
        if not a.qp.same_as(qp):
            raise ModelError(f"DequantizeLinear {node.name!r} reads {x!r} with other parameters than it was quantized with")
        self.vals[out] = a

    # ------------------------------------------------------------------ convolution and dense

    def _op_Conv(self, node: onnx.NodeProto) -> None:
        at = _attrs(node)
        x = self._act(node.input[0])
        w = self._const(node.input[1], "Conv weight")
        W = np.asarray(w.q)
        if W.ndim not in (3, 4):
            raise ModelError(f"Conv {node.name!r}: only 1-D and 2-D convolutions are supported")
        k = W.ndim - 2
        strides = list(at.get("strides", [1] * k))
        dil = list(at.get("dilations", [1] * k))
        pads = list(at.get("pads", [0] * 2 * k))
        if k == 1:  # Conv1d -> Conv2D of unit height
            W = W[:, :, None, :]
            strides, dil, pads = [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
        group = int(at.get("group", 1))
        n, c, h, wd = _nchw4(x.shape)
        kh, kw = W.shape[2:]
        padding, explicit = _padding_mode((h, wd), (kh, kw), strides, dil, pads, at.get("auto_pad", b"NOTSET"))
        if explicit is None and padding == Padding.SAME:  # the pads SAME stands for, for the row-pair plan
            explicit_pads = _same_pads((h, wd), (kh, kw), strides, dil)
        else:
            explicit_pads = list(explicit) if explicit is not None else [0, 0, 0, 0]
        if x.layout == "cols" and (group == 1 or (group == c and W.shape[1] == 1)):
            self._cols_conv(node, x, W, w, strides, dil, explicit_pads, group)
            return
        plan = self._row_pair_plan(node, x, W, group, strides, dil, explicit_pads)
        if plan is not None:
            self._row_pair_conv(node, x, W, w, strides, dil[1], explicit_pads, plan)
            return
        xin = self._nhwc(x)
        if explicit is not None:
            xin = self._pad(xin, [(0, 0), (explicit[0], explicit[2]), (explicit[1], explicit[3]), (0, 0)], node.name)
        qp_out, fused, out_name = self._output_grid(node)
        self._check_weight(w, node)
        O = W.shape[0]
        if group == 1:
            Wt, axis, opcode, options = W.transpose(0, 2, 3, 1), 0, Op.CONV_2D, "Conv2DOptions"
            extra = {}
        elif group == c and W.shape[1] == 1:
            Wt, axis, opcode, options = W.transpose(1, 2, 3, 0), 3, Op.DEPTHWISE_CONV_2D, "DepthwiseConv2DOptions"
            extra = {"DepthMultiplier": O // c}
        else:
            raise ModelError(f"Conv {node.name!r}: grouped convolution (group={group}) is not supported; "
                             "only group=1 and depthwise")
        wqp = QuantParams(w.qp.scale, w.qp.zero_point, axis)
        wi = self.fb.add_tensor(w.name, Wt.shape, np.int8, wqp, Wt.astype(np.int8))
        bi = self._bias(node, 2, xin.qp, w.qp, O)
        out = self._new_act(out_name, self._shape(node.output[0]), "nhwc", qp_out)
        self.fb.add_operator(
            opcode, [xin.index, wi, bi], [out.index], options, version=3,
            Padding=padding, StrideW=strides[1], StrideH=strides[0],
            DilationWFactor=dil[1], DilationHFactor=dil[0], FusedActivationFunction=fused, **extra,
        )
        self.vals[out_name] = out

    # ------------------------------------------------------------------ row pairs (XNNPACK int8 speed)

    def _row_pair_plan(self, node: onnx.NodeProto, x: _Act, W: np.ndarray, group: int, strides: list[int],
                       dil: list[int], pads: list[int]) -> dict | None:
        """Whether to run this convolution on pairs of input rows packed into channels (see _row_pair_conv).

        Only for a rank-4 input still in ONNX (NCHW) layout -- a graph input, which must be transposed to
        NHWC anyway, so packing the pairs costs one rank-5 TRANSPOSE instead of a rank-4 one -- with at most
        4 channels (XNNPACK's int8 kernels on x86 read 8 channels per kernel tap, so 3 channels waste 5/8 of
        every multiply; a pair of rows fills 6 of 8). Stride 2 down the rows: each output row reads one
        pair per tap, about half the taps (``m = 1``). Stride 1: two output rows are computed per pair
        position (``m = 2``, 2*O output channels), which only pays when a 2x2-style max pool with stride 2
        down the rows follows and can read the pairs directly (_pool); otherwise None.
        """
        if not self.pair_rows or x.layout not in ("plain", "cols") or len(x.shape) != 4:
            return None
        if x.layout == "plain" and (x.index, "nhwc") in self.views:
            return None
        n, c, h, wd = x.shape
        O, _, kh, kw = W.shape
        if group != 1 or dil[0] != 1 or kh < 2 or c > 4 or len(self.consumers[node.input[0]]) != 1:
            return None
        if strides[0] == 2:
            m = 1
        elif strides[0] == 1 and (x.layout == "cols" or self._pair_pool_follows(node)):
            m = 2   # in "cols" the two output rows per pair are already the (N, W, H, O) layout
        else:
            return None
        sh, g, pt = strides[0], 2, pads[0]
        ho = _nchw4(self._shape(node.output[0]))[2]
        if ho % m:
            return None
        best = None
        for off in (0, -1):  # first input row of group 0 (a pad row when -1)
            lo, hi = -pt - off, sh * (m - 1) - pt + kh - 1 - off
            tmin, tmax = lo // g, hi // g
            top = -(tmin * g + off)                                  # rows to pad above
            bottom = g * (ho // m - 1 + tmax) + off + g - 1 - (h - 1)  # rows to pad below
            if top < 0 or bottom < 0 or (h + top + bottom) % g:
                continue
            taps = tmax - tmin + 1
            if best is None or taps < best["taps"]:
                best = dict(m=m, off=off, tmin=tmin, taps=taps, top=top, bottom=bottom)
        if best is None or best["taps"] * -(-g * c // 8) >= kh * -(-c // 8):
            return None  # no fewer 8-channel blocks per output than the plain convolution
        return best

    def _pair_pool_follows(self, node: onnx.NodeProto) -> bool:
        """Conv (-> fusable activation) -> QuantizeLinear -> DequantizeLinear -> MaxPool with kernel and
        stride 2 down the rows and no padding, each the single consumer of the one before."""
        name = node.output[0]
        cons = self.consumers[name]
        if len(cons) == 1 and self._fusable_activation(cons[0]) is not None:
            name = cons[0].output[0]
            cons = self.consumers[name]
        graph_outputs = {o.name for o in self.graph.output}
        for op_type in ("QuantizeLinear", "DequantizeLinear"):
            if len(cons) != 1 or cons[0].op_type != op_type or name in graph_outputs:
                return False
            name = cons[0].output[0]
            cons = self.consumers[name]
        if len(cons) != 1 or cons[0].op_type != "MaxPool" or name in graph_outputs:
            return False
        at = _attrs(cons[0])
        ks, st = list(at.get("kernel_shape", [])), list(at.get("strides", [1, 1]))
        auto_pad = at.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        return (len(ks) == 2 and ks[0] == 2 and st[0] == 2 and not any(at.get("pads", [0] * 4))
                and auto_pad in ("NOTSET", "VALID") and not at.get("ceil_mode", 0)
                and all(d == 1 for d in at.get("dilations", [1, 1])))

    def _row_pair_conv(self, node: onnx.NodeProto, x: _Act, W: np.ndarray, w: _Const, strides: list[int],
                       dil_w: int, pads: list[int], plan: dict) -> None:
        """The convolution on the input with each pair of rows packed into the channels: exactly the
        same sums (the extra weights are zero) on XNNPACK-friendlier shapes.

        The NCHW input (rows padded as the plan says, and columns by the convolution's pads) is viewed as
        (N, C, H/2, 2, W) and transposed to (N, H/2, W, 2, C) -- a pair of rows per row, 2*C channels.
        Output row ``i = j*m + t`` of the original convolution reads input rows ``sh*i - pt + k``; in the
        paired input these are pair ``j + a + tmin``, row ``r`` of it, with ``k = (a + tmin)*2 + r + off -
        sh*t + pt``; the packed weight of (t, o; a, kw; r, c) is ``W[o, c, k, kw]`` for ``0 <= k < kh`` and
        0 otherwise. With ``m = 2`` the output holds rows (2j, 2j+1) side by side ("hpair" layout).
        Padded values are the input zero point in TFLite's PAD and convolution padding alike, so every
        accumulator, and so every output, is bit-identical to the plain convolution's.
        """
        m, off, tmin, taps, top, bottom = (plan[k] for k in ("m", "off", "tmin", "taps", "top", "bottom"))
        n, c, h, wd = x.shape
        O, _, kh, kw = W.shape
        sh, g, pt = strides[0], 2, pads[0]
        left, right = pads[1], pads[3]
        hq = (h + top + bottom) // g
        src, name = x.index, node.name or node.output[0]
        # a symmetric padding of whole pairs with SAME-sized kernel padding needs no PAD operator
        same = (top % g == 0 and bottom % g == 0
                and _same_pads((h // g, wd), (taps, kw), [1, strides[1]], [1, dil_w]) == [top // g, left, bottom // g, right])
        if same:
            hq -= (top + bottom) // g
        elif top or bottom or left or right:
            src = self.fb.add_tensor(name + "/pad", (n, c, h + top + bottom, wd + left + right), np.int8, x.qp)
            self.fb.add_operator(Op.PAD, [x.index, self._int32_const(name + "/paddings",
                                                                     [(0, 0), (0, 0), (top, bottom), (left, right)])],
                                 [src], version=2)
            wd += left + right
        src = self._reshape(src, (n, c, hq, g, wd), x.qp, name + "/pairs5d")
        src = self._permute(src, (n, c, hq, g, wd), (0, 2, 4, 3, 1), x.qp, name + "/pairs")
        xin = self._reshape(src, (n, hq, wd, g * c), x.qp, name + "/paired")
        packed = _pack_row_pairs(W, plan, sh, pt)
        qp_out, fused, out_name = self._output_grid(node)
        self._check_weight(w, node)
        if w.qp.per_tensor:
            wqp = QuantParams.make(w.qp.scale[0], 0)
        else:
            wqp = QuantParams(np.tile(w.qp.scale, m).astype(np.float32), np.zeros(m * O, np.int64), 0)
        wi = self.fb.add_tensor(w.name, packed.shape, np.int8, wqp, packed)
        bias, bias_qp = self._bias_values(node, 2, x.qp, w.qp, O)
        bqp = bias_qp if bias_qp.per_tensor else QuantParams(np.tile(bias_qp.scale, m), np.zeros(m * O, np.int64), 0)
        bi = self.fb.add_tensor(name + "/bias_pairs", (m * O,), np.int32, bqp, np.tile(bias, m))
        out_shape = self._shape(node.output[0])
        out = self._new_act(out_name, out_shape, "nhwc" if m == 1 else "hpair", qp_out)
        self.fb.add_operator(
            Op.CONV_2D, [xin, wi, bi], [out.index], "Conv2DOptions", version=3,
            Padding=Padding.SAME if same else Padding.VALID, StrideW=strides[1], StrideH=1,
            DilationWFactor=dil_w, DilationHFactor=1, FusedActivationFunction=fused,
        )
        self.vals[out_name] = out

    # ------------------------------------------------------------------ column-major input ("cols")

    def _cols_conv(self, node: onnx.NodeProto, x: _Act, W: np.ndarray, w: _Const, strides: list[int],
                   dil: list[int], pads: list[int], group: int = 1) -> None:
        """A convolution of an activation stored column by column, (N, W, H, C): the same convolution with
        its kernel, strides, dilations and padding turned (rows along the stored width), so nothing is
        transposed. Each case sums the same integers with the same weights as the NHWC convolution
        (bit-identical outputs):

        * a first convolution on at most 4 channels reads pairs of rows packed into the channels (the plan and
          weights of ``_row_pair_conv``), here a free RESHAPE (N, W, H/2, 2*C); with stride 1 it computes two
          output rows per pair, (N, W, H/2, 2*O), which is (N, W, H, O) byte for byte;
        * a convolution along the rows over the whole height (kernel (H, 1), no row padding) is a 1x1
          convolution of the RESHAPE (N, 1, W, H*C) -- one column's rows and channels are one contiguous
          vector -- and its output (N, 1, W, O) is the NHWC tensor that later (time) layers read;
        * otherwise the turned convolution (padding: SAME where it matches, else PAD with the zero point);
          depthwise convolutions likewise.
        """
        n, c, h, wd = x.shape
        O, _, kh, kw = W.shape
        (sh, sw), (dh, dw) = strides, dil
        pt, pl, pb, pr = pads
        name = node.name or node.output[0]
        self._check_weight(w, node)
        plan = self._row_pair_plan(node, x, W, group, strides, dil, pads) if group == 1 else None
        qp_out, fused, out_name = self._output_grid(node)
        out_shape = self._shape(node.output[0])
        m = plan["m"] if plan is not None else 1
        if w.qp.per_tensor:
            wqp = QuantParams.make(w.qp.scale[0], 0, 3 if group != 1 else 0)
        else:
            wqp = QuantParams(np.tile(w.qp.scale, m).astype(np.float32), np.zeros(m * O, np.int64),
                              3 if group != 1 else 0)
        bias, bias_qp = self._bias_values(node, 2, x.qp, w.qp, O)
        bqp = bias_qp if bias_qp.per_tensor else QuantParams(np.tile(bias_qp.scale, m), np.zeros(m * O, np.int64), 0)
        bi = self.fb.add_tensor(node.input[2] if len(node.input) > 2 and node.input[2] else name + "/bias",
                                (m * O,), np.int32, bqp, np.tile(bias, m))
        src, layout, opcode, options, extra = x.index, "cols", Op.CONV_2D, "Conv2DOptions", {}
        if plan is not None:
            top, bottom = plan["top"], plan["bottom"]
            taps = plan["taps"]
            # stored spatial dims: (columns, row pairs); SAME where both paddings are what SAME would add
            same = top % 2 == 0 and bottom % 2 == 0 and _same_pads(
                (wd, h // 2), (kw, taps), [sw, 1], [dw, 1]) == [pl, top // 2, pr, bottom // 2]
            hp, wp = (h, wd) if same else (h + top + bottom, wd + pl + pr)
            if not same and (top or bottom or pl or pr):
                src = self._pad(x, [(0, 0), (pl, pr), (top, bottom), (0, 0)], name, layout="cols").index
            src = self._reshape(src, (n, wp, hp // 2, 2 * c), x.qp, name + "/paired")
            Wt = _pack_row_pairs(W, plan, sh, pt).transpose(0, 2, 1, 3)    # (m*O, kw, taps, 2C)
            padding, strides_hw, dil_hw = (Padding.SAME if same else Padding.VALID), (sw, 1), (dw, 1)
        elif kw == 1 and sw == 1 and not pl and not pr and pt == pb == 0 and (kh - 1) * dh + 1 == h and group == 1:
            src = self._reshape(src, (n, 1, wd, h * c), x.qp, name + "/columns")  # the whole height: 1x1
            Wt = W[:, :, :, 0].transpose(0, 2, 1).reshape(O, 1, 1, kh * c)
            padding, strides_hw, dil_hw, layout = Padding.VALID, (1, 1), (1, 1), "nhwc"
        else:
            padding, explicit = _padding_mode((wd, h), (kw, kh), [sw, sh], [dw, dh], [pl, pt, pr, pb], b"NOTSET")
            if explicit is not None:
                src = self._pad(x, [(0, 0), (explicit[0], explicit[2]), (explicit[1], explicit[3]), (0, 0)], name,
                                layout="cols").index
            if group == 1:
                Wt = W.transpose(0, 3, 2, 1)                             # (O, kw, kh, C)
            else:
                Wt = W.transpose(1, 3, 2, 0)                             # (1, kw, kh, O)
                opcode, options, extra = Op.DEPTHWISE_CONV_2D, "DepthwiseConv2DOptions", {"DepthMultiplier": O // c}
            strides_hw, dil_hw = (sw, sh), (dw, dh)
        wi = self.fb.add_tensor(w.name, Wt.shape, np.int8, wqp, np.ascontiguousarray(Wt, np.int8))
        out = self._new_act(out_name, out_shape, layout, qp_out)
        dst = out.index
        if m == 2:   # two output rows per pair: (N, W, H/2, 2*O) is (N, W, H, O) byte for byte
            _, co, ho, wo = out_shape
            dst = self.fb.add_tensor(out_name + "/pairs", (n, wo, ho // 2, 2 * co), np.int8, qp_out)
        self.fb.add_operator(
            opcode, [src, wi, bi], [dst], options, version=3, Padding=padding,
            StrideH=strides_hw[0], StrideW=strides_hw[1], DilationHFactor=dil_hw[0], DilationWFactor=dil_hw[1],
            FusedActivationFunction=fused, **extra,
        )
        if dst != out.index:
            self.fb.add_operator(Op.RESHAPE, [dst, self._shape_const(out_name + "/shape", self.fb.shape(out.index))],
                                 [out.index])
        self.vals[out_name] = out

    def _check_weight(self, w: _Const, node: onnx.NodeProto) -> None:
        if w.q.dtype != np.int8:
            raise ModelError(f"{node.op_type} {node.name!r}: weights must be int8, got {w.q.dtype}")
        if np.any(w.qp.zero_point != 0):
            raise ModelError(f"{node.op_type} {node.name!r}: weights must be symmetric (zero point 0)")

    def _bias(self, node: onnx.NodeProto, slot: int, in_qp: QuantParams, w_qp: QuantParams, n: int) -> int:
        """int32 bias on the grid input_scale * weight_scale (per output channel), as TFLite requires."""
        q, qp = self._bias_values(node, slot, in_qp, w_qp, n)
        name = node.input[slot] if len(node.input) > slot and node.input[slot] else f"{node.name}/bias"
        return self.fb.add_tensor(name, (n,), np.int32, qp, q)

    def _bias_values(self, node: onnx.NodeProto, slot: int, in_qp: QuantParams, w_qp: QuantParams,
                     n: int) -> tuple[np.ndarray, QuantParams]:
        """The int32 bias values and their grid (see _bias)."""
        expected = np.float64(in_qp.scale[0]) * np.broadcast_to(w_qp.scale.astype(np.float64), (n,))
        if len(node.input) <= slot or not node.input[slot]:
            q = np.zeros(n, np.int32)
        elif node.input[slot] in self.inits:  # a float bias left unquantized
            q = np.rint(self.inits[node.input[slot]].astype(np.float64) / expected)
        else:
            b = self._const(node.input[slot], f"{node.op_type} bias")
            bs = np.broadcast_to(b.qp.scale.astype(np.float64), (n,))
            if np.any(b.qp.zero_point != 0):
                raise ModelError(f"{node.op_type} {node.name!r}: bias zero point must be 0")
            q = np.asarray(b.q, np.float64).reshape(n)
            if not np.allclose(bs, expected, rtol=1e-6, atol=0):
                q = np.rint(q * bs / expected)
        q = np.clip(q, -(2**31), 2**31 - 1).astype(np.int32).reshape(n)
        if w_qp.per_tensor:  # the bias grid follows the weights': one scale (XNNPACK insists)
            qp = QuantParams.make(expected[0], 0)
        else:
            qp = QuantParams(expected.astype(np.float32), np.zeros(n, np.int64), 0)
        return q, qp

    def _fully_connected(self, node: onnx.NodeProto, x: _Act, W: np.ndarray, w: _Const, bias_slot: int) -> None:
        """FULLY_CONNECTED with weights ``W`` (out, in) quantized per output channel (axis 0)."""
        qp_out, fused, out_name = self._output_grid(node)
        if x.layout == "flat":
            W = W[:, _flat_perm(x.src4)]
            xin = x
        elif x.layout == "colsflat":
            W = W[:, _flat_perm(x.src4, cols=True)]
            xin = x
        else:
            xin = self._plain(x)
        O = W.shape[0]
        wqp = QuantParams(w.qp.scale, w.qp.zero_point, 0)
        wi = self.fb.add_tensor(w.name, W.shape, np.int8, wqp, np.ascontiguousarray(W, np.int8))
        bi = self._bias(node, bias_slot, xin.qp, w.qp, O)
        shape = self._shape(node.output[0])
        out = self._new_act(out_name, shape, "plain", qp_out)
        self.fb.add_operator(
            Op.FULLY_CONNECTED, [xin.index, wi, bi], [out.index], "FullyConnectedOptions", version=5,
            FusedActivationFunction=fused, KeepNumDims=len(shape) > 2,
        )
        self.vals[out_name] = out

    def _op_Gemm(self, node: onnx.NodeProto) -> None:
        at = _attrs(node)
        if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
            raise ModelError(f"Gemm {node.name!r}: only transA=0, alpha=1, beta=1 is supported")
        x = self._act(node.input[0])
        w = self._const(node.input[1], "Gemm weight")
        self._check_weight(w, node)
        W = np.asarray(w.q)
        out_axis = 0 if at.get("transB", 0) else 1
        if not w.qp.per_tensor and w.qp.axis != out_axis:
            raise ModelError(f"Gemm {node.name!r}: weights must be quantized per output channel")
        if not at.get("transB", 0):
            W = W.T
        if len(x.shape) != 2:
            raise ModelError(f"Gemm {node.name!r}: input must be rank 2")
        self._fully_connected(node, x, W, w, 2)

    def _op_MatMul(self, node: onnx.NodeProto) -> None:
        x = self._act(node.input[0])
        w = self.vals.get(node.input[1])
        if not isinstance(w, _Const) or np.asarray(w.q).ndim != 2:
            raise ModelError(f"MatMul {node.name!r}: only a constant 2-D right operand is supported")
        self._check_weight(w, node)
        if not w.qp.per_tensor and w.qp.axis not in (1, -1):
            raise ModelError(f"MatMul {node.name!r}: weights must be quantized per output column")
        self._fully_connected(node, x, np.asarray(w.q).T, w, 99)

    # ------------------------------------------------------------------ pooling and reductions

    def _pool(self, node: onnx.NodeProto, opcode: int) -> None:
        at = _attrs(node)
        x = self._act(node.input[0])
        ks = list(at["kernel_shape"])
        k = len(ks)
        strides = list(at.get("strides", [1] * k))
        pads = list(at.get("pads", [0] * 2 * k))
        if any(d != 1 for d in at.get("dilations", [1] * k)):
            raise ModelError(f"{node.op_type} {node.name!r}: dilated pooling is not supported")
        if k == 1:
            ks, strides, pads = [1] + ks, [1] + strides, [0, pads[0], 0, pads[1]]
        n, c, h, w = _nchw4(x.shape)
        padding, explicit = _padding_mode((h, w), ks, strides, [1, 1], pads, at.get("auto_pad", b"NOTSET"))
        out_shape = self._shape(node.output[0])
        if x.layout == "hpair" and ks[0] == strides[0] == 2 and padding == Padding.VALID and explicit is None:
            # rows (2j, 2j+1) of column u sit at columns 2u, 2u+1 of (n, h/2, 2w, c): a window of kw columns
            # and both rows is 2*kw adjacent columns there, the stride 2*sw
            wide = self._reshape(x.index, (n, h // 2, 2 * w, c), x.qp, node.output[0] + "/wide")
            out = self._new_act(node.output[0], out_shape, "nhwc", x.qp)
            self.fb.add_operator(opcode, [wide], [out.index], "Pool2DOptions", version=2, Padding=Padding.VALID,
                                 StrideW=2 * strides[1], StrideH=1, FilterWidth=2 * ks[1], FilterHeight=1)
            self.vals[node.output[0]] = out
            return
        if x.layout == "cols":
            self._cols_pool(node, x, opcode, ks, strides, pads, at.get("auto_pad", b"NOTSET"))
            return
        xin = self._nhwc(x)
        if opcode == Op.AVERAGE_POOL_2D and at.get("count_include_pad", 0) and any(pads):
            # padded zeros count in the average: pad explicitly (with the zero point = real 0), then VALID
            xin = self._pad(xin, [(0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)], node.name)
            padding, explicit, (h, w) = Padding.VALID, None, (h + pads[0] + pads[2], w + pads[1] + pads[3])
        if explicit is not None:
            raise ModelError(f"{node.op_type} {node.name!r}: padding {pads} has no TFLite equivalent (use 'same' or none)")
        if _nchw4(out_shape)[2:] != (_out_size(h, ks[0], strides[0], padding), _out_size(w, ks[1], strides[1], padding)):
            raise ModelError(f"{node.op_type} {node.name!r}: ceil_mode output size has no TFLite equivalent")
        out = self._new_act(node.output[0], out_shape, "nhwc", xin.qp)
        self.fb.add_operator(
            opcode, [xin.index], [out.index], "Pool2DOptions", version=2, Padding=padding,
            StrideW=strides[1], StrideH=strides[0], FilterWidth=ks[1], FilterHeight=ks[0],
        )
        self.vals[node.output[0]] = out

    def _cols_pool(self, node: onnx.NodeProto, x: _Act, opcode: int, ks: list[int], strides: list[int],
                   pads: list[int], auto_pad) -> None:
        """A pooling of a column-by-column activation: the same pooling with rows and columns swapped."""
        at = _attrs(node)
        n, c, h, w = x.shape
        padding, explicit = _padding_mode((w, h), ks[::-1], strides[::-1], [1, 1], [pads[1], pads[0], pads[3], pads[2]],
                                          auto_pad)
        xin, (hs, ws) = x, (w, h)
        if opcode == Op.AVERAGE_POOL_2D and at.get("count_include_pad", 0) and any(pads):
            xin = self._pad(x, [(0, 0), (pads[1], pads[3]), (pads[0], pads[2]), (0, 0)], node.name, layout="cols")
            padding, explicit, (hs, ws) = Padding.VALID, None, (w + pads[1] + pads[3], h + pads[0] + pads[2])
        if explicit is not None:
            raise ModelError(f"{node.op_type} {node.name!r}: padding {pads} has no TFLite equivalent (use 'same' or none)")
        out_shape = self._shape(node.output[0])
        if _nchw4(out_shape)[2:] != (_out_size(ws, ks[0], strides[0], padding), _out_size(hs, ks[1], strides[1], padding)):
            raise ModelError(f"{node.op_type} {node.name!r}: ceil_mode output size has no TFLite equivalent")
        out = self._new_act(node.output[0], out_shape, "cols", xin.qp)
        self.fb.add_operator(opcode, [xin.index], [out.index], "Pool2DOptions", version=2, Padding=padding,
                             StrideW=strides[0], StrideH=strides[1], FilterWidth=ks[0], FilterHeight=ks[1])
        self.vals[node.output[0]] = out

    def _op_MaxPool(self, node: onnx.NodeProto) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise ModelError(f"MaxPool {node.name!r}: the indices output is not supported")
        self._pool(node, Op.MAX_POOL_2D)

    def _op_AveragePool(self, node: onnx.NodeProto) -> None:
        self._pool(node, Op.AVERAGE_POOL_2D)

    def _mean(self, node: onnx.NodeProto, axes: list[int], keepdims: bool) -> None:
        x = self._act(node.input[0])
        qp_out, _, out_name = self._output_grid(node, fuse=False)
        rank = len(x.shape)
        axes = sorted(a + rank if a < 0 else a for a in axes)
        if rank in (3, 4) and 0 not in axes and 1 not in axes and keepdims:
            xin = self._nhwc(x)
            stored_axes, layout = sorted(_nhwc_axis(a, rank) for a in axes), "nhwc"
        else:
            xin, stored_axes, layout = self._plain(x), axes, "plain"
        out = self._new_act(out_name, self._shape(node.output[0]), layout, qp_out)
        self.fb.add_operator(Op.MEAN, [xin.index, self._int32_const(out_name + "/axes", stored_axes)], [out.index],
                             "ReducerOptions", version=2, KeepDims=keepdims)
        self.vals[out_name] = out

    def _op_GlobalAveragePool(self, node: onnx.NodeProto) -> None:
        rank = len(self._act(node.input[0]).shape)
        self._mean(node, list(range(2, rank)), True)

    def _op_ReduceMean(self, node: onnx.NodeProto) -> None:
        at = _attrs(node)
        axes = at.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in self.inits[node.input[1]].ravel()]
        if axes is None:
            axes = list(range(len(self._act(node.input[0]).shape)))
        self._mean(node, list(axes), bool(at.get("keepdims", 1)))

    # ------------------------------------------------------------------ element-wise

    def _binary(self, node: onnx.NodeProto, opcode: int, options: str) -> None:
        out_shape = self._shape(node.output[0])
        vals = [self.vals.get(n) for n in node.input]
        acts = [v for v in vals if isinstance(v, _Act)]
        if not acts or any(v is None for v in vals):
            raise ModelError(f"{node.op_type} {node.name!r}: operands must be quantized")
        qp_out, fused, out_name = self._output_grid(node)
        rank = len(out_shape)
        same = all(len(a.shape) == rank for a in acts)
        if rank == 4 and same and all(a.layout == "cols" for a in acts):
            layout = "cols"
        elif rank in (3, 4) and same and any(a.layout == "nhwc" for a in acts):
            layout = "nhwc"
        elif len(acts) == 2 and acts[0].layout == acts[1].layout == "flat" and acts[0].src4 == acts[1].src4:
            layout = "flat"
        else:
            layout = "plain"
        indices = []
        for v in vals:
            if isinstance(v, _Act):
                a = self._nhwc(v) if layout == "nhwc" else (v if layout in ("flat", "cols") else self._plain(v))
                indices.append(a.index)
            else:
                indices.append(self._operand_const(v, rank, layout, acts[0].src4))
        out = self._new_act(out_name, out_shape, layout, qp_out, acts[0].src4 if layout == "flat" else None)
        self.fb.add_operator(opcode, indices, [out.index], options, version=2, FusedActivationFunction=fused)
        self.vals[out_name] = out

    def _operand_const(self, c: _Const, rank: int, layout: str, src4) -> int:
        if not c.qp.per_tensor:
            raise ModelError(f"constant operand {c.name!r} must be quantized per tensor")
        q = np.asarray(c.q)
        q = q.reshape((1,) * (rank - q.ndim) + q.shape)
        if layout == "nhwc":
            q = q.reshape(_nchw4(q.shape)).transpose(0, 2, 3, 1)
        elif layout == "cols":
            q = q.transpose(0, 3, 2, 1)
        elif layout == "flat":
            q = np.broadcast_to(q, (q.shape[0], src4[1] * src4[2] * src4[3]))[:, _flat_perm(src4)]
        q = np.ascontiguousarray(q, dtype=np.int8)
        return self.fb.add_tensor(c.name, q.shape, np.int8, c.qp, q)

    def _op_Add(self, node: onnx.NodeProto) -> None:
        self._binary(node, Op.ADD, "AddOptions")

    def _op_Mul(self, node: onnx.NodeProto) -> None:
        self._binary(node, Op.MUL, "MulOptions")

    def _op_Sub(self, node: onnx.NodeProto) -> None:
        self._binary(node, Op.SUB, "SubOptions")

    def _unary_fixed_grid(self, node: onnx.NodeProto, opcode: int, grid: QuantParams, options: str | None = None,
                          **opts) -> None:
        """Ops whose int8 kernel writes a fixed output grid; requantized when the QDQ grid differs."""
        x = self._act(node.input[0])
        qp_out, _, out_name = self._output_grid(node, fuse=False)
        xin = x
        tmp = self._new_act(out_name if grid.same_as(qp_out) else out_name + "/tflite_grid", x.shape, x.layout, grid,
                            x.src4)
        self.fb.add_operator(opcode, [xin.index], [tmp.index], options, version=2, **opts)
        self.vals[out_name] = tmp if grid.same_as(qp_out) else self._requantize(tmp, qp_out, out_name)

    def _op_Softmax(self, node: onnx.NodeProto) -> None:
        x = self._act(node.input[0])
        rank = len(x.shape)
        axis = int(_attrs(node).get("axis", -1))
        axis = axis + rank if axis < 0 else axis
        if axis == 1 and rank in (3, 4):  # over channels: the last axis of the NHWC tensor
            self.vals[node.input[0]] = self._nhwc(x)
        elif axis == rank - 1:
            self.vals[node.input[0]] = self._plain(x)
        else:
            raise ModelError(f"Softmax {node.name!r}: only softmax over the last or the channel axis is supported")
        self._unary_fixed_grid(node, Op.SOFTMAX, SOFTMAX_QP, "SoftmaxOptions", Beta=1.0)

    def _op_Sigmoid(self, node: onnx.NodeProto) -> None:
        self._unary_fixed_grid(node, Op.LOGISTIC, LOGISTIC_QP)

    def _op_Tanh(self, node: onnx.NodeProto) -> None:
        self._unary_fixed_grid(node, Op.TANH, TANH_QP)

    def _op_Relu(self, node: onnx.NodeProto) -> None:
        self._activation(node, Op.RELU)

    def _op_LeakyRelu(self, node: onnx.NodeProto) -> None:
        self._activation(node, Op.LEAKY_RELU, "LeakyReluOptions", Alpha=float(_attrs(node).get("alpha", 0.01)))

    def _op_Clip(self, node: onnx.NodeProto) -> None:
        lo, hi = self._clip_bounds(node)
        opcode = {(0.0, 6.0): Op.RELU6, (-1.0, 1.0): Op.RELU_N1_TO_1, (0.0, 1.0): Op.RELU_0_TO_1}.get((lo, hi))
        if opcode is None:
            raise ModelError(f"Clip {node.name!r}: only ranges (0, 6), (-1, 1) and (0, 1) are supported")
        self._activation(node, opcode)

    def _activation(self, node: onnx.NodeProto, opcode: int, options: str | None = None, **opts) -> None:
        x = self._act(node.input[0])
        qp_out, _, out_name = self._output_grid(node, fuse=False)
        out = self._new_act(out_name, x.shape, x.layout, qp_out, x.src4)
        self.fb.add_operator(opcode, [x.index], [out.index], options, version=2, **opts)
        self.vals[out_name] = out

    # ------------------------------------------------------------------ data movement

    def _op_Identity(self, node: onnx.NodeProto) -> None:
        self.vals[node.output[0]] = self.vals[node.input[0]]

    _op_Dropout = _op_Identity

    def _op_Reshape(self, node: onnx.NodeProto) -> None:
        x = self._act(node.input[0])
        shape = self._shape(node.output[0])
        name = node.output[0]
        if shape == x.shape:
            out = x
        elif x.layout == "nhwc" and len(shape) == 2 and shape == (x.shape[0], int(np.prod(x.shape[1:]))):
            n, c, h, w = _nchw4(x.shape)
            if c == 1 or h * w == 1:  # NHWC and NCHW flatten to the same order
                out = _Act(self._reshape(x.index, shape, x.qp, name), x.qp, shape, "plain")
            else:  # keep NHWC order; FC consumers permute their weights, others transpose lazily
                out = _Act(self._reshape(x.index, shape, x.qp, name), x.qp, shape, "flat", (n, c, h, w))
        elif x.layout == "cols" and len(shape) == 2 and shape == (x.shape[0], int(np.prod(x.shape[1:]))):
            # keep the column-by-column order; FC consumers permute their weights, others transpose lazily
            out = _Act(self._reshape(x.index, shape, x.qp, name), x.qp, shape, "colsflat", tuple(x.shape))
        elif (x.layout == "nhwc" and len(shape) in (3, 4) and shape[:2] == x.shape[:2]):
            # only spatial dimensions change: NHWC bytes stay in order
            out = _Act(self._reshape(x.index, _stored_shape(shape, "nhwc"), x.qp, name), x.qp, shape, "nhwc")
        else:
            p = self._plain(x)
            keeps_batch = shape[0] == x.shape[0] and not (len(shape) == 1 or len(x.shape) == 1)
            out = _Act(self._reshape(p.index, shape, x.qp, name, 0 if keeps_batch else None), x.qp, shape, "plain")
        self.vals[name] = out

    _op_Flatten = _op_Reshape
    _op_Squeeze = _op_Reshape
    _op_Unsqueeze = _op_Reshape

    def _op_Transpose(self, node: onnx.NodeProto) -> None:
        x = self._plain(self._act(node.input[0]))
        perm = tuple(int(p) for p in _attrs(node).get("perm", list(reversed(range(len(x.shape))))))
        index = self._permute(x.index, x.shape, perm, x.qp, node.output[0])
        self.vals[node.output[0]] = _Act(index, x.qp, tuple(x.shape[p] for p in perm), "plain")

    def _pad(self, x: _Act, stored_pads: list[tuple[int, int]], name: str, layout: str = "nhwc") -> _Act:
        """PAD of the stored tensor with the zero point; ``layout`` "nhwc" or "cols" (rank 4), as ``x`` is stored.
        Column by column with pixels of fewer than 8 channels, the PAD works on the (N, W, H*C) view, whole
        rows of bytes: XNNPACK's PAD of gesture_cnn's 3-channel input cost ~50 us per call as 4-D (measured;
        with 16 channels the 4-D PAD is the cheaper, by ~1.5 us on gesture_crnn)."""
        shape = tuple(d + a + b for d, (a, b) in zip(self.fb.shape(x.index), stored_pads))
        out = self.fb.add_tensor(name + "/pad", shape, np.int8, x.qp)
        if layout == "cols" and tuple(stored_pads[3]) == (0, 0) and tuple(stored_pads[0]) == (0, 0) and shape[3] < 8:
            n, w, h, c = self.fb.shape(x.index)
            flat = self._reshape(x.index, (n, w, h * c), x.qp, name + "/rows")
            padded = self.fb.add_tensor(name + "/pad3", (n, shape[1], shape[2] * c), np.int8, x.qp)
            pads3 = [(0, 0), tuple(stored_pads[1]), (stored_pads[2][0] * c, stored_pads[2][1] * c)]
            self.fb.add_operator(Op.PAD, [flat, self._int32_const(name + "/paddings", pads3)], [padded], version=2)
            self.fb.add_operator(Op.RESHAPE, [padded, self._shape_const(name + "/shape", shape)], [out])
        else:
            self.fb.add_operator(Op.PAD, [x.index, self._int32_const(name + "/paddings", stored_pads)], [out], version=2)
        if layout == "cols":
            n, w, h, c = shape
            return _Act(out, x.qp, (n, c, h, w), "cols")
        n, h, w, c = shape
        onnx_shape = (n, c, h, w) if len(x.shape) == 4 else (n, c, w)
        return _Act(out, x.qp, onnx_shape, "nhwc")

    def _op_Pad(self, node: onnx.NodeProto) -> None:
        at = _attrs(node)
        if at.get("mode", b"constant") not in (b"constant", "constant"):
            raise ModelError(f"Pad {node.name!r}: only constant padding is supported")
        x = self._act(node.input[0])
        pads = at.get("pads")
        if pads is None:
            pads = [int(p) for p in self.inits[node.input[1]].ravel()]
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            v = self.vals.get(node.input[2])
            value = float(((np.asarray(v.q, np.float64) - v.qp.zero_point) * v.qp.scale).ravel()[0]) if isinstance(
                v, _Const) else float(self.inits[node.input[2]].ravel()[0])
        if value != 0.0 or any(p < 0 for p in pads):
            raise ModelError(f"Pad {node.name!r}: only non-negative zero padding is supported")
        if len(node.input) > 3 and node.input[3]:
            raise ModelError(f"Pad {node.name!r}: the axes input is not supported")
        rank = len(x.shape)
        onnx_pads = [(pads[i], pads[i + rank]) for i in range(rank)]
        if rank in (3, 4):
            xin = self._nhwc(x)
            p4 = onnx_pads if rank == 4 else [onnx_pads[0], onnx_pads[1], (0, 0), onnx_pads[2]]
            stored = [p4[0], p4[2], p4[3], p4[1]]
            self.vals[node.output[0]] = self._pad(xin, stored, node.output[0])
        else:
            xin = self._plain(x)
            shape = tuple(d + a + b for d, (a, b) in zip(x.shape, onnx_pads))
            out = self.fb.add_tensor(node.output[0], shape, np.int8, x.qp)
            self.fb.add_operator(Op.PAD, [xin.index, self._int32_const(node.output[0] + "/paddings", onnx_pads)],
                                 [out], version=2)
            self.vals[node.output[0]] = _Act(out, x.qp, shape, "plain")

    def _op_Slice(self, node: onnx.NodeProto) -> None:
        x = self._act(node.input[0])
        rank = len(x.shape)
        get = lambda i, default: ([int(v) for v in self.inits[node.input[i]].ravel()]  # noqa: E731
                                  if len(node.input) > i and node.input[i] else default)
        starts, ends = get(1, None), get(2, None)
        if starts is None or ends is None:
            raise ModelError(f"Slice {node.name!r}: starts and ends must be constants")
        axes = get(3, list(range(len(starts))))
        steps = get(4, [1] * len(starts))
        if any(s != 1 for s in steps):
            raise ModelError(f"Slice {node.name!r}: only step 1 is supported")
        begin, size = [0] * rank, list(x.shape)
        for s, e, a in zip(starts, ends, axes):
            a = a + rank if a < 0 else a
            d = x.shape[a]
            s = min(max(s + d if s < 0 else s, 0), d)
            e = min(max(e + d if e < 0 else e, 0), d)
            begin[a], size[a] = s, max(e - s, 0)
        shape = tuple(size)
        if rank in (3, 4):
            xin = self._nhwc(x)
            b4 = begin if rank == 4 else [begin[0], begin[1], 0, begin[2]]
            s4 = size if rank == 4 else [size[0], size[1], 1, size[2]]
            sb, ss = [b4[0], b4[2], b4[3], b4[1]], [s4[0], s4[2], s4[3], s4[1]]
            layout = "nhwc"
        else:
            xin, sb, ss, layout = self._plain(x), begin, size, "plain"
        out = self._new_act(node.output[0], shape, layout, x.qp)
        if self.dynamic_batch and sb[0] == 0 and ss[0] == x.shape[0]:
            ss = [-1] + list(ss[1:])  # all of the (resizable) batch
        self.fb.add_operator(Op.SLICE, [xin.index, self._int32_const(node.output[0] + "/begin", sb),
                                        self._int32_const(node.output[0] + "/size", ss)], [out.index], version=2)
        self.vals[node.output[0]] = out

    def _op_Concat(self, node: onnx.NodeProto) -> None:
        acts = [self._act(n) for n in node.input]
        qp_out, fused, out_name = self._output_grid(node)
        rank = len(acts[0].shape)
        axis = int(_attrs(node)["axis"])
        axis = axis + rank if axis < 0 else axis
        if rank in (3, 4):
            ins, stored_axis, layout = [self._nhwc(a) for a in acts], _nhwc_axis(axis, rank), "nhwc"
        else:
            ins, stored_axis, layout = [self._plain(a) for a in acts], axis, "plain"
        ins = [a if a.qp.same_as(qp_out) else self._requantize(a, qp_out, f"{out_name}/in{i}")
               for i, a in enumerate(ins)]
        out = self._new_act(out_name, self._shape(node.output[0]), layout, qp_out)
        self.fb.add_operator(Op.CONCATENATION, [a.index for a in ins], [out.index], "ConcatenationOptions",
                             version=2, Axis=stored_axis, FusedActivationFunction=fused)
        self.vals[out_name] = out


def _pack_row_pairs(W: np.ndarray, plan: dict, sh: int, pt: int) -> np.ndarray:
    """Weights (m*O, taps, kw, 2*C) of a convolution ``W`` (O, C, kh, kw) on row pairs (see
    ``_Converter._row_pair_conv``): tap ``a``, row ``r`` of the pair holds original row
    ``k = (a + tmin)*2 + r + off - sh*t + pt`` for output row ``t`` of the ``m`` per pair, 0 outside the kernel."""
    m, off, tmin, taps = plan["m"], plan["off"], plan["tmin"], plan["taps"]
    O, c, kh, kw = W.shape
    packed = np.zeros((m, O, taps, kw, 2, c), np.int8)
    for t in range(m):
        for a in range(taps):
            for r in range(2):
                k = (a + tmin) * 2 + r + off - sh * t + pt
                if 0 <= k < kh:
                    packed[t, :, a, :, r, :] = W[:, :, k, :].transpose(0, 2, 1)
    return packed.reshape(m * O, taps, kw, 2 * c)


def _bcast(qp: QuantParams, ndim: int, zp: bool = False) -> np.ndarray:
    v = (qp.zero_point if zp else qp.scale).astype(np.float64)
    if qp.per_tensor:
        return v.reshape(())
    shape = [1] * ndim
    shape[qp.axis] = -1
    return v.reshape(shape)


def _out_size(n: int, k: int, s: int, padding: int, d: int = 1) -> int:
    if padding == Padding.SAME:
        return -(-n // s)
    return (n - (k - 1) * d - 1) // s + 1


def _same_pads(in_hw, ks, strides, dil) -> list[int]:
    """[top, left, bottom, right] of TFLite's SAME padding (the extra row or column goes below/right)."""
    same = []
    for n, k, s, d in zip(in_hw, ks, strides, dil):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        same.append((total // 2, total - total // 2))
    return [same[0][0], same[1][0], same[0][1], same[1][1]]


def _padding_mode(in_hw, ks, strides, dil, pads, auto_pad) -> tuple[int, list[int] | None]:
    """(TFLite padding, explicit pads [top, left, bottom, right] still to apply or None)."""
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    same_pads = _same_pads(in_hw, ks, strides, dil)
    if auto_pad == "SAME_UPPER":
        return Padding.SAME, None
    if auto_pad == "SAME_LOWER":
        pads = same_pads[2:] + same_pads[:2]
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    if not any(pads):
        return Padding.VALID, None
    if list(pads) == same_pads:
        return Padding.SAME, None
    return Padding.VALID, list(pads)


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # onnx raises several types for malformed graphs
        raise ModelError(f"ONNX shape inference failed: {exc}") from exc


def _fold_shape_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace integer-valued nodes computable from constants (Shape, Gather, Concat, Cast... that
    legacy torch exports use for pads and shapes) by initializers, so shape inference sees them."""
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes, types = {}, {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        types[vi.name] = t.elem_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = [d.dim_value for d in t.shape.dim]
    int_types = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
    keep = []
    for node in g.node:
        folded = None
        if node.op_type == "Constant":
            folded = [numpy_helper.to_array(_attrs(node)["value"])] if "value" in _attrs(node) else None
        elif node.op_type == "Shape" and node.input[0] in shapes:
            at = _attrs(node)
            shape = np.array(shapes[node.input[0]], np.int64)
            folded = [shape[at.get("start", 0):at.get("end", len(shape))]]
        elif all(types.get(o) in int_types for o in node.output) and all(not n or n in consts for n in node.input):
            try:
                folded = ReferenceEvaluator(node).run(None, {n: consts[n] for n in node.input if n})
            except Exception:  # an op the reference runtime lacks: leave it in the graph
                folded = None
        if folded is None:
            keep.append(node)
            continue
        for name, value in zip(node.output, folded):
            consts[name] = np.asarray(value)
            g.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    del g.node[:]
    g.node.extend(keep)
    return model


def _symbolic_batch(model: onnx.ModelProto, input_shapes: dict | None) -> bool:
    """True when every graph input has a symbolic first (batch) dimension not fixed by ``input_shapes``."""
    inits = {i.name for i in model.graph.initializer}
    dims = [i.type.tensor_type.shape.dim for i in model.graph.input
            if i.name not in inits and i.name not in (input_shapes or {})]
    return bool(dims) and all(len(d) and not d[0].HasField("dim_value") for d in dims) and not input_shapes


def _with_static_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None) -> onnx.ModelProto:
    """Copy of ``model`` with the given input shapes; other symbolic dimensions become 1 (batch 1)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    input_shapes = dict(input_shapes or {})
    names = {i.name for i in model.graph.input}
    unknown = set(input_shapes) - names
    if unknown:
        raise ModelError(f"input_shapes names {sorted(unknown)} are not inputs of the model ({sorted(names)})")
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in input_shapes:
            shape = tuple(int(d) for d in input_shapes[inp.name])
            if len(shape) != len(dims) or any(d.HasField("dim_value") and d.dim_value != v for d, v in zip(dims, shape)):
                raise ModelError(f"input_shapes[{inp.name!r}] = {list(shape)} does not fit the model's input "
                                 f"{[d.dim_value if d.HasField('dim_value') else d.dim_param for d in dims]}")
            for d, v in zip(dims, shape):
                d.dim_value = v
            continue
        for d in dims:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    for out in model.graph.output:  # let inference recompute output shapes
        for d in out.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.ClearField("dim_param")
    return model


def convert_qdq_model(model: onnx.ModelProto, io_dtype: str = "int8",
                      input_shapes: dict[str, tuple[int, ...]] | None = None, pair_rows: bool = True,
                      input_layout: str = "onnx") -> bytes:
    """Translate a QDQ INT8 ONNX model into ``.tflite`` flatbuffer bytes (see module docstring).

    ``input_shapes`` fixes symbolic input dimensions (e.g. a streaming block length); the rest become 1.
    ``pair_rows=False`` turns off the row-pair packing of a first convolution on few input channels
    (identical outputs either way; the packing is faster on XNNPACK, see ``docs/tflite-export.md``).
    ``input_layout="nwhc"`` takes rank-4 ``(N, C, H, W)`` inputs as ``(N, W, H, C)`` (the ONNX array
    ``.transpose(0, 3, 2, 1)``; metadata key :data:`INPUT_LAYOUT_METADATA`): the same outputs for the
    transposed input, without the input TRANSPOSE.
    """
    if io_dtype not in ("int8", "float32"):
        raise ModelError(f"io_dtype must be 'int8' or 'float32', got {io_dtype!r}")
    if input_layout not in INPUT_LAYOUTS:
        raise ModelError(f"input_layout must be one of {', '.join(INPUT_LAYOUTS)}, got {input_layout!r}")
    return _Converter(model, io_dtype, input_shapes, pair_rows=pair_rows, input_layout=input_layout).run()
