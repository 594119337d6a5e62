"""Frame-loss models: independent (Bernoulli) and bursty (Gilbert-Elliott) drops.

Real links lose frames in bursts (buffer overflows, USB hiccups), so tests, simulated devices and
training augmentation draw drop masks from these models. A mask is a boolean array, True where a
frame is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BernoulliDrops:
    """Each frame is lost independently with probability ``p``."""

    p: float

    def mask(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random(n) < self.p

    @property
    def rate(self) -> float:
        return self.p


@dataclass(frozen=True)
class GilbertElliottDrops:
    """Two-state Markov loss: bursts of mean length ``1 / p_recover`` entered with ``p_burst``."""

    p_burst: float
    p_recover: float
    loss_in_burst: float = 1.0

    def mask(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        bad = False
        u = rng.random((n, 2))
        for k in range(n):
            bad = (u[k, 0] >= self.p_recover) if bad else (u[k, 0] < self.p_burst)
            out[k] = bad and u[k, 1] < self.loss_in_burst
        return out

    @property
    def rate(self) -> float:
        """Long-run share of frames lost."""
        stationary_bad = self.p_burst / (self.p_burst + self.p_recover)
        return stationary_bad * self.loss_in_burst


@dataclass(frozen=True)
class CombinedDrops:
    """Union of independent losses and bursts."""

    parts: tuple

    def mask(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        for part in self.parts:
            out |= part.mask(n, rng)
        return out

    @property
    def rate(self) -> float:
        keep = 1.0
        for part in self.parts:
            keep *= 1.0 - part.rate
        return 1.0 - keep


def random_plus_bursty(rate: float, burst_share: float = 0.5, mean_burst: float = 4.0) -> CombinedDrops:
    """A loss model with overall ``rate``: ``burst_share`` of it in bursts of ``mean_burst`` frames."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop rate must be in [0, 1), got {rate}")
    burst_rate = rate * burst_share
    random_rate = 1.0 - (1.0 - rate) / (1.0 - burst_rate) if burst_rate < 1 else 0.0
    p_recover = 1.0 / mean_burst
    p_burst = burst_rate * p_recover / max(1e-12, 1.0 - burst_rate)
    return CombinedDrops((BernoulliDrops(random_rate), GilbertElliottDrops(p_burst, p_recover)))
