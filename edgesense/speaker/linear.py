"""Current-driven linear excursion model with datasheet parameters (the cheap physical baseline).

X/I = Bl / (Mms s^2 + Rms s + Kms): the cone's response to the measured coil current. It needs
no Re or Le, so coil heating does not disturb it, but it trusts the datasheet Bl, Mms, Rms and
Kms (leaks, ageing and the large-signal nonlinearity are not followed). Discretised with the
bilinear transform and run as a causal IIR filter that streams over blocks of any size.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from edgesense.errors import ProfileError
from edgesense.profiles import SpeakerParams

__all__ = ["x_over_i_coefficients", "LinearExcursion", "predict_linear"]


def x_over_i_coefficients(bl: float, mms: float, rms: float, kms: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear-transform (b, a) of X/I = Bl/(Mms s^2 + Rms s + Kms), output in mm per A, a[0] = 1.

    With s = c (1 - 1/z) / (1 + 1/z), c = 2 fs (closed form of ``scipy.signal.bilinear``).
    """
    c = 2.0 * fs
    m, r = mms * c * c, rms * c
    a0 = m + r + kms
    g = bl * 1e3 / a0
    return np.array([g, 2 * g, g]), np.array([1.0, 2 * (kms - m) / a0, (m - r + kms) / a0])


def _require(params: SpeakerParams) -> None:
    missing = [k for k in ("mms", "rms", "kms") if getattr(params, k) is None]
    if missing:
        raise ProfileError(f"the linear excursion model needs datasheet {', '.join(missing)} (and bl)")


class LinearExcursion:
    """Streaming X/I model: ``process(i_block) -> x_block`` (mm); block sizes may vary freely."""

    def __init__(self, params: SpeakerParams, fs: float = 48_000.0) -> None:
        _require(params)
        self.params = params
        self.fs = fs
        self.b, self.a = x_over_i_coefficients(params.bl, params.mms, params.rms, params.kms,  # type: ignore[arg-type]
                                               fs)
        self.reset()

    def reset(self) -> None:
        """Forget the filter state (e.g. after a gap in the stream)."""
        self._zi = np.zeros(max(len(self.a), len(self.b)) - 1)

    def process(self, i_block: np.ndarray) -> np.ndarray:
        """Excursion (mm) for one block of current samples (A)."""
        y, self._zi = signal.lfilter(self.b, self.a, np.asarray(i_block, dtype=np.float64), zi=self._zi)
        return y


def predict_linear(i: np.ndarray, params: SpeakerParams, fs: float = 48_000.0) -> np.ndarray:
    """Excursion (mm) of a whole current signal; equals streaming :class:`LinearExcursion` over it."""
    return LinearExcursion(params, fs).process(i)
