"""Pack blocks of output pixels into the output channels of narrow int8 convolutions (opt-in lowering).

XNNPACK runs every int8 CONV_2D as a GEMM of (output pixels) x (output channels). On x86 CPUs with AMX its
kernel works on tiles of 16 pixels x 64 channels, so a convolution with N = 4, 12 or 16 output channels
leaves most of every tile empty. :func:`pack_channels` rewrites such a convolution to compute a block of
``gh x gw`` output pixels per pixel of a smaller output: output channel ``(r, q, o)`` of the packed
convolution is channel ``o`` of original output pixel ``(gh*Y + r, gw*X + q)``, ``gh*gw*N`` channels of at
most ``width``. Its input holds the matching blocks of ``(s*gh) x (s*gw)`` input pixels (``s``: the stride
along that dimension) in the channels, ``(a, b, c)``, and its kernel the original weights at the matching
positions and zeros elsewhere (a dilation becomes positions in the blocks); bias and per-channel weight
scales repeat per block position. Blocks:

* ``"cols"`` (default): ``1 x g`` -- the blocked input ``(1, H, W/(s*g), s*g*C)`` and output
  ``(1, Ho, Wo/g, g*N)`` are the NHWC tensors byte for byte, so only RESHAPEs surround the convolution
  (and consecutive RESHAPEs are folded into one); rows keep their stride, dilation and padding;
* ``"square"``: ``b x b`` -- SPACE_TO_DEPTH in, DEPTH_TO_SPACE out, or, when a MAX_POOL_2D with a square
  window equal to its stride (VALID) dividing the block is the only reader, the pool reads a RESHAPE view
  of the blocked output (each block row's pixels side by side) and only its smaller output is put back.

Exact by construction: every packed output channel sums exactly the products the original output sums
(the other products have weight 0; a padded input pixel is the input zero point, in TFLite's PAD and in a
convolution's SAME padding alike, so it adds 0 either way) with the same bias and the same requantization
scale, so every int8 output is bit-identical, on XNNPACK and on the builtin kernels.

Padding, per convolution: with the input height and width divisible by the input blocks, the blocked input
is aligned with the original one and the blocked convolution's own padding is used where SAME or VALID is
what it needs (the common "same" 3x3 convolution: SAME); otherwise the original input is padded explicitly
(PAD with the zero point; rows of bytes for inputs of fewer than 8 channels) so that the blocks start at its
first padded pixel, and the blocked convolution is VALID.

Only int8 CONV_2D at batch 1 (static shapes) whose output width (and height, square) the block divides,
whose packed GEMM needs fewer tiles of :data:`TILE_ROWS` pixels x ``width`` channels than the original, and
whose packed kernel spans at most :data:`MAX_SPAN` times the input positions of the original per output pixel
(large dilations along a blocked dimension do not), is packed; depthwise convolutions and other operators are left as they are. Where XNNPACK's int8 convolution
tile is narrower (AVX2, ARM) the zero weights are extra multiplies and the packed model can be slower: this
is an opt-in lowering
(``export_tflite(..., pack_channels=64)``, ``edgesense export tflite --pack-channels 64``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tflite import BuiltinOperator as Op, Padding

from edgesense.errors import ModelError
from edgesense.quant.tflite.flatbuffer import ModelBuilder, QuantParams, compact, read_model

__all__ = ["pack_channels", "PackedConv", "BLOCKS", "MAX_SPAN", "TILE_ROWS"]

#: block shapes: "cols" (1 x b output pixels: only free RESHAPEs around the convolution; the default, the faster
#: on gesture_cnn and gesture_crnn) or "square" (b x b: SPACE_TO_DEPTH / DEPTH_TO_SPACE or a pool view)
BLOCKS = ("cols", "square")


#: most input positions a packed kernel may span per output pixel, relative to the original kernel (each one a
#: multiply by a zero weight or a wasted read: a dilated kernel on blocks of columns spans the gaps too)
MAX_SPAN = 2.0
#: output pixels per row tile of XNNPACK's AMX int8 convolution kernel (16x64c4)
TILE_ROWS = 16


@dataclass
class PackedConv:
    """One packed convolution: its output tensor's name, block (rows, columns), channels before and after."""

    name: str
    block: tuple[int, int]
    channels: tuple[int, int]
    padding: str            # "SAME", "VALID", "PAD+VALID"
    pool: bool = False      # a following max pool reads the blocked output


def _tile_qp(qp: QuantParams | None, n: int) -> QuantParams | None:
    if qp is None or qp.per_tensor:
        return qp
    return QuantParams(np.tile(qp.scale, n).astype(np.float32), np.tile(qp.zero_point, n), 0)


def _const_i32(fb: ModelBuilder, name: str, values) -> int:
    arr = np.asarray(values, np.int32)
    return fb.add_tensor(name, arr.shape, np.int32, data=arr)


def _same_pads(n: int, k: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """TFLite's SAME padding (before, after) of one dimension (the extra one goes after)."""
    total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _out_len(n: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - (k - 1) * d - 1) // s + 1


@dataclass
class _Dim:
    """One spatial dimension of the blocked convolution. Original: input n, output no, kernel k, stride s,
    dilation d, padding (p0, p1); blocks of g outputs (g = 1: the dimension is left as it is). Output
    ``g*Y + r`` reads input ``s*(g*Y + r) + d*ky - shift`` of an input whose blocks of ``G = s*g`` start at its
    first element: block ``Y + dy`` with ``dy = (s*r + d*ky - shift) // G``, element ``(s*r + d*ky - shift) % G``."""

    n: int
    no: int
    k: int
    s: int
    d: int
    p0: int
    p1: int
    g: int

    @property
    def G(self) -> int:
        return self.s * self.g if self.g > 1 else 1

    def taps(self, shift: int) -> tuple[int, int]:
        """(dmin, taps) of the blocked kernel."""
        if self.g == 1:
            return 0, self.k
        s, G = self.s, self.G
        dmin, dmax = (-shift) // G, (s * (self.g - 1) + self.d * (self.k - 1) - shift) // G
        return dmin, dmax - dmin + 1

    def aligned(self) -> tuple[int, int, int, int, int] | None:
        """Blocked (input length, taps, stride, dilation, pad before, pad after) on the unpadded input, or None."""
        if self.g == 1:
            return self.n, self.k, self.s, self.d, self.p0, self.p1
        if self.n % self.G:
            return None
        dmin, taps = self.taps(self.p0)
        return self.n // self.G, taps, 1, 1, -dmin, self.no // self.g - 1 + dmin + taps - 1 - (self.n // self.G - 1)

    def padded(self) -> tuple[int, int] | None:
        """(before, after) PAD of the original input so that blocks start at its first element (shift 0)."""
        if self.g == 1:
            return self.p0, self.p1
        _, taps = self.taps(0)
        after = self.G * (self.no // self.g + taps - 1) - self.n - self.p0
        return (self.p0, after) if after >= 0 else None


def _pack_weights(W: np.ndarray, dh: _Dim, dw: _Dim, shift_h: int, shift_w: int) -> np.ndarray:
    """(N, kh, kw, C) -> (gh*gw*N, th, tw, Gh*Gw*C): output channel (r, q, o), input channel (a, b, c)."""
    N, kh, kw, C = W.shape

    def place(dim: _Dim, shift: int, r: int, k: int) -> tuple[int, int]:
        if dim.g == 1:
            return k, 0
        dmin, _ = dim.taps(shift)
        dy, a = divmod(dim.s * r + dim.d * k - shift, dim.G)
        return dy - dmin, a

    (_, th), (_, tw) = dh.taps(shift_h), dw.taps(shift_w)
    P = np.zeros((dh.g, dw.g, N, th, tw, dh.G, dw.G, C), np.int8)
    for r in range(dh.g):
        for q in range(dw.g):
            for ky in range(kh):
                ty, a = place(dh, shift_h, r, ky)
                for kx in range(kw):
                    tx, b = place(dw, shift_w, q, kx)
                    P[r, q, :, ty, tx, a, b, :] = W[:, ky, kx, :]
    return P.reshape(dh.g * dw.g * N, th, tw, dh.G * dw.G * C)


class _Packer:
    def __init__(self, fb: ModelBuilder, width: int, blocks: str) -> None:
        self.fb, self.width, self.blocks = fb, width, blocks
        self.users: dict[int, list[int]] = {}
        for k, op in enumerate(fb.operators):
            for t in op.inputs:
                if t >= 0:
                    self.users.setdefault(t, []).append(k)
        self.io = set(fb.inputs) | set(fb.outputs)
        self.new_ops: list = []
        self.done: set[int] = set()
        self.report: list[PackedConv] = []

    # ---------------------------------------------------------------- small builders

    def _op(self, opcode: int, inputs, outputs, options_name=None, version: int = 1, **options) -> None:
        n = len(self.fb.operators)
        self.fb.add_operator(opcode, inputs, outputs, options_name, version, **options)
        self.new_ops.append(self.fb.operators.pop(n))

    def _act(self, name: str, shape, qp) -> int:
        return self.fb.add_tensor(name, shape, np.int8, qp)

    def _reshape(self, x: int, shape, name: str, out: int | None = None) -> int:
        out = self._act(name, shape, self.fb.quant(x)) if out is None else out
        self._op(Op.RESHAPE, [x, _const_i32(self.fb, name + "/shape", shape)], [out])
        return out

    def _pad(self, x: int, pads, name: str) -> int:
        """PAD (zero point) of a (1, H, W, C) tensor; with C < 8 and only H, W padded, on the (1, H, W*C) rows."""
        n, h, w, c = self.fb.shape(x)
        shape = (n, h + pads[1][0] + pads[1][1], w + pads[2][0] + pads[2][1], c)
        qp = self.fb.quant(x)
        if c < 8:
            flat = self._reshape(x, (n, h, w * c), name + "/rows")
            p3 = [(0, 0), tuple(pads[1]), (pads[2][0] * c, pads[2][1] * c)]
            padded = self._act(name + "/pad3", (n, shape[1], shape[2] * c), qp)
            self._op(Op.PAD, [flat, _const_i32(self.fb, name + "/paddings", p3)], [padded], version=2)
            return self._reshape(padded, shape, name + "/pad")
        out = self._act(name + "/pad", shape, qp)
        self._op(Op.PAD, [x, _const_i32(self.fb, name + "/paddings", pads)], [out], version=2)
        return out

    # ---------------------------------------------------------------- the rewrite

    def _block(self, N: int, ho: int, wo: int, sh: int, sw: int) -> tuple[int, int] | None:
        if self.blocks == "square":
            if sh != sw:
                return None
            for b in range(int(np.sqrt(self.width // max(N, 1))), 1, -1):
                if b * b * N <= self.width and ho % b == 0 and wo % b == 0:
                    return b, b
            return None
        for b in range(self.width // max(N, 1), 1, -1):
            if wo % b == 0:
                return 1, b
        return None

    def conv(self, k: int, op) -> bool:
        fb = self.fb
        o = op.options
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return False
        x, wi, bi = op.inputs[:3]
        y = op.outputs[0]
        tx, tw_, tb, ty = fb.tensors[x], fb.tensors[wi], fb.tensors[bi], fb.tensors[y]
        if (tx.dtype != np.int8 or tw_.dtype != np.int8 or tb.dtype != np.int32 or len(tx.shape) != 4
                or tx.shape[0] != 1 or not tw_.buffer or not tb.buffer
                or any(t.signature is not None and -1 in t.signature for t in (tx, ty))):
            return False
        _, H, W, C = tx.shape
        N, kh, kw, _ = tw_.shape
        _, ho, wo, _ = ty.shape
        (sh, sw), (dlh, dlw) = (o["StrideH"], o["StrideW"]), (o.get("DilationHFactor", 1), o.get("DilationWFactor", 1))
        block = self._block(N, ho, wo, sh, sw)
        if block is None:
            return False
        gh, gw = block
        # only where the packed GEMM needs fewer (TILE_ROWS pixels x width channels) tiles (the excursion models'
        # 12-pixel convolutions already fit one: packing them only adds RESHAPEs, measured 0.5 us slower)
        tiles = lambda m, c: -(-m // TILE_ROWS) * -(-c // self.width)  # noqa: E731
        if tiles(ho * wo // (gh * gw), gh * gw * N) >= tiles(ho * wo, N):
            return False
        if o["Padding"] == Padding.SAME:
            (pt, pb), (pl, pr) = _same_pads(H, kh, sh, dlh), _same_pads(W, kw, sw, dlw)
        else:
            pt = pb = pl = pr = 0
        if (_out_len(H, kh, sh, dlh, pt, pb), _out_len(W, kw, sw, dlw, pl, pr)) != (ho, wo):
            return False
        dh, dw = _Dim(H, ho, kh, sh, dlh, pt, pb, gh), _Dim(W, wo, kw, sw, dlw, pl, pr, gw)
        # input positions the packed kernel spans per output pixel, against the original kernel's: a dilation
        # along a blocked dimension spreads the taps over many blocks (fftnet's dilation 128: 32x) -- not packed
        spans = [d.taps(p)[1] * d.G / (d.k * d.g) for d, p in ((dh, pt), (dw, pl))]
        if spans[0] * spans[1] > MAX_SPAN:
            return False
        name = ty.name + "/packed"
        # aligned blocks where the blocked convolution's own SAME or VALID padding is what it needs; otherwise
        # the original input padded so that the blocks start at its first pixel, and VALID
        padding, src, shifts, mode = None, x, (0, 0), "VALID"
        ah, aw = dh.aligned(), dw.aligned()
        if ah is not None and aw is not None:
            outs = (ho // gh, wo // gw)
            if not any(a[4] or a[5] for a in (ah, aw)) and all(
                    _out_len(a[0], a[1], a[2], a[3], 0, 0) == m for a, m in zip((ah, aw), outs)):
                padding = Padding.VALID
            elif all((a[4], a[5]) == _same_pads(a[0], a[1], a[2], a[3]) and -(-a[0] // a[2]) == m
                     for a, m in zip((ah, aw), outs)):
                padding, mode = Padding.SAME, "SAME"
            if padding is not None:
                shifts = (pt, pl)
                hs, ws = (a[:4] for a in (ah, aw))
        if padding is None:
            ph, pw = dh.padded(), dw.padded()
            if ph is None or pw is None:
                return False
            dh0 = _Dim(H + sum(ph), ho, kh, sh, dlh, 0, 0, gh)
            dw0 = _Dim(W + sum(pw), wo, kw, sw, dlw, 0, 0, gw)
            hs, ws = dh0.aligned()[:4], dw0.aligned()[:4]
            if any(_out_len(a[0], a[1], a[2], a[3], 0, 0) != m for a, m in zip((hs, ws), (ho // gh, wo // gw))):
                return False
            if any(ph) or any(pw):
                src, mode = self._pad(x, [(0, 0), ph, pw, (0, 0)], name + "/in"), "PAD+VALID"
            padding = Padding.VALID
        _, Hs, Ws, _ = fb.shape(src)
        Gh, Gw = dh.G, dw.G
        qx = fb.quant(src)
        if Gh == 1:
            xb = self._reshape(src, (1, Hs, Ws // Gw, Gw * C), name + "/in_cols")
        else:
            xb = self._act(name + "/in_s2d", (1, Hs // Gh, Ws // Gw, Gh * Gw * C), qx)
            self._op(Op.SPACE_TO_DEPTH, [src], [xb], "SpaceToDepthOptions", version=2, BlockSize=Gh)
        Wq = np.frombuffer(fb.buffers[tw_.buffer], np.int8).reshape(tw_.shape)
        bias = np.frombuffer(fb.buffers[tb.buffer], np.int32).reshape(-1)
        P = _pack_weights(Wq, dh, dw, *shifts)
        n = gh * gw
        wt = fb.add_tensor(tw_.name + "/packed", P.shape, np.int8, _tile_qp(tw_.quant, n), P)
        bt = fb.add_tensor(tb.name + "/packed", (n * N,), np.int32, _tile_qp(tb.quant, n), np.tile(bias, n))
        hb, wb = ho // gh, wo // gw
        yb = self._act(name, (1, hb, wb, n * N), ty.quant)
        self._op(Op.CONV_2D, [xb, wt, bt], [yb], "Conv2DOptions", max(3, fb.opcodes.get(Op.CONV_2D, 3)),
                 **dict(o, Padding=padding, StrideH=hs[2], StrideW=ws[2], DilationHFactor=hs[3],
                        DilationWFactor=ws[3]))
        rec = PackedConv(ty.name, block, (N, n * N), mode)
        if gh == 1:
            self._reshape(yb, ty.shape, name + "/out", out=y)
        elif not self._pool_view(yb, y, gh, N, name, rec):
            self._op(Op.DEPTH_TO_SPACE, [yb], [y], "DepthToSpaceOptions", version=2, BlockSize=gh)
        self.report.append(rec)
        return True

    def _pool_view(self, yb: int, y: int, b: int, N: int, name: str, rec: PackedConv) -> bool:
        """A single MAX_POOL_2D reader of ``y`` (window = stride = p x p, VALID, p dividing b) reads the blocked
        output as (1, hb*wb*b, b, N): rows (Y, X, r), columns q; its output (Y, X, r', q') goes back in place."""
        users = self.users.get(y, [])
        if y in self.io or len(users) != 1:
            return False
        k = users[0]
        pool = self.fb.operators[k]
        o = pool.options
        p = o.get("FilterHeight")
        if (pool.opcode != Op.MAX_POOL_2D or o.get("Padding") != Padding.VALID or p != o.get("FilterWidth")
                or p != o.get("StrideH") or p != o.get("StrideW") or b % p or pool.inputs[0] != y):
            return False
        _, hb, wb, _ = self.fb.shape(yb)
        view = self._reshape(yb, (1, hb * wb * b, b, N), name + "/pool_view")
        m = b // p
        z = pool.outputs[0]
        pooled = self._act(name + "/pooled", (1, hb * wb * m, m, N), self.fb.quant(z))
        self._op(Op.MAX_POOL_2D, [view], [pooled], "Pool2DOptions", self.fb.opcodes[Op.MAX_POOL_2D], **o)
        if m == 1:
            self._reshape(pooled, self.fb.shape(z), name + "/pooled_nhwc", out=z)
        else:
            blk = self._reshape(pooled, (1, hb, wb, m * m * N), name + "/pooled_blocks")
            self._op(Op.DEPTH_TO_SPACE, [blk], [z], "DepthToSpaceOptions", version=2, BlockSize=m)
        self.done.add(k)
        rec.pool = True
        return True

    def run(self) -> None:
        for k, op in enumerate(self.fb.operators):
            if k in self.done:
                continue
            if op.opcode == Op.CONV_2D and self.conv(k, op):
                continue
            self.new_ops.append(op)
        self.fb.operators = self.new_ops


def _fold_reshapes(fb: ModelBuilder) -> None:
    """RESHAPE of a RESHAPE reads the first one's input; operators whose outputs nobody reads are dropped."""
    producer = {t: op for op in fb.operators for t in op.outputs}
    for op in fb.operators:
        if op.opcode != Op.RESHAPE:
            continue
        src = producer.get(op.inputs[0])
        while src is not None and src.opcode == Op.RESHAPE and _same_qp(fb, src.inputs[0], op.outputs[0]):
            op.inputs[0] = src.inputs[0]
            src = producer.get(op.inputs[0])
    while True:
        read = {t for op in fb.operators for t in op.inputs} | set(fb.outputs)
        keep = [op for op in fb.operators if any(t in read for t in op.outputs)]
        if len(keep) == len(fb.operators):
            return
        fb.operators = keep


def _same_qp(fb: ModelBuilder, a: int, b: int) -> bool:
    qa, qb = fb.quant(a), fb.quant(b)
    return fb.tensors[a].dtype == fb.tensors[b].dtype and (
        (qa is None and qb is None) or (qa is not None and qb is not None and qa.same_as(qb)))


def pack_channels(data: bytes, width: int = 64, blocks: str = "cols") -> tuple[bytes, list[PackedConv]]:
    """``.tflite`` bytes with every eligible int8 CONV_2D computing blocks of output pixels in up to ``width``
    output channels (module docstring), and what was packed. Unchanged bytes when nothing is eligible."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 4:
        raise ModelError(f"pack_channels width must be an integer >= 4, got {width!r}")
    if blocks not in BLOCKS:
        raise ModelError(f"pack_channels blocks must be one of {', '.join(BLOCKS)}, got {blocks!r}")
    fb = read_model(data)
    packer = _Packer(fb, width, blocks)
    packer.run()
    if not packer.report:
        return data, []
    _fold_reshapes(fb)
    return compact(fb).serialize(), packer.report
