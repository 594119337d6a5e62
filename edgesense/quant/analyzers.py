"""Range analyzers: statistics in, a clipping range out. Kept apart from the quantizers.

Every analyzer has ``update(x)`` (accumulate statistics of one batch), ``compute() -> (min, max)``
and ``reset()``. With ``axis`` set, statistics and ranges are per channel along that axis.

* :class:`MinMaxAnalyzer` -- running min and max (AIMET ``min_max``; ORT ``MinMax``).
* :class:`PercentileAnalyzer` -- the ``(100 - p)``-th and ``p``-th percentiles of a sample of values.
* :class:`MseAnalyzer` -- grid search over shrunk ranges minimising the quantization MSE of the
  sampled values, clipped errors weighted by ``gamma`` (AIMET's SQNR search "tf_enhanced" uses gamma = 3,
  quantization.md §4.8; gamma = 1 is plain MSE). Minimising MSE maximises SQNR.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgesense.errors import EdgesenseError

__all__ = ["RangeAnalyzer", "MinMaxAnalyzer", "PercentileAnalyzer", "MseAnalyzer", "AnalyzerConfig",
           "make_analyzer", "METHODS"]

METHODS = ("minmax", "percentile", "mse")


def _per_channel_view(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """(C, N) view for per-channel statistics, (1, N) for per-tensor."""
    x = x.detach().float()
    if axis is None:
        return x.reshape(1, -1)
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


class RangeAnalyzer:
    """Base: per-tensor (``axis=None``) or per-channel statistics."""

    def __init__(self, axis: int | None = None) -> None:
        self.axis = axis
        self.reset()

    def reset(self) -> None:
        self.min: torch.Tensor | None = None
        self.max: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        v = _per_channel_view(x, self.axis)
        lo, hi = v.min(dim=1).values, v.max(dim=1).values
        self.min = lo if self.min is None else torch.minimum(self.min, lo)
        self.max = hi if self.max is None else torch.maximum(self.max, hi)

    @property
    def ready(self) -> bool:
        return self.min is not None

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.min is None or self.max is None:
            raise EdgesenseError("range analyzer saw no data; run calibration batches first")
        return self._compute()

    def _compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.min, self.max

    def _squeeze(self, t: torch.Tensor) -> torch.Tensor:
        return t[0] if self.axis is None else t


class MinMaxAnalyzer(RangeAnalyzer):
    """Observed minimum and maximum."""

    def _compute(self):
        return self._squeeze(self.min), self._squeeze(self.max)


class _SampledAnalyzer(RangeAnalyzer):
    """Keeps up to ``max_samples`` values per channel (uniform random subsample per batch)."""

    def __init__(self, axis: int | None = None, max_samples: int = 200_000, seed: int = 0) -> None:
        self.max_samples = max_samples
        self.gen = torch.Generator().manual_seed(seed)
        super().__init__(axis)

    def reset(self) -> None:
        super().reset()
        self.samples: list[torch.Tensor] = []
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        super().update(x)
        v = _per_channel_view(x, self.axis)
        budget = max(1, self.max_samples // 16)
        if v.shape[1] > budget:
            idx = torch.randint(0, v.shape[1], (budget,), generator=self.gen)
            v = v[:, idx]
        self.samples.append(v)
        self.count += v.shape[1]
        if self.count > 2 * self.max_samples:
            allv = torch.cat(self.samples, dim=1)
            idx = torch.randperm(allv.shape[1], generator=self.gen)[: self.max_samples]
            self.samples, self.count = [allv[:, idx]], self.max_samples

    def values(self) -> torch.Tensor:
        return torch.cat(self.samples, dim=1)


class PercentileAnalyzer(_SampledAnalyzer):
    """Clip at the ``100 - percentile`` and ``percentile`` quantiles of the observed values."""

    def __init__(self, axis: int | None = None, percentile: float = 99.99, **kw) -> None:
        if not 50.0 < percentile <= 100.0:
            raise EdgesenseError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile
        super().__init__(axis, **kw)

    def _compute(self):
        v = self.values()
        q = torch.tensor([1.0 - self.percentile / 100.0, self.percentile / 100.0])
        lo_hi = torch.quantile(v, q, dim=1)
        lo = torch.minimum(lo_hi[0], torch.zeros(()))
        hi = torch.maximum(lo_hi[1], torch.zeros(()))
        # never clip beyond the data: the percentile range is inside [min, max]
        return self._squeeze(torch.maximum(lo, self.min)), self._squeeze(torch.minimum(hi, self.max))


class MseAnalyzer(_SampledAnalyzer):
    """Search ``[a * min, b * max]`` over a grid of shrink factors for the least quantization MSE.

    ``symmetric`` searches ``[-c * m, c * m]`` with ``m = max|x|`` (weights); ``qmin``/``qmax``
    give the integer grid the error is measured on.
    """

    def __init__(self, axis: int | None = None, qmin: int = -128, qmax: int = 127, symmetric: bool = False,
                 candidates: int = 40, gamma: float = 1.0, **kw) -> None:
        self.qmin, self.qmax, self.symmetric = qmin, qmax, symmetric
        self.candidates, self.gamma = candidates, gamma
        super().__init__(axis, **kw)

    def _error(self, v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Weighted quantization MSE of v (C, N) for ranges lo, hi of shape (C, K) -> (C, K)."""
        scale = torch.clamp((hi - lo) / (self.qmax - self.qmin), min=1e-12)
        zp = torch.clamp(torch.round(self.qmin - lo / scale), self.qmin, self.qmax)
        x = v[:, None, :]
        q = torch.clamp(torch.round(x / scale[..., None]) + zp[..., None], self.qmin, self.qmax)
        err = ((q - zp[..., None]) * scale[..., None] - x) ** 2
        if self.gamma != 1.0:
            clipped = (x < lo[..., None]) | (x > hi[..., None])
            err = torch.where(clipped, err * self.gamma, err)
        return err.mean(dim=2)

    def _compute(self):
        v = self.values()
        lo0 = torch.minimum(self.min, torch.zeros(()))
        hi0 = torch.maximum(self.max, torch.zeros(()))
        f = torch.linspace(0.2, 1.0, self.candidates)
        if self.symmetric:
            m = torch.maximum(-lo0, hi0)
            hi = m[:, None] * f[None, :]
            best = hi.gather(1, self._argmin(v, -hi, hi))[:, 0]
            return self._squeeze(-best), self._squeeze(best)
        # coordinate search: best max with min fixed, then best min with that max
        hi_c = hi0[:, None] * f[None, :]
        lo_fixed = lo0[:, None].expand_as(hi_c)
        hi_best = hi_c.gather(1, self._argmin(v, lo_fixed, hi_c))
        lo_c = lo0[:, None] * f[None, :]
        lo_best = lo_c.gather(1, self._argmin(v, lo_c, hi_best.expand_as(lo_c)))
        return self._squeeze(lo_best[:, 0]), self._squeeze(hi_best[:, 0])

    def _argmin(self, v, lo, hi) -> torch.Tensor:
        err = torch.cat([self._error(v[:, i:i + 4096], lo, hi)[..., None]
                         for i in range(0, v.shape[1], 4096)], dim=-1).mean(dim=-1)
        return err.argmin(dim=1, keepdim=True)


@dataclass(frozen=True)
class AnalyzerConfig:
    """How to set ranges: ``method`` in :data:`METHODS`, with its knobs."""

    method: str = "minmax"
    percentile: float = 99.99
    mse_candidates: int = 40
    mse_gamma: float = 1.0
    max_samples: int = 200_000

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EdgesenseError(f"unknown range method {self.method!r}; choose one of {', '.join(METHODS)}")


def make_analyzer(cfg: AnalyzerConfig, axis: int | None = None, qmin: int = -128, qmax: int = 127,
                  symmetric: bool = False) -> RangeAnalyzer:
    """The analyzer ``cfg`` names, for a tensor quantized on ``[qmin, qmax]``."""
    if cfg.method == "minmax":
        return MinMaxAnalyzer(axis)
    if cfg.method == "percentile":
        return PercentileAnalyzer(axis, cfg.percentile, max_samples=cfg.max_samples)
    return MseAnalyzer(axis, qmin, qmax, symmetric, cfg.mse_candidates, cfg.mse_gamma, max_samples=cfg.max_samples)
