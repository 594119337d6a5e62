"""The one record of a quantization grid every exporter consumes: :class:`Encoding`.

Its fields are exactly the attributes of ONNX ``QuantizeLinear``/``DequantizeLinear`` (AIMET's
2.0.0 encoding spec aligns with them, reference quantization.md §1.3): ``real = scale * (q - zero_point)``,
``q = clamp(round_half_even(real / scale) + zero_point, qmin, qmax)``. ``axis`` is ``None`` for a
per-tensor grid, else the channel axis of a per-channel one. Scales are stored as float32 because that is
what every runtime stores; the simulation uses the same float32 values. This module has no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Encoding", "grid_limits", "DTYPES"]

#: Integer container dtypes an encoding may name.
DTYPES = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32}


def grid_limits(bitwidth: int, signed: bool, symmetric: bool) -> tuple[int, int]:
    """``(qmin, qmax)`` of a ``bitwidth`` grid; symmetric signed grids drop the most negative code.

    int8 weights are symmetric in [-127, 127] (TFLite quantization spec), int8 activations use
    [-128, 127], uint8 activations [0, 255].
    """
    if signed:
        qmax = 2 ** (bitwidth - 1) - 1
        return (-qmax if symmetric else -qmax - 1), qmax
    return 0, 2 ** bitwidth - 1


@dataclass(frozen=True)
class Encoding:
    """A quantization grid: ONNX QuantizeLinear's ``scale``, ``zero_point``, ``axis`` plus its integer range."""

    scale: np.ndarray          # float32, shape () per-tensor or (C,) per-channel
    zero_point: np.ndarray     # int64 values, same shape as scale
    axis: int | None
    dtype: str                 # "int8", "uint8" or "int32"
    bitwidth: int
    symmetric: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point, dtype=np.int64))
        if self.dtype not in DTYPES:
            raise ValueError(f"encoding dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.scale.shape != self.zero_point.shape:
            raise ValueError("scale and zero_point must have the same shape")
        if (self.axis is None) != (self.scale.ndim == 0):
            raise ValueError("a per-channel encoding needs an axis and 1-D scales; a per-tensor one neither")
        if not np.all(self.scale > 0):
            raise ValueError("encoding scales must be positive")

    @property
    def signed(self) -> bool:
        return self.dtype != "uint8"

    @property
    def limits(self) -> tuple[int, int]:
        """``(qmin, qmax)`` of the grid (may be narrower than the container for < 8 bits)."""
        if self.dtype == "int32":
            return -(2 ** 31), 2 ** 31 - 1
        return grid_limits(self.bitwidth, self.signed, self.symmetric)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype])

    def _bcast(self, a: np.ndarray, ndim: int) -> np.ndarray:
        if self.axis is None:
            return a
        shape = [1] * ndim
        shape[self.axis] = -1
        return a.reshape(shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> integer codes (float32 division, round half to even, saturate)."""
        x = np.asarray(x, dtype=np.float32)
        s, z = self._bcast(self.scale, x.ndim), self._bcast(self.zero_point, x.ndim)
        qmin, qmax = self.limits
        return np.clip(np.rint(x / s) + z, qmin, qmax).astype(self.numpy_dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Integer codes -> real values, float32."""
        q = np.asarray(q)
        s, z = self._bcast(self.scale, q.ndim), self._bcast(self.zero_point, q.ndim)
        return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-ready form (AIMET 2.0.0-style record: ``output_dtype``, ``y_scale``, ``y_zero_point``, ``axis``)."""
        return {"output_dtype": self.dtype, "y_scale": self.scale.tolist(), "y_zero_point": self.zero_point.tolist(),
                "axis": self.axis, "bitwidth": self.bitwidth, "symmetric": self.symmetric}

    @classmethod
    def from_dict(cls, d: dict) -> "Encoding":
        return cls(np.asarray(d["y_scale"], np.float32), np.asarray(d["y_zero_point"], np.int64), d["axis"],
                   d["output_dtype"], int(d["bitwidth"]), bool(d["symmetric"]))

    @classmethod
    def from_range(cls, rmin: float, rmax: float, bitwidth: int = 8, dtype: str = "int8") -> "Encoding":
        """Asymmetric per-tensor grid covering ``[min(rmin, 0), max(rmax, 0)]`` (0 stays exactly representable)."""
        qmin, qmax = grid_limits(bitwidth, dtype != "uint8", False)
        rmin, rmax = min(float(rmin), 0.0), max(float(rmax), 0.0)
        scale = np.float32(max(rmax - rmin, 1e-8) / (qmax - qmin))
        zp = int(np.clip(qmin - np.rint(np.float32(rmin) / scale), qmin, qmax))
        return cls(scale, np.int64(zp), None, dtype, bitwidth, False)
