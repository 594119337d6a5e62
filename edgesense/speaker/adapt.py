"""Adapting to an unseen speaker without labels (run-time core, numpy only).

Two tools for a speaker no laser has measured:

* :func:`consistency_error`, the label-free guard of BN re-estimation. BN re-estimation changes a
  network using unlabeled V/I only, so nothing measured on that data says whether it helped. The
  guard uses the one independent estimate available without a laser: the online impedance-tracked
  linear model (:mod:`edgesense.speaker.tracking`), which identifies the speaker from the same V/I
  and predicts x with the datasheet Bl. A network that is better than the tracker agrees with it up
  to the tracker's own error; an adaptation that makes the network worse moves it away. An
  adaptation that raises this disagreement is refused.
* :func:`datasheet_large_signal`, a large-signal model of the speaker from its datasheet alone:
  the datasheet's linear parameters (Bl, Mms, Kms, Rms, Xmax) and the *family prior* of the
  nonlinearity shapes (:data:`FAMILY_SHAPES`: the mean even-order shapes of the randomised
  training family, in xi = x / Xmax), run by :class:`edgesense.speaker.largesignal.LargeSignalEstimator`
  with the online tracker following heating and leaks from the datasheet on. A linear model
  over-predicts a speaker driven towards and past Xmax (its suspension stiffens and its force
  factor drops there, both symmetric to first order); the prior's even-order terms carry that
  compression. The odd (asymmetry) terms differ in sign between speakers and are left at zero.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FAMILY_SHAPES", "consistency_error", "datasheet_large_signal", "family_shapes"]

# Mean even-order nonlinearity shapes (b2, b4, k2) of the 41 speakers in the train split of
# /work/data/speaker/random_train (metadata speaker_true), from
# `python tools/eval_speaker_baselines.py /work/data/speaker/random_train --split train --family-prior`.
FAMILY_SHAPES = (-0.2579, 0.0286, 0.6262)


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


def family_shapes(nonlinearities) -> tuple[float, float, float]:
    """Mean (b2, b4, k2) over speakers' true nonlinearity dicts (``speaker_true["nonlinearity"]``)."""
    rows = [(float(n["b2"]), float(n["b4"]), float(n["k2"])) for n in nonlinearities]
    if not rows:
        raise ValueError("no speakers to average")
    b2, b4, k2 = np.mean(np.asarray(rows), axis=0)
    return float(b2), float(b4), float(k2)


def datasheet_large_signal(speaker, shapes: tuple[float, float, float] = FAMILY_SHAPES, name: str = ""):
    """:class:`~edgesense.speaker.largesignal.LargeSignalParams` of an unseen speaker from its datasheet.

    ``speaker``: its :class:`~edgesense.profiles.SpeakerParams` (Bl, Mms, Kms, Rms and Xmax needed).
    ``shapes``: (b2, b4, k2), the even-order Bl(x) and Kms(x) shapes (default the family prior).
    The tracker reference is the datasheet itself, so with drift following the estimator's Bl is the
    tracker's (Mms-anchored) force factor and its Kms, Rms follow the tracker's Kms/Mms and Rms/Mms
    from the datasheet values on. Raises :class:`~edgesense.errors.ProfileError` if a value is missing.
    """
    from edgesense.errors import ProfileError
    from edgesense.speaker.largesignal import LargeSignalParams

    missing = [k for k in ("bl", "mms", "kms", "rms", "xmax") if getattr(speaker, k, None) is None]
    if missing:
        raise ProfileError(f"a datasheet large-signal model needs the speaker's {', '.join(missing)}")
    b2, b4, k2 = (float(s) for s in shapes)
    ref = {"bl": speaker.bl, "kms_per_mms": speaker.kms / speaker.mms, "rms_per_mms": speaker.rms / speaker.mms}
    return LargeSignalParams(bl=speaker.bl, mms=speaker.mms, rms=speaker.rms, kms=speaker.kms, xmax=speaker.xmax,
                             bl_shape=(0.0, b2, 0.0, b4), k_shape=(0.0, k2), tracker_reference=ref, speaker=name,
                             source="datasheet + family prior shapes")
