"""The optimised tracker equals the tracker as it was before (commit d79ecee) bit for bit.

The hybrid network is trained on the tracker's output, so the tracker's arithmetic must not drift:
``_ReferenceTracker`` below is that tracker's per-block code, kept verbatim (plain copies of its
filter, ring buffers, Welch spectra computed in the block where a segment ends, and the refit with
its Levenberg-Marquardt solver). The tests compare predictions, identified parameters and filter
state byte for byte, for whole signals, 1 ms blocks, single samples and random block sizes.
"""

import math

import numpy as np
import pytest
from scipy import signal

from edgesense.sim.speaker import sense, simulate
from edgesense.sim.speaker_params import named_speaker
from edgesense.speaker.linear import x_over_i_coefficients
from edgesense.speaker.tracking import ImpedanceTracker, TrackerConfig, track

FS = 48_000.0


def _ref_lfilter(b, a, x, zi):
    return signal.lfilter(b, a, x, zi=zi)


def _ref_impedance_jacobian(theta: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dZ/dtheta, shape (len(s), 7), for log-parameters (see :func:`impedance_model`)."""
    re, le, l2, r2, cmes, res, lces = np.exp(theta)
    q = r2 + s * l2
    d = s * cmes + 1.0 / res + 1.0 / (s * lces)
    inv_d2 = 1.0 / (d * d)
    return np.stack([np.full_like(s, re), s * le, l2 * s * r2 * r2 / (q * q), r2 * (s * l2) ** 2 / (q * q),
                     -s * cmes * inv_d2, inv_d2 / res, inv_d2 / (s * lces)], axis=1)


def _ref_levenberg_marquardt(fun, jac, x0: np.ndarray, max_nfev: int, xtol: float = 1e-6, ftol: float = 1e-8
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Minimise ||fun(x)||^2 from ``x0`` (Levenberg-Marquardt, Marquardt's diagonal scaling).

    Stops when a step changes no log-parameter by ``xtol``, the cost falls by less than ``ftol``
    (relative), or after ``max_nfev`` residual evaluations. A small dense solver (7 unknowns): each
    iteration is one Jacobian, one 7x7 solve and one residual evaluation, with none of a general
    solver's per-call set-up, so a warm-started refit costs well under a millisecond. Returns
    (x, fun(x)), or None when nothing finite was found.
    """
    x = np.asarray(x0, float).copy()
    r = fun(x)
    if not np.all(np.isfinite(r)):
        return None
    c = float(r @ r)
    lam = 1e-3
    nfev = 1
    while nfev < max_nfev:
        J = jac(x)
        g = J.T @ r
        H = J.T @ J
        d = np.maximum(np.diag(H), 1e-12)
        accepted = False
        while nfev < max_nfev:
            try:
                step = np.linalg.solve(H + lam * np.diag(d), -g)
            except np.linalg.LinAlgError:
                return None
            if float(np.max(np.abs(step))) < xtol:
                return x, r              # converged: no step left worth taking
            x_new = x + step
            r_new = fun(x_new)
            nfev += 1
            c_new = float(r_new @ r_new) if np.all(np.isfinite(r_new)) else math.inf
            if c_new < c:
                accepted = c - c_new > ftol * c
                x, r, c = x_new, r_new, c_new
                lam = max(lam / 5.0, 1e-9)
                break
            lam *= 10.0
        if not accepted:
            break                        # budget spent, or the cost no longer falls
    return x, r


def _ref_impedance_model(theta: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Z(s) for log-parameters theta = log([Re, Le, L2, R2, Cmes, Res, Lces])."""
    re, le, l2, r2, cmes, res, lces = np.exp(theta)
    return re + s * le + s * l2 * r2 / (r2 + s * l2) + 1.0 / (s * cmes + 1.0 / res + 1.0 / (s * lces))


class _ReferenceTracker(ImpedanceTracker):
    """The tracker's per-block code before the optimisation (verbatim), on the same configuration."""

    segments = 0   # a plain counter here (the tracker derives it from its sample count)

    def reset(self) -> None:
        """Back to the datasheet model with empty buffers (e.g. after a gap in the stream)."""
        self.theta = self._theta_ds.copy()
        self._log_cmes = float(self._theta_ds[4])   # running mean of log Cmes (sets Bl with the Mms anchor)
        self.count = 0
        self.updates = 0
        self._ring_v = np.zeros(self.config.nperseg)
        self._ring_i = np.zeros(self.config.nperseg)
        nb = len(self._band)     # segment spectra of the window: fixed rings, oldest overwritten
        self._svv = np.zeros((self.window_segments, nb))
        self._svi = np.zeros((self.window_segments, nb), complex)
        self._sii = np.zeros((self.window_segments, nb))
        self.segments = 0        # segment spectra in the window (<= window_segments)
        self._slot = 0
        self._set_filter(initial=True)
        self.history.clear()

    def _set_filter(self, initial: bool = False) -> None:
        p = self._params_from_theta(self.theta, self.count, float("nan"))
        b, a = x_over_i_coefficients(p.bl, p.mms, p.rms, p.kms, self.fs)
        if initial:
            self._zi = np.zeros(2)
            self._last_in = (0.0, 0.0)    # most recent first
            self._last_out = (0.0, 0.0)
        else:  # direct-form-II-transposed state that continues the last two inputs and outputs
            (x0, x1), (y0, y1) = self._last_in, self._last_out
            self._zi = np.array([b[1] * x0 + b[2] * x1 - a[1] * y0 - a[2] * y1, b[2] * x0 - a[2] * y0])
        self._b, self._a = b, a

    # -- processing ----------------------------------------------------------------------------

    def process(self, v_block: np.ndarray, i_block: np.ndarray) -> np.ndarray:
        """Excursion (mm) for one block of sensed voltage (V) and current (A); any block size."""
        v_block = np.ascontiguousarray(v_block, dtype=np.float64).ravel()
        i_block = np.ascontiguousarray(i_block, dtype=np.float64).ravel()
        n = len(v_block)
        if i_block.shape != (n,):
            raise ValueError(f"v and i blocks differ in length: {v_block.shape} vs {i_block.shape}")
        hop = self.hop
        if n <= hop - self.count % hop - 1:   # fast path: no segment ends inside this block
            y, self._zi = _ref_lfilter(self._b, self._a, i_block, self._zi)
            self._store(v_block, i_block, y)
            return y
        out = np.empty(n)
        pos = 0
        while pos < n:
            take = min(n - pos, hop - self.count % hop)
            ii = i_block[pos:pos + take]
            y, self._zi = _ref_lfilter(self._b, self._a, np.ascontiguousarray(ii), self._zi)
            out[pos:pos + take] = y
            self._store(v_block[pos:pos + take], ii, y)
            pos += take
            if self.count % hop == 0 and self.count >= self.config.nperseg:
                self._add_segment()
                if self.count % self.update_every == 0:
                    self._update()
        return out

    def _store(self, v: np.ndarray, i: np.ndarray, y: np.ndarray) -> None:
        """Append samples to the one-segment ring buffers (chunks never straddle a hop boundary)."""
        p = self.count % self.config.nperseg
        k = len(v)
        self._ring_v[p:p + k] = v
        self._ring_i[p:p + k] = i
        self._last_in = (float(i[-1]), float(i[-2]) if k >= 2 else self._last_in[0])
        self._last_out = (float(y[-1]), float(y[-2]) if k >= 2 else self._last_out[0])
        self.count += k

    def _add_segment(self) -> None:
        p = self.count % self.config.nperseg          # oldest sample of the segment sits at p
        seg = np.empty((2, self.config.nperseg))
        n = self.config.nperseg - p
        seg[0, :n], seg[0, n:] = self._ring_v[p:], self._ring_v[:p]
        seg[1, :n], seg[1, n:] = self._ring_i[p:], self._ring_i[:p]
        seg *= self._win
        V, I_ = np.fft.rfft(seg)[:, self._band]      # both signals in one call
        k = self._slot
        self._svv[k] = V.real ** 2 + V.imag ** 2
        self._svi[k] = np.conj(V) * I_
        self._sii[k] = I_.real ** 2 + I_.imag ** 2
        self._slot = (k + 1) % self.window_segments
        self.segments = min(self.segments + 1, self.window_segments)

    def _update(self) -> None:
        if self.segments < max(4, self.window_segments // 2):
            return
        svv = self._svv.sum(axis=0)     # unfilled rows are zero
        svi = self._svi.sum(axis=0)
        sii = self._sii.sum(axis=0)
        cfg = self.config
        # excitation check: mean-square voltage in the band (Parseval with the Hann window's power)
        ms_v = float(np.sum(svv)) * 2 / (self.segments * np.sum(self._win ** 2) * self.config.nperseg)
        if ms_v < cfg.min_rms_volts ** 2:
            return
        good = (svv > 0) & (sii > 0)
        coh = np.zeros_like(svv)
        coh[good] = np.abs(svi[good]) ** 2 / (svv[good] * sii[good])
        if float(np.mean(coh)) < cfg.min_coherence or float(np.mean(coh >= 0.9)) < cfg.min_coverage:
            return
        # the mechanical parameters are only identifiable when the resonance region is excited
        f0 = self.current.resonance_hz
        near = (self._f >= f0 / 2) & (self._f <= f0 * 2)
        if near.any() and float(np.mean(coh[near] >= 0.9)) < cfg.min_resonance_coverage:
            return
        y = np.where(np.abs(svi) > 0, svi / np.where(svv > 0, svv, 1.0), 1.0)
        z = 1.0 / y
        weight = np.sqrt(np.clip(coh, 0.0, 0.999) / (1.0 - np.clip(coh, 0.0, 0.999)))
        weight = weight / np.sqrt(np.mean(weight ** 2))
        s = self._s
        absz = np.abs(z)
        nb = len(z)
        theta_ds = self._theta_ds
        prior = self._prior * math.sqrt(nb)

        scale = weight / absz

        def residuals(theta: np.ndarray) -> np.ndarray:
            r = scale * (_ref_impedance_model(theta, s) - z)
            return np.concatenate((r.real, r.imag, prior * (theta - theta_ds)))

        def jacobian(theta: np.ndarray) -> np.ndarray:
            jz = scale[:, None] * _ref_impedance_jacobian(theta, s)
            return np.concatenate((jz.real, jz.imag, np.diag(prior)))

        fit = _ref_levenberg_marquardt(residuals, jacobian, self.theta, cfg.max_nfev)
        if fit is None:
            return
        x, fun = fit
        cost = float(np.sqrt(np.mean(fun[:2 * nb] ** 2)))
        if cost > 0.2:    # a fit this poor (20 % relative misfit) is not trusted
            return
        if np.any(np.abs(x - theta_ds) > math.log(cfg.max_ratio)):
            return        # implausibly far from the datasheet: a spurious minimum
        # limit the change per update: one odd window cannot throw the model far
        self.theta = self.theta + np.clip(x - self.theta, -cfg.max_step, cfg.max_step)
        self._log_cmes += cfg.bl_smoothing * (float(self.theta[4]) - self._log_cmes)
        self.updates += 1
        self._set_filter()
        if self.keep_history:
            self.history.append(self._params_from_theta(self.theta, self.count, cost))


REF = named_speaker("ref")          # with its large-signal nonlinearity


def _signal(sp, seconds, seed, level=1.0):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(int(seconds * FS)) * level
    res = simulate([sp], u[None], thermal=False)
    v, i = sense(res.u[0], res.i[0], rng)
    return v, i


@pytest.fixture(scope="module")
def signals():
    """(v, i, datasheet): a nominal speaker, and a hot, leaky one tracked from its datasheet."""
    hot = REF.replace(re=REF.re * 1.25, kms=REF.kms * 0.7, rms=REF.rms * 1.6, datasheet=REF.true_params())
    return [(*_signal(REF, 1.6, 0), REF.true_params()), (*_signal(hot, 2.2, 1, level=1.5), hot.published())]


def _same(new: ImpedanceTracker, ref: _ReferenceTracker) -> None:
    assert new.count == ref.count and new.updates == ref.updates and new.segments == ref.segments
    assert new.theta.tobytes() == ref.theta.tobytes() and new._log_cmes == ref._log_cmes
    assert new._zi.tobytes() == ref._zi.tobytes()
    assert [h.to_dict() for h in new.history] == [h.to_dict() for h in ref.history]


def _blocks(tracker, v, i, sizes):
    out, pos = [], 0
    for n in sizes:
        out.append(tracker.process(v[pos:pos + n], i[pos:pos + n]))
        pos += n
    return np.concatenate(out)


def test_reference_is_the_old_tracker_with_its_own_lfilter():
    """The reference's filter (scipy's public lfilter) is the one the old tracker ran, bit for bit."""
    from edgesense.speaker.tracking import _lfilter

    b, a = x_over_i_coefficients(1.0, 1.6e-4, 0.3, 4060.0, FS)
    x = np.random.default_rng(0).standard_normal(999)
    zi = np.array([0.1, -0.2])
    y_ref, z_ref = _ref_lfilter(b, a, x, zi.copy())
    y, z = _lfilter(b, a, x, zi.copy())
    assert y.tobytes() == y_ref.tobytes() and z.tobytes() == z_ref.tobytes()


@pytest.mark.parametrize("which", [0, 1])
def test_tracker_equals_the_reference_bit_for_bit(signals, which):
    v, i, params = signals[which]
    ref = _ReferenceTracker(params, keep_history=True)
    x_ref = ref.process(v, i)
    assert ref.updates >= 3            # refits happened (and moved the model)
    assert not np.array_equal(ref.theta, ref._theta_ds)
    rng = np.random.default_rng(which)
    n = len(v)
    runs = {
        "whole": [n],
        "1 ms": [48] * (n // 48) + [n % 48],
        "random": list(rng.integers(1, 1200, n // 300)),
        "odd": [1, 2, 511, 512, 513, 1023, 1024, 1025, 5000] * 8,
    }
    for name, sizes in runs.items():
        sizes = np.asarray(sizes)
        sizes = sizes[np.cumsum(sizes) <= n].tolist()
        sizes.append(n - sum(sizes))
        new = ImpedanceTracker(params, keep_history=True)
        x = _blocks(new, v, i, sizes + [0])          # an empty block changes nothing
        assert x.dtype == np.float64 and x.tobytes() == x_ref.tobytes(), name
        _same(new, ref)


def test_single_samples_and_reset_equal_the_reference(signals):
    v, i, params = signals[0]
    n = int(0.8 * FS)                  # one refit (at 0.512 s) inside
    v, i = v[:n], i[:n]
    ref = _ReferenceTracker(params, keep_history=True)
    x_ref = ref.process(v, i)
    assert ref.updates >= 1
    new = ImpedanceTracker(params, keep_history=True)
    new.process(v[:30_000], i[:30_000])
    new.reset()                        # back to the datasheet: the same as a fresh tracker
    x = np.array([new.process(v[k:k + 1], i[k:k + 1])[0] for k in range(n)])
    assert x.tobytes() == x_ref.tobytes()
    _same(new, ref)


def test_float32_column_views_equal_the_reference(signals):
    """The pipeline passes strided float32 columns of a frame payload: the same numbers as float64 copies."""
    v, i, params = signals[1]
    payload = np.stack([v, i], axis=1).astype(np.float32)
    ref = _ReferenceTracker(params, keep_history=True)
    x_ref = ref.process(payload[:, 0].astype(np.float64), payload[:, 1].astype(np.float64))
    new = ImpedanceTracker(params, keep_history=True)
    cols = [(payload[k:k + 48, 0], payload[k:k + 48, 1]) for k in range(0, len(payload), 48)]
    x = np.concatenate([new.process(a, b) for a, b in cols])
    assert x.tobytes() == x_ref.tobytes()
    _same(new, ref)
    assert track(payload[:, 0], payload[:, 1], params).x_mm.tobytes() == x_ref.tobytes()


def test_other_configurations_equal_the_reference(signals):
    v, i, params = signals[1]
    # (the last two: an update interval longer than the window, whose older segments are overwritten
    # within one batch, and an update at every hop)
    for cfg in (TrackerConfig(bl_anchor="bl"), TrackerConfig(nperseg=512, update_hops=16, window_s=0.5),
                TrackerConfig(window_s=0.2, update_hops=30), TrackerConfig(update_hops=1)):
        ref = _ReferenceTracker(params, config=cfg, keep_history=True)
        x_ref = ref.process(v, i)
        assert ref.updates >= 2
        new = ImpedanceTracker(params, config=cfg, keep_history=True)
        x = _blocks(new, v, i, [48] * (len(v) // 48) + [len(v) % 48])
        assert x.tobytes() == x_ref.tobytes()
        _same(new, ref)


def test_state_stays_bounded_and_spectra_run_in_one_batch_per_update(signals, monkeypatch):
    """No block between update boundaries computes spectra: the interval's Welch work (one FFT call for
    all its segments) runs in the block where the boundary falls, and no buffer is reallocated."""
    from edgesense.speaker import tracking

    v, i, params = signals[0]
    new = ImpedanceTracker(params)

    def arrays(t):
        return (t._buf, t._auto, t._svv, t._svi, t._sii, t._seg, t._spec, t._sq, t._cj)

    ids = [id(a) for a in arrays(new)]
    ffts = []
    real_rfft = tracking._rfft

    def counting_rfft(seg, out):
        ffts.append(seg.shape)
        real_rfft(seg, out)

    monkeypatch.setattr(tracking, "_rfft", counting_rfft)
    every = new.update_every
    for k in range(0, len(v) - 48, 48):
        before = len(ffts)
        new.process(v[k:k + 48], i[k:k + 48])
        boundary = (k + 48) // every > k // every
        assert len(ffts) - before == int(boundary), k
    assert [id(a) for a in arrays(new)] == ids
    hops = new.config.update_hops
    assert ffts[0] == (2, hops - 1, new.config.nperseg)     # the first interval: one segment not yet complete
    assert ffts[1:] == [(2, hops, new.config.nperseg)] * (len(ffts) - 1) and len(ffts) >= 5
    assert new.segments == new.window_segments
