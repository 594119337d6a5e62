"""Raw radar frames (CIR or FMCW chirps) to range-Doppler images (RDI), one frame or a whole recording.

Per frame, for every receive channel (vectorised over frames, channels, pulses and range bins)::

    x[p, n]   raw frame: pulse p, tap n (FMCW: fast-time sample n, then a windowed range FFT over n)
    b_f[n]    = b_{f-1}[n] + α·(mean_p x_f[p, n] − b_{f-1}[n]),   b_0 = mean_p x_0[p, n]
    y[p, n]   = x[p, n] − b_f[n]                       background (leakage + clutter) removal
    Y[d, n]   = fftshift_d( Σ_p w[p]·y[p, n]·e^{−j2π·p·d/P} )  Doppler FFT with a Hann window
    rdi[d, n] = (10·log10(|Y[d, n]|² + ε) − floor_dB) / range_dB

The background b is an exponential average of the per-tap slow-time mean over past frames with time
constant ``background_tau_s`` (α = 1 − exp(−T_frame/τ)). It removes the Tx→Rx leakage and static
clutter like the classic per-frame mean subtraction (MTI), but a hand that stops moving fades out
only over ~τ seconds instead of at once, so ``palm_hold`` stays visible (the per-frame mean, mode
``"frame_mean"``, erases a still hand in the very frame it stops: measured in docs/radar-simulator.md).
``floor_dB`` is the expected noise floor for raw noise of standard deviation ``noise_std`` per
component (2·σ²·Σw² after the window and FFT), so 0 is the noise floor and 1 is ``range_dB`` above it.
ε is 30 dB below the noise floor. Doppler bin d = P/2 is zero velocity; higher bins approach the sensor.

The output is float32 ``(channels, doppler, range)`` with one channel per receive antenna, exactly
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

    background: str = "ema"            # "ema" (slowly adapting), "frame_mean" (classic MTI) or "none"
    background_tau_s: float = 1.0      # time constant of the "ema" background (how long a still hand shows)
    long_tau_s: float = 5.0            # time constant of the long background (the empty scene)
    noise_std: float = 1.0             # raw noise per real component (1 for ad60 and the simulator)
    range_db: float = 40.0             # dB mapped to 1.0 above the noise floor
    range_crop: tuple[int, int] | None = None   # keep range bins [start, stop) only

    def __post_init__(self) -> None:
        if self.background not in BACKGROUND_MODES:
            raise ProfileError(f"RDI background must be one of {BACKGROUND_MODES}, got {self.background!r}")
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
        self._w_slow = np.hanning(n_pulses + 2)[1:-1].astype(np.float32)[:, None]   # no zero end points
        self._w_range = np.hanning(n_taps + 2)[1:-1].astype(np.float32) if self._fmcw else None
        gain = float(np.sum(self._w_slow.astype(np.float64) ** 2))
        if self._w_range is not None:
            gain *= float(np.sum(self._w_range.astype(np.float64) ** 2))
        floor_power = 2.0 * config.noise_std ** 2 * gain
        self._floor_db = np.float32(10.0 * math.log10(floor_power))
        self._eps = np.float32(floor_power * 1e-3)
        self._scale = np.float32(1.0 / config.range_db)
        self._alpha = np.float32(1.0 - math.exp(-profile.frame_period_s / config.background_tau_s))
        self._alpha_long = np.float32(1.0 - math.exp(-profile.frame_period_s / config.long_tau_s))
        self._background: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def output_profile(self) -> RDIProfile:
        """The :class:`RDIProfile` describing this processor's output."""
        p = self.profile
        n_range = self._crop.stop - self._crop.start
        return RDIProfile(name=f"{p.name}-rdi", description=f"RDIs computed from {p.name} by edgesense.radar.rdi",
                          range_bins=n_range, doppler_bins=p.pulses_per_frame, channels=p.num_rx,
                          frame_rate=p.frame_rate_hz, range_resolution_m=p.range_bin_m,
                          velocity_resolution_mps=p.velocity_resolution_mps)

    def reset(self) -> None:
        """Forget the background estimate (call between unrelated recordings)."""
        self._background = None

    def process(self, payload: np.ndarray) -> np.ndarray:
        """RDI of one raw frame: float32 ``(channels, doppler, range)``."""
        return self.process_batch(payload[None])[0]

    def process_batch(self, payloads: np.ndarray) -> np.ndarray:
        """RDIs of consecutive raw frames ``(frames, *payload_shape)``: float32 ``(frames, C, D, R)``."""
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
        mode = self.config.background
        if mode == "frame_mean":
            x = x - x.mean(axis=-2, keepdims=True)
        elif mode == "ema":
            means = x.mean(axis=-2)                                          # (F, rx, N)
            shorts, longs = np.empty_like(means), np.empty_like(means)
            state = self._background
            for f in range(len(means)):
                m = means[f]
                if state is None:
                    state = (m, m)
                else:
                    short = state[0] + self._alpha * (m - state[0])
                    # the long background learns only where the frame looks like it (nothing present)
                    empty = np.abs(m - state[1]) <= np.abs(m - short)
                    state = (short, np.where(empty, state[1] + self._alpha_long * (m - state[1]), state[1]))
                shorts[f], longs[f] = state
            self._background = state
            # subtract, per range bin, whichever background is closer to the current frame: the short one
            # while a target holds still (it fades over ~tau), the long one once it has left (no ghost)
            bgs = np.where(np.abs(means - shorts) <= np.abs(means - longs), shorts, longs)
            x = x - bgs[:, :, None, :]
        spec = np.fft.fftshift(np.fft.fft(x * self._w_slow, axis=-2), axes=-2)
        power = spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2
        return ((np.float32(10.0) * np.log10(power + self._eps) - self._floor_db) * self._scale).astype(np.float32)
