"""Building blocks shared by the edgesense model families (INT8-friendly ops only).

Everything here maps to one integer kernel in ONNX Runtime QDQ and TFLite full-integer:
Conv2d (+ BatchNorm, folded at export) + ReLU, pooling, Linear. No recurrent cells, no exotic ops.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvBNReLU", "count_params", "count_macs"]


class ConvBNReLU(nn.Sequential):
    """Conv2d without bias, BatchNorm2d, ReLU: the unit the quantizer folds into one int8 conv."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | str = "same_odd", dilation: int | tuple[int, int] = 1) -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        d = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
        if padding == "same_odd":  # symmetric 'same' padding for odd kernels (explicit: exports cleanly)
            padding = tuple((kk - 1) * dd // 2 for kk, dd in zip(k, d))
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=d, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm affine included; running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (Conv2d and Linear layers)."""
    total = 0

    def conv_hook(mod: nn.Conv2d, _inp, out) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * kh * kw

    def linear_hook(mod: nn.Linear, _inp, out) -> None:
        nonlocal total
        total += out.numel() // out.shape[0] * mod.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
