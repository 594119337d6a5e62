"""Integer simulation in numpy: the lowered graph executed on integer codes, as an INT8 runtime does.

Every tensor is a code array plus its :class:`~edgesense.quant.encoding.Encoding`. Conv and linear
accumulate ``sum((x - z_x) * w) + b`` exactly (int64 values held in float64, exact below 2^53), then
requantize ``y = clamp(round(acc * M) + z_y)`` with ``M = (s_x * s_w) / s_y`` in one of two ways
(the target's ``requantization``):

* ``"float"`` -- ONNX Runtime's MLAS: ``M`` in float32, ``float32(acc) * M``, round half to even;
* ``"fixed_point"`` -- TFLite reference / CMSIS-NN: ``M = M0 * 2^shift`` with a Q31 ``M0``,
  ``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT`` (whose shift rounds ties away from zero).

A ReLU/ReLU6 that follows a conv/linear/add is fused into its requantization (clamping at the
zero point, as the runtimes do after removing the ReLU). Pooling and softmax requantize in
float32 with round half to even. Add has two arithmetics (``IntegerSim(graph, add=...)``):

* ``"float"`` (default) -- ONNX Runtime: dequantize both inputs in float32, add, divide by the output
  scale, round half to even;
* ``"xnnpack"`` -- LiteRT's default XNNPACK delegate: the scale ratios ``s_a / s_o`` and ``s_b / s_o``
  become integer multipliers of about 20 bits (``2^shift`` with the larger ratio's multiplier in
  [2^19, 2^20)), the zero points go into an int32 bias with ``2^(shift-1)`` for rounding, and an
  arithmetic right shift by ``shift`` rounds (ties upward). It differs from the float result on about
  one in 30,000 input pairs, by 1 LSB (measured over all 65,536 code pairs, docs/tflite-export.md §4).

No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgesense.quant.encoding import Encoding

__all__ = ["IntegerSim", "requantize", "quantize_multiplier", "multiply_by_quantized_multiplier", "xnnpack_add"]


def quantize_multiplier(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``QuantizeMultiplier``: ``m = M0 * 2^(shift - 31)`` with ``M0`` in [2^30, 2^31)."""
    m = np.asarray(m, dtype=np.float64)
    frac, shift = np.frexp(m)
    m0 = np.rint(frac * (1 << 31)).astype(np.int64)
    over = m0 == (1 << 31)
    m0 = np.where(over, m0 // 2, m0)
    shift = np.where(over, shift + 1, shift)
    m0 = np.where(m == 0, 0, m0)
    return m0, shift.astype(np.int64)


def _trunc_div_pow2(x: np.ndarray, e: int) -> np.ndarray:
    q = np.abs(x) >> e
    return np.where(x < 0, -q, q)


def multiply_by_quantized_multiplier(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite reference ``MultiplyByQuantizedMultiplier`` on int64 arrays (bit-exact with the reference)."""
    acc = acc.astype(np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.clip(acc * (1 << left), -(2 ** 31), 2 ** 31 - 1)
    ab = x * m0
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_div_pow2(ab + nudge, 31)
    mask = (1 << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def _f32_bits(x) -> int:
    return int(np.asarray(x, np.float32).view(np.uint32))


def xnnpack_add(qa: np.ndarray, ea: Encoding, qb: np.ndarray, eb: Encoding, out: Encoding,
                lower: int | None = None) -> np.ndarray:
    """XNNPACK's int8 Add (LiteRT's default delegate) on codes, bit for bit; ``lower``: fused-ReLU clamp."""
    ra = np.float32(np.float32(ea.scale) / np.float32(out.scale))
    rb = np.float32(np.float32(eb.scale) / np.float32(out.scale))
    shift = 20 - ((_f32_bits(max(ra, rb)) >> 23) - 127)

    def multiplier(r: np.float32) -> int:       # r * 2^shift, exactly, by moving the float32 exponent
        return int(np.rint(np.array(_f32_bits(r) + (shift << 23), np.uint32).view(np.float32)))

    ma, mb = multiplier(ra), multiplier(rb)
    bias = (1 << (shift - 1)) - ma * int(ea.zero_point) - mb * int(eb.zero_point)
    acc = bias + qa.astype(np.int64) * ma + qb.astype(np.int64) * mb
    qmin, qmax = out.limits
    q = (acc >> shift) + int(out.zero_point)
    return np.clip(q, qmin if lower is None else max(qmin, lower), qmax).astype(out.numpy_dtype)


def requantize(acc: np.ndarray, base_scale: np.ndarray, out: Encoding, mode: str, lower: int | None = None,
               upper: int | None = None, channel_axis: int = 1) -> np.ndarray:
    """Integer accumulator ``acc`` (real value ``acc * base_scale``) onto grid ``out``; optional code clamps."""
    base = np.asarray(base_scale, dtype=np.float32)
    if base.ndim:
        shape = [1] * acc.ndim
        shape[channel_axis] = -1
        base = base.reshape(shape)
    mult = (base / np.float32(out.scale)).astype(np.float32)
    if mode == "fixed_point":
        m0, shift = quantize_multiplier(mult)
        q = multiply_by_quantized_multiplier(np.rint(acc).astype(np.int64), m0, shift)
    else:
        q = np.rint(acc.astype(np.float32) * mult).astype(np.int64)
    qmin, qmax = out.limits
    q = np.clip(q + int(out.zero_point), qmin if lower is None else max(qmin, lower),
                qmax if upper is None else min(qmax, upper))
    return q.astype(out.numpy_dtype)


@dataclass
class _Pending:
    """A conv/linear/add result not yet requantized (its ReLU comes next)."""

    acc: np.ndarray           # integer accumulator (conv/linear) or real value (add)
    base_scale: np.ndarray    # real value of one accumulator unit, per output channel
    real: bool = False
    channel_axis: int = 1
    finish: object = None     # add with XNNPACK arithmetic: (out encoding, lower clamp) -> codes


class IntegerSim:
    """Runs a :class:`~edgesense.quant.sim.LoweredGraph` on integer codes."""

    def __init__(self, graph, add: str = "float") -> None:
        """``add``: the Add arithmetic, ``"float"`` (ONNX Runtime, default) or ``"xnnpack"`` (LiteRT)."""
        if add not in ("float", "xnnpack"):
            raise ValueError(f"add arithmetic must be 'float' or 'xnnpack', got {add!r}")
        self.graph = graph
        self.mode = graph.target.requantization
        self.add = add

    def run(self, x) -> dict[str, tuple[np.ndarray, Encoding]]:
        """Codes and encoding of every quantized tensor (keyed by tensor name) for float input ``x``.

        ``x``: one array, or a list of arrays (one per graph input, in order).
        """
        xs = [np.asarray(v, dtype=np.float32) for v in (x if isinstance(x, (list, tuple)) else [x])]
        env: dict[str, object] = {}
        codes: dict[str, tuple[np.ndarray, Encoding]] = {}
        for op in self.graph.ops:
            y = self._op(op, env, xs[op.attrs.get("index", 0)] if op.kind == "input" else None)
            env[op.name] = y
            if isinstance(y, tuple):
                codes[op.name] = y
        return codes

    def outputs(self, x) -> list[tuple[np.ndarray, Encoding]]:
        """(codes, encoding) of each model output."""
        codes = self.run(x)
        return [codes[o] for o in self.graph.outputs]

    def __call__(self, x) -> np.ndarray:
        """Dequantized first output (what a runtime returns for a QDQ model)."""
        q, enc = self.outputs(x)[0]
        return enc.dequantize(q)

    def _op(self, op, env, x):
        k = op.kind
        mode = self.mode
        out = op.out_encoding
        if k == "input":
            return out.quantize(x), out
        a = env[op.inputs[0]]
        if k in ("conv", "linear"):
            q, enc = a
            xi = q.astype(np.float64) - float(enc.zero_point)
            w = op.weight_q.astype(np.float64)
            acc = (xi @ w.T if k == "linear" else _conv(xi, w, op.attrs))
            shape = [1] * acc.ndim
            shape[1 if k == "conv" or acc.ndim == 2 else -1] = -1
            acc = acc + op.bias_q.astype(np.float64).reshape(shape)
            pend = _Pending(acc, op.bias_encoding.scale, channel_axis=1 if k == "conv" or acc.ndim == 2 else -1)
            return pend if out is None else (requantize(acc, pend.base_scale, out, mode,
                                                        channel_axis=pend.channel_axis), out)
        if k == "add":
            (qa, ea), (qb, eb) = a, env[op.inputs[1]]
            if self.add == "xnnpack":
                def finish(enc, lower=None):
                    return xnnpack_add(qa, ea, qb, eb, enc, lower)
                return (_Pending(None, np.float32(1.0), finish=finish) if out is None else (finish(out), out))
            real = (ea.dequantize(qa) + eb.dequantize(qb)).astype(np.float32)
            pend = _Pending(real, np.float32(1.0), real=True)
            return pend if out is None else (_requant_float(real, out), out)
        if k in ("relu", "relu6"):
            if isinstance(a, _Pending):
                lower = int(out.zero_point)
                upper = None
                if k == "relu6":
                    upper = int(np.rint(np.float32(6.0) / out.scale)) + int(out.zero_point)
                if a.finish is not None:
                    q = a.finish(out, lower)
                    return (q if upper is None else np.minimum(q, upper).astype(q.dtype)), out
                if a.real:
                    q = _requant_float(a.acc, out)
                    return np.clip(q, lower, upper if upper is not None else out.limits[1]).astype(q.dtype), out
                return requantize(a.acc, a.base_scale, out, mode, lower, upper, a.channel_axis), out
            q, enc = a
            real = enc.dequantize(q)
            real = np.maximum(real, 0) if k == "relu" else np.clip(real, 0, 6)
            return _requant_float(real, out), out
        q, enc = a
        if k == "maxpool":
            return _pool(q, op.attrs, "max", enc), enc
        if k == "gap":
            # MLAS QLinearGlobalAveragePool: integer sum, float32 scale s_in / (s_out * N), half-even, + z_out
            acc = (q.astype(np.int64) - int(enc.zero_point)).reshape(*q.shape[:2], -1).sum(axis=-1)
            n = int(np.prod(q.shape[2:]))
            mult = np.float32(enc.scale) / np.float32(np.float32(out.scale) * np.float32(n))
            r = np.rint(acc.astype(np.float32) * np.float32(mult)).astype(np.int64) + int(out.zero_point)
            r = r.reshape(*q.shape[:2], *([1] * (q.ndim - 2)))
            return np.clip(r, *out.limits).astype(out.numpy_dtype), out
        if k == "avgpool":
            # ORT QLinearAveragePool: float32 sum of dequantized values / count, then rint(y / s_out + z_out)
            total, n = _pool(q, op.attrs, "sum", enc)
            y = (total / np.float32(n)).astype(np.float32)
            r = np.rint((y / np.float32(out.scale) + np.float32(out.zero_point)).astype(np.float32)).astype(np.int64)
            return np.clip(r, *out.limits).astype(out.numpy_dtype), out
        if k == "reshape":
            return q.reshape(q.shape[0], *op.shape[1:]), enc
        if k == "slice":
            from edgesense.quant.sim import _slice
            return _slice(q, op.attrs), enc
        if k == "concat":
            parts = [env[i] for i in op.inputs]
            arrs = [c if (e.scale == out.scale and e.zero_point == out.zero_point) else
                    _requant_float(e.dequantize(c), out) for c, e in parts]
            return np.concatenate(arrs, axis=op.attrs["axis"]), out
        if k == "softmax":
            real = enc.dequantize(q)
            axis = op.attrs["dim"]
            e = np.exp(real - real.max(axis=axis, keepdims=True))
            p = (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)
            return _requant_float(p, out), out
        raise ValueError(f"unsupported op {k}")


def _requant_float(real: np.ndarray, out: Encoding) -> np.ndarray:
    q = np.rint(real.astype(np.float32) / np.float32(out.scale)).astype(np.int64) + int(out.zero_point)
    return np.clip(q, *out.limits).astype(out.numpy_dtype)


def _windows(x: np.ndarray, kernel, stride, dilation, dims: int) -> np.ndarray:
    """(N, C, *out, *k) sliding windows of a padded (N, C, *spatial) array."""
    for d in range(dims):
        span = (kernel[d] - 1) * dilation[d] + 1
        x = sliding_window_view(x, span, axis=2 + d)
        idx = [slice(None)] * x.ndim
        idx[2 + d] = slice(None, None, stride[d])
        idx[-1] = slice(None, None, dilation[d])
        x = x[tuple(idx)]
    return x


def _pad(x: np.ndarray, pads, dims: int, value: float) -> np.ndarray:
    if not any(pads):
        return x
    width = [(0, 0), (0, 0)] + [(pads[d], pads[dims + d]) for d in range(dims)]
    return np.pad(x, width, constant_values=value)


def _conv(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    dims, groups = attrs["dims"], attrs["groups"]
    x = _pad(x, attrs["pads"], dims, 0.0)
    win = _windows(x, attrs["kernel"], attrs["stride"], attrs["dilation"], dims)   # N, C, *out, *k
    cin_g, cout = w.shape[1], w.shape[0]
    cout_g = cout // groups
    letters = "abcd"[:dims]
    outs = []
    for g in range(groups):
        wg = w[g * cout_g:(g + 1) * cout_g]
        xg = win[:, g * cin_g:(g + 1) * cin_g]
        spatial = "xyz"[:dims]
        outs.append(np.einsum(f"nc{spatial}{letters},oc{letters}->no{spatial}", xg, wg, optimize=True))
    return np.concatenate(outs, axis=1)


def _pool(q: np.ndarray, attrs: dict, how: str, enc: Encoding):
    dims = attrs["dims"]
    if how == "max":
        x = _pad(q.astype(np.int64), attrs["pads"],
                 dims, enc.limits[0])
        win = _windows(x, attrs["kernel"], attrs["stride"], [1] * dims, dims)
        return win.max(axis=tuple(range(-dims, 0))).astype(q.dtype)
    real = enc.dequantize(q)                      # float32 s * (q - z), as ORT dequantizes each element
    real = _pad(real, attrs["pads"], dims, 0.0)
    win = _windows(real, attrs["kernel"], attrs["stride"], [1] * dims, dims)
    flat = win.reshape(*win.shape[:-dims], -1)
    total = np.zeros(flat.shape[:-1], np.float32)
    for i in range(flat.shape[-1]):               # sequential float32 sum, row-major over the window
        total = (total + flat[..., i]).astype(np.float32)
    return total, int(np.prod(attrs["kernel"]))
