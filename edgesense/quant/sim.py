"""Quantization simulation: a captured model run with fake-quant at exactly the points integer runtimes quantize.

:class:`QuantSim` captures a float model (:func:`edgesense.quant.graph.capture`, BatchNorm folded),
places quantizers the way a QDQ INT8 graph does and runs it:

* weights: symmetric per output channel (or per tensor, as the target says) on [-127, 127];
* biases: int32 with ``scale = s_in * s_w`` (float32 product) and zero point 0;
* activations: asymmetric per tensor on the model input, after every conv/linear/add -- after the
  ReLU/ReLU6 that follows it when it is the only consumer (the runtimes fuse it) -- and after a
  standalone ReLU; pooling and reshapes re-quantize on their input's grid (TFLite's int8 kernels
  need equal in/out parameters); softmax output is fixed at scale 1/256.

Rounding is half to even everywhere (ONNX ``QuantizeLinear``); ``lower()`` hands the integer
weights and every :class:`~edgesense.quant.encoding.Encoding` to the exporters and to the numpy
integer simulation (:mod:`edgesense.quant.integer`), so what is simulated is what is exported.

Calibration is a context manager::

    sim = QuantSim(model, example, target="ort-cpu", config=QuantConfig(activations=AnalyzerConfig("mse")))
    with calibration(sim):
        for x in calib_batches:
            sim(x)
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgesense.errors import EdgesenseError
from edgesense.quant.analyzers import AnalyzerConfig
from edgesense.quant.encoding import Encoding
from edgesense.quant.functional import ste_round
from edgesense.quant.graph import OpNode, capture
from edgesense.quant.quantizers import (ActQuantizerPerTensorAsym, FixedQuantizer, QuantizerBase, TiedQuantizer,
                                        WeightQuantizerPerChannelSym)
from edgesense.quant.target import TargetProfile, get_target

__all__ = ["QuantConfig", "QuantSim", "QuantLayer", "LoweredOp", "LoweredGraph", "calibration"]

_INT32 = (-(2 ** 31), 2 ** 31 - 1)


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize: range setting for activations and weights, and the QAT range parameterisation."""

    activations: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    weights: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    range_param: str = "minmax"          # "minmax" (default), "scale_offset" or "beta_gamma"


class QuantLayer(nn.Module):
    """A conv or linear layer (BN folded) with its weight quantizer and int32 bias quantization."""

    def __init__(self, node: OpNode, target: TargetProfile, cfg: QuantConfig) -> None:
        super().__init__()
        m = node.module
        self.kind, self.attrs = node.kind, dict(node.attrs)
        self.weight = nn.Parameter(m.weight.detach().clone())
        bias = m.bias.detach().clone() if m.bias is not None else torch.zeros(m.weight.shape[0])
        self.bias = nn.Parameter(bias)
        self.weight_quantizer = WeightQuantizerPerChannelSym(target.weight_bitwidth, target.per_channel_weights,
                                                             cfg.weights, m.weight.shape[0])
        self.weight_quantizer.set_range_from(self.weight)
        self._input_quantizer: list[QuantizerBase] = []

    @property
    def input_quantizer(self) -> QuantizerBase | None:
        return self._input_quantizer[0] if self._input_quantizer else None

    def bias_scale(self) -> torch.Tensor:
        """float32 ``s_in * s_w`` per output channel."""
        s_in, _ = self.input_quantizer.scale_zero_point()
        s_w, _ = self.weight_quantizer.scale_zero_point()
        return (s_in.float() * s_w.float()).expand(self.weight.shape[0])

    def quantized_bias(self) -> torch.Tensor:
        bs = self.bias_scale()
        q = torch.clamp(ste_round(self.bias.double() / bs.double()), *_INT32)
        return (q * bs.double()).to(self.bias.dtype)

    def forward(self, x: torch.Tensor, quantize: bool) -> torch.Tensor:
        w, b = self.weight, self.bias
        if quantize:
            w = self.weight_quantizer(w)
            iq = self.input_quantizer
            if iq is not None and iq.enabled and iq.initialized:
                b = self.quantized_bias()
        w, b = w.to(x.dtype), b.to(x.dtype)
        if self.kind == "linear":
            return F.linear(x, w, b)
        a = self.attrs
        n = a["dims"]
        pads = a["pads"]
        if any(pads):
            spec: list[int] = []
            for d in reversed(range(n)):
                spec += [pads[d], pads[n + d]]
            x = F.pad(x, spec)
        conv = F.conv1d if n == 1 else F.conv2d
        return conv(x, w, b, stride=a["stride"], dilation=a["dilation"], groups=a["groups"])


@dataclass
class LoweredOp:
    """One op of the quantized graph as exporters see it (numpy only)."""

    kind: str
    name: str
    inputs: list[str]
    attrs: dict
    shape: tuple[int, ...]
    out_encoding: Encoding | None            # None: not quantized here (fused into the following ReLU)
    weight: np.ndarray | None = None         # folded float weight
    bias: np.ndarray | None = None           # folded float bias
    weight_q: np.ndarray | None = None       # int8
    weight_encoding: Encoding | None = None
    bias_q: np.ndarray | None = None         # int32
    bias_encoding: Encoding | None = None


@dataclass
class LoweredGraph:
    """The whole quantized graph: ops in execution order, input and output tensor names, target."""

    ops: list[LoweredOp]
    input: str
    outputs: list[str]
    target: TargetProfile
    input_shape: tuple[int, ...]
    inputs: list[str] = field(default_factory=list)          # every graph input, in order

    def input_encoding(self, k: int = 0) -> Encoding | None:
        """Grid of graph input ``k`` (what an int8-I/O runtime expects)."""
        name = (self.inputs or [self.input])[k]
        return self.op(name).out_encoding

    def op(self, name: str) -> LoweredOp:
        return next(o for o in self.ops if o.name == name)

    def encodings(self) -> dict[str, Encoding]:
        """Every activation encoding by tensor name, plus ``<layer>.weight`` and ``<layer>.bias``."""
        out: dict[str, Encoding] = {}
        for o in self.ops:
            if o.out_encoding is not None:
                out[o.name] = o.out_encoding
            if o.weight_encoding is not None:
                out[o.name + ".weight"] = o.weight_encoding
                out[o.name + ".bias"] = o.bias_encoding
        return out


def _slice(a, attrs: dict):
    """ONNX Slice semantics on a tensor or array (negative and out-of-range bounds clamped)."""
    idx = [slice(None)] * a.ndim
    for st, en, ax, sp in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        dim = a.shape[ax]
        st = max(0, st + dim) if st < 0 else min(st, dim)
        en = max(0, en + dim) if en < 0 else min(en, dim)
        idx[ax] = slice(st, en, sp)
    return a[tuple(idx)]


def _key(name: str) -> str:
    return name.replace(".", "_").replace(":", "_")


class QuantSim(nn.Module):
    """A float model with INT8 fake quantization for one :class:`TargetProfile`."""

    def __init__(self, model: nn.Module | None, example_input: torch.Tensor | None,
                 target: str | TargetProfile = "ort-cpu", config: QuantConfig | None = None,
                 nodes: list[OpNode] | None = None) -> None:
        super().__init__()
        self.target = get_target(target)
        self.config = config or QuantConfig()
        if nodes is None:
            was_training = model.training
            self.nodes = capture(copy.deepcopy(model), example_input)
            model.train(was_training)
            self.input_shape = tuple(example_input.shape)
        else:
            self.nodes = nodes
            self.input_shape = tuple(nodes[0].shape)
        self.input_shapes = [tuple(nd.shape) for nd in self.nodes if nd.kind == "input"]
        if nodes is None:
            self.input_shapes = [self.input_shape]
        self.layers = nn.ModuleDict()
        self.act_quantizers = nn.ModuleDict()
        self.tied: dict[str, TiedQuantizer] = {}
        self.grid_of: dict[str, QuantizerBase] = {}   # tensor -> quantizer whose grid it is on
        self.quantize = True
        self._calibrating = False
        users: dict[str, list[OpNode]] = {}
        for nd in self.nodes:
            for i in nd.inputs:
                users.setdefault(i, []).append(nd)
        t = self.target
        graph_inputs = {nd.name for nd in self.nodes if nd.kind == "input"}
        # a graph input consumed only by Concat next to a computed tensor (a streaming state) is put on that
        # tensor's grid, so the state round-trips through int8 exactly and Concat needs no requantization
        state_partner: dict[str, str] = {}
        for name in graph_inputs:
            us = users.get(name, [])
            if us and all(u.kind == "concat" for u in us):
                others = [i for i in us[0].inputs if i not in graph_inputs]
                if others:
                    state_partner[name] = others[0]
        deferred: list[str] = []
        for nd in self.nodes:
            if nd.kind in ("conv", "linear"):
                layer = QuantLayer(nd, t, self.config)
                if nd.inputs[0] in self.grid_of:
                    layer._input_quantizer.append(self.grid_of[nd.inputs[0]])
                self.layers[_key(nd.name)] = layer
            fused = (nd.kind in ("conv", "linear", "add") and len(users.get(nd.name, [])) == 1
                     and users[nd.name][0].kind in ("relu", "relu6"))
            if nd.kind == "input" and nd.name in state_partner:
                deferred.append(nd.name)
            elif nd.kind in ("input", "conv", "linear", "add", "relu", "relu6") and not fused:
                q = ActQuantizerPerTensorAsym(t.activation_bitwidth, t.activation_dtype, self.config.activations,
                                              self.config.range_param)
                self.act_quantizers[_key(nd.name)] = q
                self.grid_of[nd.name] = q
            elif nd.kind == "softmax":
                q = FixedQuantizer.softmax_output(t.activation_dtype)
                self.act_quantizers[_key(nd.name)] = q
                self.grid_of[nd.name] = q
            elif nd.kind in ("maxpool", "avgpool", "gap", "reshape", "slice", "concat"):
                cands = [i for i in nd.inputs if i not in state_partner] if nd.kind == "concat" else nd.inputs[:1]
                src = self.grid_of.get(cands[0]) if cands else None
                if src is None:
                    raise EdgesenseError(f"{nd.kind} {nd.name} has an unquantized input")
                self.tied[nd.name] = TiedQuantizer(src)
                self.grid_of[nd.name] = src
        for name in deferred:
            src = self.grid_of.get(state_partner[name])
            if src is None:
                raise EdgesenseError(f"state input {name} feeds a Concat with an unquantized partner")
            self.tied[name] = TiedQuantizer(src)
            self.grid_of[name] = src

    @classmethod
    def from_onnx(cls, path, target: str | TargetProfile = "ort-cpu", config: QuantConfig | None = None) -> "QuantSim":
        """A simulation of a float ONNX model (see :mod:`edgesense.quant.onnx_import`); I/O names kept."""
        from edgesense.quant.onnx_import import import_onnx

        fm = import_onnx(path)
        sim = cls(None, None, target, config, nodes=fm.nodes)
        sim.io_names = (fm.input_names, fm.output_names)
        sim.io_dims = (fm.input_dims, fm.output_dims)
        sim.source_metadata = fm.metadata
        return sim

    io_names: tuple[list[str], list[str]] | None = None
    io_dims: tuple[list[list], list[list]] | None = None
    source_metadata: dict[str, str] | None = None

    # -- running -------------------------------------------------------------------------------

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs, _ = self.forward_all(*xs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def forward_all(self, *xs: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Outputs and every tensor of the graph by name (after its quantizer, when it has one).

        One positional tensor per graph input, in the model's input order.
        """
        n_in = sum(1 for nd in self.nodes if nd.kind == "input")
        if len(xs) != n_in:
            raise EdgesenseError(f"the model has {n_in} inputs, got {len(xs)}")
        env: dict[str, torch.Tensor] = {}
        quant = self.quantize and not self._calibrating
        outputs = []
        for nd in self.nodes:
            if nd.kind == "output":
                outputs.append(env[nd.inputs[0]])
                continue
            y = self._run_op(nd, env, xs[nd.attrs.get("index", 0)] if nd.kind == "input" else None, quant)
            key = _key(nd.name)
            if key in self.act_quantizers:
                y = self.act_quantizers[key](y) if (quant or self._calibrating) else y
            elif nd.name in self.tied and quant:
                y = self.tied[nd.name](y)
            env[nd.name] = y
        return outputs, env

    def _run_op(self, nd: OpNode, env: dict, x: torch.Tensor, quant: bool) -> torch.Tensor:
        k = nd.kind
        if k == "input":
            return x
        a = env[nd.inputs[0]]
        if k in ("conv", "linear"):
            return self.layers[_key(nd.name)](a, quant)
        if k == "relu":
            return F.relu(a)
        if k == "relu6":
            return F.relu6(a)
        if k == "add":
            return a + env[nd.inputs[1]]
        if k in ("maxpool", "avgpool"):
            at = nd.attrs
            n = at["dims"]
            if k == "maxpool":
                fn = F.max_pool1d if n == 1 else F.max_pool2d
                return fn(a, at["kernel"], at["stride"], at["pads"][:n])
            fn = F.avg_pool1d if n == 1 else F.avg_pool2d
            return fn(a, at["kernel"], at["stride"], at["pads"][:n], count_include_pad=True)
        if k == "gap":
            return a.mean(dim=tuple(range(2, a.ndim)), keepdim=True)
        if k == "reshape":
            return a.reshape(a.shape[0], *nd.shape[1:])
        if k == "softmax":
            return F.softmax(a, dim=nd.attrs["dim"])
        if k == "concat":
            return torch.cat([env[i] for i in nd.inputs], dim=nd.attrs["axis"])
        if k == "slice":
            return _slice(a, nd.attrs)
        raise EdgesenseError(f"unknown op kind {k}")

    # -- state ---------------------------------------------------------------------------------

    def quantizers(self) -> Iterator[tuple[str, QuantizerBase]]:
        """Every activation and weight quantizer by tensor name (weights as ``<layer>.weight``)."""
        for nd in self.nodes:
            key = _key(nd.name)
            if key in self.act_quantizers:
                yield nd.name, self.act_quantizers[key]
            if key in self.layers:
                yield nd.name + ".weight", self.layers[key].weight_quantizer

    def train(self, mode: bool = True) -> "QuantSim":
        """QAT mode: weight ranges follow the live weights while training."""
        super().train(mode)
        for layer in self.layers.values():
            layer.weight_quantizer.track = mode
        if not mode:
            self.refresh_weight_ranges()
        return self

    def refresh_weight_ranges(self) -> None:
        """Re-run the weight analyzers on the current weights (after QAT, CLE, bias correction)."""
        with torch.no_grad():
            for layer in self.layers.values():
                layer.weight_quantizer.set_range_from(layer.weight)

    def float_model(self) -> "QuantSim":
        """A copy with quantization off: the BN-folded float model."""
        fm = copy.deepcopy(self)
        fm.quantize = False
        return fm

    # -- lowering --------------------------------------------------------------------------------

    def lower(self, quantized: bool = True) -> LoweredGraph:
        """The graph with integer weights and encodings, for the exporters and the integer simulation.

        ``quantized=False`` gives the folded float graph only (no calibration needed).
        """
        ops: list[LoweredOp] = []
        outputs: list[str] = []
        inputs: list[str] = []
        for nd in self.nodes:
            if nd.kind == "output":
                outputs.append(nd.inputs[0])
                continue
            if nd.kind == "input":
                inputs.append(nd.name)
            key = _key(nd.name)
            enc = None
            if not quantized:
                pass
            elif key in self.act_quantizers:
                q = self.act_quantizers[key]
                if isinstance(q, ActQuantizerPerTensorAsym) and not q.initialized:
                    raise EdgesenseError("the simulation is not calibrated; run it inside calibration(sim) first")
                enc = q.encoding()
            elif nd.name in self.tied:
                enc = self.tied[nd.name].encoding()
            op = LoweredOp(nd.kind, nd.name, list(nd.inputs), dict(nd.attrs), tuple(nd.shape), enc)
            if key in self.layers and not quantized:
                layer = self.layers[key]
                op.weight = layer.weight.detach().float().cpu().numpy()
                op.bias = layer.bias.detach().float().cpu().numpy()
            elif key in self.layers:
                layer = self.layers[key]
                wq = layer.weight_quantizer
                wenc = wq.encoding()
                w = layer.weight.detach().float().cpu().numpy()
                op.weight, op.bias = w, layer.bias.detach().float().cpu().numpy()
                op.weight_encoding, op.weight_q = wenc, wenc.quantize(w)
                with torch.no_grad():
                    bs = layer.bias_scale().float().cpu().numpy()
                op.bias_encoding = Encoding(bs, np.zeros_like(bs, dtype=np.int64), 0, "int32", 32, True)
                op.bias_q = np.clip(np.rint(op.bias.astype(np.float64) / bs.astype(np.float64)),
                                    *_INT32).astype(np.int32)
            ops.append(op)
        return LoweredGraph(ops, inputs[0], outputs, self.target, self.input_shape, inputs)

    def encodings(self) -> dict[str, Encoding]:
        return self.lower().encodings()


@contextlib.contextmanager
def calibration(sim: QuantSim) -> Iterator[QuantSim]:
    """Inside: forward passes run in float and feed the activation analyzers. On exit: ranges are set.

    Weight ranges are (re)computed from the current weights with the configured weight analyzer.
    """
    acts = [q for q in sim.act_quantizers.values() if isinstance(q, ActQuantizerPerTensorAsym)]
    for q in acts:
        q.analyzer.reset()
        q.calibrating = True
    sim._calibrating = True
    ok = False
    try:
        with torch.no_grad():
            yield sim
        ok = True
    finally:
        sim._calibrating = False
        for q in acts:
            q.calibrating = False
    if ok:
        for q in acts:
            q.init_from_analyzer()
        sim.refresh_weight_ranges()


def calibrate_streaming(sim: QuantSim, signals: Iterable[torch.Tensor], block: int, axis: int = -1) -> QuantSim:
    """Calibrate a streaming model (inputs: signal block, then states; outputs: y, then ``<state>_out``).

    Each signal ``(N, C, T)`` is cut into blocks of ``block`` steps along ``axis``; states start at zero
    and every ``<name>_out`` output is fed back as input ``<name>``, as a streaming runtime does.
    """
    if sim.io_names is None:
        raise EdgesenseError("streaming calibration needs a sim built with QuantSim.from_onnx")
    in_names, out_names = sim.io_names
    feedback = {o: in_names.index(o[: -len("_out")]) for o in out_names if o.endswith("_out")
                and o[: -len("_out")] in in_names}
    with calibration(sim):
        for sig in signals:
            states = [torch.zeros((sig.shape[0], *shp[1:])) for shp in sim.input_shapes[1:]]
            for t0 in range(0, sig.shape[axis] - block + 1, block):
                outs = sim(sig.narrow(axis, t0, block), *states)
                outs = outs if isinstance(outs, tuple) else (outs,)
                for o_name, value in zip(out_names, outs):
                    if o_name in feedback:
                        states[feedback[o_name] - 1] = value
    return sim


def calibrate(sim: QuantSim, batches: Iterable[torch.Tensor]) -> QuantSim:
    """Run ``batches`` (tensors, or (input, target) pairs) through ``sim`` inside :func:`calibration`."""
    with calibration(sim):
        for b in batches:
            sim(b[0] if isinstance(b, (tuple, list)) else b)
    return sim
