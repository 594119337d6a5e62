"""Calibrated large-signal excursion estimator for a known speaker (current-driven, causal).

For a speaker with laser-labelled calibration recordings (v, i, x), the mechanical large-signal
parameters are identified from data (as a Klippel LSI measurement on the production line would do)
and the nonlinear mechanical equation is integrated from the measured coil current at run time::

    Mms d2x/dt2 = Bl(x) i - Rms dx/dt - Kms(x) x + 1/2 i^2 L'(x)

    Bl(x) = Bl0 (1 + b1 xi + b2 xi^2 + b3 xi^3 + b4 xi^4)     xi = x / Xmax, clipped to +-1.6
    Kms(x) = K0 (1 + k1 xi + k2 xi^2)                         (xi not clipped)
    L'(x) = (Le0 / Xmax) (l1 + 2 l2 xi)                       (xi clipped to +-1.6)

the large-signal model of Klippel ("Tutorial: loudspeaker nonlinearities", JAES 54(11), 2006) as
written in :mod:`edgesense.sim.speaker`. The equation is linear in its coefficients, so
:func:`identify` fits them by linear least squares on (x, dx/dt, d2x/dt2, i) with the moving
mass fixed (force and mass are only known up to a common factor: the datasheet Mms closes it).

Integration: the linear part (Mms, Rms, K0) with the trapezoidal rule -- exactly the bilinear
transform of X/I = Bl/(Mms s^2 + Rms s + Kms) that :mod:`edgesense.speaker.linear` and the
impedance tracker use -- and the nonlinear force g = Bl(x) i - (Kms(x) - K0) x + 1/2 i^2 L'(x) as
its input, evaluated at the end of each step at a predicted position (one predictor-corrector
pass; the correction's weight h^2/(4 Mms) is tiny, so no iteration is needed). The current is
the sensed 48 kHz current; nothing else is needed at run time. The per-sample loop runs compiled
(``edgesense/speaker/_lsloop.c``, bit-identical) when the optional extension was built, else in
Python; :data:`KERNEL` says which, ``EDGESENSE_PURE_PYTHON=1`` forces Python, :func:`use_kernel` switches.

Drift. Heat lowers Bl (magnet), a back-volume leak lowers Kms and raises Rms. With ``follow``
set, the estimator runs the online impedance tracker alongside and scales Bl0 by the tracker's
identified force factor, and K0 and Rms by its identified Kms/Mms and Rms/Mms (free of its Bl),
each relative to what it identified on the calibration recordings (``tracker_reference``). Parameters change only at the tracker's hop boundaries (fixed sample
counts), so blocks of any size give the same output as the whole signal.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from edgesense.errors import EdgesenseError, ProfileError

__all__ = [
    "KERNEL",
    "XI_CLIP",
    "LargeSignalEstimator",
    "LargeSignalParams",
    "identify",
    "load_calibration",
    "load_calibrations",
    "predict_large_signal",
    "save_calibration",
    "use_kernel",
]

XI_CLIP = 1.6   # Bl(x) and L(x) are held flat beyond 1.6 Xmax (as the simulator's shapes)


class CalibrationError(EdgesenseError):
    """A calibration file or calibration data is unusable."""


@dataclass(frozen=True)
class LargeSignalParams:
    """Large-signal mechanical parameters of one speaker (SI units, shapes in xi = x / xmax).

    ``tracker_reference``: the impedance tracker's mean identified ``bl``, ``kms_per_mms`` and
    ``rms_per_mms`` (1/s^2, 1/s: free of its Bl) on the calibration recordings (what "no drift" looks like to the tracker); empty: no drift following.
    ``speaker``: the name of the speaker profile it belongs to.
    """

    bl: float
    mms: float
    rms: float
    kms: float
    xmax: float
    bl_shape: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)     # b1..b4
    k_shape: tuple[float, float] = (0.0, 0.0)               # k1, k2
    le_slope: tuple[float, float] = (0.0, 0.0)              # Le0 l1, Le0 l2 (H)
    tracker_reference: dict = field(default_factory=dict)
    speaker: str = ""        # the profile name this calibration belongs to
    source: str = ""         # what it was identified from

    def __post_init__(self) -> None:
        for key in ("bl", "mms", "rms", "kms", "xmax"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise CalibrationError(f"large-signal calibration: {key} must be positive, got {value!r}")
        if len(self.bl_shape) != 4 or len(self.k_shape) != 2 or len(self.le_slope) != 2:
            raise CalibrationError("large-signal calibration: bl_shape needs 4, k_shape 2, le_slope 2 coefficients")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bl_shape"], d["k_shape"], d["le_slope"] = list(self.bl_shape), list(self.k_shape), list(self.le_slope)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LargeSignalParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CalibrationError(f"large-signal calibration: unknown field(s) {unknown}")
        try:
            d = dict(d)
            for key in ("bl_shape", "k_shape", "le_slope"):
                if key in d:
                    d[key] = tuple(float(c) for c in d[key])
            return cls(**d)
        except TypeError as exc:
            raise CalibrationError(f"large-signal calibration: {exc}") from None

    @classmethod
    def linear(cls, bl: float, mms: float, rms: float, kms: float, xmax: float = 0.5e-3) -> LargeSignalParams:
        """A shape-free (small-signal) parameter set."""
        return cls(bl=bl, mms=mms, rms=rms, kms=kms, xmax=xmax)


def save_calibration(params: LargeSignalParams, path: str | Path) -> None:
    """Write a calibration as JSON (``{"large_signal": {...}}``)."""
    Path(path).write_text(json.dumps({"large_signal": params.to_dict()}, indent=1) + "\n")


def load_calibration(path: str | Path) -> LargeSignalParams:
    """Read a calibration JSON written by :func:`save_calibration`."""
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"calibration file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{p}: not a JSON calibration ({exc})") from None
    if not isinstance(data, dict) or "large_signal" not in data:
        raise CalibrationError(f"{p}: no 'large_signal' calibration in it")
    return LargeSignalParams.from_dict(data["large_signal"])


def load_calibrations(paths) -> dict[str, LargeSignalParams]:
    """Calibrations by speaker profile name from ``.json`` files or directories of them."""
    out = {}
    for p in map(Path, paths):
        for f in sorted(p.glob("*.json")) if p.is_dir() else [p]:
            cal = load_calibration(f)
            if not cal.speaker:
                raise CalibrationError(f"{f}: calibration names no speaker profile")
            out[cal.speaker] = cal
    if not out:
        raise CalibrationError(f"no calibration files in {', '.join(map(str, paths))}")
    return out


# -- integration ---------------------------------------------------------------------------------

def _step_matrices(mms: float, rms: float, kms: float, h: float) -> tuple[float, ...]:
    """Trapezoidal step s1 = Phi s0 + Gam (g0 + g1) of x'' = (g - Rms x' - K0 x) / Mms, s = (x, v)."""
    a = h / 2
    # (I - aA) with A = [[0, 1], [-k, -r]] (k = K0/M, r = Rms/M): [[1, -a], [a k, 1 + a r]]
    k, r = kms / mms, rms / mms
    det = 1 + a * r + a * a * k
    # P = (I - aA)^-1 = [[1 + a r, a], [-a k, 1]] / det; Q = I + aA = [[1, a], [-a k, 1 - a r]]
    p11, p12, p21, p22 = (1 + a * r) / det, a / det, -a * k / det, 1 / det
    f11 = p11 - p12 * a * k
    f12 = p11 * a + p12 * (1 - a * r)
    f21 = p21 - p22 * a * k
    f22 = p21 * a + p22 * (1 - a * r)
    g1, g2 = p12 * a / mms, p22 * a / mms   # P B a, B = (0, 1/M)
    return f11, f12, f21, f22, g1, g2


def _integrate(i: np.ndarray, state: list, p: tuple, out: np.ndarray) -> None:
    """Integrate samples ``i`` (A) from ``state`` = [x, v, g] (m, m/s, N) in place; ``p`` = (Phi, Gam,
    Bl0, b1..b4, K0, k1, k2, Le0 l1, Le0 l2, 1/Xmax); ``out`` gets x (m) per sample.

    Per sample: the linear step without the end force, one predictor evaluation of the force at
    that position, the force at the predicted end position, the step with it (which also serves
    as the next step's start force)."""
    f11, f12, f21, f22, ga, gb, bl0, b1, b2, b3, b4, k0, k1, k2, lp1, lp2, ixm = p
    x, v, g0 = state
    c, mc = XI_CLIP, -XI_CLIP
    q1, q2 = 0.5 * lp1 * ixm, lp2 * ixm        # 1/2 L'(x) = q1 + q2 xi_c
    xs: list[float] = []
    keep = xs.append        # (plain floats and conditional expressions: no calls in the loop but this one)
    for ii in i.tolist():
        xp = f11 * x + f12 * v + ga * g0
        vp = f21 * x + f22 * v + gb * g0
        ii2 = ii * ii
        xi = xp * ixm                                   # predictor: force at the end without itself
        xc = c if xi > c else (mc if xi < mc else xi)
        g = (bl0 * (1.0 + xc * (b1 + xc * (b2 + xc * (b3 + xc * b4)))) * ii
             - k0 * xi * (k1 + k2 * xi) * xp + ii2 * (q1 + q2 * xc))
        xe = xp + ga * g
        xi = xe * ixm                                   # corrector: force at the predicted end
        xc = c if xi > c else (mc if xi < mc else xi)
        g0 = (bl0 * (1.0 + xc * (b1 + xc * (b2 + xc * (b3 + xc * b4)))) * ii
              - k0 * xi * (k1 + k2 * xi) * xe + ii2 * (q1 + q2 * xc))
        x = xp + ga * g0
        v = vp + gb * g0
        keep(x)
    out[:] = xs
    state[0], state[1], state[2] = x, v, g0


# The same loop compiled (edgesense/speaker/_lsloop.c, an optional extension built at install time):
# bit-identical output and state, an order of magnitude cheaper per sample. EDGESENSE_PURE_PYTHON=1 (any value but
# "" and "0") keeps the Python loop; so does an install without a C compiler.
try:
    from edgesense.speaker import _lsloop
except ImportError:
    _lsloop = None

KERNEL = "python"           # the integration loop in use: "c" or "python"
_kernel = _integrate


def use_kernel(name: str) -> None:
    """Run the integration loop as ``"c"`` (the compiled kernel) or ``"python"`` from now on, in this
    process (e.g. for an A/B); both give bit-identical excursion."""
    global KERNEL, _kernel
    if name == "python":
        _kernel = _integrate
    elif name == "c":
        if _lsloop is None:
            raise EdgesenseError("the compiled large-signal kernel is not built (reinstall with a C compiler)")
        _kernel = _lsloop.integrate
    else:
        raise EdgesenseError(f"kernel must be 'c' or 'python', got {name!r}")
    KERNEL = name


if _lsloop is not None and os.environ.get("EDGESENSE_PURE_PYTHON", "") in ("", "0"):
    use_kernel("c")

WINDOW_UPDATES = 4   # tracker update intervals (4 x 0.256 s, about its 1 s analysis window) of level history


def stiffening(params: LargeSignalParams, mean_xi2: float) -> float:
    """log of the linear stiffness an impedance fit reads at mean square excursion ``mean_xi2`` (in Xmax^2),
    relative to K0: Gaussian equivalent linearisation of K0 (1 + k2 xi^2) x gives K0 (1 + 3 k2 E[xi^2])."""
    return math.log1p(max(-0.9, 3.0 * params.k_shape[1] * mean_xi2))


class LargeSignalEstimator:
    """Causal excursion (mm) of a calibrated speaker from its sensed current: ``process(v, i) -> x``.

    ``params``: the speaker's :class:`LargeSignalParams`. ``datasheet``: its
    :class:`~edgesense.profiles.SpeakerParams`, needed with ``follow`` (the default when the
    calibration has a ``tracker_reference``): the online impedance tracker then runs alongside
    (voltage and current) and Bl0, K0 and Rms are scaled by its identified values relative to the
    reference, so magnet heating and leaks are followed. Bl follows the tracker's (already
    averaged) force factor; Kms and Rms follow a running mean of the log-ratio of Kms/Mms and
    Rms/Mms (weight ``smoothing`` per tracker update), because the tracker's linear estimates also
    move with program level.
    State: two mechanical states and the force, plus the tracker's bounded state. Blocks of any
    size give the same output as the whole signal.
    """

    def __init__(self, params: LargeSignalParams, datasheet=None, fs: float = 48_000.0, follow: bool | None = None,
                 smoothing: float = 0.05, tracker_config=None) -> None:
        self.params = params
        self.fs = float(fs)
        if follow is None:
            follow = bool(params.tracker_reference) and datasheet is not None
        if follow and not params.tracker_reference:
            raise CalibrationError("following drift needs the calibration's tracker_reference")
        if follow and datasheet is None:
            raise ProfileError("following drift needs the speaker's datasheet (the impedance tracker runs on it)")
        if not 0.0 < smoothing <= 1.0:
            raise CalibrationError(f"smoothing must be in (0, 1], got {smoothing}")
        self.follow = follow
        self.smoothing = smoothing
        self.tracker = None
        if follow:
            from edgesense.speaker.tracking import ImpedanceTracker, TrackerConfig

            self.tracker = ImpedanceTracker(datasheet, self.fs, tracker_config or TrackerConfig())
            self._every = self.tracker.update_every
        self.reset()

    def reset(self) -> None:
        """Back to rest and the calibrated parameters (e.g. after a gap in the stream)."""
        self._state = [0.0, 0.0, 0.0]
        self.count = 0
        self.scales = (1.0, 1.0, 1.0)      # Bl, Kms, Rms relative to the calibration
        self._log_k = self._log_r = 0.0
        self._sq = 0.0                      # sum of x^2 (m^2) in the current update interval
        self._window: list[float] = []      # the last WINDOW_UPDATES intervals' sums
        self._last_kpm = math.nan           # the tracker's Kms/Mms at the last boundary
        if self.tracker is not None:
            self.tracker.reset()
        self._set_params()

    def _set_params(self) -> None:
        p = self.params
        sb, sk, sr = self.scales
        k0, rms = p.kms * sk, p.rms * sr
        self._p = (_step_matrices(p.mms, rms, k0, 1.0 / self.fs) + (p.bl * sb, *p.bl_shape, k0, *p.k_shape,
                                                                   *p.le_slope, 1.0 / p.xmax))

    def _update_scales(self) -> None:
        cur = self.tracker.current
        ref = self.params.tracker_reference
        w = self.smoothing
        self._window.append(self._sq)
        self._sq = 0.0
        del self._window[:-WINDOW_UPDATES]
        kpm = cur.kms / cur.mms
        if kpm != self._last_kpm:   # a refit (the tracker keeps its estimate when excitation is poor)
            self._last_kpm = kpm
            # stiffness and damping per unit mass: free of the tracker's Bl (its slowly averaged anchor);
            # the stiffness reading corrected for the level it was identified at (equivalent linearisation)
            ms = sum(self._window) / (len(self._window) * self._every * self.params.xmax ** 2)
            self._log_k += w * (math.log(kpm / ref["kms_per_mms"]) - stiffening(self.params, ms) - self._log_k)
            self._log_r += w * (math.log(cur.rms / cur.mms / ref["rms_per_mms"]) - self._log_r)
        self.scales = (cur.bl / ref["bl"], math.exp(self._log_k), math.exp(self._log_r))
        self._set_params()

    def process(self, v_block: np.ndarray | None, i_block: np.ndarray) -> np.ndarray:
        """Excursion (mm, float64) for one block of current (A); ``v_block`` (V) feeds the tracker
        (may be None without ``follow``)."""
        i = np.ascontiguousarray(i_block, np.float64).reshape(-1)   # (the C kernel reads it in place)
        n = len(i)
        out = np.empty(n)
        if self.tracker is None:
            _kernel(i, self._state, self._p, out)
            self.count += n
            return out * 1e3
        v = np.asarray(v_block, np.float64).reshape(-1)
        if len(v) != n:
            raise ValueError(f"v and i blocks differ in length: {len(v)} vs {n}")
        pos = 0
        while pos < n:   # pieces that end at the tracker's update boundaries (fixed sample counts)
            take = min(n - pos, self._every - self.count % self._every)
            piece = out[pos:pos + take]
            _kernel(i[pos:pos + take], self._state, self._p, piece)
            self._sq += float(np.dot(piece, piece))
            self.tracker.process(v[pos:pos + take], i[pos:pos + take])
            pos += take
            self.count += take
            if self.count % self._every == 0:
                self._update_scales()
        return out * 1e3


def predict_large_signal(v: np.ndarray | None, i: np.ndarray, params: LargeSignalParams, datasheet=None,
                         fs: float = 48_000.0, follow: bool | None = None) -> np.ndarray:
    """Excursion (mm) of a whole signal; equals streaming :class:`LargeSignalEstimator` over it."""
    return LargeSignalEstimator(params, datasheet, fs, follow).process(v, i)


# -- identification ------------------------------------------------------------------------------

_THETA = ("bl", "bl*b1", "bl*b2", "bl*b3", "bl*b4", "rms", "kms", "kms*k1", "kms*k2", "le*l1", "le*l2")


def _regressors(x_m: np.ndarray, i: np.ndarray, fs: float, mms: float, xmax: float,
                bl_scale: np.ndarray | None = None, band_hz: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(target, columns) of the trapezoidal (bilinear) form of the mechanical equation.

    The integrator satisfies, sample by sample (c = 2 fs, (1 + z^-1)^2 applied to the force)::

        Mms c^2 (x[n] - 2x[n-1] + x[n-2]) = (1+z^-1)^2 [Bl(x) i + 1/2 i^2 L'(x) - (Kms(x) - K0) x - K0 x]
                                            - Rms c (x[n] - x[n-2])

    which is linear in the coefficients ``_THETA``; the columns are those coefficients' regressors.
    ``bl_scale`` (per sample) multiplies the force factor (a known relative drift of Bl).
    ``band_hz``: every equation low-passed there (zero phase; the same linear filter on both sides
    keeps the equation): the fit then weights the band where the excursion is, not the high
    frequencies where the bilinear transform's frequency warping makes the mass look heavier.
    """
    c = 2.0 * fs
    xi = x_m / xmax
    xc = np.clip(xi, -XI_CLIP, XI_CLIP)
    ib = i if bl_scale is None else i * bl_scale
    i2 = 0.5 * i * i / xmax
    cols = [ib, ib * xc, ib * xc ** 2, ib * xc ** 3, ib * xc ** 4, None, -x_m, -x_m * xi, -x_m * xi * xi,
            i2, 2 * i2 * xc]
    out = np.empty((len(x_m) - 2, len(cols)))
    for k, col in enumerate(cols):
        if col is None:
            out[:, k] = -c * (x_m[2:] - x_m[:-2])
        else:
            out[:, k] = col[2:] + 2 * col[1:-1] + col[:-2]
    target = mms * c * c * (x_m[2:] - 2 * x_m[1:-1] + x_m[:-2])
    if band_hz:
        from scipy import signal

        sos = signal.butter(4, band_hz, "lowpass", fs=fs, output="sos")
        target = signal.sosfiltfilt(sos, target)
        out = signal.sosfiltfilt(sos, out, axis=0)
    return target, out


def identify(clips, mms: float, xmax: float, fs: float = 48_000.0, bl_scales=None, band_hz: float | None = 2000.0,
             source: str = "") -> LargeSignalParams:
    """Least-squares large-signal parameters from labelled clips ``[(x_mm, i_A), ...]``.

    ``mms`` (kg) fixes the scale (datasheet moving mass), ``xmax`` (m) the shape variable. Each clip
    is used on its own (only three consecutive samples enter each equation). ``bl_scales``
    (optional, one per clip: per-sample factors) gives a known Bl drift to fit around.
    """
    n = len(_THETA)
    ata = np.zeros((n, n))
    atb = np.zeros(n)
    used = 0
    for k, (x_mm, i) in enumerate(clips):
        x_m = np.asarray(x_mm, np.float64) * 1e-3
        if len(x_m) < 200:          # too short to filter: no usable equations
            continue
        scale = None if bl_scales is None else np.asarray(bl_scales[k], np.float64)
        t, a = _regressors(x_m, np.asarray(i, np.float64), fs, mms, xmax, scale, band_hz)
        ata += a.T @ a
        atb += a.T @ t
        used += len(t)
    if used < 10 * n:
        raise CalibrationError(f"large-signal identification needs labelled data: {used} equations")
    d = np.sqrt(np.diag(ata))
    d[d == 0] = 1.0
    theta = np.linalg.solve(ata / np.outer(d, d), atb / d) / d
    bl, rms, kms = theta[0], theta[5], theta[6]
    if not (bl > 0 and rms > 0 and kms > 0):
        raise CalibrationError(f"large-signal identification failed: Bl {bl:.3g}, Rms {rms:.3g}, Kms {kms:.3g}")
    return LargeSignalParams(bl=float(bl), mms=float(mms), rms=float(rms), kms=float(kms), xmax=float(xmax),
                             bl_shape=tuple(float(c / bl) for c in theta[1:5]),
                             k_shape=(float(theta[7] / kms), float(theta[8] / kms)),
                             le_slope=(float(theta[9]), float(theta[10])), source=source)


def _streams(signals) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Clips joined per simulated stream in clip order (``stream`` / ``clip_index`` metadata), as (v, i, x)."""
    groups: dict[str, list] = {}
    for s in signals:
        if s.x is None:
            raise CalibrationError(f"{s.name}: calibration needs laser-labelled recordings (channel x)")
        groups.setdefault(str(s.metadata.get("stream", s.name)), []).append(s)
    out = []
    for clips in groups.values():
        clips.sort(key=lambda c: c.metadata.get("clip_index", 0))
        out.append(tuple(np.concatenate([getattr(c, k) for c in clips]).astype(np.float64) for k in ("v", "i", "x")))
    return out


def calibrate(signals, datasheet, fs: float = 48_000.0, band_hz: float = 2000.0, settle_s: float = 5.0,
              speaker: str = "", source: str = "") -> LargeSignalParams:
    """Identify a known speaker's large-signal parameters from its labelled recordings.

    ``signals``: :class:`~edgesense.speaker.pipeline.SpeakerSignal` clips of one speaker (clips of
    one stream are joined in order; when only one split's clips are given, the join skips the others,
    so the tracker and the fit's derivatives see a jump at each such splice -- a few ms of outlier
    equations per splice, left as the shipped calibrations were made). The impedance tracker runs over each stream; its identified
    force factor, relative to its mean after ``settle_s``, is the Bl drift the fit works around
    (the magnet warms during calibration too), and its mean Bl, Kms/Mms and Rms/Mms become the
    ``tracker_reference`` that run time compares against. ``datasheet`` supplies Mms (the scale)
    and Xmax.
    """
    from edgesense.speaker.tracking import TrackerConfig, track

    if datasheet.mms is None or datasheet.xmax is None:
        raise CalibrationError("calibration needs the datasheet Mms and Xmax")
    streams = _streams(signals)
    if not streams:
        raise CalibrationError("no recordings to calibrate from")
    hist = []
    for v, i, _ in streams:
        h = track(v, i, datasheet, fs).history
        hist.append(([p.sample for p in h], [p.bl for p in h], [p.kms / p.mms for p in h], [p.rms / p.mms for p in h]))
    settle = int(settle_s * fs)
    late = [k for k in range(len(hist)) if any(smp > settle for smp in hist[k][0])]
    if not late:
        raise CalibrationError(f"calibration recordings too short or too quiet for the tracker (> {settle_s} s)")
    ref = {"bl": float(np.exp(np.mean(np.log([b for k in late for smp, b in zip(hist[k][0], hist[k][1])
                                                     if smp > settle]))))}
    clips, scales = [], []
    for (v, i, x), (smp, bl, _, _) in zip(streams, hist):
        keep = slice(settle, None)
        # the tracker's Bl in force at each sample (a refit at sample s takes effect from s on)
        at = np.searchsorted(np.asarray(smp), np.arange(len(i)), side="right") - 1
        bl_t = np.where(at >= 0, np.asarray(bl)[np.maximum(at, 0)] if len(bl) else ref["bl"], datasheet.bl)
        clips.append((x[keep], i[keep]))
        scales.append((bl_t / ref["bl"])[keep])
    p = identify(clips, float(datasheet.mms), float(datasheet.xmax), fs, scales, band_hz, source)
    # Kms/Mms and Rms/Mms at each refit (as the estimator sees them), the stiffness corrected for the
    # level of the window it was identified on (the laser's x here, the estimate at run time)
    every = TrackerConfig().update_every
    logk, logr = [], []
    for (_, _, x), (smp, _, kpm, rpm) in zip(streams, hist):
        sq = np.concatenate([[0.0], np.cumsum((x * 1e-3) ** 2)])
        last = math.nan
        for s_, k_, r_ in zip(smp, kpm, rpm):
            if k_ == last:
                continue
            last = k_
            if s_ <= settle:
                continue
            lo = max(0, s_ - WINDOW_UPDATES * every)
            ms = (sq[s_] - sq[lo]) / ((s_ - lo) * p.xmax ** 2)
            logk.append(math.log(k_) - stiffening(p, ms))
            logr.append(math.log(r_))
    ref["kms_per_mms"] = float(np.exp(np.mean(logk)))
    ref["rms_per_mms"] = float(np.exp(np.mean(logr)))
    return LargeSignalParams.from_dict(p.to_dict() | {"tracker_reference": ref, "speaker": speaker})
