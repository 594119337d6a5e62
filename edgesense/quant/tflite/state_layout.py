"""Channel-last I/O for streaming ``.tflite`` models: drop the layout shuffles around graph inputs and outputs.

The exporter keeps the ONNX shapes at the boundary, so a streaming model's ring-buffer states enter as
``(1, C, L)`` and go RESHAPE ``(1, C, 1, L)`` -> TRANSPOSE ``(1, 1, L, C)`` before their CONCATENATION, and
leave as SLICE ``(1, 1, L, C)`` -> TRANSPOSE -> RESHAPE ``(1, C, L)``. The states are opaque to their
user (:class:`edgesense.speaker.streaming.ExcursionStreamer` allocates them from the model's own shapes
and copies state outputs to state inputs), so their layout may as well be the one the graph computes
in. :func:`channel_last_states` makes such an input the tensor at the end of its RESHAPE/TRANSPOSE chain
and such an output the tensor at the start of its chain, removing the chain's operators.

Exact by construction: RESHAPE and TRANSPOSE move int8 codes and nothing else, and a chain is only
removed when every tensor on it has the same quantization grid (then the codes, re-laid out, are the
same numbers). Only the I/O layout changes: ``(1, C, L)`` arrays map to the new ``(1, 1, L, C)`` state
tensors with :func:`to_model_layout` and back with :func:`to_onnx_layout`. :func:`check_same_outputs`
runs the old and new model side by side on LiteRT and asserts bit-identical outputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tflite

from edgesense.errors import ModelError
from edgesense.quant.tflite.flatbuffer import ModelBuilder, compact, read_model

__all__ = ["LayoutChange", "channel_last_states", "channel_last_file", "to_model_layout", "to_onnx_layout",
           "check_same_outputs"]

_RESHAPE = tflite.BuiltinOperator.RESHAPE
_TRANSPOSE = tflite.BuiltinOperator.TRANSPOSE
_MOVES = (_RESHAPE, _TRANSPOSE)


@dataclass
class LayoutChange:
    """What :func:`channel_last_states` changed: I/O name -> (old shape, new shape), operators removed."""

    inputs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    outputs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    removed_ops: int = 0


def _same_grid(fb: ModelBuilder, a: int, b: int) -> bool:
    qa, qb = fb.tensors[a].quant, fb.tensors[b].quant
    if qa is None or qb is None:
        return qa is None and qb is None and fb.tensors[a].dtype == fb.tensors[b].dtype
    return fb.tensors[a].dtype == fb.tensors[b].dtype and qa.per_tensor and qb.per_tensor and qa.same_as(qb)


def _consumers(fb: ModelBuilder) -> dict[int, list[int]]:
    users: dict[int, list[int]] = {}
    for k, op in enumerate(fb.operators):
        for t in op.inputs:
            if t >= 0:
                users.setdefault(t, []).append(k)
    return users


def _producers(fb: ModelBuilder) -> dict[int, int]:
    return {t: k for k, op in enumerate(fb.operators) for t in op.outputs}


def _selected(name: str, which: str) -> bool:
    if which == "states":
        return name.startswith("state")
    return which == "all"


def _retarget(fb, io: list[int], pos: int, cur: int, chain: list[int], dead_ops: set[int], record: dict) -> None:
    """Make tensor ``cur`` the graph I/O at ``io[pos]`` under the old tensor's name, the ``chain`` of layout ops
    between them marked dead; records (old shape, new shape) under the name."""
    name = fb.tensors[io[pos]].name
    record[name] = (fb.tensors[io[pos]].shape, fb.tensors[cur].shape)
    dead_ops.update(chain)
    io[pos] = cur
    fb.tensors[cur].signature = None
    fb.rename(cur, name)


def channel_last_states(data: bytes, which: str = "states") -> tuple[bytes, LayoutChange]:
    """The model with the RESHAPE/TRANSPOSE chains at its state inputs and outputs removed (see module doc).

    ``which``: ``"states"`` (inputs named ``state*`` and outputs named ``state*_out``) or ``"all"`` (every
    graph input and output, ``x`` and ``y`` too). A chain is removed only when each of its tensors feeds
    nothing but the next operator of the chain and all share one quantization grid; anything else is
    left as it is. Returns the new flatbuffer bytes and the :class:`LayoutChange`.
    """
    if which not in ("states", "all"):
        raise ModelError(f"which must be 'states' or 'all', got {which!r}")
    fb = read_model(data)
    change = LayoutChange()
    dead_ops: set[int] = set()
    users = _consumers(fb)
    graph_io = set(fb.inputs) | set(fb.outputs)

    for pos, t in enumerate(list(fb.inputs)):
        name = fb.tensors[t].name
        if not _selected(name, which):
            continue
        cur, chain = t, []
        while len(users.get(cur, [])) == 1 and fb.operators[users[cur][0]].opcode in _MOVES:
            k = users[cur][0]
            nxt = fb.operators[k].outputs[0]
            if nxt in graph_io or not _same_grid(fb, t, nxt):
                break
            chain.append(k)
            cur = nxt
        if chain:
            _retarget(fb, fb.inputs, pos, cur, chain, dead_ops, change.inputs)

    producers = _producers(fb)
    for pos, t in enumerate(list(fb.outputs)):
        name = fb.tensors[t].name
        if not _selected(name, which) or (which == "states" and not name.endswith("_out")):
            continue
        if users.get(t):            # the output also feeds operators: keep it as it is
            continue
        cur, chain = t, []
        while cur in producers and fb.operators[producers[cur]].opcode in _MOVES:
            k = producers[cur]
            prev = fb.operators[k].inputs[0]
            if prev in graph_io or not _same_grid(fb, t, prev):
                break
            chain.append(k)
            cur = prev
            if len(users.get(cur, [])) != 1:    # feeds other operators too: it becomes the output here
                break
        if chain:
            _retarget(fb, fb.outputs, pos, cur, chain, dead_ops, change.outputs)

    change.removed_ops = len(dead_ops)
    if not dead_ops:
        return data, change
    fb.operators = [op for k, op in enumerate(fb.operators) if k not in dead_ops]
    return compact(fb).serialize(), change


def to_model_layout(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A ``(1, C, L)`` (ONNX layout) array in the model tensor's ``shape``: ``(1, 1, L, C)`` -> channel last,
    same shape -> unchanged."""
    value = np.asarray(value)
    shape = tuple(int(d) for d in shape)
    if value.shape == shape:
        return value
    if len(shape) == 4 and value.ndim == 3 and shape[:2] == (1, 1) and (shape[3], shape[2]) == value.shape[1:]:
        return np.ascontiguousarray(value.transpose(0, 2, 1)[:, None])
    raise ModelError(f"cannot lay out an array of shape {value.shape} as {shape}")


def to_onnx_layout(value: np.ndarray) -> np.ndarray:
    """A channel-last ``(1, 1, L, C)`` tensor as the ONNX model's ``(1, C, L)``; 3-D arrays unchanged."""
    value = np.asarray(value)
    if value.ndim == 3:
        return value
    if value.ndim == 4 and value.shape[:2] == (1, 1):
        return np.ascontiguousarray(value[:, 0].transpose(0, 2, 1))
    raise ModelError(f"not a channel-last (1, 1, L, C) tensor: {value.shape}")


def check_same_outputs(old: str | os.PathLike | bytes, new: str | os.PathLike | bytes,
                       feeds: Iterable[Mapping[str, np.ndarray]]) -> int:
    """Run ``old`` and ``new`` on LiteRT (XNNPACK, one thread) with the same int8 inputs (given in the old
    model's layout) and raise :class:`~edgesense.errors.ModelError` unless every output, re-laid out to
    the old layout, is bit-identical. Returns the number of values compared."""
    from edgesense.quant.tflite.parity import tflite_interpreter

    a, b = tflite_interpreter(old), tflite_interpreter(new)
    a_in = {d["name"]: d for d in a.get_input_details()}
    b_in = {d["name"]: d for d in b.get_input_details()}
    a_out = {d["name"]: d for d in a.get_output_details()}
    b_out = {d["name"]: d for d in b.get_output_details()}
    if set(a_in) != set(b_in) or set(a_out) != set(b_out):
        raise ModelError("the two models have different input or output names")
    values = 0
    for feed in feeds:
        for name, d in a_in.items():
            a.set_tensor(d["index"], np.asarray(feed[name], d["dtype"]).reshape(d["shape"]))
            b.set_tensor(b_in[name]["index"], to_model_layout(np.asarray(feed[name], d["dtype"]).reshape(d["shape"]),
                                                              b_in[name]["shape"]))
        a.invoke()
        b.invoke()
        for name, d in a_out.items():
            ya = a.get_tensor(d["index"])
            yb = b.get_tensor(b_out[name]["index"])
            yb = to_onnx_layout(yb).reshape(ya.shape) if yb.shape != ya.shape else yb
            if ya.dtype != yb.dtype or not np.array_equal(ya, yb):
                raise ModelError(f"output {name!r} differs after the layout change")
            values += ya.size
    return values


def _random_stream_feeds(data: bytes, blocks: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Int8 feeds in ``data``'s layout: random ``x`` codes and, per block, the states the model itself
    produced (one stream from zero-point state), plus a few fully random states."""
    from edgesense.quant.tflite.parity import tflite_interpreter

    it = tflite_interpreter(data)
    rng = np.random.default_rng(seed)
    ins = it.get_input_details()
    outs = {d["name"]: d for d in it.get_output_details()}
    state = {d["name"]: np.full(d["shape"], d["quantization"][1], d["dtype"]) for d in ins[1:]}
    feeds = []
    for k in range(blocks):
        x = rng.integers(-128, 128, size=ins[0]["shape"]).astype(ins[0]["dtype"])
        feed = {ins[0]["name"]: x, **state}
        if k >= blocks - 2:       # arbitrary states too: the layout change must not depend on them
            feed.update({n: rng.integers(-128, 128, size=v.shape).astype(v.dtype) for n, v in state.items()})
        feeds.append(feed)
        for d in ins:
            it.set_tensor(d["index"], feed[d["name"]])
        it.invoke()
        state = {n: it.get_tensor(outs[n + "_out"]["index"]) for n in state if n + "_out" in outs}
    return feeds


def channel_last_file(src: str | os.PathLike, dst: str | os.PathLike | None = None, *, which: str = "states",
                      check_blocks: int = 16, seed: int = 0) -> LayoutChange:
    """:func:`channel_last_states` on the file ``src``, written to ``dst`` (default: over ``src``) after
    :func:`check_same_outputs` on ``check_blocks`` streamed blocks of random inputs (0: no check)."""
    src = Path(src)
    if not src.is_file():
        raise ModelError(f"TFLite model not found: {src}")
    old = src.read_bytes()
    new, change = channel_last_states(old, which=which)
    if check_blocks and change.removed_ops:
        check_same_outputs(old, new, _random_stream_feeds(old, check_blocks, seed))
    out = Path(dst) if dst is not None else src
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(new)
    os.replace(tmp, out)
    return change


def main(argv: list[str] | None = None) -> int:
    """``python -m edgesense.quant.tflite.state_layout MODEL.tflite...``: make each file channel last in place
    (x, y and states; checked bit for bit against the file as it was)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m edgesense.quant.tflite.state_layout", description=main.__doc__)
    p.add_argument("models", nargs="+", help="streaming INT8 .tflite files, rewritten in place")
    args = p.parse_args(argv)
    for path in args.models:
        change = channel_last_file(path, which="all")
        print(f"{path}: {change.removed_ops} layout operators removed, "
              f"{len(change.inputs)} inputs and {len(change.outputs)} outputs channel last")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
