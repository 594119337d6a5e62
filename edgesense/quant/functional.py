"""Fake quantization in torch, with straight-through rounding.

``fake_quantize(x, s, z, qmin, qmax) = s * (clamp(ste_round(x / s) + z, qmin, qmax) - z)`` where
``ste_round`` rounds half to even in the forward pass (``torch.round``, the rounding of ONNX
QuantizeLinear) and has gradient 1 (straight-through estimator). Autograd then yields the LSQ
gradients w.r.t. ``s`` (``round(x/s) - x/s`` inside the range, ``qmin - z`` / ``qmax - z`` when
clipped; quantization.md §4.1) and the min/max gradients of §4.2(b) when ``s``, ``z`` are computed
from a learned range.
"""

from __future__ import annotations

import torch

__all__ = ["ste_round", "fake_quantize", "scale_zero_point_from_range", "broadcast_channel"]


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half to even forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def broadcast_channel(t: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    """Reshape a per-channel vector so it broadcasts along ``axis`` of an ``ndim`` tensor."""
    if axis is None or t.ndim == 0:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int,
                  axis: int | None = None) -> torch.Tensor:
    """Quantize-dequantize ``x`` on the grid ``(scale, zero_point, [qmin, qmax])``."""
    s = broadcast_channel(scale, x.ndim, axis).to(x.dtype)
    z = broadcast_channel(zero_point, x.ndim, axis).to(x.dtype)
    q = torch.clamp(ste_round(x / s) + z, qmin, qmax)
    return (q - z) * s


def scale_zero_point_from_range(rmin: torch.Tensor, rmax: torch.Tensor, qmin: int, qmax: int,
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric grid from a (learnable) range: ``s = (max - min) / (qmax - qmin)``, ``z = qmin - round(min / s)``.

    Computed in float32 (the precision every runtime stores scales in); ``z`` uses straight-through rounding
    and is clamped to the grid so 0 stays representable when the range straddles it.
    """
    rmin32, rmax32 = rmin.float(), rmax.float()
    scale = torch.clamp((rmax32 - rmin32) / (qmax - qmin), min=1e-8)
    zp = torch.clamp(ste_round(qmin - rmin32 / scale), qmin, qmax)
    return scale, zp
