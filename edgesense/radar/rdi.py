"""Raw radar frames (CIR or FMCW chirps) to range-Doppler images (RDI), one frame or a whole recording.

Per frame, for every receive channel (vectorised over frames, channels, pulses and range bins)::

    x[p, n]   raw frame: pulse p, tap n (FMCW: fast-time sample n, then a Hann-windowed range FFT over n)
    m_f[n]    = mean_p x_f[p, n]                                  slow-time mean of frame f
    s_f[n]    = s_{f-1}[n] + α_s·(m_f[n] − s_{f-1}[n])           short background, τ_s = 1 s
    e_f[n]    = |m_f − l_{f-1}| ≤ |m_f − s_f|                    "bin n looks like the empty scene"
    l_f[n]    = l_{f-1}[n] + α_l·(m_f[n] − l_{f-1}[n]) if e_f[n] else l_{f-1}[n]   long background, τ_l = 5 s
    b_f[n]    = l_f[n] if e_f[n] else s_f[n];   s_0 = l_0 = b_0 = m_0
    Y[d, n]   = fftshift_d Σ_p w[p]·(x[p, n] − b_f[n])·e^{−j2π·p·d/P}   Hann window, zero Doppler centred
    rdi[d, n] = (20·log10(|Y[d, n]| + ε) − floor_dB) / range_dB

Implementation: window, DFT and shift are one (P+1) x P complex matrix whose extra row gives the slow-time
mean, so a frame costs one small matmul; the background is subtracted in the Doppler domain (the
transform of a per-tap constant is the window's DC column times it). :meth:`RDIProcessor.process_magnitude`
stops at ``|Y|`` and :meth:`RDIProcessor.log_rdi` is the rest (every step non-decreasing), so a caller that
needs only maxima of the RDI can take them on ``|Y|``.

α = 1 − exp(−T_frame/τ). Two channel groups are computed (``RDIConfig.backgrounds``):

* ``"ema"`` (presence): b_f above. Leakage and static clutter are removed like with the classic per-frame
  mean, but a hand that stops moving is absorbed by the short background only over ~τ_s, so
  ``palm_hold`` stays visible, while the long background (which learns only where nothing is present)
  takes over as soon as the hand has gone, so no ghost is left.
* ``"frame_mean"`` (motion): b_f = m_f, the classic MTI. Everything that does not move within the 8 ms
  burst vanishes, so a still palm disappears at once while a sliding thumb (sub-bin Doppler, ±1-2 bins)
  stays: this channel is what separates ``finger_slide`` from ``palm_hold``.

Measured in docs/radar-simulator.md §4. ``floor_dB`` is the expected noise floor for raw noise of standard deviation
``noise_std`` per component (2·σ²·Σw² after the window and FFT), so 0 is the noise floor and 1 is
``range_dB`` above it; ε is 30 dB below the noise floor. Doppler bin d = P/2 is zero velocity, higher
bins approach the sensor.

The output is float32 ``(channels, doppler, range)``, channels = backgrounds x receive antennas
(background-major: ad60 gives channel 0 = presence, channel 1 = motion), exactly
what :attr:`RDIProcessor.output_profile` (an :class:`~edgesense.profiles.RDIProfile`) describes, so
models trained on it also run on sensors that deliver RDIs themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgesense.errors import ProfileError
from edgesense.profiles import RadarCIRProfile, RDIProfile

__all__ = ["RDIConfig", "RDIProcessor", "BACKGROUND_MODES"]

BACKGROUND_MODES = ("ema", "frame_mean", "none")


@dataclass(frozen=True)
class RDIConfig:
    """How CIR frames become RDIs (see the module docstring)."""

    backgrounds: tuple[str, ...] = ("ema", "frame_mean")   # one output channel group per background mode
    background_tau_s: float = 1.0      # time constant of the "ema" background (how long a still hand shows)
    long_tau_s: float = 5.0            # time constant of the long background (the empty scene)
    noise_std: float = 1.0             # raw noise per real component (1 for ad60 and the simulator)
    range_db: float = 40.0             # dB mapped to 1.0 above the noise floor
    range_crop: tuple[int, int] | None = None   # keep range bins [start, stop) only

    def __post_init__(self) -> None:
        object.__setattr__(self, "backgrounds", tuple(self.backgrounds))
        bad = [b for b in self.backgrounds if b not in BACKGROUND_MODES]
        if bad or not self.backgrounds or len(set(self.backgrounds)) != len(self.backgrounds):
            raise ProfileError(f"RDI backgrounds must be distinct names from {BACKGROUND_MODES}, got {list(self.backgrounds)}")
        if not (self.background_tau_s > 0 and self.long_tau_s > 0 and self.noise_std > 0 and self.range_db > 0):
            raise ProfileError("RDI background_tau_s, long_tau_s, noise_std and range_db must be positive")


class RDIProcessor:
    """Turns raw frames of ``profile`` into RDIs; keeps the background state between calls.

    :meth:`process` (one frame, for streams) and :meth:`process_batch` (a whole recording) share one
    code path: processing a recording in one batch, frame by frame, or in any chunks gives identical
    output. :meth:`reset` forgets the background (start of a new recording).
    """

    def __init__(self, profile: RadarCIRProfile, config: RDIConfig = RDIConfig()) -> None:
        if not isinstance(profile, RadarCIRProfile):
            raise ProfileError(f"RDI processing needs a radar_cir profile, got {profile.kind!r} ({profile.name})")
        self.profile = profile
        self.config = config
        n_taps, n_pulses = profile.num_taps, profile.pulses_per_frame
        start, stop = config.range_crop or (0, n_taps)
        if not 0 <= start < stop <= n_taps:
            raise ProfileError(f"range_crop {config.range_crop} is outside 0..{n_taps}")
        self._crop = slice(start, stop)
        self._fmcw = profile.waveform == "fmcw"
        w_slow = np.hanning(n_pulses + 2)[1:-1]                                        # no zero end points
        # Doppler transform as one matrix: Hann window, DFT over pulses, zero Doppler moved to the centre
        # (a 32 x 32 complex matmul is ~3x cheaper than numpy's FFT call at this size)
        dft = np.exp(-2j * np.pi * np.outer(np.arange(n_pulses), np.arange(n_pulses)) / n_pulses) * w_slow
        doppler = np.fft.fftshift(dft, axes=0)                                             # (D, P)
        # one extra row computes the slow-time mean in the same matmul
        self._doppler = np.vstack([doppler, np.full((1, n_pulses), 1.0 / n_pulses)]).astype(np.complex64)
        # the transform of a constant (per-tap background) is this column times the constant
        self._doppler_dc = doppler.sum(axis=1)[:, None].astype(np.complex64)            # (D, 1)
        self._w_range = np.hanning(n_taps + 2)[1:-1].astype(np.float32) if self._fmcw else None
        gain = float(np.sum(w_slow ** 2))
        if self._w_range is not None:
            gain *= float(np.sum(self._w_range.astype(np.float64) ** 2))
        floor_power = 2.0 * config.noise_std ** 2 * gain
        self._floor_db = np.float32(10.0 * math.log10(floor_power))
        self._eps = np.float32(math.sqrt(floor_power * 1e-3))            # on the magnitude: 30 dB below the floor
        self._db_scale = np.float32(20.0 / math.log(10.0) / config.range_db)     # natural log is faster
        self._floor_scaled = np.float32(self._floor_db / config.range_db)
        self._alpha = np.float32(1.0 - math.exp(-profile.frame_period_s / config.background_tau_s))
        self._alpha_long = np.float32(1.0 - math.exp(-profile.frame_period_s / config.long_tau_s))
        self._background: tuple[np.ndarray, np.ndarray] | None = None
        self._buf: _FrameBuffers | None = None

    @property
    def output_profile(self) -> RDIProfile:
        """The :class:`RDIProfile` describing this processor's output."""
        p = self.profile
        n_range = self._crop.stop - self._crop.start
        return RDIProfile(name=f"{p.name}-rdi", description=f"RDIs computed from {p.name} by edgesense.radar.rdi",
                          range_bins=n_range, doppler_bins=p.pulses_per_frame,
                          channels=p.num_rx * len(self.config.backgrounds),
                          frame_rate=p.frame_rate_hz, range_resolution_m=p.range_bin_m,
                          velocity_resolution_mps=p.velocity_resolution_mps)

    def reset(self) -> None:
        """Forget the background estimate (call between unrelated recordings)."""
        self._background = None

    def _ema_background(self, means: np.ndarray) -> np.ndarray:
        """Per-frame background (F, rx, N) from slow-time means, advancing the stored state."""
        bgs = np.empty_like(means)
        state = self._background
        for f in range(len(means)):
            m = means[f]
            if state is None:
                short = long = bg = m
            else:
                short, long = state
                short = short + self._alpha * (m - short)
                d_long = m - long
                # per range bin: does the frame look like the empty scene (closer to the long background)?
                empty = np.abs(d_long) <= np.abs(m - short)
                long = np.where(empty, long + self._alpha_long * d_long, long)   # learns only when empty
                bg = np.where(empty, long, short)
            state = (short, long)
            bgs[f] = bg
        self._background = state
        return bgs

    def process(self, payload: np.ndarray) -> np.ndarray:
        """RDI of one raw frame: float32 ``(channels, doppler, range)`` (a new array each call).

        The streaming fast path: the same elementwise operations as :meth:`process_batch` on one frame,
        in the same float32/complex64 types, so the result is bit-identical (tested), but written into
        buffers kept between calls, with the background modes stacked so that one multiply and one
        subtraction serve all output channels: :meth:`process_magnitude` then :meth:`log_rdi`.
        """
        return self.log_rdi(self.process_magnitude(payload))

    def process_magnitude(self, payload: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``|Y|`` of one raw frame (float32 ``(channels, doppler, range)``, before the log): the RDI is
        :meth:`log_rdi` of it. Written into ``out`` when given (a new array otherwise); advances the background.

        The log mapping is monotone, so the maximum of an RDI along an axis is :meth:`log_rdi` of the
        maximum of this along it: a caller that needs only profiles can skip the log of the whole image.
        """
        payload = np.asarray(payload)
        buf = self._buf
        if buf is None or payload.shape != buf.payload_shape:
            if self._fmcw or payload.shape != self.profile.payload_shape:
                # FMCW (range FFT first) and errors: the batch code
                return np.abs(self._spectra(payload[None])[0], out=out)
            buf = self._make_buffers()
        if buf.both2 is not None and payload.dtype == np.complex64:       # one antenna, all taps: no view
            np.matmul(self._doppler, payload, buf.both2)                  # (D+1, N): spectrum, mean
        else:
            x = payload.astype(np.complex64, copy=False).reshape(buf.x_shape)      # (rx, P, taps)
            if buf.crop:
                x = x[..., self._crop]
            np.matmul(self._doppler, x, buf.both)                        # (rx, D+1, N): spectrum, mean
        if buf.ema is not None:
            self._ema_step(buf)
        if buf.mean_row is not None:
            np.copyto(buf.mean_row, buf.means)
        spec = buf.spec
        np.multiply(buf.dc, buf.bgs, spec)                               # (modes, rx, D, N): dc·background
        np.subtract(buf.spec_x, spec, spec)                              # spectrum − dc·background
        return np.abs(buf.spec_out, out)

    def log_rdi(self, mag: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Float32 magnitudes ``|Y|`` -> the normalised log magnitude (the RDI), in place or into ``out``.

        Each step is a correctly rounded float32 operation or the float32 log, all non-decreasing."""
        out = mag if out is None else out
        np.add(mag, self._eps, out)
        np.log(out, out)
        np.multiply(out, self._db_scale, out)
        np.subtract(out, self._floor_scaled, out)
        return out

    def _log_magnitude(self, spec: np.ndarray) -> np.ndarray:
        """Normalised log magnitude of complex spectra (one expression for the batch and one-frame paths)."""
        return self.log_rdi(np.abs(spec))

    def _make_buffers(self) -> "_FrameBuffers":
        """Work arrays and views of the one-frame path (made on first use)."""
        p, n_rx = self.profile, self.profile.num_rx
        n = self._crop.stop - self._crop.start
        d, c64 = p.pulses_per_frame, np.complex64
        modes = self.config.backgrounds
        b = _FrameBuffers()
        b.x_shape = (n_rx, d, p.num_taps)
        b.payload_shape = p.payload_shape
        b.crop = n != p.num_taps
        b.both = np.empty((n_rx, d + 1, n), c64)
        b.both2 = b.both[0] if n_rx == 1 and not b.crop else None
        b.spec_x, b.means = b.both[None, :, :-1, :], b.both[:, -1, :]
        # one background row per output channel group, in output order (background-major); "none"
        # stays zero (x - dc·0 == x up to the sign of a zero, which the magnitude ignores)
        b.bgs = np.zeros((len(modes), n_rx, 1, n), c64)
        b.mean_row = b.bgs[modes.index("frame_mean"), :, 0, :] if "frame_mean" in modes else None
        b.ema = b.bgs[modes.index("ema"), :, 0, :] if "ema" in modes else None
        b.spec = np.empty((len(modes), n_rx, d, n), c64)
        b.spec_out = b.spec.reshape(len(modes) * n_rx, d, n)
        # the DC column repeated over range: same products as the broadcast column, ~3x faster
        b.dc = np.ascontiguousarray(np.broadcast_to(self._doppler_dc, (d, n)))
        # EMA state: short and long background stacked, so one subtraction and one multiply serve both
        b.state = np.empty((2, n_rx, n), c64)
        b.short, b.long = b.state[0], b.state[1]
        b.pair = (b.short, b.long)     # what self._background holds while the one-frame path owns the state
        b.alphas = np.array([self._alpha, self._alpha_long], c64)[:, None, None]
        b.diff = np.empty((2, n_rx, n), c64)       # m − short (then m − short_new), m − long
        b.step = np.empty((2, n_rx, n), c64)       # α·(m − short), α_l·(m − long)
        b.mag = np.empty((2, n_rx, n), np.float32)
        b.diff0, b.step0, b.step1, b.mag0, b.mag1 = b.diff[0], b.step[0], b.step[1], b.mag[0], b.mag[1]
        b.empty = np.empty((n_rx, n), bool)
        self._buf = b
        return b

    def _ema_step(self, b: "_FrameBuffers") -> None:
        """:meth:`_ema_background` for one frame's means ``b.means`` ``(rx, N)``, in place; writes the background to ``b.ema``.

        The same elementwise operations as the batch code (α·(m − s) with α cast to complex, as there).
        """
        m, short, long = b.means, b.short, b.long
        state = self._background
        if state is None:                                   # s_0 = l_0 = b_0 = m_0
            short[...] = m
            long[...] = m
            b.ema[...] = m
            self._background = b.pair
            return
        if state is not b.pair:                             # the state came from process_batch: adopt it
            short[...], long[...] = state
            self._background = b.pair
        np.subtract(m, b.state, b.diff)                     # m − short, d_long = m − long
        np.multiply(b.alphas, b.diff, b.step)               # α·(m − short), α_l·d_long
        np.add(short, b.step0, short)                       # short = short + α·(m − short)
        np.subtract(m, short, b.diff0)                      # m − short (new)
        np.abs(b.diff, b.mag)
        empty = np.less_equal(b.mag1, b.mag0, b.empty)
        np.add(long, b.step1, out=long, where=empty)        # long = where(empty, long + α_l·d_long, long)
        np.copyto(b.ema, short)                             # bg = where(empty, long, short)
        np.copyto(b.ema, long, "same_kind", empty)

    def process_batch(self, payloads: np.ndarray) -> np.ndarray:
        """RDIs of consecutive raw frames ``(frames, *payload_shape)``: float32 ``(frames, C, D, R)``."""
        return self._log_magnitude(self._spectra(payloads))

    def _spectra(self, payloads: np.ndarray) -> np.ndarray:
        """Background-removed complex spectra ``(frames, C, D, R)`` of raw frames (the batch code)."""
        p = self.profile
        payloads = np.asarray(payloads)
        if payloads.shape[1:] != p.payload_shape:
            raise ProfileError(f"profile {p.name!r} frames are {list(p.payload_shape)}, got {list(payloads.shape[1:])}")
        x = payloads.astype(np.complex64, copy=False)
        if p.num_rx == 1:
            x = x[:, None]                                                   # (F, rx, P, N)
        if self._fmcw:
            x = np.fft.fft(x * self._w_range, axis=-1).astype(np.complex64)
        x = x[..., self._crop]
        both = np.matmul(self._doppler, x)                                        # (F, rx, D+1, N)
        spec_x, means = both[..., :-1, :], both[..., -1, :].copy()                 # spectrum, slow-time mean
        n_rx = x.shape[1]
        spec = np.empty((len(x), n_rx * len(self.config.backgrounds), *spec_x.shape[2:]), np.complex64)
        for i, mode in enumerate(self.config.backgrounds):
            out = spec[:, i * n_rx:(i + 1) * n_rx]
            if mode == "frame_mean":
                np.subtract(spec_x, self._doppler_dc * means[:, :, None, :], out=out)
            elif mode == "ema":
                np.subtract(spec_x, self._doppler_dc * self._ema_background(means)[:, :, None, :], out=out)
            else:
                out[...] = spec_x
        return spec


class _FrameBuffers:
    """Arrays and views kept between :meth:`RDIProcessor.process` calls (attributes, no per-call lookups)."""

    __slots__ = ("x_shape", "payload_shape", "pair", "crop", "both", "both2", "spec_x", "means", "bgs", "mean_row", "ema", "spec",
                 "spec_out", "dc", "state", "short", "long", "alphas", "diff", "step", "mag", "empty",
                 "diff0", "step0", "step1", "mag0", "mag1")
