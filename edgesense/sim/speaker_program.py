"""Synthetic program material for the speaker simulator: the amplifier's output voltage.

A program is a sequence of segments (0.5-4 s) of music-like multitones (notes with harmonics,
ADSR envelopes, a bass line, kick and hat transients, random EQ), speech-like signals (a glottal
pulse train through moving formant resonators with syllabic envelopes and fricatives), noise
bursts (white or pink), logarithmic sweeps, transients (decaying tone bursts and clicks) and
silence. Each segment gets its own peak level between 2 V and the speaker's maximum drive
(8 V, less for low-impedance coils so the current stays inside the sense range). ``loud=True``
gives sustained, compressed material near full level without silence (the hot-coil scenario).
Everything is generated offline from a seeded generator; a 20 Hz high-pass removes DC, as an
AC-coupled amplifier would.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import fft, signal

__all__ = ["SEGMENT_KINDS", "program"]

SEGMENT_KINDS = ("music", "speech", "noise", "sweep", "transients", "silence")
_WEIGHTS = {"music": 0.34, "speech": 0.2, "noise": 0.1, "sweep": 0.1, "transients": 0.1, "silence": 0.16}
_WEIGHTS_LOUD = {"music": 0.55, "speech": 0.15, "noise": 0.15, "sweep": 0.1, "transients": 0.05, "silence": 0.0}
# choices as arrays built once (rng.choice converts a list on every call; the draws are the same)
_NOTE_BEATS = np.array([0.5, 1, 1, 2])
_BASS_BEATS = np.array([0.5, 1])
_ONE_TWO = np.array([1, 2])
_EQ_KINDS = np.array(["peak", "lowshelf", "highshelf"])
_SIGNS = np.array([-1.0, 1.0])


def _pick(rng: np.random.Generator, a: np.ndarray):
    """``rng.choice(a)`` for a 1-D array without probabilities: the same draw (one bounded int64
    integer) and the same element, without ``choice``'s argument handling (15 us -> 3 us a call)."""
    return a[rng.integers(0, len(a), dtype=np.int64)]


def _biquad(kind: str, f0: float, fs: float, q: float = 0.7, gain_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Second-order filters from the well-known audio-EQ cookbook formulas (R. Bristow-Johnson)."""
    w0 = 2 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2 * q)
    amp = 10 ** (gain_db / 40)
    if kind == "peak":
        b = [1 + alpha * amp, -2 * cw, 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * cw, 1 - alpha / amp]
    elif kind in ("lowshelf", "highshelf"):
        sq = 2 * math.sqrt(amp) * alpha
        sgn = 1 if kind == "lowshelf" else -1
        b = [amp * ((amp + 1) - sgn * (amp - 1) * cw + sq), sgn * 2 * amp * ((amp - 1) - sgn * (amp + 1) * cw),
             amp * ((amp + 1) - sgn * (amp - 1) * cw - sq)]
        a = [(amp + 1) + sgn * (amp - 1) * cw + sq, -sgn * 2 * ((amp - 1) + sgn * (amp + 1) * cw),
             (amp + 1) + sgn * (amp - 1) * cw - sq]
    elif kind == "bandpass":
        b = [alpha, 0.0, -alpha]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    else:
        raise ValueError(kind)
    return np.array(b) / a[0], np.array(a) / a[0]


def _ramp(start: float, stop: float, num: int) -> np.ndarray:
    """``np.linspace(start, stop, num)`` for float scalars, the same arithmetic without its
    per-call overhead (a few thousand short ramps per minute of program)."""
    y = np.arange(num, dtype=np.float64)
    if num > 1:
        div = num - 1
        step = (stop - start) / div
        if step == 0:
            y /= div
            y *= stop - start
        else:
            y *= step
        y += start
        y[-1] = stop
    else:
        y += start
    return y


def _biquads(sections: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """x through cascaded biquads (b, a) in one ``sosfilt`` pass (the same recursions as chained
    ``lfilter`` calls, equal to float64 rounding, about 3x faster)."""
    return signal.sosfilt(np.array([np.concatenate([b, a]) for b, a in sections]), x)


def _adsr(n: int, fs: float, rng: np.random.Generator, dtype: type = np.float64) -> np.ndarray:
    att = max(1, int(fs * rng.uniform(0.002, 0.05)))
    dec = max(1, int(fs * rng.uniform(0.02, 0.3)))
    sus = rng.uniform(0.3, 0.9)
    rel = max(1, int(fs * rng.uniform(0.02, 0.3)))
    env = np.full(n, sus, dtype=dtype)
    env[:min(att, n)] = _ramp(0, 1, att)[:n]
    d_end = min(n, att + dec)
    if d_end > att:
        env[att:d_end] = _ramp(1, sus, dec)[:d_end - att]
    r0 = max(0, n - rel)
    env[r0:] *= _ramp(1, 0, n - r0)
    return env


# OpenBLAS runs a matrix product m x k x n on one thread when m n k <= 4 * 65536; larger ones start
# threads whose spinning cost 5x the CPU time of the product itself on this 2-core host
_GEMM_SINGLE_THREAD = 4 * 65536


def _block_len(n: int) -> int:
    """Block length of :func:`_partials` for ``n`` samples: a power of two near sqrt(n), 32-512."""
    return min(512, max(32, 1 << round(math.log2(max(n, 1)) / 2)))


def _partials(n: int, omegas: list[float], phases: list[float], gains: list[float],
              dtype: type = np.float64) -> np.ndarray:
    """``sum_k gains[k] * sin(omegas[k] * j + phases[k])`` for samples j = 0 .. n-1 (omegas in rad/sample).

    Computed by exact angle addition in blocks of B samples, j = m B + r:
    sin(w m B + p + w r) = sin(w m B + p) cos(w r) + cos(w m B + p) sin(w r), with both factors
    evaluated directly (no recurrence, so no error accumulates), and the sum over partials done as
    one (blocks x 2K) @ (2K x B) matrix product. This needs about 2 (n / B + B) sines per partial
    instead of n; the result equals the direct sum to float64 rounding (the direct form's own
    argument rounding, up to ~1e-10 rad for 4 s at 12 kHz, dominates the difference).
    ``dtype=np.float32``: the angles and their sines in float64, the product (and result) in float32.
    """
    b = _block_len(n)
    m = -(-n // b)
    k = len(omegas)
    w = np.asarray(omegas, dtype=np.float64)
    a = np.multiply.outer(np.arange(m, dtype=np.float64) * b, w)
    a += np.asarray(phases, dtype=np.float64)
    g = np.asarray(gains, dtype=dtype)
    wr = np.multiply.outer(w, np.arange(b, dtype=np.float64))
    if dtype != np.float64:              # angles reduced to [-pi, pi] in float64, sines in float32
        a, wr = _reduced(a, dtype), _reduced(wr, dtype)
    left = np.concatenate([np.sin(a), np.cos(a)], axis=1)      # (blocks, 2K): anchors times gains
    left[:, :k] *= g
    left[:, k:] *= g
    right = np.concatenate([np.cos(wr), np.sin(wr)], axis=0)   # (2K, B): offsets within a block
    out = np.empty((m, b), dtype=dtype)
    rows = max(1, _GEMM_SINGLE_THREAD // (2 * k * b))
    for c in range(0, m, rows):                  # small products: BLAS stays on one thread
        np.matmul(left[c:c + rows], right, out=out[c:c + rows])
    return out.reshape(-1)[:n]


def _reduced(angle: np.ndarray, dtype: type) -> np.ndarray:
    """``angle`` (rad, float64) minus the nearest multiple of 2 pi, as ``dtype``."""
    turns = np.rint(angle * (1 / (2 * np.pi)))
    turns *= -2 * np.pi
    turns += angle
    return turns.astype(dtype)


@functools.lru_cache(maxsize=4)
def _kick_tables(fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kick's phase in cycles per Hz of its start frequency, cumsum(1 + 2 exp(-t / 20 ms)) / fs (a
    falling pitch), its envelope exp(-t / 80 ms) over the 0.25 s kick (float32), and exp(-t / 10 ms)
    over the 50 ms hat: the same values for every kick, so computed once per sample rate
    (read-only; shorter kicks at a segment's end use a prefix)."""
    tt = np.arange(int(0.25 * fs)) / fs
    tables = (np.cumsum(1 + 2 * np.exp(-tt / 0.02)) / fs, np.exp(-tt / 0.08).astype(np.float32),
              np.exp(-np.arange(int(0.05 * fs)) / fs / 0.01))
    for t in tables:
        t.setflags(write=False)
    return tables


def _music(n: int, fs: float, rng: np.random.Generator, loud: bool) -> np.ndarray:
    """Notes, bass, kicks and hats summed in float32 (the 16-bit sensing resolves 1.5e-5 of full
    scale; float32 rounding is 6e-8), the EQ cascade in float64, the soft clip in float32."""
    f32 = np.float32
    out = np.zeros(n, dtype=f32)
    beat = 60.0 / rng.uniform(80, 160)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    two_pi_fs = 2 * np.pi / fs
    pos = 0.0
    while pos < n / fs:                      # chords / melody notes
        dur = beat * _pick(rng, _NOTE_BEATS)
        lo, hi = int(pos * fs), min(n, int((pos + dur) * fs))
        for _ in range(rng.integers(1, 4)):
            f = root * 2 ** (_pick(rng, scale) / 12 + rng.integers(0, 3))
            roll = rng.uniform(0.5, 1.5)
            ks = [k for k in range(1, 8) if f * k < 12000]
            phases = [rng.uniform(0, 2 * np.pi) for _ in ks]   # harmonics k: sin(2 pi f k t + phase) / k^roll
            tone = _partials(hi - lo, [two_pi_fs * f * k for k in ks], phases, [1 / k ** roll for k in ks], f32)
            tone *= rng.uniform(0.3, 1.0)
            tone *= _adsr(hi - lo, fs, rng, f32)
            out[lo:hi] += tone
        pos += dur
    pos = 0.0
    while pos < n / fs:                      # bass line
        dur = beat * _pick(rng, _BASS_BEATS)
        lo, hi = int(pos * fs), min(n, int((pos + dur) * fs))
        f = root / 2 * 2 ** (_pick(rng, scale[:5]) / 12) / _pick(rng, _ONE_TWO)
        tone = _partials(hi - lo, [two_pi_fs * f, 2 * two_pi_fs * f], [0.0, 0.0], [1.0, 0.3], f32)
        tone *= rng.uniform(0.5, 1.2)
        tone *= _adsr(hi - lo, fs, rng, f32)
        out[lo:hi] += tone
        pos += dur
    kick_phase, kick_env, hat_env = _kick_tables(fs)
    kick = np.empty(len(kick_phase), dtype=f32)
    for k in range(int(n / fs / beat) + 1):  # kick and hat
        lo = int(k * beat * fs)
        if lo >= n:
            break
        m = min(n - lo, int(0.25 * fs))
        cyc = rng.uniform(45, 90) * kick_phase[:m]      # phase in cycles (float64), reduced to
        cyc -= np.rint(cyc)                              # [-1/2, 1/2] for the float32 sine
        km = kick[:m]
        np.multiply(cyc, 2 * np.pi, out=km, dtype=f32)
        np.sin(km, out=km)
        km *= rng.uniform(0.6, 1.5)
        km *= kick_env[:m]
        out[lo:lo + m] += km
        hlo = lo + int(beat * fs / 2)
        if hlo < n:
            mh = min(n - hlo, int(0.05 * fs))
            hat = 0.3 * rng.standard_normal(mh)
            hat *= hat_env[:mh]
            out[hlo:hlo + mh] += hat
    sections = [_biquad("highshelf", 3000, fs, gain_db=-6)]   # soften the hat noise
    for _ in range(rng.integers(1, 4)):                  # random EQ
        kind = _pick(rng, _EQ_KINDS)
        f0 = float(np.exp(rng.uniform(np.log(60), np.log(8000))))
        sections.append(_biquad(kind, f0, fs, q=rng.uniform(0.5, 2.0), gain_db=rng.uniform(-9, 9)))
    out = _biquads(sections, out)                        # the cascade in one pass
    if loud:                                             # dynamic-range compression (soft clip)
        drive = rng.uniform(2.0, 5.0)
        peak = max(np.max(out), -np.min(out))                    # max |out|
        y = np.multiply(out, drive / (peak + 1e-12), dtype=f32)
        _tanh(y)
        return y
    return out


def _tanh(y: np.ndarray) -> None:
    """tanh in place as sign(y) (1 - e) / (1 + e), e = exp(-2 |y|): within 2 ulp of ``np.tanh``
    in y's precision (absolute; 1 - e is exact for e >= 1/2) at less than half its cost here."""
    e = np.abs(y)
    e *= -2.0
    np.exp(e, out=e)
    num = 1.0 - e
    e += 1.0
    num /= e
    np.copysign(num, y, out=y)


def _speech(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(90, 250)
    vib, drift = rng.uniform(3, 6), rng.uniform(0.2, 0.6)       # f0 = base (1 + 0.05 sin(2 pi vib t) + 0.1 sin(...))
    f0 = _partials(n, [2 * np.pi * vib / fs, 2 * np.pi * drift / fs], [0.0, 0.0], [0.05, 0.1])
    f0 += 1
    f0 *= base
    f0 /= fs
    phase = np.cumsum(f0)
    pulses = np.diff(np.floor(phase), prepend=0.0)       # one impulse per glottal period
    src = signal.lfilter([1.0], [1.0, -0.95], pulses)    # glottal roll-off
    out = np.zeros(n)
    pos = 0
    while pos < n:                                       # syllables with their own formants
        m = min(n - pos, int(fs * rng.uniform(0.08, 0.35)))
        seg = src[pos:pos + m]                           # read only (replaced below)
        if rng.random() < 0.2:                           # fricative
            seg = rng.standard_normal(m) * 0.05
            b, a = _biquad("bandpass", rng.uniform(3000, 7000), fs, q=1.0)
            seg = signal.lfilter(b, a, seg)
        else:                                            # three formants in parallel, as one filter
            num, den = np.zeros(1), np.ones(1)
            for lo, hi in ((300, 850), (850, 2300), (2300, 3200)):
                b, a = _biquad("bandpass", rng.uniform(lo, hi), fs, q=rng.uniform(4, 10))
                g = rng.uniform(0.3, 1.0)                # sum g_j b_j / a_j = num / den
                num = np.polyadd(np.convolve(num, a), g * np.convolve(b, den))
                den = np.convolve(den, a)
            seg = signal.lfilter(num, den, seg)
        win = _partials(m, [np.pi / m], [0.0], [1.0])              # sin(pi k / m)^2
        win *= win
        seg *= win
        seg *= 0.0 if rng.random() < 0.15 else 1.0
        out[pos:pos + m] = seg
        pos += m
    return out


def _noise(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    pos = int(fs * rng.uniform(0, 0.1))
    while pos < n:
        m = min(n - pos, int(fs * rng.uniform(0.05, 0.5)))
        burst = rng.standard_normal(m)
        if rng.random() < 0.5:                           # pink: 1/sqrt(f) amplitude shaping
            spec = fft.rfft(burst)
            spec[1:] /= np.sqrt(np.arange(1, len(spec)))
            spec[0] = 0
            burst = fft.irfft(spec, m)
        ramp = min(m // 2, int(0.005 * fs))
        if ramp:                                         # 5 ms fades (the envelope is 1 between them)
            burst[:ramp] *= _ramp(0, 1, ramp)
            burst[m - ramp:] *= _ramp(1, 0, ramp)
        np.multiply(burst, rng.uniform(0.3, 1.0), out=out[pos:pos + m])
        pos += m + int(fs * rng.uniform(0.02, 0.4))
    return out


def _sweep(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    f_lo, f_hi = rng.uniform(40, 200), rng.uniform(2000, 12000)
    if rng.random() < 0.3:
        f_lo, f_hi = f_hi, f_lo
    t = np.arange(n) / fs
    dur = n / fs
    k = math.log(f_hi / f_lo)
    cyc = f_lo * dur / k * (np.exp(t / dur * k) - 1)    # phase in cycles (float64), reduced to
    cyc -= np.rint(cyc)                                  # [-1/2, 1/2] for the float32 sine
    out = np.multiply(cyc, 2 * np.pi, dtype=np.float32)
    return np.sin(out, out=out)


def _transients(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(int(rng.uniform(2, 12) * n / fs)):
        lo = int(rng.integers(0, n))
        if rng.random() < 0.7:                           # decaying tone burst
            m = min(n - lo, int(fs * rng.uniform(0.01, 0.15)))
            tt = np.arange(m) / fs
            out[lo:lo + m] += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(80, 3000) * tt) \
                * np.exp(-tt / rng.uniform(0.002, 0.03))
        else:                                            # click (a few samples)
            m = min(n - lo, int(rng.integers(1, 6)))
            out[lo:lo + m] += _pick(rng, _SIGNS) * rng.uniform(0.5, 1.0)
    return out


def program(seconds: float, rng: np.random.Generator, fs: float = 48_000.0, max_volts: float = 8.0,
            min_volts: float = 2.0, loud: bool = False,
            out: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """A program of ``seconds`` (volts) and its segments as (kind, start sample, end sample).

    ``out`` (optional, float64, one row of a batch) receives the program, which is then returned
    (written throughout: it need not be zeroed)."""
    n = int(round(seconds * fs))
    if out is None:
        out = np.empty(n)                    # every sample is written below
    elif out.shape != (n,) or out.dtype != np.float64:
        raise ValueError(f"program: out must be float64 of shape ({n},), got {out.dtype}{list(out.shape)}")
    segments: list[tuple[str, int, int]] = []
    weights = _WEIGHTS_LOUD if loud else _WEIGHTS
    kinds = np.array(list(weights))
    p = np.array([weights[k] for k in kinds])
    p /= p.sum()
    lo_v = min(min_volts, max_volts)
    pos = 0
    while pos < n:
        kind = str(rng.choice(kinds, p=p))
        m = min(n - pos, int(fs * rng.uniform(0.5, 4.0)))
        if kind == "music":
            seg = _music(m, fs, rng, loud)
        elif kind == "speech":
            seg = _speech(m, fs, rng)
        elif kind == "noise":
            seg = _noise(m, fs, rng)
        elif kind == "sweep":
            seg = _sweep(m, fs, rng)
        elif kind == "transients":
            seg = _transients(m, fs, rng)
        else:
            seg = np.zeros(m)
        peak = max(np.max(seg), -np.min(seg)) if m else 0.0
        if peak > 0:
            level = rng.uniform(max(lo_v, 0.75 * max_volts), max_volts) if loud else rng.uniform(lo_v, max_volts)
            dst = out[pos:pos + m]
            np.multiply(seg, level / peak, out=dst)
            fade = min(m // 4, int(0.005 * fs))
            if fade and kind != "transients":
                dst[:fade] *= _ramp(0, 1, fade)
                dst[m - fade:] *= _ramp(1, 0, fade)
        else:
            out[pos:pos + m] = seg
        segments.append((kind, pos, pos + m))
        pos += m
    sos = _highpass(fs)
    b, a, zi = sos[0, :3], sos[0, 3:], np.zeros(2)
    for c0 in range(0, n, _HIGHPASS_CHUNK):  # in place, chunk by chunk: no signal-sized temporaries
        y, zi = signal.lfilter(b, a, out[c0:c0 + _HIGHPASS_CHUNK], zi=zi)   # 15 % cheaper than sosfilt
        np.clip(y, -max_volts, max_volts, out=out[c0:c0 + _HIGHPASS_CHUNK])
    return out, segments


# The 20 Hz high-pass runs over chunks of this many samples with its state carried (the same
# recursion as one call, bitwise): one call would copy the whole program twice into fresh memory,
# whose first touch costs more than the filter on a host short of free pages.
_HIGHPASS_CHUNK = 131072


@functools.lru_cache(maxsize=4)
def _highpass(fs: float) -> np.ndarray:
    """The program's 20 Hz second-order Butterworth high-pass (AC coupling) as one biquad section."""
    return signal.butter(2, 20.0, "highpass", fs=fs, output="sos")
