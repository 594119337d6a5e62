"""The paper's baseline ConvNet for excursion regression: stacked causal 1-D convs with BN.

Same inputs, outputs and framing as :class:`edgesense.nn.fftnet.FFTNet` (speaker.md §3.2, "plain
stacked 1-D convs (constant dilation) with BN"): an input Conv1x1 -> BN -> ReLU, then ``layers``
causal convs of kernel ``kernel`` (dilation 1) each followed by BN -> ReLU with a residual add, and a
linear Conv1x1 head. Streams exactly like the FFTNet (:meth:`ExcursionNet.stream`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgesense.nn.fftnet import CausalConv1d, ExcursionNet
from edgesense.nn.registry import register_model

__all__ = ["ConvNet", "convnet", "excursion_convnet"]


class ConvNet(ExcursionNet):
    """Stacked causal Conv1d(kernel) -> BN -> ReLU (+ residual); receptive field 1 + layers*(kernel-1) frames."""

    def __init__(self, in_signals: int = 2, frame: int = 4, channels: int = 24, layers: int = 6,
                 kernel: int = 5) -> None:
        super().__init__()
        self.in_signals, self.frame = in_signals, frame
        self.inp = nn.Conv1d(in_signals * frame, channels, 1, bias=False)
        self.bn_in = nn.BatchNorm1d(channels)
        self.convs = nn.ModuleList(CausalConv1d(channels, channels, kernel, bias=False) for _ in range(layers))
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(layers))
        self.head = nn.Conv1d(channels, frame, 1)
        self.causal = list(self.convs)

    def _run(self, x: torch.Tensor, conv_fn) -> torch.Tensor:
        h = F.relu(self.bn_in(self.inp(x)))
        for conv, bn in zip(self.convs, self.bns):
            h = F.relu(bn(conv_fn(conv, h)) + h)
        return self.head(h)


def convnet(in_signals: int = 2, **kwargs) -> ConvNet:
    """The default baseline ConvNet (24 channels, 6 layers of kernel 5: 25-frame receptive field)."""
    return ConvNet(in_signals=in_signals, **kwargs)


@register_model("excursion_convnet")
def excursion_convnet(**kwargs) -> ConvNet:
    """Baseline ConvNet on (v, i)."""
    return convnet(in_signals=2, **kwargs)
