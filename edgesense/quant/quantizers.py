"""Fake quantizers as small ``nn.Module`` s whose names spell the spec.

* :class:`WeightQuantizerPerChannelSym` / per-tensor via ``per_channel=False`` -- symmetric weights
  on ``[-(2^(b-1)-1), 2^(b-1)-1]`` (int8: [-127, 127]), zero point 0.
* :class:`ActQuantizerPerTensorAsym` -- asymmetric per-tensor activations (int8 [-128, 127] or
  uint8 [0, 255]) whose range is one of three learnable parameterisations (quantization.md §4.2;
  You et al., arXiv 2404.16898): :class:`MinMaxRange` (default, AIMET's), :class:`ScaleOffsetRange`
  (LSQ+), :class:`BetaGammaRange` (sigmoid-free by default).
* :class:`FixedQuantizer` -- a fixed grid (softmax output: scale 1/256, the grid ORT's QLinearSoftmax
  and TFLite use).
* :class:`TiedQuantizer` -- re-quantizes on another quantizer's grid (pooling, reshapes: same in/out
  parameters, as TFLite's int8 kernels require).

A quantizer is *calibrating* inside :func:`edgesense.quant.calibration` (it passes data through and
feeds its analyzer), *quantizing* after that, and can be disabled (``enabled = False``) for
sensitivity analysis.
"""

from __future__ import annotations

import torch
from torch import nn

from edgesense.quant.analyzers import AnalyzerConfig, RangeAnalyzer, make_analyzer
from edgesense.quant.encoding import Encoding, grid_limits
from edgesense.quant.functional import fake_quantize, scale_zero_point_from_range, ste_round

__all__ = ["QuantizerBase", "WeightQuantizerPerChannelSym", "ActQuantizerPerTensorAsym", "FixedQuantizer",
           "TiedQuantizer", "RangeParam", "MinMaxRange", "ScaleOffsetRange", "BetaGammaRange", "RANGE_PARAMS"]


class QuantizerBase(nn.Module):
    """Common state: grid limits, the enabled and calibrating flags."""

    def __init__(self, bitwidth: int, dtype: str, symmetric: bool) -> None:
        super().__init__()
        self.bitwidth, self.dtype, self.symmetric = bitwidth, dtype, symmetric
        self.qmin, self.qmax = grid_limits(bitwidth, dtype != "uint8", symmetric)
        self.enabled = True
        self.calibrating = False

    def scale_zero_point(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @property
    def initialized(self) -> bool:
        return True

    axis: int | None = None

    def encoding(self) -> Encoding:
        """The grid this quantizer applies, as the exporters' :class:`Encoding`."""
        with torch.no_grad():
            s, z = self.scale_zero_point()
        return Encoding(s.detach().float().cpu().numpy(), torch.round(z.detach()).long().cpu().numpy(),
                        self.axis if s.ndim else None, self.dtype, self.bitwidth, self.symmetric)

    def quantize_dequantize(self, x: torch.Tensor) -> torch.Tensor:
        s, z = self.scale_zero_point()
        return fake_quantize(x, s, z, self.qmin, self.qmax, self.axis if s.ndim else None)

    def extra_repr(self) -> str:
        return f"{self.dtype}[{self.qmin},{self.qmax}] bits={self.bitwidth} sym={self.symmetric}"


class WeightQuantizerPerChannelSym(QuantizerBase):
    """Symmetric weights, per output channel (axis 0) or per tensor; scale = range / qmax.

    The range comes from the analyzer at calibration; while ``track`` is on (QAT) it follows the
    live weights' max |w| each forward.
    """

    def __init__(self, bitwidth: int = 8, per_channel: bool = True, analyzer: AnalyzerConfig = AnalyzerConfig(),
                 channels: int = 1) -> None:
        super().__init__(bitwidth, "int8", True)
        self.per_channel = per_channel
        self.axis = 0 if per_channel else None
        self.analyzer_cfg = analyzer
        self.track = False
        self.register_buffer("absmax", torch.ones(channels if per_channel else ()))
        self._live: list[torch.Tensor] = []   # the last weight seen (a list: not registered as a parameter)

    def set_range_from(self, w: torch.Tensor) -> None:
        """Compute and freeze the range from weight ``w`` with the configured analyzer."""
        an = make_analyzer(self.analyzer_cfg, self.axis, self.qmin, self.qmax, symmetric=True)
        an.update(w)
        lo, hi = an.compute()
        self.absmax = torch.maximum(-lo, hi).detach().clone().reshape(self.absmax.shape)

    def scale_zero_point(self):
        absmax = self.absmax
        if self.track and self._live:
            w = self._live[0].detach()
            absmax = w.abs().reshape(w.shape[0], -1).max(dim=1).values if self.per_channel else w.abs().max()
        scale = torch.clamp(absmax.float() / self.qmax, min=1e-8)
        return scale, torch.zeros_like(scale)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        self._live[:] = [w]
        if not self.enabled:
            return w
        return self.quantize_dequantize(w)


# --- range parameterisations of an asymmetric activation grid --------------------------------------


class RangeParam(nn.Module):
    """A learnable range: ``init(min, max)`` from calibration, ``forward() -> (scale, zero_point)``."""

    name = "abstract"

    def __init__(self, qmin: int, qmax: int) -> None:
        super().__init__()
        self.qmin, self.qmax = qmin, qmax

    def init(self, rmin: torch.Tensor, rmax: torch.Tensor) -> None:
        raise NotImplementedError

    def lr_scale(self) -> float:
        """Multiplier for this parameterisation's learning rate relative to the weights'."""
        return 1.0


class MinMaxRange(RangeParam):
    """Learn ``theta_min``, ``theta_max``; ``s = (max - min) / (qmax - qmin)``, ``z = qmin - round(min / s)``.

    In-range gradients are O(1/2^b) and clipping gradients O(1) (§4.2 b), so the paper recommends a
    learning rate scaled up for these parameters: by default ``2^b`` times the base rate (the grid has
    ``2^b`` steps; this makes in-range updates move the range by about one step per unit base rate).
    """

    name = "minmax"

    def __init__(self, qmin: int, qmax: int) -> None:
        super().__init__(qmin, qmax)
        self.theta_min = nn.Parameter(torch.tensor(-1.0))
        self.theta_max = nn.Parameter(torch.tensor(1.0))

    def init(self, rmin, rmax):
        with torch.no_grad():
            self.theta_min.copy_(torch.as_tensor(rmin, dtype=torch.float32))
            self.theta_max.copy_(torch.as_tensor(rmax, dtype=torch.float32))

    def forward(self):
        return scale_zero_point_from_range(self.theta_min, self.theta_max, self.qmin, self.qmax)

    def lr_scale(self) -> float:
        return float(self.qmax - self.qmin + 1)


class ScaleOffsetRange(RangeParam):
    """Learn ``scale`` and a real-valued ``offset`` (rounded straight-through to the zero point) (LSQ+)."""

    name = "scale_offset"

    def __init__(self, qmin: int, qmax: int) -> None:
        super().__init__(qmin, qmax)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.offset = nn.Parameter(torch.tensor(0.0))

    def init(self, rmin, rmax):
        s, z = scale_zero_point_from_range(torch.as_tensor(rmin), torch.as_tensor(rmax), self.qmin, self.qmax)
        with torch.no_grad():
            self.scale.copy_(s)
            self.offset.copy_(z)

    def forward(self):
        scale = torch.clamp(self.scale.float(), min=1e-8)
        return scale, torch.clamp(ste_round(self.offset.float()), self.qmin, self.qmax)


class BetaGammaRange(RangeParam):
    """Learn multipliers of the calibrated range: ``min = beta * m0``, ``max = gamma * M0`` (init 1).

    Gradients scale with the data range, so ranges move fast (§4.2 c). ``sigmoid=True`` bounds the
    factors by ``sigmoid`` (OmniQuant-style, init logit 4); the paper's recommendation, and the
    default, is sigmoid-free.
    """

    name = "beta_gamma"

    def __init__(self, qmin: int, qmax: int, sigmoid: bool = False) -> None:
        super().__init__(qmin, qmax)
        self.sigmoid = sigmoid
        init = 4.0 if sigmoid else 1.0
        self.beta = nn.Parameter(torch.tensor(init))
        self.gamma = nn.Parameter(torch.tensor(init))
        self.register_buffer("m0", torch.tensor(-1.0))
        self.register_buffer("M0", torch.tensor(1.0))

    def init(self, rmin, rmax):
        with torch.no_grad():
            self.m0.copy_(torch.as_tensor(rmin, dtype=torch.float32))
            self.M0.copy_(torch.as_tensor(rmax, dtype=torch.float32))
            # sigmoid(4) ~ 0.982: start slightly inside the calibrated range, as OmniQuant does
            self.beta.fill_(4.0 if self.sigmoid else 1.0)
            self.gamma.fill_(4.0 if self.sigmoid else 1.0)

    def forward(self):
        b, g = (torch.sigmoid(self.beta), torch.sigmoid(self.gamma)) if self.sigmoid else (self.beta, self.gamma)
        return scale_zero_point_from_range(b * self.m0, g * self.M0, self.qmin, self.qmax)


RANGE_PARAMS: dict[str, type[RangeParam]] = {c.name: c for c in (MinMaxRange, ScaleOffsetRange, BetaGammaRange)}


class ActQuantizerPerTensorAsym(QuantizerBase):
    """Asymmetric per-tensor activation quantizer with a learnable range parameterisation."""

    def __init__(self, bitwidth: int = 8, dtype: str = "int8", analyzer: AnalyzerConfig = AnalyzerConfig(),
                 range_param: str = "minmax") -> None:
        super().__init__(bitwidth, dtype, False)
        self.analyzer_cfg = analyzer
        self.analyzer: RangeAnalyzer = make_analyzer(analyzer, None, self.qmin, self.qmax)
        if range_param not in RANGE_PARAMS:
            raise ValueError(f"unknown range parameterisation {range_param!r}; choose from {sorted(RANGE_PARAMS)}")
        self.range = RANGE_PARAMS[range_param](self.qmin, self.qmax)
        self.register_buffer("_init", torch.tensor(False))

    @property
    def initialized(self) -> bool:
        return bool(self._init)

    def init_from_analyzer(self) -> None:
        """Set the range from the statistics gathered during calibration (0 always inside the range)."""
        lo, hi = self.analyzer.compute()
        lo, hi = torch.minimum(lo, torch.zeros(())), torch.maximum(hi, torch.zeros(()))
        if float(hi - lo) < 1e-8:
            hi = lo + 1e-3
        self.range.init(lo, hi)
        self._init.fill_(True)
        self.analyzer.reset()

    def set_range(self, rmin: float, rmax: float) -> None:
        self.range.init(torch.tensor(float(min(rmin, 0.0))), torch.tensor(float(max(rmax, 0.0))))
        self._init.fill_(True)

    def scale_zero_point(self):
        return self.range()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.analyzer.update(x)
            return x
        if not self.enabled or not self.initialized:
            return x
        return self.quantize_dequantize(x)


class FixedQuantizer(QuantizerBase):
    """A grid fixed in advance (``scale``, ``zero_point``), e.g. softmax output 1/256."""

    def __init__(self, scale: float, zero_point: int, bitwidth: int = 8, dtype: str = "int8") -> None:
        super().__init__(bitwidth, dtype, False)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("zero_point", torch.tensor(float(zero_point)))

    @classmethod
    def softmax_output(cls, dtype: str = "int8") -> "FixedQuantizer":
        """ORT QLinearSoftmax / TFLite: scale 1/256, zero point -128 (int8) or 0 (uint8)."""
        return cls(1.0 / 256.0, -128 if dtype == "int8" else 0, 8, dtype)

    def scale_zero_point(self):
        return self.scale, self.zero_point

    def forward(self, x):
        if self.calibrating or not self.enabled:
            return x
        return self.quantize_dequantize(x)


class TiedQuantizer(nn.Module):
    """Re-quantize on the grid of ``source`` (shares its encoding; never calibrates)."""

    def __init__(self, source: QuantizerBase) -> None:
        super().__init__()
        self._source = [source]   # a list, so the source is not registered twice as a submodule
        self.enabled = True

    @property
    def source(self) -> QuantizerBase:
        return self._source[0]

    def encoding(self) -> Encoding:
        return self.source.encoding()

    def forward(self, x):
        src = self.source
        if src.calibrating or not self.enabled or not src.enabled or not src.initialized:
            return x
        return src.quantize_dequantize(x)
