"""Streaming split of an INT8 ``.tflite`` window model at its first convolution's output.

A gesture model sees a window ``(1, C, H, T)`` of the last ``T`` frames, time on the last axis, and
the window moves on by whole columns: the columns already in it never change. Its first convolution
(stride 1 and no dilation along time, ``kw`` columns wide, ``PL`` / ``PR`` columns of padding left
and right) therefore needs only a few output columns recomputed when ``n`` new columns arrive: the
``PL`` leftmost ones (they lost a left neighbour to the padding) and the ``n + PR`` rightmost ones;
every other output column is the previous frame's, ``n`` places further left.

:func:`plan_split` finds that structure in a model read by
:func:`~edgesense.quant.tflite.flatbuffer.read_model` (input -> PAD / RESHAPE / TRANSPOSE chain ->
CONV_2D -> rest, as the exporter writes both the plain and the row-pair-packed first convolution)
and :func:`step_graph` writes, with the :class:`~edgesense.quant.tflite.flatbuffer.ModelBuilder`, one
graph per number of new columns:

* the same chain and convolution on a **slab** of the window's columns, without padding along time
  (the slab carries the input zero point where the whole graph pads -- the value TFLite's padding
  stands for), so its outputs are the changed columns (:func:`column_graph`);
* SLICEs of those and of the previous step's conv output (a second input, ``kept``), joined along
  time by one CONCATENATION: this step's conv output, on the whole graph's own int8 grid, which is
  also returned as a second output;
* the rest of the model on it, unchanged.

:class:`SplitModel` feeds the slab and the kept conv output and keeps the new one. The convolution
sums the same integers with the same weights and requantizes them alike, so the outputs are
bit-identical to the whole graph's (``tests/quant/tflite/test_split.py``). One graph per step
rather than a column graph and a rest graph: measured, two interpreters cost ~13 us more per frame
with warm caches and ~33 us more with cold ones (docs/radar-pipeline.md). A model that does not fit
the pattern raises :class:`SplitUnsupported` with the reason, and callers run the whole graph.

Needs ``flatbuffers`` and ``tflite`` (the ``train`` extra) to cut the graph, ``ai-edge-litert`` to run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesense.errors import ModelError
from edgesense.quant.tflite.flatbuffer import ModelBuilder, read_model

__all__ = ["SplitUnsupported", "SplitPlan", "plan_split", "column_graph", "step_graph", "SplitModel"]

# builtin operator codes of the TFLite schema
_CONCATENATION, _CONV_2D, _PAD, _RESHAPE, _SLICE, _TRANSPOSE = 2, 3, 34, 22, 65, 39
_CHAIN_OPS = {_PAD, _RESHAPE, _TRANSPOSE}
_SAME, _VALID = 0, 1   # Padding enum
_EXACT = 2             # SplitModel: a step graph of its own for each number of new columns up to this


class SplitUnsupported(ModelError):
    """The model does not have the shape a streaming split needs (the message says why)."""


@dataclass(frozen=True)
class SplitPlan:
    """Where and how a model splits (indices into the :class:`ModelBuilder` it was planned on)."""

    conv: int                    # operator index of the first CONV_2D
    split: int                   # operator whose output is kept: the first CONV_2D or a column-local op after it
    time: int                    # T, columns of the window (input's last axis)
    kernel: int                  # kw, the convolution's width along time
    left: int                    # PL, padding columns before the window (PAD ops and SAME together)
    right: int                   # PR, after it
    rows_pad: tuple[int, int]    # the convolution's own SAME padding of its rows (top, bottom)
    time_axes: tuple[int, ...]   # the time axis of each chain operator's output

    @property
    def pad(self) -> int:
        """Zero-point columns between the right and the left slab (shared by both)."""
        return max(self.left, self.right)

    def width(self, new: int) -> int:
        """Slab width for ``new`` new columns (``new >= full_from``: the whole window, padded)."""
        k = self.kernel - 1
        if new >= self.full_from:
            return self.time + k
        return new + 2 * k + self.pad

    @property
    def full_from(self) -> int:
        """The number of new columns from which the whole window is recomputed (one padded slab)."""
        k = self.kernel - 1
        return max(1, self.time + k - 2 * k - self.pad)


def _const(fb: ModelBuilder, index: int) -> np.ndarray | None:
    t = fb.tensors[index]
    if not t.buffer:
        return None
    return np.frombuffer(fb.buffers[t.buffer], t.dtype).reshape(t.shape)


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding (before, after) of one axis."""
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def plan_split(fb: ModelBuilder) -> SplitPlan:
    """Where ``fb`` splits (its first convolution, or the last column-local operator after it), or
    :class:`SplitUnsupported` saying why it does not."""
    if len(fb.inputs) != 1:
        raise SplitUnsupported(f"{len(fb.inputs)} inputs (a split needs one window input)")
    x = fb.tensors[fb.inputs[0]]
    if x.dtype != np.int8 or x.quant is None or len(x.shape) != 4 or x.shape[0] != 1:
        raise SplitUnsupported(f"input {x.name!r} is {x.dtype} {list(x.shape)}, not an int8 (1, C, H, T) window")
    time = x.shape[3]
    conv = next((k for k, op in enumerate(fb.operators) if op.opcode == _CONV_2D), None)
    if conv is None:
        raise SplitUnsupported("no CONV_2D operator")
    chain = [fb.inputs[0]]        # tensors from the input to the convolution's input
    axis, size, left, right, axes = 3, time, 0, 0, []
    for k in range(conv):
        op = fb.operators[k]
        if op.opcode not in _CHAIN_OPS:
            raise SplitUnsupported(f"operator {k} before the first convolution is not PAD/RESHAPE/TRANSPOSE")
        if op.inputs[0] != chain[-1] or any(_const(fb, i) is None for i in op.inputs[1:]) or len(op.outputs) != 1:
            raise SplitUnsupported(f"operator {k} before the first convolution is not a single chain from the input")
        src, out = fb.tensors[op.inputs[0]], fb.tensors[op.outputs[0]]
        if op.opcode == _PAD:
            pads = _const(fb, op.inputs[1])
            left, right = left + int(pads[axis, 0]), right + int(pads[axis, 1])
            size += int(pads[axis].sum())
        elif op.opcode == _TRANSPOSE:
            axis = [int(p) for p in _const(fb, op.inputs[1])].index(axis)
        else:   # RESHAPE: the time axis must survive as one axis with the same elements inside and outside it
            inner = int(np.prod(src.shape[axis + 1:]))
            cands = [a for a in range(len(out.shape)) if out.shape[a] == size
                     and int(np.prod(out.shape[a + 1:])) == inner]
            if len(cands) != 1:
                raise SplitUnsupported(f"RESHAPE {list(src.shape)} -> {list(out.shape)} does not keep the time axis")
            axis = cands[0]
        if out.shape[axis] != size:
            raise SplitUnsupported(f"operator {k} changes the time axis ({out.shape[axis]} != {size})")
        axes.append(axis)
        chain.append(op.outputs[0])
    op = fb.operators[conv]
    o = op.options
    xin, w, y = fb.tensors[op.inputs[0]], fb.tensors[op.inputs[1]], fb.tensors[op.outputs[0]]
    if op.inputs[0] != chain[-1] or axis != 2 or len(xin.shape) != 4:
        raise SplitUnsupported("the first convolution does not read the window's columns along its width")
    if o.get("StrideW", 1) != 1 or o.get("DilationWFactor", 1) != 1:
        raise SplitUnsupported("the first convolution strides or dilates along time")
    if w.buffer == 0 or y.dtype != np.int8 or y.quant is None or not y.quant.per_tensor:
        raise SplitUnsupported("the first convolution's output is not a per-tensor int8 tensor with constant weights")
    kh, kw = w.shape[1], w.shape[2]
    rows_pad = (0, 0)
    if o.get("Padding", _SAME) == _SAME:
        pl, pr = _same_pads(size, kw, 1, 1)
        left, right = left + pl, right + pr
        rows_pad = _same_pads(xin.shape[1], kh, o.get("StrideH", 1), o.get("DilationHFactor", 1))
    if y.shape[2] != time or left + right != kw - 1:
        raise SplitUnsupported(f"the first convolution gives {y.shape[2]} columns for a window of {time}")
    chain.append(op.outputs[0])
    split = conv
    while split + 1 < len(fb.operators) and _column_local(fb, split + 1, chain[-1], time):
        split += 1           # one column of its output depends on the same column of its input only
        chain.append(fb.operators[split].outputs[0])
    chain_set = set(chain[:-1])
    for k in range(split + 1, len(fb.operators)):
        if chain_set.intersection(fb.operators[k].inputs):
            raise SplitUnsupported(f"operator {k} after the split reads the window or a tensor before the split")
    if set(chain).intersection(fb.outputs):
        raise SplitUnsupported("a model output lies before the split")
    return SplitPlan(conv, split, time, kw, left, right, rows_pad, tuple(axes))


def _column_local(fb: ModelBuilder, k: int, src: int, time: int) -> bool:
    """Whether operator ``k`` is the only reader of NHWC ``src`` and computes each output column from the
    same input column alone, into a per-tensor int8 output of ``time`` columns: a PAD of rows or channels,
    or a CONV_2D one column wide (so the split can move past it)."""
    op = fb.operators[k]
    if not op.inputs or op.inputs[0] != src or sum(src in o.inputs for o in fb.operators) != 1:
        return False
    y = fb.tensors[op.outputs[0]]
    if len(op.outputs) != 1 or y.dtype != np.int8 or y.quant is None or not y.quant.per_tensor:
        return False
    if len(y.shape) != 4 or y.shape[2] != time or any(_const(fb, i) is None for i in op.inputs[1:]):
        return False
    if op.opcode == _PAD:
        return not _const(fb, op.inputs[1])[2].any()
    if op.opcode == _CONV_2D:
        w = fb.tensors[op.inputs[1]]
        return w.shape[2] == 1 and op.options.get("StrideW", 1) == 1
    return False


def _copy(dst: ModelBuilder, fb: ModelBuilder, index: int, shape: tuple[int, ...] | None = None) -> int:
    """Tensor ``index`` of ``fb`` (constant data included) added to ``dst``; ``shape`` replaces its shape."""
    t = fb.tensors[index]
    return dst.add_tensor(t.name, shape or t.shape, t.dtype, t.quant, _const(fb, index))


def _column_builder(fb: ModelBuilder, plan: SplitPlan, width: int) -> ModelBuilder:
    """:func:`column_graph` as a :class:`ModelBuilder` (input ``columns``, output the conv columns)."""
    g = ModelBuilder(description="edgesense split")
    x = fb.tensors[fb.inputs[0]]
    cur = g.add_tensor("columns", (*x.shape[:3], width), np.int8, x.quant)
    g.inputs = [cur]
    size = width
    for k, axis in zip(range(plan.conv), plan.time_axes):
        op = fb.operators[k]
        out = fb.tensors[op.outputs[0]]
        shape = list(out.shape)
        shape[axis] = size
        if op.opcode == _PAD:
            pads = _const(fb, op.inputs[1]).copy()
            pads[axis] = 0
            if not pads.any():
                continue
            shape = [d + int(p.sum()) for d, p in zip(g.shape(cur), pads)]
            shape[axis] = size
            extra = [g.add_tensor(fb.tensors[op.inputs[1]].name, pads.shape, pads.dtype, None, pads)]
        elif op.opcode == _RESHAPE:
            extra = [g.add_tensor(fb.tensors[op.inputs[1]].name, (len(shape),), np.int32, None,
                                  np.asarray(shape, np.int32))]
        else:
            extra = [_copy(g, fb, i) for i in op.inputs[1:]]
        nxt = g.add_tensor(out.name, tuple(shape), out.dtype, out.quant)
        g.add_operator(op.opcode, [cur, *extra], [nxt], op.options_name, fb.opcodes[op.opcode], **op.options)
        cur = nxt
    op = fb.operators[plan.conv]
    if any(plan.rows_pad):   # the convolution's SAME rows, made explicit: time is VALID now
        shape = list(g.shape(cur))
        shape[1] += sum(plan.rows_pad)
        pads = np.array([[0, 0], list(plan.rows_pad), [0, 0], [0, 0]], np.int32)
        nxt = g.add_tensor("rows_padded", tuple(shape), np.int8, g.quant(cur))
        g.add_operator(_PAD, [cur, g.add_tensor("rows_padded/paddings", pads.shape, np.int32, None, pads)], [nxt],
                       version=max(2, fb.opcodes.get(_PAD, 2)))
        cur = nxt
    width -= plan.kernel - 1
    for k in range(plan.conv, plan.split + 1):   # the first convolution (VALID along time), then column-local ops
        op = fb.operators[k]
        y = fb.tensors[op.outputs[0]]
        out = g.add_tensor(y.name + "/columns", (y.shape[0], y.shape[1], width, y.shape[3]), y.dtype, y.quant)
        options = {**op.options, "Padding": _VALID} if k == plan.conv else op.options
        g.add_operator(op.opcode, [cur, *(_copy(g, fb, i) for i in op.inputs[1:])], [out], op.options_name,
                       fb.opcodes[op.opcode], **options)
        cur = out
    g.outputs = [cur]
    return g


def column_graph(fb: ModelBuilder, plan: SplitPlan, width: int) -> bytes:
    """The chain and the first convolution on a slab of ``width`` window columns, no padding along time:
    ``(1, C, H, width)`` int8 in, the convolution's ``width - kw + 1`` output columns out."""
    return _column_builder(fb, plan, width).serialize()


def step_graph(fb: ModelBuilder, plan: SplitPlan, new: int, shift: int | None = None) -> bytes:
    """One streaming step as one graph, for ``new`` new window columns (``new >= plan.full_from``: the whole window).

    Inputs ``columns`` (the slab, see :class:`SplitModel`) and, unless the whole window is recomputed,
    ``kept`` (the previous step's conv output); outputs: the model's outputs, then ``kept`` of this step.
    The new conv output is the kept one moved ``shift`` (default ``new``) columns on, with the recomputed
    columns at both ends: SLICEs and one CONCATENATION along time, then the rest of the model on it.
    ``shift=0``: ``kept`` comes already moved on, by any number of columns up to ``new`` (recomputing a
    column that did not change gives it again), so one graph serves every step of up to ``new`` columns.
    """
    shift = new if shift is None else shift
    full = new >= plan.full_from
    g = _column_builder(fb, plan, plan.width(new))
    cols = g.outputs[0]
    y = fb.tensors[fb.operators[plan.split].outputs[0]]
    if full:
        conv_out = cols
        g.rename(cols, y.name)
    else:
        t, left, right = plan.time, plan.left, plan.right
        kept = g.add_tensor("kept", y.shape, np.int8, y.quant)
        g.inputs.append(kept)
        width = g.shape(cols)[2]

        def piece(src: int, begin: int, size: int, name: str) -> int:
            shape = (y.shape[0], y.shape[1], size, y.shape[3])
            b = g.add_tensor(name + "/begin", (4,), np.int32, None, np.array([0, 0, begin, 0], np.int32))
            n = g.add_tensor(name + "/size", (4,), np.int32, None, np.array(shape, np.int32))
            out = g.add_tensor(name, shape, np.int8, y.quant)
            g.add_operator(_SLICE, [src, b, n], [out], "SliceOptions", 2)
            return out

        parts = [piece(cols, width - left, left, "left")] if left else []
        parts.append(piece(kept, left + shift, t - new - right - left, "kept/moved"))
        parts.append(piece(cols, 0, new + right, "right"))
        conv_out = g.add_tensor(y.name, y.shape, np.int8, y.quant)
        g.add_operator(_CONCATENATION, parts, [conv_out], "ConcatenationOptions", 1, Axis=2,
                       FusedActivationFunction=0)
    index = {fb.operators[plan.split].outputs[0]: conv_out}
    for op in fb.operators[plan.split + 1:]:
        for i in (*op.inputs, *op.outputs):
            if i >= 0 and i not in index:
                index[i] = _copy(g, fb, i)
        g.add_operator(op.opcode, [index.get(i, i) for i in op.inputs], [index[i] for i in op.outputs],
                       op.options_name, fb.opcodes[op.opcode], **op.options)
    g.outputs = [index[i] for i in fb.outputs] + [conv_out]
    return g.serialize()


class SplitModel:
    """A window model run one streaming step at a time, its int8 first-convolution output kept between calls.

    ``model(x, new)``: ``x`` is the whole int8 window ``(1, C, H, T)``, moved on by ``new`` columns since
    the previous call (``new >= T``, e.g. after a reset: everything recomputed); returns the model's
    first output as the whole graph would. Four step graphs (:func:`step_graph`): one each for one and
    two new columns (the steady state; a one-frame gap), one for ``3..max_new`` new columns (the kept
    output moved on in numpy first; one graph rather than one per gap length, so that it stays warm:
    measured, per-length graphs made gap frames' p99 worse than the whole graph's), and one for the whole
    window. The slab a step
    reads is the window's last ``new + PL + PR`` columns, ``max(PL, PR)`` columns of the input zero
    point, then its first ``PL + PR`` columns; the convolution over it without padding gives the
    ``new + PR`` rightmost and the ``PL`` leftmost output columns (the ones between are not used).
    """

    def __init__(self, data: bytes, threads: int = 1, max_new: int = 1) -> None:
        from edgesense.runtime.litert_backend import interpreter_class

        fb = read_model(data)
        self.plan = plan = plan_split(fb)
        interpreter = interpreter_class()
        x = fb.tensors[fb.inputs[0]]
        zp = np.int8(x.quant.zero_point[0])
        y = fb.tensors[fb.operators[plan.split].outputs[0]]
        #: the int8 output at the split (the first convolution's, or of the column-local ops after it) for the window of the last call (as the whole graph computes it)
        self.kept = np.zeros(y.shape, np.int8)
        self._out: np.ndarray | None = None
        self._steps: dict[int, tuple] = {}
        self._upto = min(max(max_new, 1), plan.full_from - 1)   # the shared graph's new columns
        self._inner = int(np.prod(y.shape[3:]))                 # elements of one kept column in one row
        for new in sorted({*range(1, min(_EXACT, self._upto) + 1), self._upto, plan.full_from}):
            shift = 0 if _EXACT < new < plan.full_from else None
            it = interpreter(model_content=step_graph(fb, plan, new, shift), num_threads=threads)
            it.allocate_tensors()
            ins = [d["index"] for d in it.get_input_details()]
            outs = {d["name"]: d["index"] for d in it.get_output_details()}
            slab = np.full((*x.shape[:3], plan.width(new)), zp, np.int8)
            self._steps[new] = (it.set_tensor, it.invoke, it.get_tensor, ins, outs[fb.tensors[fb.outputs[0]].name],
                                outs[y.name], slab)
        self._full = self._steps[plan.full_from]
        self.graphs = len(self._steps)

    def __call__(self, x: np.ndarray, new: int) -> np.ndarray:
        if new == 0 and self._out is not None:
            return self._out.copy()              # the same window: the same outputs
        p = self.plan
        if new > self._upto:
            set_tensor, invoke, get_tensor, ins, out, kept, slab = self._full
            slab[..., p.left:p.left + p.time] = x
            set_tensor(ins[0], slab)
        else:
            if new > _EXACT:   # the shared graph: every kept column new places left here (one flat memmove; the
                n = new * self._inner            # last columns of each row get the next row's, all recomputed)
                flat = self.kept.reshape(-1)
                flat[:-n] = flat[n:]
                new = self._upto
            set_tensor, invoke, get_tensor, ins, out, kept, slab = self._steps[new]
            a = new + p.kernel - 1               # the right part: the last new + PL + PR window columns
            slab[..., :a] = x[..., p.time - a:]
            slab[..., a + p.pad:] = x[..., :p.kernel - 1]   # after the zero-point columns: the first PL + PR
            set_tensor(ins[0], slab)
            set_tensor(ins[1], self.kept)
        invoke()
        self.kept = get_tensor(kept)
        self._out = get_tensor(out)
        return self._out
