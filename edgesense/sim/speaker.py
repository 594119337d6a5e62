"""Nonlinear micro-speaker simulator: voltage in, coil current and cone excursion out.

Equations (states: coil current i, eddy-branch current i2, excursion x, velocity v; input the
terminal voltage u), a Klippel-type large-signal model with an LR-2 eddy-current branch::

    d(L(x) i)/dt = u - Re(Tv) i - R2 (i - i2) - Bl(x, Tm) v        (flux form: L di/dt + i L'(x) v)
    L2 di2/dt   = R2 (i - i2)
    dx/dt       = v
    Mms dv/dt   = Bl(x, Tm) i - Rms v - Kms(x) x + 1/2 i^2 L'(x)    (last term: reluctance force)

    Re(Tv)    = Re0 (1 + 0.00393 (Tv - 25 C))          copper
    Bl(x, Tm) = Bl0 shape(x) (1 - 0.0012 (Tm - 25 C))  NdFeB remanence drift
    Ctv dTv/dt = P - (Tv - Tm)/Rtv ;  Ctm dTm/dt = (Tv - Tm)/Rtv - (Tm - Ta)/Rtm ;  P = Re(Tv) i^2

Shapes and parameter sources: :mod:`edgesense.sim.speaker_params` and ``docs/speaker-simulator.md``.

Integration. Le/Re is about 5 us, shorter than the 20.8 us sample period, so explicit schemes at
48 kHz are unstable. Each step is a linearly implicit trapezoidal (Rosenbrock-type) step at
``oversample`` x 48 kHz: the position-dependent coefficients Bl, L, L' are frozen at the predicted
mid-step position, the stiffness force is linearised about the step's start, and the resulting
2x2 linear system in (i, v) at the step's end is solved in closed form. For a linear speaker this
is exactly the bilinear transform of the state-space model (A-stable, second order), which the
tests check against the analytic X/U. The 48 kHz input is interpolated to the integration rate
with a band-limited polyphase filter (scipy ``resample_poly``'s Kaiser-windowed sinc; the
amplifier's output is band-limited), so the sensed 48 kHz voltage samples are exactly the
voltage the speaker saw.

Speed. The time loop runs in Python over numpy vectors, so throughput comes from batch width:
each signal is cut into segments of ``segment_s`` that are simulated side by side, each starting
``warmup_s`` early from rest (both rounded to whole 10 ms thermal steps). Mechanical and
electrical transients decay in a few ms, so the 30 ms warm-up makes segment joins exact to float
precision (tested). A step is 57 in-place vector operations over the rows: the states are scaled
(x / Xmax, a v / Xmax and a folded eddy-current state, see :func:`_steps`) so that constants are
pre-multiplied per speaker and per 10 ms thermal step, and the state at each sample is written
straight into the block that is scattered to the outputs. The mechanical row is solved for the
change of velocity, so the step also runs in float32 (``dtype``; the dataset writer's choice)
within ~2e-6 of the float64 run's peak. The interpolated input is never stored
whole: a (u(t) + u(t+h)) for each block of 256 samples is computed from the 48 kHz rows,
phase by phase (:class:`_Drive`). Coil temperature varies over seconds, so it is computed
first: the two-node thermal network is integrated in 10 ms steps, driven by the power of the
linear LR-2 model's current (scaled by Re0/Re(T) as the coil heats), and the nonlinear
simulation then uses Re(Tv(t)) and Bl(Tm(t)) held per step. The reported temperatures are recomputed
from the simulated current; :attr:`SimResult.thermal_mismatch_k` says how far the two disagree.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
from scipy import signal

from edgesense.progress import progress
from edgesense.sim.speaker_params import ALPHA_BL_MAGNET, ALPHA_CU, T_REF_C, XI_CLIP, SpeakerModel
from edgesense.sim.speaker_program import _GEMM_SINGLE_THREAD

__all__ = ["SimResult", "simulate", "thermal_trajectory", "linear_x_over_u", "linear_impedance",
           "SenseConfig", "sense"]

THERMAL_STEP = 480  # samples per thermal step at 48 kHz (10 ms)


@dataclass
class SimResult:
    """Simulated signals, shape (batch, samples): i in A, x in m, temperatures in deg C."""

    u: np.ndarray
    i: np.ndarray
    x: np.ndarray
    coil_c: np.ndarray      # (batch, thermal steps)
    magnet_c: np.ndarray
    thermal_mismatch_k: float
    thermal_step: int = THERMAL_STEP


def linear_impedance(sp: SpeakerModel, f: np.ndarray, re: float | None = None) -> np.ndarray:
    """Small-signal electrical impedance Z(f) of the LR-2 model (ohm)."""
    s = 2j * np.pi * np.asarray(f, dtype=float)
    re = sp.re if re is None else re
    ze = re + s * sp.le + (s * sp.l2 * sp.r2 / (sp.r2 + s * sp.l2) if sp.l2 > 0 else 0.0)
    zm = sp.mms * s + sp.rms + sp.kms / s
    return ze + sp.bl ** 2 / zm


def linear_x_over_u(sp: SpeakerModel, f: np.ndarray, re: float | None = None) -> np.ndarray:
    """X/U = Bl / [(Re + sLe + LR-2)(Mms s^2 + Rms s + Kms) + Bl^2 s] (m/V)."""
    s = 2j * np.pi * np.asarray(f, dtype=float)
    re = sp.re if re is None else re
    ze = re + s * sp.le + (s * sp.l2 * sp.r2 / (sp.r2 + s * sp.l2) if sp.l2 > 0 else 0.0)
    return sp.bl / (ze * (sp.mms * s * s + sp.rms * s + sp.kms) + sp.bl ** 2 * s)


def _linear_current_filter(sp: SpeakerModel, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear discretisation of the admittance I/U of the linear LR-2 model."""
    # Z = Re + s Le + s L2 R2/(R2 + s L2) + Bl^2 s/(Mms s^2 + Rms s + Kms) -> Y = 1/Z as a rational function.
    ze_num = np.polyadd(np.polymul([sp.le, sp.re], [sp.l2, sp.r2]), [sp.l2 * sp.r2, 0.0])
    ze_den = np.array([sp.l2, sp.r2])
    zm_den = np.array([sp.mms, sp.rms, sp.kms])
    z_num = np.polyadd(np.polymul(ze_num, zm_den), np.polymul(ze_den, [sp.bl ** 2, 0.0]))
    z_den = np.polymul(ze_den, zm_den)
    return _bilinear(z_den, z_num, fs)


def _bilinear(num: np.ndarray, den: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Digital (b, a), a[0] = 1, of the analog num(s)/den(s) (coefficients highest power first) by the
    bilinear transform s = 2 fs (1 - z^-1)/(1 + z^-1): both polynomials multiplied by (1 + z^-1)^N.
    The same filter as ``scipy.signal.bilinear`` (coefficients equal to 4e-16 relative) at a
    twentieth of its cost (2.5 ms per speaker there)."""
    n = max(len(num), len(den)) - 1
    num = np.concatenate([np.zeros(n + 1 - len(num)), num])
    den = np.concatenate([np.zeros(n + 1 - len(den)), den])
    b, a = np.zeros(n + 1), np.zeros(n + 1)
    for k in range(n + 1):                              # the s^(n - k) term: (2 fs)^(n-k) (1 - q)^(n-k) (1 + q)^k
        p = np.ones(1)
        for _ in range(n - k):
            p = np.convolve(p, [1.0, -1.0])
        for _ in range(k):
            p = np.convolve(p, [1.0, 1.0])
        scale = (2.0 * fs) ** (n - k)
        b += num[k] * scale * p
        a += den[k] * scale * p
    return b / a[0], a / a[0]


def thermal_trajectory(speakers: list[SpeakerModel], mean_sq_current: np.ndarray, ambient_c: np.ndarray,
                       dt: float, start_c: list[tuple[float, float]] | None = None,
                       current_scales_with_re: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Coil and magnet temperatures (deg C), shape (batch, steps), of the two-node network.

    ``mean_sq_current`` (batch, steps) is the mean i^2 over each step; the coil dissipates
    P = Re(Tv) i^2. With ``current_scales_with_re`` the current is taken as computed at Re0 and
    scaled by Re0/Re(Tv) (a voltage-driven coil draws less current as it heats), so P = i0^2 Re0^2/Re(Tv).
    Explicit Euler at ``dt`` (10 ms) is accurate: the fastest time constant is about 1 s.
    """
    nb, steps = mean_sq_current.shape
    re0 = np.array([sp.re for sp in speakers])
    rc = np.array([sp.thermal.r_coil for sp in speakers])
    cc = np.array([sp.thermal.c_coil for sp in speakers])
    rm = np.array([sp.thermal.r_magnet for sp in speakers])
    cm = np.array([sp.thermal.c_magnet for sp in speakers])
    amb = np.broadcast_to(np.asarray(ambient_c, dtype=float), (nb,))
    if start_c is None:
        tv, tm = amb.copy(), amb.copy()
    else:
        tv = np.array([c[0] for c in start_c], dtype=float)
        tm = np.array([c[1] for c in start_c], dtype=float)
    coil = np.empty((steps, nb))          # time-major while stepping (one contiguous row per step)
    mag = np.empty((steps, nb))
    ms_t = np.ascontiguousarray(mean_sq_current.T)
    kc, km = dt / cc, dt / cm            # per-row constants hoisted out of the loop
    grc, grm = 1.0 / rc, 1.0 / rm
    re_a = re0 * ALPHA_CU                # Re(T) = re_b + re_a T
    re_b = re0 * (1 - ALPHA_CU * T_REF_C)
    re_sq = re0 * re0
    for k in range(steps):
        coil[k], mag[k] = tv, tm
        re_t = re_a * tv + re_b
        p = ms_t[k] * (re_sq / re_t if current_scales_with_re else re_t)
        flow = (tv - tm) * grc
        tv = tv + (p - flow) * kc
        tm = tm + (flow - (tm - amb) * grm) * km
    return np.ascontiguousarray(coil.T), np.ascontiguousarray(mag.T)


_SQ_CHUNK = 256 * THERMAL_STEP   # samples per pass of the thermal pre-pass (whole thermal steps)


def _step_mean_squares(x: np.ndarray, ba: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Mean of y^2 over each thermal step of the 1-D signal ``x`` (the last step partial), where y is
    ``x`` or, with ``ba``, ``x`` through ``lfilter(b, a)`` from rest.

    Runs over chunks of whole thermal steps with the filter's state carried: the same recursion and
    the same per-step sums (``add.reduceat``) as over the whole signal, bitwise, without
    signal-sized temporaries (their first touch costs more than the arithmetic on a busy host)."""
    n = len(x)
    sums = np.empty(-(-n // THERMAL_STEP), dtype=np.result_type(x.dtype, np.float64) if ba else x.dtype)
    zi = None if ba is None else np.zeros(max(len(ba[0]), len(ba[1])) - 1)
    for c0 in range(0, n, _SQ_CHUNK):
        y = x[c0:c0 + _SQ_CHUNK]
        if ba is None:
            y = y * y
        else:
            y, zi = signal.lfilter(ba[0], ba[1], y, zi=zi)
            y **= 2
        sums[c0 // THERMAL_STEP:c0 // THERMAL_STEP + -(-len(y) // THERMAL_STEP)] = \
            np.add.reduceat(y, np.arange(0, len(y), THERMAL_STEP))
    edges = np.arange(0, n, THERMAL_STEP)
    return sums / np.diff(np.append(edges, n)).astype(float)


_HALF_TAPS = 10   # scipy.signal.resample_poly's default filter: 2 * 10 * factor + 1 taps


def _interpolation_filter(factor: int) -> np.ndarray:
    """The anti-imaging filter of ``scipy.signal.resample_poly(u, factor, 1)`` (its default design:
    Kaiser-windowed sinc, beta 5, cutoff at the 48 kHz Nyquist frequency, gain ``factor``)."""
    return signal.firwin(2 * _HALF_TAPS * factor + 1, 1.0 / factor, window=("kaiser", 5.0)) * factor


_SUB = 8      # outputs per Toeplitz sub-block of the drive's FIR (each reads _SUB + 19 window samples)
_TILE = 128   # rows per tile of the drive's window gather (a tile's rows stay in cache for the transpose)


class _Drive:
    """a (u(t) + u(t + h)) of every integration step, built block by block for one batch of rows.

    u(t) at the integration rate is ``u`` interpolated by ``factor`` with ``resample_poly``'s filter,
    computed phase by phase (polyphase): phase 0 keeps the samples (times the centre tap; the other
    phase-0 taps are the sinc's zeros, below 4e-17, and are left out), phase p > 0 is a 20-tap FIR of
    the 48 kHz samples. The input is zero outside the signal (the interpolation's tails there are
    dropped: the amplifier is silent). Nothing the size of the upsampled signal is stored: for each
    block the rows' windows of 48 kHz samples are gathered time-major, (samples, rows), and each FIR
    phase is one batched matrix product: every ``_SUB`` consecutive outputs are a (``_SUB`` x
    ``_SUB`` + 19) Toeplitz matrix of taps times ``_SUB`` + 19 window samples of all rows. The
    result is already time-major, as the integrator reads it. Row r is signal ``sig[r]`` from signal
    sample ``segi[r] * seg - warm`` for ``length`` samples.
    """

    def __init__(self, u: np.ndarray, factor: int, a: float, sig: np.ndarray, segi: np.ndarray, seg: int,
                 warm: int, length: int, dtype: type = np.float64) -> None:
        n = u.shape[1]
        self.dtype = dtype
        self.k, self.n, self.rows = factor, n, len(sig)
        self.e = e = _HALF_TAPS if factor > 1 else 0
        if factor > 1:
            h = _interpolation_filter(factor)
            self.centre = a * h[_HALF_TAPS * factor]
            taps = [a * h[_HALF_TAPS * factor + p + factor * np.arange(-_HALF_TAPS, _HALF_TAPS)]
                    for p in range(1, factor)]
        else:
            self.centre, taps = a, []
        # phase p output j is sum_d taps[d + 10] w[e + j - d] (d = -10 .. 9, w the window); outputs
        # j = _SUB q + s read window samples _SUB q + 1 + c (c < _SUB + 19) with weights T[s, c]
        kk = _SUB + 2 * _HALF_TAPS - 1
        self.toeplitz = []
        for tp in taps:
            t = np.zeros((_SUB, kk))
            for s in range(_SUB):
                t[s, s:s + 2 * _HALF_TAPS] = tp[::-1]
            self.toeplitz.append(t.astype(dtype))
        self.cols = max(1, _GEMM_SINGLE_THREAD // (_SUB * kk))      # columns per product: one BLAS thread
        start = segi * seg - warm
        self.flat = u.reshape(-1)
        first = sig * n + start - e                                   # flat index of each row's window start
        # windows that reach past a signal's ends (a block's last Toeplitz sub-block reads up to
        # _SUB - 1 samples beyond the window proper: those rows are gathered exactly, masked)
        edge = (start - e < 0) | (start - e + length + 2 * e + 1 + _SUB > n)
        self.first = np.clip(first, 0, None)
        self.edge_cols = np.nonzero(edge)[0]
        self.edge_first = first[edge]
        self.edge_start = start[edge]
        self._bufs: tuple[np.ndarray, ...] | None = None

    def _buffers(self, wd: int, n_out: int) -> tuple[np.ndarray, ...]:
        """Window, phase-0 and FIR output buffers, allocated once (the first block is the widest) and reused."""
        if self._bufs is None or self._bufs[0].shape[0] < wd or self._bufs[1].shape[0] < n_out:
            dt = self.dtype
            self._bufs = (np.empty((wd, self.rows), dt), np.empty((n_out, self.rows), dt),
                          *(np.empty((n_out, self.rows), dt) for _ in self.toeplitz))
        return self._bufs

    def _inside(self, lo: int, count: int) -> np.ndarray:
        """(count, edge rows): row samples lo .. lo + count - 1 of the edge rows that lie inside their signal."""
        q = self.edge_start[None, :] + np.arange(lo, lo + count)[:, None]
        return (q >= 0) & (q < self.n)

    def block(self, k0: int, k1: int, out: np.ndarray) -> None:
        """``out[(k - k0) * factor + p, r]`` = a (u + u') for row samples k in [k0, k1), phase p
        (``out`` is time-major, (k1 - k0) * factor rows)."""
        k_, e, rows = self.k, self.e, self.rows
        width = k1 - k0
        n_sub = -(-(width + 1) // _SUB) if k_ > 1 else 0
        wd = max(width + 1 + 2 * e, n_sub * _SUB + 2 * _HALF_TAPS if k_ > 1 else 0)
        flat = self.flat
        bufs = self._buffers(wd, max(width + 1, n_sub * _SUB))
        # the rows' windows, time-major: row samples k0 - e .. k0 - e + wd - 1
        win = bufs[0][:wd]
        last = len(flat) - wd                        # < 0 only when every row is an edge row
        if last >= 0:
            rolling = np.lib.stride_tricks.as_strided(flat, (last + 1, wd), (flat.itemsize, flat.itemsize),
                                                      writeable=False)
            starts = np.minimum(self.first + k0, last)
            for r0 in range(0, rows, _TILE):
                r1 = min(rows, r0 + _TILE)
                win[:, r0:r1] = rolling[starts[r0:r1]].T
        ec = self.edge_cols
        if len(ec):                                                    # exact windows, zero outside the signal
            idx = self.edge_first[None, :] + np.arange(k0, k0 + wd)[:, None]
            win[:, ec] = np.where(self._inside(k0 - e, wd), np.take(flat, idx, mode="clip"), 0.0)
        phases = [np.multiply(win[e:e + width + 1], self.centre, out=bufs[1][:width + 1])]
        for t, buf in zip(self.toeplitz, bufs[2:]):
            ph = buf[:n_sub * _SUB]
            ph3 = ph.reshape(n_sub, _SUB, rows)
            kk = t.shape[1]
            st = win.strides
            for c0 in range(0, rows, self.cols):                     # products small enough for one thread
                c1 = min(rows, c0 + self.cols)
                src = np.lib.stride_tricks.as_strided(win[1:, c0:c1], (n_sub, kk, c1 - c0),
                                                      (_SUB * st[0], st[0], st[1]), writeable=False)
                np.matmul(t, src, out=ph3[:, :, c0:c1])
            if len(ec):
                ph[:width + 1, ec] = np.where(self._inside(k0, width + 1), ph[:width + 1, ec], 0.0)
            phases.append(ph)
        phases.append(phases[0][1:])
        out3 = out.reshape(width, k_, rows)
        for p in range(k_):
            np.add(phases[p][:width], phases[p + 1][:width], out=out3[:, p])


class _Batch:
    """Per-row constants of one integration batch (rows are signal segments), in scaled variables.

    The integrator carries xi = x / Xmax, w = a v / Xmax (a = h/2, so xi + w is the predicted
    mid-step position), i and z = 2 a R2 c2 i2 - gamma i; the mechanical row of the step's 2x2 system is
    multiplied by Xmax / a (see :func:`_steps`), so most constants below are those of the
    documented step times powers of Xmax and a.
    """

    def __init__(self, speakers: list[SpeakerModel], h: float, dtype: type = np.float64) -> None:
        a = h / 2
        self.dtype = dtype
        col = lambda vals: np.asarray(vals, dtype=np.float64)  # noqa: E731
        sp = speakers
        nl = [s.nonlinearity for s in sp]
        self.rows = len(sp)
        self.a = a
        xm = col([s.xmax for s in sp])
        self.xmax = xm
        self.b1, self.b2, self.b3, self.b4 = (col([getattr(q, k) for q in nl]) for k in ("b1", "b2", "b3", "b4"))
        le0 = col([s.le for s in sp])
        self.l0 = le0
        self.l0l1 = le0 * col([q.l1 for q in nl])        # L(xi) = l0 + l0l1 xi + l0l2 xi^2
        self.l0l2 = le0 * col([q.l2 for q in nl])
        self.lam1 = 2 * self.l0l2                        # Xmax L'(xi) = l0l1 + lam1 xi
        k0 = col([s.kms for s in sp])
        k1 = col([q.k1 for q in nl])
        k2 = col([q.k2 for q in nl])
        m = col([s.mms for s in sp])
        rm = col([s.rms for s in sp])
        s_ = xm * xm / (a * a)
        xk = xm * xm * k0
        self.dm = s_ * m                                 # D(xi) = M Xmax^2 / a^2 + G(xi), where
        self.g0 = xm * xm * rm / a + xk                  # G(xi) = (Rms / a + Kt(xi)) Xmax^2
        self.g1 = 2 * xk * k1
        self.g2 = 3 * xk * k2
        self.f0, self.f1, self.f2 = 2 * xk, 2 * xk * k1, 2 * xk * k2   # phi(xi) = 2 Xmax K(x) x
        l2 = col([s.l2 for s in sp])
        r2 = col([s.r2 for s in sp])
        beta2 = a * r2 / (l2 + a * r2)
        c2 = 1.0 - beta2
        self.r2c2 = r2 * c2
        self.c2b = c2 - beta2                            # z' = c2b z + gz i (see _steps)
        self.gamma = 2 * a * self.r2c2 * beta2
        self.gz = self.gamma * (1 + self.c2b)
        self.lo = np.full(self.rows, -XI_CLIP)
        self.hi = np.full(self.rows, XI_CLIP)
        for key in ("l0l1", "l0l2", "lam1", "dm", "g0", "g1", "g2", "f0", "f1", "f2", "c2b", "gz", "lo", "hi"):
            setattr(self, key, getattr(self, key).astype(dtype))     # the integrator's constants

    def thermal_coefficients(self, re: np.ndarray, bl: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-row constants of one 10 ms thermal step: Xmax Bl(xi) Horner coefficients, L0 + R,
        2R - gamma with R = a (Re + R2 c2)."""
        bx = bl * self.xmax
        r = self.a * (re + self.r2c2)
        return tuple(c.astype(self.dtype, copy=False) for c in
                     (bx * self.b4, bx * self.b3, bx * self.b2, bx * self.b1, bx, self.l0 + r, 2 * r - self.gamma))


def _output_array(shape: tuple[int, int], dtype: type = np.float32) -> np.ndarray:
    """An uninitialised array (float32 unless ``dtype``) in its own anonymous memory map (ordinary 4 KB pages).

    numpy asks for transparent huge pages on large arrays; on a host short of free memory the
    first touch of each huge page can stall in compaction (3-4x the CPU time of 4 KB faults was
    measured here on the simulator's ~200 MB of outputs), and these arrays are written once.
    Where the platform has ``MAP_POPULATE`` the pages are mapped up front in one system call
    (0.10-0.12 s instead of 0.22-0.23 s of first-touch faults per 184 MB measured here).
    """
    count = int(np.prod(shape))
    if count == 0:
        return np.empty(shape, dtype=dtype)
    size = count * np.dtype(dtype).itemsize
    if hasattr(mmap, "MAP_POPULATE"):        # Linux: all pages faulted in by one call (about half the CPU time)
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    else:
        buf = mmap.mmap(-1, size)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


_BLOCK = 256  # time steps gathered and scattered at once (keeps transposes cache-friendly)


def _integrate(batch: _Batch, n: int, gather, scatter, oversample: int, desc: str | None = None) -> None:
    """Integrate ``len(batch)`` rows side by side for ``n`` samples.

    ``gather(k0, k1)`` returns the time-major ((k1 - k0) * oversample, rows) block of a (u + u'),
    Re and Bl0 per thermal step touched, and the step of each sample; ``scatter(k0, i_block,
    xi_block)`` receives the states (i and x / Xmax) at samples [k0, k1).
    """
    rows, dt = batch.rows, batch.dtype
    out_i = np.zeros((_BLOCK + 1, rows), dt)       # row k: the state at sample k of the block (row 0 at rest)
    out_x = np.zeros((_BLOCK + 1, rows), dt)
    state = [np.zeros(rows, dt) for _ in range(7)]  # w, z, spare w', scratch i and xi (two each)
    t = [np.empty(rows, dt) for _ in range(11)]
    blocks = range(0, n, _BLOCK)
    if desc:
        blocks = progress(blocks, total=len(blocks), desc=desc)
    for k0 in blocks:
        k1 = min(n, k0 + _BLOCK)
        auu, re, bl0, ridx = gather(k0, k1)
        coeffs = [batch.thermal_coefficients(re[q], bl0[q]) for q in range(len(re))]
        for q in range(len(re)):                     # runs of samples within one thermal step
            ks = np.nonzero(ridx == q)[0]
            if len(ks):
                _steps(batch, int(ks[0]), int(ks[-1]) + 1, auu, coeffs[q], oversample, state, t, out_i, out_x)
        scatter(k0, out_i[:k1 - k0], out_x[:k1 - k0])
        out_i[0] = out_i[k1 - k0]                    # the state the next block starts from
        out_x[0] = out_x[k1 - k0]


def _steps(batch, k_start, k_stop, auu, coeffs, oversample, state, t, out_i, out_x):
    """Samples ``k_start .. k_stop - 1`` of a block, ``oversample`` linearly implicit trapezoidal
    steps each (one thermal step: Re and Bl fixed). i and xi at sample k are rows ``out_i[k]``,
    ``out_x[k]`` (the last step of a sample writes row k + 1); ``state`` = [w, z, spare w', scratch
    i and xi of the steps inside a sample (two each)].

    The documented step (a = h/2; Bl*, L*, L'* at the predicted mid-step position, K and Kt at the
    step start)::

        [A11  aH ] [i']   [b1]      A11 = L* + a (Re + R2 c2 + L'* v)      H = Bl* + L'* i
        [-aH  A22] [v'] = [b2]      A22 = M + a Rms + a^2 Kt
        b1 = L* i + a (u + u') - a (Re i + R2 c2 (i - 2 i2) + Bl* v)
        b2 = (M - a Rms) v + a Bl* i - 2a K(x) x - a^2 Kt v
        x' = x + a (v + v');  i2' = c2 i2 + beta2 (i + i' - i2)

    is computed in xi = x/Xmax, w = a v/Xmax and z = 2a R2 c2 i2 - gamma i (gamma = 2a R2 c2 beta2),
    with the second row multiplied by Xmax / a, that is, written with beta = Xmax Bl*,
    lam = Xmax L'*, eta = beta + lam i, R = a (Re + R2 c2), D = A22 Xmax^2/a^2, phi = 2 Xmax K(x) x::

        [L* + R + lam w   eta] [i']   [(L* - R + gamma) i + a (u + u') + z - beta w]
        [-eta             D  ] [w'] = [(2 M Xmax^2/a^2 - D) w + beta i - phi        ]
        xi' = (xi + w) + w';  z' = (c2 - beta2) z + gamma (1 + c2 - beta2) i

    and solved for the change of velocity, dw = w' - w (the same equations; only the rounding
    differs). With G = Xmax^2 (Rms/a + Kt) = D - M Xmax^2/a^2 the system reads::

        [A11  eta] [i' ]   [b1 - eta w           ]
        [-eta D  ] [dw ] = [beta i - phi - 2 G w ]

    whose right-hand side holds only the forces, never the mass term 2 M Xmax^2/a^2 w that nearly
    cancels against D w (M is 200-4000 times a Rms + a^2 Kt at 96 kHz): in float32 the rounding
    of that cancellation alone shifts the resonance by ~1e-5 (measured: x off by 1.4e-5 of its
    peak), in this form by float32 rounding of the force terms. Solved by elimination:
    p = eta / D, i' = (b1 - eta w - p e) / (A11 + eta p), dw = (e + eta i') / D.
    """
    C4, C3, C2, C1, C0, l0r, r2g = coeffs
    xs, xc, bt, lr, lam, eta, dd, ph, e, p, g = t
    b = batch
    lo, hi, l0l1, l0l2, lam1, g0, g1, g2 = b.lo, b.hi, b.l0l1, b.l0l2, b.lam1, b.g0, b.g1, b.g2
    f0, f1, f2, c2b, gz, dm = b.f0, b.f1, b.f2, b.c2b, b.gz, b.dm
    # ufuncs with positional outputs: the same operations, about 0.4 us less call overhead each
    add, sub, mul, div, vmax, vmin = np.add, np.subtract, np.multiply, np.divide, np.maximum, np.minimum
    w, z, w_new = state[:3]
    scratch = state[3:5], state[5:7]
    last = oversample - 1
    for k in range(k_start, k_stop):
        i, xi = out_i[k], out_x[k]
        for m in range(oversample):
            if m == last:
                i_new, xi_new = out_i[k + 1], out_x[k + 1]
            else:
                i_new, xi_new = scratch[m % 2]
            add(xi, w, xs)                                          # predicted mid-step xi, clipped
            vmax(xs, lo, out=xc)
            vmin(xc, hi, out=xc)
            # beta = Xmax Bl*, Lr = L* + R, lam = Xmax L'*, eta = beta + lam i
            mul(xc, C4, bt); add(bt, C3, bt); mul(bt, xc, bt); add(bt, C2, bt); mul(bt, xc, bt)  # noqa: E702
            add(bt, C1, bt); mul(bt, xc, bt); add(bt, C0, bt)  # noqa: E702
            mul(xc, l0l2, lr); add(lr, l0l1, lr); mul(lr, xc, lr); add(lr, l0r, lr)  # noqa: E702
            mul(xc, lam1, lam); add(lam, l0l1, lam)  # noqa: E702
            mul(lam, i, eta); add(eta, bt, eta)  # noqa: E702
            # G, D = G + M Xmax^2/a^2 and phi at the step start
            mul(xi, g2, g); add(g, g1, g); mul(g, xi, g); add(g, g0, g); add(g, dm, dd)  # noqa: E702
            mul(xi, f2, ph); add(ph, f1, ph); mul(ph, xi, ph); add(ph, f0, ph); mul(ph, xi, ph)  # noqa: E702
            # A11 = Lr + lam w (in lam); b1 - eta w = (Lr - 2R + gamma) i + a (u + u') + z - (beta + eta) w (in lr)
            mul(lam, w, lam); add(lam, lr, lam)  # noqa: E702
            sub(lr, r2g, lr); mul(lr, i, lr); add(lr, auu[k * oversample + m], lr); add(lr, z, lr)  # noqa: E702
            add(bt, eta, p); mul(p, w, p); sub(lr, p, lr)  # noqa: E702
            # z' = c2b z + gamma (1 + c2b) i   (i is the step start's)
            mul(z, c2b, z); mul(i, gz, p); add(z, p, z)  # noqa: E702
            # e = beta i - phi - 2 G w
            mul(g, w, g); add(g, g, g); mul(bt, i, bt); sub(bt, ph, e); sub(e, g, e)  # noqa: E702
            # elimination
            div(eta, dd, p)
            mul(eta, p, ph); add(lam, ph, lam)  # noqa: E702
            mul(p, e, ph); sub(lr, ph, lr); div(lr, lam, i_new)  # noqa: E702
            mul(eta, i_new, ph); add(e, ph, e); div(e, dd, e); add(w, e, w_new)  # noqa: E702
            add(xs, w_new, xi_new)                                  # xi' = (xi + w) + w'
            i, xi = i_new, xi_new
            w, w_new = w_new, w
    state[0], state[2] = w, w_new


def simulate(speakers: list[SpeakerModel], u: np.ndarray, fs: float = 48_000.0, *, ambient_c: float | list = 25.0,
             start_c: list[tuple[float, float]] | None = None, oversample: int = 2,
             segment_s: float | str | None = "auto",
             warmup_s: float = 0.025, thermal: bool = True, max_rows: int | None = None,
             show_progress: bool = False, dtype: type = np.float64) -> SimResult:
    """Simulate ``u`` (volts, shape (batch, samples)) through each row's speaker.

    Rows are cut into segments simulated side by side (see the module docstring); ``"auto"`` picks
    0.05-0.2 s so that about 4000 rows (8000 in float32) run at once, ``None`` integrates each row
    in one piece; at most ``max_rows`` (default 4096, 8192 in float32) run at once.
    ``thermal=False`` keeps the coil at ambient. ``start_c`` gives (coil, magnet) start temperatures.
    ``dtype=np.float32`` runs the integrator and the interpolation in float32 (the thermal network,
    Re and Bl stay float64; a float32 ``u`` is used as given): about 1.5x faster, outputs within
    ~2e-6 of their peak of the float64 run (``docs/speaker-simulator.md``).
    """
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"simulate: dtype must be float32 or float64, got {dtype}")
    wide = np.dtype(dtype) == np.float32          # float32 rows are cheaper: wider batches pay
    u = np.atleast_2d(np.asarray(u))
    if not (wide and u.dtype == np.float32):      # float32 input is kept for the float32 integrator
        u = u.astype(np.float64, copy=False)
    nb, n = u.shape
    if len(speakers) != nb:
        raise ValueError(f"{len(speakers)} speakers for {nb} signals")
    amb = np.broadcast_to(np.asarray(ambient_c, dtype=float), (nb,))
    dt_th = THERMAL_STEP / fs
    if thermal:
        ms = np.stack([_step_mean_squares(u[r], _linear_current_filter(sp, fs))
                       for r, sp in enumerate(speakers)])
        coil, mag = thermal_trajectory(speakers, ms, amb, dt_th, start_c, current_scales_with_re=True)
    else:
        coil = mag = np.repeat(amb[:, None], -(-n // THERMAL_STEP), axis=1)
    re0 = np.array([sp.re for sp in speakers])[:, None]
    bl0 = np.array([sp.bl for sp in speakers])[:, None]
    re_steps = re0 * (1 + ALPHA_CU * (coil - T_REF_C))       # Re, Bl held per 10 ms step
    bl_steps = bl0 * (1 + ALPHA_BL_MAGNET * (mag - T_REF_C))
    n_th = coil.shape[1]
    max_rows = max_rows or (8192 if wide else 4096)
    if segment_s == "auto":   # 0.2 s segments, shorter for small jobs so the batch stays wide
        segment_s = min(0.2, max(0.05, nb * n / fs / (8000 if wide else 4000)))
    # segments and warm-ups are whole thermal steps, so Re and Bl change for all rows at once
    seg = n if segment_s is None else THERMAL_STEP * max(1, int(round(float(segment_s) * fs / THERMAL_STEP)))
    warm = 0 if segment_s is None else THERMAL_STEP * int(np.ceil(warmup_s * fs / THERMAL_STEP))
    n_seg = -(-n // seg)
    length = warm + seg

    # Rows are (signal r, segment s); row (r, s) covers samples [s*seg - warm, (s+1)*seg) of signal r
    # (u is zero before the signal starts and after it ends; Re and Bl hold their edge values).
    # Segment starts and warm-ups are multiples of THERMAL_STEP, so row sample j of any row lies in
    # thermal step (s*seg - warm)/THERMAL_STEP + j // THERMAL_STEP.
    # Each input is laid out padded, one row per signal, and viewed as (signal, segment, time)
    # with overlapping strides, so a block of all rows is gathered with one row-wise copy.
    k_ = oversample
    rows_all = nb * n_seg
    sig_all = np.repeat(np.arange(nb), n_seg)
    seg_all = np.tile(np.arange(n_seg), nb)
    h = 1.0 / (fs * oversample)

    i_rows = _output_array((rows_all, seg))
    x_rows = _output_array((rows_all, seg))
    row_speaker = [speakers[r] for r in sig_all]
    n_chunks = -(-rows_all // max_rows)
    per_chunk = -(-rows_all // n_chunks)         # balanced: every chunk costs the same Python steps
    for c in range(n_chunks):
        sl = slice(c * per_chunk, min((c + 1) * per_chunk, rows_all))
        sig, segi = sig_all[sl], seg_all[sl]

        u_block = np.empty((_BLOCK * k_, len(sig)), dtype)    # reused: no per-block allocation
        batch = _Batch(row_speaker[sl], h, dtype)
        drive = _Drive(u, k_, h / 2, sig, segi, seg, warm, length, dtype)

        def gather(k0: int, k1: int, sig=sig, segi=segi, u_block=u_block, drive=drive):
            # a (u + u') of the integration steps of samples k0 .. k1 - 1, time-major; Re and
            # Bl per thermal step touched by the block, with the step row of each sample
            first = (segi * seg - warm) // THERMAL_STEP        # thermal step of each row's sample 0
            q0, q1 = k0 // THERMAL_STEP, (k1 - 1) // THERMAL_STEP
            steps = np.clip(first[None, :] + np.arange(q0, q1 + 1)[:, None], 0, n_th - 1)
            ub = u_block[:(k1 - k0) * k_]
            drive.block(k0, k1, ub)
            return (ub, re_steps[sig[None, :], steps], bl_steps[sig[None, :], steps],
                    np.arange(k0, k1) // THERMAL_STEP - q0)

        def scatter(k0: int, ib: np.ndarray, xb: np.ndarray, sl=sl, xmax=batch.xmax) -> None:
            lo = max(k0, warm)
            hi = k0 + len(ib)
            if hi > lo:
                xb *= xmax                                    # x = Xmax xi (the block buffer is rewritten next)
                i_rows[sl, lo - warm:hi - warm] = ib[lo - k0:].T
                x_rows[sl, lo - warm:hi - warm] = xb[lo - k0:].T

        desc = f"simulate {c + 1}/{n_chunks}" if show_progress else None
        _integrate(batch, length, gather, scatter, oversample, desc)
    i_out = i_rows.reshape(nb, n_seg * seg)[:, :n]
    x_out = x_rows.reshape(nb, n_seg * seg)[:, :n]
    # temperatures recomputed from the simulated current, and their disagreement with the ones used
    mismatch = 0.0
    if thermal:
        coil_sim, mag_sim = thermal_trajectory(speakers, np.stack([_step_mean_squares(r) for r in i_out]), amb,
                                               dt_th, start_c)
        mismatch = float(np.max(np.abs(coil_sim - coil)))
        coil, mag = coil_sim, mag_sim
    return SimResult(u=u, i=i_out, x=x_out, coil_c=coil, magnet_c=mag, thermal_mismatch_k=mismatch)


@dataclass(frozen=True)
class SenseConfig:
    """I/V sense front end: 16-bit converters over +-v_range / +-i_range, white noise (rms)."""

    bits: int = 16
    v_range: float = 10.0
    i_range: float = 1.5
    v_noise: float = 0.7e-3   # about -80 dB re full-scale sine [assumption]
    i_noise: float = 0.1e-3


_SENSE_CHUNK = 65536   # samples per pass of the sense model (its buffers stay in the L2 cache)


def _normal32(bitgen: np.random.BitGenerator, out: np.ndarray) -> np.ndarray:
    """Standard normal float32 draws into the 1-D ``out`` by the Box-Muller transform (G. Box and
    M. Muller, 1958): from ``ceil(m / 2)`` raw 64-bit outputs of ``bitgen``, split into two halves
    of 32-bit words whose top 23 bits give uniforms f1, f2 in [1, 2) (exponent bits set, so no
    conversion), r = sqrt(-2 ln(2 - f1)) and t = 2 pi f2 give the pair r cos t (first half of
    ``out``) and r sin t (second half). Tails end at 5.65 sigma (probability 1.6e-8). About half
    the cost of numpy's float64 ``standard_normal`` here; a different stream of values with the
    same distribution."""
    m = len(out)
    h = (m + 1) // 2
    w = bitgen.random_raw(h).view(np.uint32)       # 2h words
    np.right_shift(w, 9, out=w)
    np.bitwise_or(w, np.uint32(0x3F800000), out=w)   # float32 bit patterns of 1 + k 2^-23
    f = w.view(np.float32)
    r, t = f[:h], f[h:]
    np.subtract(np.float32(2.0), r, out=r)             # (0, 1]
    np.log(r, out=r)
    np.multiply(r, np.float32(-2.0), out=r)
    np.sqrt(r, out=r)
    np.multiply(t, np.float32(2 * np.pi), out=t)
    lo, hi = out[:h], out[h:]
    np.cos(t, out=lo)
    np.multiply(lo, r, out=lo)
    np.sin(t[:m - h], out=hi)
    np.multiply(hi, r[:m - h], out=hi)
    return out


def _sense_channel(x: np.ndarray, noise: float, full_scale: float, bits: int, rng: np.random.Generator,
                   out: np.ndarray | None, scratch: np.ndarray | None) -> np.ndarray:
    """round((x + noise * N(0, 1)) / lsb), clipped to the converter's codes, times lsb, in float32
    (the sensed values are exact there for the default ranges: |code| <= 2^15 times 5 2^-14 V or
    3 2^-16 A), into ``out``
    (float32, x's shape; allocated when None).

    Runs over the flattened signal in chunks of ``_SENSE_CHUNK`` samples in one float32 buffer
    (``scratch`` when given), noise from :func:`_normal32` chunk by chunk (the last chunk may be
    shorter): the values depend on the signal's length only through where the chunks end."""
    lsb = np.float32(2 * full_scale / (1 << bits))     # exact for the default ranges (5 2^-14 V, 3 2^-16 A)
    top = np.float32((1 << (bits - 1)) - 1)
    bottom = np.float32(-(1 << (bits - 1)))
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    elif out.shape != x.shape or out.dtype != np.float32 or (out.ndim > 1 and not out.flags.c_contiguous):
        raise ValueError(f"sense: out must be float32 of shape {x.shape} (contiguous unless 1-D)")
    flat_x = x.reshape(-1)
    flat_out = out.reshape(-1)
    n = len(flat_x)
    work = scratch.reshape(-1) if scratch is not None else np.empty(min(n, _SENSE_CHUNK), dtype=np.float32)
    if len(work) < min(n, _SENSE_CHUNK) or work.dtype != np.float32:
        raise ValueError(f"sense: scratch needs at least {min(n, _SENSE_CHUNK)} float32 samples")
    bitgen = rng.bit_generator
    nz = np.float32(noise)
    for c0 in range(0, n, _SENSE_CHUNK):
        c1 = min(n, c0 + _SENSE_CHUNK)
        buf = work[:c1 - c0]
        _normal32(bitgen, buf)
        buf *= nz
        np.add(buf, flat_x[c0:c1], out=buf, dtype=np.float32)
        buf /= lsb
        np.rint(buf, out=buf)
        np.clip(buf, bottom, top, out=buf)
        np.multiply(buf, lsb, out=flat_out[c0:c1])
    return out


def sense(u: np.ndarray, i: np.ndarray, rng: np.random.Generator, config: SenseConfig = SenseConfig(),
          out_v: np.ndarray | None = None, out_i: np.ndarray | None = None,
          scratch: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sensed voltage and current: noise added, then 16-bit quantisation with clipping.

    Returns float32 arrays; ``out_v`` / ``out_i`` (optional, float32 of the signals' shape, e.g. columns
    of a payload) receive them. ``scratch`` (float32, at least min(samples, 65536)) is the working
    buffer. The noise is drawn from ``rng``'s bit generator (:func:`_normal32`), voltage first."""
    vs = _sense_channel(u, config.v_noise, config.v_range, config.bits, rng, out_v, scratch)
    is_ = _sense_channel(i, config.i_noise, config.i_range, config.bits, rng, out_i, scratch)
    return vs, is_


def speaker_from_params(params, name: str = "profile") -> SpeakerModel:
    """A simulated speaker with a profile's datasheet values (missing ones and the nonlinear
    shapes and thermal constants taken from the reference speaker)."""
    from edgesense.sim.speaker_params import named_speaker

    ref = named_speaker("ref")
    pick = lambda key: getattr(params, key) if getattr(params, key) is not None else getattr(ref, key)  # noqa: E731
    le = pick("le")
    return ref.replace(name=name, re=pick("re"), le=le, l2=params.l2 if params.l2 is not None else 0.05 * le,
                       r2=pick("r2"), bl=params.bl, mms=pick("mms"), kms=pick("kms"), rms=pick("rms"),
                       xmax=pick("xmax"), datasheet=params)


def live_payloads(profile, seed: int = 0, **options):
    """Payload function for live simulated speaker sources (``sim://speaker-ref?scenario=hot&loop=4``).

    ``loop`` seconds (default 2) of program material are simulated up front for the profile's
    speaker in ``scenario`` (nominal, hot, leak) and then replayed cyclically (the signals jump
    where the loop wraps). Frames follow the profile's block size and channels (v, i and x).
    """
    from edgesense.errors import ProfileError
    from edgesense.profiles import SpeakerIVProfile
    from edgesense.sim.speaker_params import SCENARIOS, max_drive_volts
    from edgesense.sim.speaker_program import program

    if not isinstance(profile, SpeakerIVProfile):
        raise ProfileError(f"the speaker simulator needs a speaker_iv profile, got {profile.kind!r}")
    unknown = sorted(set(options) - {"scenario", "loop"})
    if unknown:
        raise ProfileError(f"unknown speaker simulator option(s) {unknown}; known: ['loop', 'scenario']")
    scenario = SCENARIOS.get(str(options.get("scenario", "nominal")))
    if scenario is None:
        raise ProfileError(f"unknown scenario {options.get('scenario')!r}; known: {', '.join(SCENARIOS)}")
    try:
        loop_s = float(options.get("loop", 2.0))
    except ValueError:
        raise ProfileError("speaker simulator option loop= must be a number of seconds") from None
    fs = profile.sample_rate_hz
    block = profile.block_size
    n_frames = max(1, int(round(loop_s * fs / block)))
    sp = speaker_from_params(profile.speaker, profile.name)
    rng = np.random.default_rng([seed, 77])
    u, _ = program(n_frames * block / fs, rng, fs, max_volts=max_drive_volts(sp.re), loud=scenario.loud)
    res = simulate([scenario.apply(sp)], u[None], fs, ambient_c=scenario.ambient_c)
    vs, is_ = sense(res.u[0], res.i[0], rng)
    columns = {"v": vs, "i": is_, "x": res.x[0] * 1e3}
    frames = np.stack([columns[c] for c in profile.channels], axis=1).astype(np.float32)
    frames = frames[:n_frames * block].reshape(n_frames, block, len(profile.channels))

    def payload(k: int) -> np.ndarray:
        return frames[k % n_frames]

    return payload
