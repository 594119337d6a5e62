"""Excursion prediction metrics.

* ``nrmse``: RMSE / max|x| over the evaluated samples;
* ``loud_within_0_02``: share of loud samples (|x| >= 0.1 mm) whose error is below 0.02 mm;
* ``peak_error_mm``: max |error|;
* ``within_0_1``: share of all samples with |error| < 0.1 mm (the paper's headline figure; weak,
  because silence and quiet passages pass trivially -- always compare with the zero predictor);
* ``offset_within_0_01``: share of samples whose offset (below 20 Hz, zero-phase low-pass of the
  truth and of the prediction) error is below 0.01 mm (the voice-coil DC displacement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal

__all__ = ["ExcursionMetrics", "excursion_metrics", "combined_metrics", "zero_predictor", "offset_component"]

LOUD_MM = 0.1
OFFSET_CUTOFF_HZ = 20.0


@dataclass
class ExcursionMetrics:
    """Metrics of one prediction against the truth (lengths in mm)."""

    nrmse: float
    rmse_mm: float
    peak_error_mm: float
    loud_within_0_02: float
    within_0_1: float
    offset_within_0_01: float
    max_abs_x_mm: float
    samples: int
    loud_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def offset_component(x: np.ndarray, fs: float = 48_000.0, cutoff_hz: float = OFFSET_CUTOFF_HZ) -> np.ndarray:
    """The < ``cutoff_hz`` part of ``x`` (4th-order Butterworth, zero phase, for offline evaluation)."""
    x = np.asarray(x, dtype=np.float64)
    sos = signal.butter(4, cutoff_hz, "lowpass", fs=fs, output="sos")
    if len(x) <= 3 * 2 * len(sos):
        return np.full_like(x, x.mean() if len(x) else 0.0)
    return signal.sosfiltfilt(sos, x)


def zero_predictor(x: np.ndarray) -> np.ndarray:
    """The trivial reference prediction: zero excursion everywhere."""
    return np.zeros_like(np.asarray(x, dtype=np.float64))


def _from_arrays(err: np.ndarray, x: np.ndarray, off_err: np.ndarray) -> ExcursionMetrics:
    n = len(x)
    if n == 0:
        raise ValueError("no samples to evaluate")
    abs_err = np.abs(err)
    loud = np.abs(x) >= LOUD_MM
    peak_x = float(np.max(np.abs(x)))
    rmse = float(np.sqrt(np.mean(err * err)))
    return ExcursionMetrics(
        nrmse=rmse / peak_x if peak_x > 0 else float("inf"), rmse_mm=rmse, peak_error_mm=float(abs_err.max()),
        loud_within_0_02=float(np.mean(abs_err[loud] < 0.02)) if loud.any() else float("nan"),
        within_0_1=float(np.mean(abs_err < 0.1)), offset_within_0_01=float(np.mean(np.abs(off_err) < 0.01)),
        max_abs_x_mm=peak_x, samples=n, loud_samples=int(loud.sum()))


def excursion_metrics(x_true: np.ndarray, x_pred: np.ndarray, fs: float = 48_000.0,
                      skip: int = 0) -> ExcursionMetrics:
    """Metrics of ``x_pred`` against ``x_true`` (both mm), ignoring the first ``skip`` samples."""
    return combined_metrics([(x_true, x_pred)], fs, skip)


def combined_metrics(pairs, fs: float = 48_000.0, skip: int = 0) -> ExcursionMetrics:
    """Metrics over several (truth, prediction) signals pooled sample by sample.

    The offset component is computed per signal (so filters do not run across joins); NRMSE
    uses the pooled RMSE and the largest |x| of all signals.
    """
    errs, xs, offs = [], [], []
    for x_true, x_pred in pairs:
        x_true = np.asarray(x_true, dtype=np.float64).ravel()
        x_pred = np.asarray(x_pred, dtype=np.float64).ravel()
        if x_true.shape != x_pred.shape:
            raise ValueError(f"truth and prediction differ in length: {x_true.shape} vs {x_pred.shape}")
        off = offset_component(x_pred, fs) - offset_component(x_true, fs)
        errs.append((x_pred - x_true)[skip:])
        xs.append(x_true[skip:])
        offs.append(off[skip:])
    return _from_arrays(np.concatenate(errs), np.concatenate(xs), np.concatenate(offs))
