"""Online impedance tracking: identify the speaker from its I/V as audio plays, predict excursion.

This is what smart amplifiers ship (reference notes section 1.7a) and the baseline networks must beat.

1. Welch H1 estimate of the admittance Y(f) = S_vi / S_vv (voltage as the input, so noise on the
   sensed current averages out) from Hann-windowed segments of ``nperseg`` samples (hop
   ``nperseg/2``) over a sliding window of the last ``window_s`` seconds -- past data only.
2. Every ``update_s`` (a whole number of hops) a Levenberg-Marquardt fit of the LR-2 + mechanical
   impedance to Z = 1/Y over ``f_lo``-``f_hi``::

       Z(s) = Re + s Le + s L2 R2 / (R2 + s L2) + 1 / (s Cmes + 1/Res + 1/(s Lces))

   with residuals relative to |Z|, weighted by coherence, in log-parameters, warm-started from the
   previous estimate (a small dense solver, :func:`levenberg_marquardt`: a refit costs well under
   a millisecond, about 6 us per 1 ms of audio amortised), plus a weak prior towards the datasheet
   that keeps the poorly excited parameters (L2, R2) from wandering. Windows with too little
   excitation or coherence (silence, narrow-band material, nothing near the resonance) keep the
   previous estimate; fits far from the datasheet (> 3x) are rejected and each update moves a
   parameter by at most about 22 %.
3. The electrical analogues fix the mechanics only up to Bl (physics limit). One more number from
   the datasheet closes it: by default the moving mass (``bl_anchor="mms"``), Bl = sqrt(Mms / Cmes)
   with a running mean of the identified Cmes, since mass is what neither heat nor a leak changes:
   a magnet heating by 40 K loses ~5 % of Bl, which the datasheet-Bl anchor (``"bl"``) reads as a
   5 % heavier cone and a 5 % low prediction. Then Mms = Cmes Bl^2, Rms = Bl^2/Res,
   Kms = Bl^2/Lces. The excursion is predicted from the measured current through
   X/I = Bl / (Mms s^2 + Rms s + Kms) (bilinear IIR). When the parameters change, the filter
   state is re-derived from the last inputs and outputs, so the prediction stays continuous. The
   identified Re also gives the coil temperature estimate. What a linear model cannot follow is
   the large-signal nonlinearity (Bl(x), Kms(x)) near Xmax: the hybrid network's job.

State is bounded (one window of segment spectra, the samples of one update interval plus half a
segment, the filter state). The Welch spectra are only read by the refit, so the segments of an
update interval are windowed, transformed and reduced in one batch at its end, in the block where
the refit runs (a few numpy calls for all 24 segments instead of three blocks of calls per
segment). Updates happen at fixed sample counts, so :meth:`ImpedanceTracker.process` gives identical results
for any block sizes; :func:`track` runs it over a whole recording.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal

from edgesense.errors import ProfileError
from edgesense.profiles import SpeakerParams
from edgesense.speaker.linear import x_over_i_coefficients

__all__ = ["TrackerConfig", "TrackedParams", "ImpedanceTracker", "TrackResult", "track", "impedance_model"]

ALPHA_CU = 0.00393

try:  # scipy's lfilter core without its per-call argument handling (4 us instead of 18 us per 1 ms block)
    from scipy.signal._sigtools import _linear_filter as _lfilter_core  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other scipy versions
    _lfilter_core = None


def _lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.lfilter(b, a, x, zi=zi)`` for float64 1-D data with a[0] == 1."""
    if _lfilter_core is not None:
        return _lfilter_core(b, a, x, -1, zi)
    return signal.lfilter(b, a, x, zi=zi)


def _filter_fallback(b: np.ndarray, a: np.ndarray, x: np.ndarray, axis: int, zi: np.ndarray):
    return signal.lfilter(b, a, x, axis, zi)


_filter = _lfilter_core if _lfilter_core is not None else _filter_fallback

# numpy's clip ufunc (``np.clip`` calls it after its argument handling: the same numbers)
try:
    from numpy._core.umath import clip as _clip
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.umath import clip as _clip
_sum = np.add.reduce   # what ndarray.sum / mean reduce with (mean = this sum / count)

try:  # numpy's FFT kernel without its per-call argument handling (the same ufunc np.fft.rfft calls)
    from numpy.fft._pocketfft_umath import rfft_n_even as _rfft_core  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - other numpy versions
    _rfft_core = None


try:  # the LAPACK gufunc np.linalg.solve calls, without its per-call argument checks (4 us instead of 10 us)
    from numpy.linalg import _umath_linalg
    from numpy.linalg._linalg import _raise_linalgerror_singular
    _solve1 = _umath_linalg.solve1
except (ImportError, AttributeError):  # pragma: no cover - other numpy versions
    _solve1 = None


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.linalg.solve(a, b)`` for a float64 square ``a`` and vector ``b`` (same LAPACK call, same
    error state: a singular ``a`` raises ``LinAlgError``)."""
    if _solve1 is None:  # pragma: no cover
        return np.linalg.solve(a, b)
    with np.errstate(call=_raise_linalgerror_singular, invalid="call", over="ignore", divide="ignore",
                     under="ignore"):
        return _solve1(a, b, signature="dd->d")


def _rfft(seg: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = np.fft.rfft(seg)`` for float64 rows of even length."""
    if _rfft_core is not None:
        _rfft_core(seg, 1, out=out)
    else:  # pragma: no cover
        out[...] = np.fft.rfft(seg)


@dataclass(frozen=True)
class TrackerConfig:
    """Tuning of the tracker (defaults: 1 s window, update every 0.256 s, 100 Hz-10 kHz).

    ``refit_delay`` (samples, below one update interval): 0 runs each refit whole in the block where
    its update boundary falls and applies it at that sample (one block of ~1-3 ms CPU every 0.256 s).
    A positive delay applies it that many samples later and runs its work over the calls in between
    (the window sums at the boundary, then the checks, the fit's set-up and one solver evaluation
    per ``process`` call; what is left at the delay's end runs there), so no block carries the whole
    refit; the output is then a different one (the new model starts later), still
    the same for any block sizes. Models trained on the tracker's output must be trained with the
    delay they run with; the shipped hybrid was trained with 0.
    """

    nperseg: int = 1024
    window_s: float = 1.0
    update_hops: int = 24             # 24 hops of 512 samples = 0.256 s at 48 kHz
    f_lo: float = 100.0
    f_hi: float = 10_000.0
    min_coherence: float = 0.6        # mean coherence over the band needed to update
    min_rms_volts: float = 0.05       # excitation needed to update
    prior_weight: float = 0.002       # weak pull towards the datasheet (log-parameters)
    prior_weight_lr2: float = 0.3
    max_nfev: int = 20                # residual evaluations per refit (warm-started: a few suffice)
    min_coverage: float = 0.5         # share of band bins with coherence >= 0.9 needed to update
    min_resonance_coverage: float = 0.6  # same, within an octave of the current resonance
    max_step: float = 0.2             # largest change of a log-parameter per update (about 22 %)
    max_ratio: float = 3.0            # parameters stay within 1/3x-3x of the datasheet
    reference_c: float = 25.0         # temperature at which the datasheet Re holds
    bl_anchor: str = "mms"            # "mms": Bl from the datasheet Mms (follows a heating magnet); "bl": datasheet Bl
    bl_smoothing: float = 0.05        # weight of each update in the running mean of log Cmes that sets Bl
    refit_delay: int = 0              # samples after an update boundary at which a refit takes effect

    @property
    def update_every(self) -> int:
        """Samples between two updates (``update_hops`` hops of half a segment)."""
        return self.update_hops * (self.nperseg // 2)


@dataclass
class TrackedParams:
    """One identified parameter set (SI units) and when it was identified (sample index)."""

    sample: int
    re: float
    le: float
    l2: float
    r2: float
    mms: float
    rms: float
    kms: float
    coil_c: float
    cost: float
    bl: float = math.nan

    @property
    def resonance_hz(self) -> float:
        return math.sqrt(self.kms / self.mms) / (2 * math.pi)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["resonance_hz"] = self.resonance_hz
        return out


def _impedance_jacobian(theta: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dZ/dtheta, shape (len(s), 7), for log-parameters (see :func:`impedance_model`)."""
    re, le, l2, r2, cmes, res, lces = np.exp(theta)
    q = r2 + s * l2
    d = s * cmes + 1.0 / res + 1.0 / (s * lces)
    inv_d2 = 1.0 / (d * d)
    return np.stack([np.full_like(s, re), s * le, l2 * s * r2 * r2 / (q * q), r2 * (s * l2) ** 2 / (q * q),
                     -s * cmes * inv_d2, inv_d2 / res, inv_d2 / (s * lces)], axis=1)


def levenberg_marquardt(fun, jac, x0: np.ndarray, max_nfev: int, xtol: float = 1e-6, ftol: float = 1e-8
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Minimise ||fun(x)||^2 from ``x0`` (Levenberg-Marquardt, Marquardt's diagonal scaling).

    Stops when a step changes no log-parameter by ``xtol``, the cost falls by less than ``ftol``
    (relative), or after ``max_nfev`` residual evaluations. A small dense solver (7 unknowns): each
    iteration is one Jacobian, one 7x7 solve and one residual evaluation, with none of a general
    solver's per-call set-up, so a warm-started refit costs well under a millisecond. Returns
    (x, fun(x)), or None when nothing finite was found.
    """
    steps = levenberg_marquardt_steps(fun, jac, x0, max_nfev, xtol, ftol)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def levenberg_marquardt_steps(fun, jac, x0: np.ndarray, max_nfev: int, xtol: float = 1e-6, ftol: float = 1e-8):
    """:func:`levenberg_marquardt` as a generator: it yields after every residual or Jacobian
    evaluation (so a caller can spread a refit over several blocks) and returns its result."""
    x = np.asarray(x0, float).copy()
    r = fun(x)
    yield
    if not np.isfinite(r).all():
        return None
    c = float(r @ r)
    lam = 1e-3
    nfev = 1
    damp = np.zeros((len(x), len(x)))       # lam * diag(d), written in place
    damp_diag = damp.reshape(-1)[::len(x) + 1]
    while nfev < max_nfev:
        J = jac(x)
        yield
        g = J.T @ r
        H = J.T @ J
        d = np.maximum(H.diagonal(), 1e-12)
        accepted = False
        while nfev < max_nfev:
            np.multiply(lam, d, out=damp_diag)
            try:
                step = _solve(H + damp, -g)
            except np.linalg.LinAlgError:
                return None
            if float(np.abs(step).max()) < xtol:
                return x, r              # converged: no step left worth taking
            x_new = x + step
            r_new = fun(x_new)
            yield
            nfev += 1
            c_new = float(r_new @ r_new) if np.isfinite(r_new).all() else math.inf
            if c_new < c:
                accepted = c - c_new > ftol * c
                x, r, c = x_new, r_new, c_new
                lam = max(lam / 5.0, 1e-9)
                break
            lam *= 10.0
        if not accepted:
            break                        # budget spent, or the cost no longer falls
    return x, r


def impedance_model(theta: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Z(s) for log-parameters theta = log([Re, Le, L2, R2, Cmes, Res, Lces])."""
    re, le, l2, r2, cmes, res, lces = np.exp(theta)
    return re + s * le + s * l2 * r2 / (r2 + s * l2) + 1.0 / (s * cmes + 1.0 / res + 1.0 / (s * lces))


class _ImpedanceFit:
    """Weighted residuals and Jacobian of the impedance fit for :func:`levenberg_marquardt`.

    The same arithmetic as ``scale * (impedance_model(theta, s) - z)`` and ``scale *
    _impedance_jacobian(theta, s)`` (bit for bit), but the Jacobian reuses the subexpressions of the
    last model evaluation at the same theta (the solver always asks for the Jacobian where it last
    evaluated the residuals), the prior's rows are built once, and the Jacobian is written into one
    kept array (each call overwrites the last one's).
    """

    def __init__(self, s: np.ndarray, z: np.ndarray, scale: np.ndarray, prior: np.ndarray,
                 theta_ds: np.ndarray) -> None:
        self.s, self.z, self.scale, self.prior, self.theta_ds = s, z, scale, prior, theta_ds
        self._scale_col = scale[:, None]
        self._neg_s = -s
        nb = len(s)
        # the Jacobian is written into these (one allocation per refit, not per evaluation): the
        # complex columns, then their real and imaginary parts over the prior's fixed rows
        self._jz = np.empty((nb, 7), complex)
        self._jac = np.empty((2 * nb + 7, 7))
        self._jac[2 * nb:] = np.diag(prior)
        self._key: bytes | None = None
        self._parts: tuple = ()

    def _model(self, theta: np.ndarray) -> np.ndarray:
        s = self.s
        p = np.exp(theta)
        re, le, l2, r2, cmes, res, lces = p
        sle, sl2, slces = s * le, s * l2, s * lces
        q = r2 + sl2
        d = s * cmes + 1.0 / res + 1.0 / slces
        sl2r2 = sl2 * r2
        self._key, self._parts = theta.tobytes(), (p, sle, sl2, slces, q, d, sl2r2)
        return re + sle + sl2r2 / q + 1.0 / d

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        r = self.scale * (self._model(theta) - self.z)
        return np.concatenate((r.real, r.imag, self.prior * (theta - self.theta_ds)))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        if self._key != theta.tobytes():
            self._model(theta)
        p, sle, sl2, slces, q, d, sl2r2 = self._parts
        re, _, _, r2, cmes, res, _ = p
        qq = q * q
        inv_d2 = 1.0 / (d * d)
        jz, jac, nb = self._jz, self._jac, len(sle)
        jz[:, 0] = re
        jz[:, 1] = sle
        # l2 * s * r2 * r2 of _impedance_jacobian is sl2r2 * r2: s is purely imaginary, so l2 * s and
        # s * l2 are the same complex products (the real parts exact zeros); -s * cmes is (-s) * cmes
        np.divide(sl2r2 * r2, qq, jz[:, 2])
        np.divide(r2 * sl2 ** 2, qq, jz[:, 3])
        np.multiply(self._neg_s * cmes, inv_d2, jz[:, 4])
        np.divide(inv_d2, res, jz[:, 5])
        np.divide(inv_d2, slces, jz[:, 6])
        np.multiply(self._scale_col, jz, jz)
        jac[:nb] = jz.real
        jac[nb:2 * nb] = jz.imag
        return jac     # (the same array every call: the solver uses it before asking again)


class ImpedanceTracker:
    """Causal impedance tracking and excursion prediction: ``process(v, i) -> x_hat`` (mm).

    ``params`` are the datasheet parameters (``bl``, ``re``, ``mms``, ``rms``, ``kms`` required;
    ``le``, ``l2``, ``r2`` default to 40 uH, 5 % of Le, 1 ohm). ``keep_history`` records every
    identified parameter set in :attr:`history`.
    """

    def __init__(self, params: SpeakerParams, fs: float = 48_000.0, config: TrackerConfig = TrackerConfig(),
                 keep_history: bool = False) -> None:
        missing = [k for k in ("re", "mms", "rms", "kms") if getattr(params, k) is None]
        if missing:
            raise ProfileError(f"impedance tracking needs datasheet {', '.join(missing)} (and bl)")
        self.datasheet = params
        self.fs = float(fs)
        self.config = config
        self.keep_history = keep_history
        self.hop = config.nperseg // 2
        self.update_every = config.update_every
        self.window_segments = max(4, int(round(config.window_s * fs / self.hop)) - 1)
        f = np.fft.rfftfreq(config.nperseg, 1.0 / fs)
        self._band = np.nonzero((f >= config.f_lo) & (f <= config.f_hi))[0]
        self._band_slice = (int(self._band[0]), int(self._band[-1]) + 1)   # contiguous bins
        self._f = f[self._band]
        self._s = 2j * np.pi * self._f
        self._win = np.hanning(config.nperseg + 2)[1:-1]
        self._win_power = np.sum(self._win ** 2)
        bl = params.bl
        le = params.le if params.le is not None else 40e-6
        self._theta_ds = np.log([params.re, le, params.l2 if params.l2 else 0.05 * le,
                                 params.r2 if params.r2 else 1.0, params.mms / bl ** 2, bl ** 2 / params.rms,
                                 bl ** 2 / params.kms])
        prior = np.full(7, config.prior_weight)
        prior[2:4] = config.prior_weight_lr2
        self._prior = prior
        if config.bl_anchor not in ("mms", "bl"):
            raise ProfileError(f"tracker bl_anchor must be 'mms' or 'bl', got {config.bl_anchor!r}")
        if not 0 <= config.refit_delay < self.update_every:
            raise ProfileError(f"tracker refit_delay must be 0..{self.update_every - 1} samples, "
                               f"got {config.refit_delay}")
        self.history: list[TrackedParams] = []
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the datasheet model with empty buffers (e.g. after a gap in the stream)."""
        self.theta = self._theta_ds.copy()
        self._log_cmes = float(self._theta_ds[4])   # running mean of log Cmes (sets Bl with the Mms anchor)
        self.count = 0
        self.updates = 0
        cfg = self.config
        n, hop, every = cfg.nperseg, self.hop, self.update_every
        # the samples since the last update boundary plus the tail of the interval before that the
        # first segment of this interval starts in: rows v, i and the filter output y (float64,
        # written in place; y only where a refit needs it: the last two outputs before each event)
        keep = n - hop
        self._keep = keep
        self._buf = np.zeros((3, every + keep))
        self._rows = tuple(self._buf)
        self._pos = keep           # where the next sample goes (offset ``keep`` = the last update boundary)
        self._room = every         # samples until the next event (update boundary or delayed refit)
        nb = len(self._band)     # segment spectra of the window: fixed rings, oldest overwritten
        # auto-spectra of v and i in one ring (rows svv, sii per segment: one square and one add
        # compute both), cross-spectra in another
        self._auto = np.zeros((self.window_segments, 2, nb))
        self._svv, self._sii = self._auto[:, 0], self._auto[:, 1]
        self._svi = np.zeros((self.window_segments, nb), complex)
        self._slot = 0
        # Welch work of one update interval, in one batch at its end: the interval's segments as
        # (signal, segment, sample) views of the buffer, windowed, their spectra and band parts
        hops = cfg.update_hops
        b = self._buf
        self._segs = np.lib.stride_tricks.as_strided(b, (2, hops, n), (b.strides[0], hop * b.strides[1], b.strides[1]),
                                                     writeable=False)
        self._seg = np.empty((2, hops, n))
        self._spec = np.empty((2, hops, n // 2 + 1), complex)
        b0, b1 = self._band_slice
        self._band_spec = self._spec[..., b0:b1]                              # (2, hops, nb) views of the band
        self._band_parts = self._band_spec.view(float).reshape(2, hops, nb, 2)   # real, imaginary parts
        self._sq = np.empty((2, hops, nb, 2))
        self._cj = np.empty((hops, nb), complex)
        self._refit = None       # a refit in progress (refit_delay > 0): its steps, run one per call
        self._refit_ready = False
        self._apply_at = -1      # the sample count at which it takes effect
        self._set_filter(initial=True)
        self.history.clear()

    @property
    def current(self) -> TrackedParams:
        """The parameter set in use now."""
        return self._params_from_theta(self.theta, self.count, float("nan"))

    def _params_from_theta(self, theta: np.ndarray, sample: int, cost: float) -> TrackedParams:
        re, le, l2, r2, cmes, res, lces = np.exp(theta)
        bl = self.bl
        coil = self.config.reference_c + (re / self.datasheet.re - 1.0) / ALPHA_CU
        return TrackedParams(sample=sample, re=float(re), le=float(le), l2=float(l2), r2=float(r2),
                             mms=float(cmes * bl * bl), rms=float(bl * bl / res), kms=float(bl * bl / lces),
                             coil_c=float(coil), cost=cost, bl=float(bl))

    def _resonance_hz(self) -> float:
        """``self.current.resonance_hz`` (the same float operations) without building the parameter set."""
        p = np.exp(self.theta)
        bl = self.bl
        return math.sqrt(float(bl * bl / p[6]) / float(p[4] * bl * bl)) / (2 * math.pi)

    @property
    def bl(self) -> float:
        """Force factor in use: the datasheet Bl, or (``bl_anchor="mms"``) sqrt(datasheet Mms / Cmes).

        Mass does not change with temperature or a leak, so with the Mms anchor a drop of Bl as the
        magnet heats shows up as a rise of the identified Cmes = Mms/Bl^2 and is followed (slowly:
        a running mean over updates), instead of being read as a heavier cone."""
        if self.config.bl_anchor == "bl":
            return float(self.datasheet.bl)
        return math.sqrt(float(self.datasheet.mms) / math.exp(self._log_cmes))

    def _set_filter(self, initial: bool = False) -> None:
        p = self._params_from_theta(self.theta, self.count, float("nan"))
        b, a = x_over_i_coefficients(p.bl, p.mms, p.rms, p.kms, self.fs)
        if initial:
            self._zi = np.zeros(2)
        else:  # direct-form-II-transposed state that continues the last two inputs and outputs
            buf, k0, k1 = self._buf, self._pos - 1, self._pos - 2      # most recent first
            x0, x1 = float(buf[1, k0]), float(buf[1, k1])
            y0, y1 = float(buf[2, k0]), float(buf[2, k1])
            self._zi = np.array([b[1] * x0 + b[2] * x1 - a[1] * y0 - a[2] * y1, b[2] * x0 - a[2] * y0])
        self._b, self._a = b, a

    @property
    def segments(self) -> int:
        """Segments in the analysis window (<= ``window_segments``): those completed so far (one per
        hop from ``nperseg`` samples on). Their spectra are computed in batches at update boundaries."""
        done = self.count - self.config.nperseg
        return 0 if done < 0 else min(done // self.hop + 1, self.window_segments)

    # -- processing ----------------------------------------------------------------------------

    def process(self, v_block: np.ndarray, i_block: np.ndarray) -> np.ndarray:
        """Excursion (mm) for one block of sensed voltage (V) and current (A); any block size.

        Per block: the samples go into the buffer (as float64), the current is filtered in place
        there. Events happen at fixed sample counts: at an update boundary the Welch spectra of the
        interval's segments are computed in one batch and an LM refit runs (delayed refits: one step
        per call until the sample where they take effect). The output is the same for any block sizes.
        """
        v = v_block if type(v_block) is np.ndarray and v_block.ndim == 1 else np.asarray(v_block).reshape(-1)
        i = i_block if type(i_block) is np.ndarray and i_block.ndim == 1 else np.asarray(i_block).reshape(-1)
        n = v.shape[0]
        if i.shape[0] != n:
            raise ValueError(f"v and i blocks differ in length: {v.shape} vs {i.shape}")
        if not n:
            return np.zeros(0)
        if self._refit is not None and not self._refit_ready:
            self._refit_step()
        room = self._room
        if n < room:   # fast path: no event inside this block
            buf_v, buf_i, buf_y = self._rows
            p = self._pos
            end = p + n
            buf_v[p:end] = v
            x = buf_i[p:end]
            x[...] = i
            y, self._zi = _filter(self._b, self._a, x, -1, self._zi)
            room -= n
            if room == 1:   # the output before an event: a refit there continues the filter from it
                buf_y[end - 1] = y[-1]
            self._pos = end
            self._room = room
            self.count += n
            return y
        out = np.empty(n)
        pos = 0
        buf = self._buf
        while pos < n:
            take = min(n - pos, self._room)
            p = self._pos
            end = p + take
            buf[0, p:end] = v[pos:pos + take]
            x = buf[1, p:end]
            x[...] = i[pos:pos + take]
            y, self._zi = _filter(self._b, self._a, x, -1, self._zi)
            buf[2, p:end] = y
            out[pos:pos + take] = y
            pos += take
            self.count += take
            self._pos = end
            self._room -= take
            if not self._room:
                self._event()
        return out

    def _event(self) -> None:
        """An update boundary or the sample where a delayed refit takes effect: do what is due there."""
        count, every = self.count, self.update_every
        if count % every == 0:
            self._add_segments()
            if count >= self.config.nperseg:
                self._update()
            # the next interval's first segment starts in this one's last nperseg - hop samples
            buf, keep = self._buf, self._keep
            buf[:, :keep] = buf[:, every:]
            self._pos = keep
        if self._refit is not None and count == self._apply_at:
            self._finish_refit()
        room = every - count % every
        if self._refit is not None:
            room = min(room, self._apply_at - count)
        self._room = room

    def _add_segments(self) -> None:
        """At an update boundary: the Welch spectra of the segments that completed in the interval
        (one per hop, the last ending here), windowed, transformed and reduced in one batch each, into
        the window's rings (slots in completion order). Segments before ``nperseg`` samples are skipped."""
        count, hop, hops = self.count, self.hop, self.config.update_hops
        # segment j (0..hops-1) ends at count - (hops - 1 - j) * hop; it is complete from nperseg on
        first = max(0, hops - 1 - (count - self.config.nperseg) // hop) if count >= self.config.nperseg else hops
        slot, w = self._slot, self.window_segments
        if hops - first > w:   # more segments than the window holds: the older ones would be overwritten
            slot = (slot + hops - first - w) % w
            first = hops - w
        m = hops - first
        if m <= 0:
            return
        seg, spec = self._seg[:, first:], self._spec[:, first:]
        np.multiply(self._segs[:, first:], self._win, out=seg)
        _rfft(seg, spec)
        # |V|^2 = re^2 + im^2 and |I|^2 likewise (one square of both, one add), conj(V) * I
        sq = self._sq[:, first:]
        np.square(self._band_parts[:, first:], sq)
        cj = np.conjugate(self._band_spec[0, first:], self._cj[first:])
        spec_i = self._band_spec[1, first:]
        j = 0
        while j < m:                   # the slots are consecutive (at most one wrap-around)
            k = min(m - j, w - slot)
            np.add(sq[:, j:j + k, :, 0], sq[:, j:j + k, :, 1], self._auto[slot:slot + k].transpose(1, 0, 2))
            np.multiply(cj[j:j + k], spec_i[j:j + k], self._svi[slot:slot + k])
            j += k
            slot = (slot + k) % w
        self._slot = slot

    def _update(self) -> None:
        """An update boundary: refit now (``refit_delay`` 0), or start a refit that takes effect later."""
        steps = self._refit_steps()
        delay = self.config.refit_delay
        if not delay:
            for _ in steps:   # the whole refit in this block; it takes effect at this sample
                pass
            return
        try:                  # the window sums now; checks, set-up and solver evaluations one per later call
            next(steps)
        except StopIteration:
            return
        self._refit, self._refit_ready, self._apply_at = steps, False, self.count + delay

    def _refit_step(self) -> None:
        try:
            next(self._refit)
        except StopIteration:  # nothing to apply (too little excitation, or the fit was rejected)
            self._refit = None

    def _finish_refit(self) -> None:
        """At the sample where a delayed refit takes effect: its remaining steps, then the update."""
        steps, self._refit = self._refit, None
        for _ in steps:
            pass
        self._refit_ready = False

    def _refit_steps(self):
        """The refit as a generator: yields after the window sums, the checks, the set-up and every
        solver evaluation and, once the fit is accepted, before it takes effect; the update happens
        when it is run to the end."""
        if self.segments < max(4, self.window_segments // 2):
            return
        svv, sii = _sum(self._auto, 0)     # unfilled rows are zero; summed row by row in slot order
        svi = _sum(self._svi, 0)
        yield                           # (the window's spectra are summed: later segments may change them)
        cfg = self.config
        # excitation check: mean-square voltage in the band (Parseval with the Hann window's power)
        ms_v = float(_sum(svv)) * 2 / (self.segments * self._win_power * self.config.nperseg)
        if ms_v < cfg.min_rms_volts ** 2:
            return
        good = (svv > 0) & (sii > 0)
        abs_svi = np.abs(svi)
        if good.all():
            coh = abs_svi ** 2 / (svv * sii)
        else:
            coh = np.zeros_like(svv)
            coh[good] = abs_svi[good] ** 2 / (svv[good] * sii[good])
        # (means as sum / count, what ndarray.mean computes; boolean means as exact counts)
        nb = coh.shape[0]
        if float(_sum(coh)) / nb < cfg.min_coherence or np.count_nonzero(coh >= 0.9) / nb < cfg.min_coverage:
            return
        # the mechanical parameters are only identifiable when the resonance region is excited
        f0 = self._resonance_hz()
        near = (self._f >= f0 / 2) & (self._f <= f0 * 2)
        n_near = np.count_nonzero(near)
        if n_near and np.count_nonzero(coh[near] >= 0.9) / n_near < cfg.min_resonance_coverage:
            return
        yield
        y = np.where(abs_svi > 0, svi / np.where(svv > 0, svv, 1.0), 1.0)
        z = 1.0 / y
        c = _clip(coh, 0.0, 0.999)
        weight = np.sqrt(c / (1.0 - c))
        weight = weight / np.sqrt(_sum(weight ** 2) / nb)
        theta_ds = self._theta_ds
        fitter = _ImpedanceFit(self._s, z, weight / np.abs(z), self._prior * math.sqrt(nb), theta_ds)
        yield
        fit = yield from levenberg_marquardt_steps(fitter.residuals, fitter.jacobian, self.theta, cfg.max_nfev)
        if fit is None:
            return
        x, fun = fit
        cost = math.sqrt(float(_sum(fun[:2 * nb] ** 2)) / (2 * nb))
        if cost > 0.2:    # a fit this poor (20 % relative misfit) is not trusted
            return
        if (np.abs(x - theta_ds) > math.log(cfg.max_ratio)).any():
            return        # implausibly far from the datasheet: a spurious minimum
        self._refit_ready = True
        yield             # (delayed refits wait here for their sample)
        # limit the change per update: one odd window cannot throw the model far
        self.theta = self.theta + _clip(x - self.theta, -cfg.max_step, cfg.max_step)
        self._log_cmes += cfg.bl_smoothing * (float(self.theta[4]) - self._log_cmes)
        self.updates += 1
        self._set_filter()
        if self.keep_history:
            self.history.append(self._params_from_theta(self.theta, self.count, cost))


@dataclass
class TrackResult:
    """Excursion prediction (mm) over a whole signal and the identified parameter history."""

    x_mm: np.ndarray
    history: list[TrackedParams]


def track(v: np.ndarray, i: np.ndarray, params: SpeakerParams, fs: float = 48_000.0,
          config: TrackerConfig = TrackerConfig()) -> TrackResult:
    """Run :class:`ImpedanceTracker` over a whole signal (identical to streaming it block by block)."""
    tracker = ImpedanceTracker(params, fs, config, keep_history=True)
    x = tracker.process(v, i)
    return TrackResult(x, list(tracker.history))
