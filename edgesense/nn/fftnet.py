"""FFTNet adapted to speaker-excursion regression (causal, streamable, INT8-friendly).

FFTNet (Jin, Finkelstein, Mysore, Lu, ICASSP 2018) splits its input window in halves and mixes them
with two 1x1 convolutions; that equals a kernel-2 dilated causal convolution, and a stack with
dilations N/2, N/4, ..., 1 sees N = 2**L steps (reference notes, speaker.md §3.1). Here it regresses
excursion instead of classifying mu-law samples, and is not autoregressive (speaker.md §3.2):

* input: sensed ``v`` and ``i`` (optionally the impedance-tracked linear model's prediction, which
  makes the physics-informed hybrid) at 48 kHz, grouped into frames of ``frame`` samples so the stack
  runs at a decimated internal rate (48 kHz / 4 = 12 kHz; speaker-findings.md), i.e. ``frame * C``
  input channels per step;
* each layer: kernel-2 dilated causal conv -> BN -> ReLU -> Conv1x1 -> BN -> ReLU, plus a residual
  add (an adaptation for trainability in minutes on a CPU; every op is Conv1d, BatchNorm, ReLU or Add,
  which quantize to INT8 cleanly);
* head: a linear Conv1x1 to ``frame`` outputs per step (the excursion of the frame's samples, in the
  Bl-normalised units of :mod:`edgesense.speaker.streaming`). The hybrid (``skip_signal=2``) adds its
  third input, the impedance-tracked linear prediction in the same units, to the head's output: the
  network learns only the correction of the physics model (one Add).

Every causal convolution keeps its own left context, so :meth:`ExcursionNet.stream` runs the model
block by block with explicit state (ring buffers of the last ``(k-1)*dilation`` steps) and gives
exactly the whole-signal output (Fast-WaveNet queue trick, speaker.md §3.1).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgesense.nn.registry import register_model

__all__ = ["CausalConv1d", "ExcursionNet", "FFTNet", "fftnet", "excursion_fftnet", "excursion_hybrid"]


class CausalConv1d(nn.Conv1d):
    """A Conv1d that pads only on the left (``(kernel-1)*dilation`` steps), so output t sees inputs <= t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.context = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.training and self.kernel_size[0] == 2 and self.context:
            # FFTNet's split form W_L x[t-d] + W_R x[t]: same result, avoids PyTorch's slow dilated-conv
            # path on CPU while training (export and eval keep the plain dilated Conv1d)
            shifted = F.pad(x, (self.context, 0))[..., :x.shape[-1]]
            weight = torch.cat([self.weight[:, :, 0], self.weight[:, :, 1]], dim=1).unsqueeze(-1)
            return F.conv1d(torch.cat([shifted, x], dim=1), weight, self.bias)
        return super().forward(F.pad(x, (self.context, 0)) if self.context else x)

    def stream(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Convolve block ``x`` (N, C, B) given the previous ``context`` input steps; return (y, new state)."""
        if not self.context:
            return super().forward(x), state
        full = torch.cat([state, x], dim=-1)
        return super().forward(full), full[..., -self.context:]


class ExcursionNet(nn.Module):
    """Base of the excursion regressors: a stack of causal convs with streaming support.

    Subclasses fill ``self.causal`` (every :class:`CausalConv1d` in forward order) and implement
    ``_run(x, conv_fn)`` where ``conv_fn(conv, x)`` applies one causal conv.
    """

    in_signals: int
    frame: int

    def __init__(self) -> None:
        super().__init__()
        self.causal: list[CausalConv1d] = []

    def _run(self, x: torch.Tensor, conv_fn) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole-signal prediction: (N, in_signals*frame, T) -> (N, frame, T), zero initial state."""
        return self._run(x, lambda conv, h: conv(h))

    def state_shapes(self) -> list[tuple[int, int]]:
        """(channels, steps) of each streaming state tensor, in order."""
        return [(c.in_channels, c.context) for c in self.causal if c.context]

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(batch, c, n) for c, n in self.state_shapes()]

    def stream(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One block: (x, *states) -> (y, *new_states); chaining blocks equals :meth:`forward`."""
        it = iter(states)
        new: list[torch.Tensor] = []

        def conv_fn(conv: CausalConv1d, h: torch.Tensor) -> torch.Tensor:
            if not conv.context:
                return conv(h)
            y, s = conv.stream(h, next(it))
            new.append(s)
            return y

        y = self._run(x, conv_fn)
        return (y, *new)

    @property
    def receptive_field(self) -> int:
        """Steps (frames) of input that one output step depends on."""
        return 1 + sum(c.context for c in self.causal)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_step(self) -> int:
        """Multiply-accumulates per output step (frame), convolutions only."""
        total = 0
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                total += m.in_channels * m.out_channels * m.kernel_size[0] // m.groups
        return total


class _FFTLayer(nn.Module):
    def __init__(self, channels: int, dilation: int, residual: bool) -> None:
        super().__init__()
        self.split = CausalConv1d(channels, channels, 2, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.mix = nn.Conv1d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.residual = residual

    def run(self, x: torch.Tensor, conv_fn) -> torch.Tensor:
        h = F.relu(self.bn1(conv_fn(self.split, x)))
        h = self.bn2(self.mix(h))
        return F.relu(h + x) if self.residual else F.relu(h)


class FFTNet(ExcursionNet):
    """FFTNet regressor: input Conv1x1 -> BN -> ReLU, ``layers`` FFT layers with dilations
    2**(layers-1) ... 1 (receptive field 2**layers frames), linear Conv1x1 head to ``frame`` outputs."""

    def __init__(self, in_signals: int = 2, frame: int = 4, channels: int = 24, layers: int = 8,
                 residual: bool = True, skip_signal: int | None = None) -> None:
        super().__init__()
        self.in_signals, self.frame = in_signals, frame
        if skip_signal is not None and not 0 <= skip_signal < in_signals:
            raise ValueError(f"skip_signal must index one of the {in_signals} input signals, got {skip_signal}")
        self.skip_signal = skip_signal
        self.inp = nn.Conv1d(in_signals * frame, channels, 1, bias=False)
        self.bn_in = nn.BatchNorm1d(channels)
        self.layers = nn.ModuleList(_FFTLayer(channels, 2 ** k, residual) for k in reversed(range(layers)))
        self.head = nn.Conv1d(channels, frame, 1)
        self.causal = [layer.split for layer in self.layers]

    def _run(self, x: torch.Tensor, conv_fn) -> torch.Tensor:
        h = F.relu(self.bn_in(self.inp(x)))
        for layer in self.layers:
            h = layer.run(h, conv_fn)
        y = self.head(h)
        if self.skip_signal is not None:  # the network predicts a correction of this input signal
            k = self.skip_signal * self.frame
            y = y + x[:, k:k + self.frame]
        return y


def fftnet(in_signals: int = 2, **kwargs) -> FFTNet:
    """The default FFTNet excursion model (24 channels, 8 layers, 4-sample frames: 256-frame receptive field)."""
    return FFTNet(in_signals=in_signals, **kwargs)


@register_model("excursion_fftnet")
def excursion_fftnet(**kwargs) -> FFTNet:
    """FFTNet on (v, i)."""
    return fftnet(in_signals=2, **kwargs)


@register_model("excursion_hybrid")
def excursion_hybrid(**kwargs) -> FFTNet:
    """Physics-informed hybrid: FFTNet on (v, i, impedance-tracked linear prediction) that predicts a
    correction added to the tracked prediction (both in the Bl-normalised output units)."""
    return fftnet(in_signals=3, skip_signal=2, **kwargs)
