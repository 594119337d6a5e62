"""The one interface every backend implements: :class:`Model`, with :class:`TensorSpec` for its I/O.

Integer-I/O models (int8/uint8 inputs or outputs carrying a scale and zero point) are fed and read
in real units by default: ``run`` quantizes float inputs with ``q = clamp(rint(x / scale) + zp)``
(round half to even, the rounding of ONNX ``QuantizeLinear``, so an ONNX QDQ model and a TFLite
int8-I/O model see the same integers) and dequantizes outputs with ``(q - zp) * scale``. Pass
``raw=True`` to feed and read the integers themselves.

Streaming loops that call a one-input model many times a second can take :meth:`Model.invoker`: a
call on an input already in the model's type and shape, without ``run``'s per-call checks and
conversions (opt-in; ``run`` is unchanged).

An input may be laid out differently from the ONNX model it was exported from (a ``.tflite`` exported
with ``input_layout="nwhc"`` takes an ``(N, C, H, W)`` image as ``(N, W, H, C)``): its spec then has the
model's own shape and ``perm`` (model array = ONNX array ``.transpose(perm)``). ``run`` accepts either
layout -- an array that fits only the ONNX shape is transposed -- so the same arrays go into every
backend; :meth:`Model.invoker` takes the model's own layout, as it takes everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesense.errors import ModelError

__all__ = ["TensorSpec", "Model", "quantize", "dequantize"]


def onnx_shape(shape, perm) -> tuple:
    """A runtime tensor's ``shape`` in its ONNX model's layout, given ``perm`` (ONNX axis ``perm[k]`` is runtime axis
    ``k``; None: the same layout)."""
    if perm is None:
        return tuple(shape)
    return tuple(shape[perm.index(i)] for i in range(len(shape)))


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` for a dynamic axis), dtype and, for integer tensors, quantization."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None
    #: None: the ONNX layout; else the model takes the ONNX-layout array transposed by ``perm``
    perm: tuple[int, ...] | None = None

    @property
    def onnx_shape(self) -> tuple[int | None, ...]:
        """The shape in the ONNX model's layout (``shape`` itself unless ``perm`` is set)."""
        return onnx_shape(self.shape, self.perm)

    @property
    def quantized(self) -> bool:
        """True for an integer tensor with a known scale and zero point."""
        return self.scale is not None and np.dtype(self.dtype).kind in "iu"

    def concrete_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The shape with dynamic axes replaced by ``batch`` (first axis) or 1."""
        return tuple((batch if i == 0 else 1) if d is None else int(d) for i, d in enumerate(self.shape))


def _fits(want: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    """``shape`` matches ``want`` past the batch axis (``None`` matches anything)."""
    return all(d is None or d == n for d, n in zip(want[1:], shape[1:]))


_IINFO = {np.dtype(t): np.iinfo(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Real values to integers: ``clamp(rint(x / scale) + zero_point)`` (half to even, saturating)."""
    info = _IINFO.get(np.dtype(dtype)) or np.iinfo(dtype)
    q = np.asarray(x, dtype=np.float32) / np.float32(scale)
    if not isinstance(q, np.ndarray):   # a scalar
        return np.clip(np.rint(q) + zero_point, info.min, info.max).astype(dtype)
    np.rint(q, out=q)
    q += zero_point
    # np.minimum/np.maximum: the same as np.clip, without its per-call overhead (~10 us on small arrays)
    np.minimum(np.maximum(q, info.min, out=q), info.max, out=q)
    return q.astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integers to real values: ``(q - zero_point) * scale`` as float32."""
    out = (q.astype(np.int32) - zero_point).astype(np.float32)
    out *= np.float32(scale)
    return out


class Model:
    """A loaded model on one backend. Subclasses implement :meth:`_invoke` on raw arrays.

    ``run(x)`` accepts one array (for single-input models) or a dict keyed by input name, and
    returns one array (single-output model called with an array) or a dict keyed by output name.
    A batch larger than a model's fixed batch of 1 is run sample by sample and concatenated.
    """

    backend: str = "abstract"
    #: True when the backend can resize inputs at run time (LiteRT): only the rank is checked then.
    resizable_inputs: bool = False

    def __init__(self, path: Path, input_specs: list[TensorSpec], output_specs: list[TensorSpec]) -> None:
        self.path = Path(path)
        self.input_specs = input_specs
        self.output_specs = output_specs

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}:{s.dtype}{list(s.shape)}" for s in self.input_specs)
        outs = ", ".join(f"{s.name}:{s.dtype}{list(s.shape)}" for s in self.output_specs)
        return f"<{type(self).__name__} {self.path.name} backend={self.backend} in=({ins}) out=({outs})>"

    def __call__(self, x: np.ndarray | Mapping[str, np.ndarray], raw: bool = False) -> np.ndarray | dict:
        return self.run(x, raw=raw)

    def run(self, x: np.ndarray | Mapping[str, np.ndarray], raw: bool = False) -> np.ndarray | dict:
        """Run the model; float in/out unless ``raw`` (then integer tensors pass through untouched)."""
        specs = self.input_specs
        if isinstance(x, np.ndarray) or not isinstance(x, Mapping):   # one array: the common, cheap case
            if len(specs) != 1:
                raise ModelError(f"{self.path.name} has {len(specs)} inputs; pass a dict keyed by "
                                 f"{[s.name for s in specs]}")
            feeds = {specs[0].name: self._prepare(specs[0], x, raw)}
            as_dict = len(self.output_specs) != 1
        else:
            if len(x) != len(specs) or not all(s.name in x for s in specs):
                raise ModelError(f"{self.path.name}: inputs must be named {sorted(s.name for s in specs)}, "
                                 f"got {sorted(x)}")
            feeds = {s.name: self._prepare(s, x[s.name], raw) for s in specs}
            as_dict = True
        outs = self._run_batched(feeds)
        if not as_dict:
            s, o = self.output_specs[0], outs[0]
            return o if raw or not s.quantized else dequantize(o, s.scale, s.zero_point)
        return {s.name: (o if raw or not s.quantized else dequantize(o, s.scale, s.zero_point))
                for s, o in zip(self.output_specs, outs)}

    def invoker(self) -> Callable[[np.ndarray], np.ndarray]:
        """A lean call for a streaming loop: ``call(x)`` -> the first output, both raw.

        Opt-in fast path for one-input models: ``x`` must already be exactly what the model takes
        (its input dtype -- int8 integers for an INT8 model -- and its current shape, C-contiguous);
        nothing is checked, converted, quantized or dequantized. Returns what
        ``run(x, raw=True)`` returns for the first output, without the per-call bookkeeping.
        """
        if len(self.input_specs) != 1:
            raise ModelError(f"{self.path.name}: invoker() needs a one-input model, this one has "
                             f"{len(self.input_specs)} inputs")
        name = self.input_specs[0].name
        invoke = self._invoke
        return lambda x: invoke({name: x})[0]

    def _prepare(self, spec: TensorSpec, value: np.ndarray, raw: bool) -> np.ndarray:
        arr = np.asarray(value)
        if spec.perm is not None and arr.ndim == len(spec.shape) and not _fits(spec.shape, arr.shape) \
                and _fits(spec.onnx_shape, arr.shape):
            arr = np.ascontiguousarray(arr.transpose(spec.perm))  # an array in the ONNX model's layout
        if len(spec.shape) != arr.ndim or (not self.resizable_inputs and any(
                d is not None and i > 0 and d != n for i, (d, n) in enumerate(zip(spec.shape, arr.shape)))):
            raise ModelError(f"{self.path.name}: input {spec.name!r} expects shape {list(spec.shape)}, "
                             f"got {list(arr.shape)}")
        if spec.dtype.kind in "iu":   # an integer input (np.issubdtype costs ~1 us per call)
            if raw:
                if arr.dtype != spec.dtype:
                    raise ModelError(f"{self.path.name}: raw input {spec.name!r} must be {spec.dtype}, got {arr.dtype}")
                return np.ascontiguousarray(arr)
            if not spec.quantized:
                raise ModelError(f"{self.path.name}: input {spec.name!r} is {spec.dtype} without quantization "
                                 f"parameters; pass raw=True with {spec.dtype} data")
            return quantize(arr, spec.scale, spec.zero_point, spec.dtype)
        return np.ascontiguousarray(arr, dtype=spec.dtype)

    def _run_batched(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.resizable_inputs or not all(s.shape and s.shape[0] == 1 for s in self.input_specs):
            return self._invoke(feeds)
        batch = {a.shape[0] for a in feeds.values() if a.ndim}
        if len(batch) == 1 and (n := batch.pop()) > 1:
            parts = [self._invoke({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
            return [np.concatenate([p[j] for p in parts], axis=0) for j in range(len(self.output_specs))]
        return self._invoke(feeds)

    def dummy_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """Random real-valued inputs of the right shapes (for warm-up and benchmarks)."""
        rng = np.random.default_rng(seed)
        out = {}
        for s in self.input_specs:
            shape = s.concrete_shape(batch)
            if s.quantized or not np.issubdtype(s.dtype, np.integer):
                out[s.name] = rng.standard_normal(shape).astype(np.float32)
            else:
                out[s.name] = np.zeros(shape, dtype=s.dtype)
        return out

    def warm_up(self, runs: int = 1) -> None:
        """Run ``runs`` times on random inputs so first-call allocation does not skew timings."""
        if runs <= 0:
            return
        feeds = self.dummy_inputs()
        raw = any(np.issubdtype(s.dtype, np.integer) and not s.quantized for s in self.input_specs)
        for _ in range(runs):
            self.run(feeds, raw=raw)

    def time_run(self, x: np.ndarray | Mapping[str, np.ndarray], repeats: int = 100) -> np.ndarray:
        """Wall-clock seconds of ``repeats`` calls of :meth:`run` on ``x``."""
        times = np.empty(repeats)
        for i in range(repeats):
            t0 = time.perf_counter()
            self.run(x)
            times[i] = time.perf_counter() - t0
        return times
