"""Label-free guard for online adaptation (run-time core, numpy only).

BN re-estimation changes a network using unlabeled V/I only, so nothing measured on that data says
whether it helped. The guard uses the one independent estimate available without a laser: the online
impedance-tracked linear model (:mod:`edgesense.speaker.tracking`), which identifies the speaker from
the same V/I and predicts x with the datasheet Bl. A network that is better than the tracker agrees
with it up to the tracker's own error; an adaptation that makes the network worse moves it away.
:func:`consistency_error` is that disagreement; an adaptation that raises it is refused.
"""

from __future__ import annotations

import numpy as np

__all__ = ["consistency_error"]


def consistency_error(pred: np.ndarray, tracked: np.ndarray, skip: int = 24_000) -> float:
    """RMS(pred - tracked) / RMS(tracked) after the first ``skip`` samples (tracker convergence, 0.5 s)."""
    n = min(len(pred), len(tracked))
    start = skip if n > 2 * skip else 0
    p = np.asarray(pred[start:n], np.float64)
    t = np.asarray(tracked[start:n], np.float64)
    ok = np.isfinite(t)
    if not ok.any():
        return float("nan")
    ref = np.sqrt(np.mean(t[ok] ** 2))
    return float(np.sqrt(np.mean((p[ok] - t[ok]) ** 2)) / max(ref, 1e-12))
