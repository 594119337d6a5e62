"""Radar signal synthesis: point scatterers in, raw complex frames of any RadarCIRProfile out.

This module is the physics of the radar simulator; :mod:`edgesense.sim.radar_scene` says where the
scatterers are (hand, body, clutter) and :mod:`edgesense.sim.radar_gestures` scripts gestures and users.

Coordinates: the radar sits at the origin with its boresight along +z (a phone lying on a table, screen
up). A scatterer *k* at position r_k(t) has range R_k = |r_k| and boresight angle θ_k = acos(z_k / R_k).

Signal model, pulse-Doppler (``waveform="pulse_doppler"``, e.g. the built-in ``ad60``)::

    h[p, n] = Σ_k a_k(t_p) · pulse(n·Δr + r0 − R_k(t_p)) · exp(−j·4π·R_k(t_p)/λ)
              + L(t_p) · pulse(n·Δr + r0) + w[p, n]

with t_p = t_frame + p·PRI the time of pulse p, Δr = c / (2·f_s) the tap spacing, r0 the range of
tap 0, λ = c / f_c. A target approaching the radar (R decreasing) has a phase that grows with p, i.e.
positive Doppler. ``pulse`` is the range-domain autocorrelation of the band-limited sounding sequence,
modelled as a raised-cosine pulse with null-to-null main-lobe half width δ = c / (2·B) (B the
profile's bandwidth; 8.5 cm for ad60) and roll-off β = 0.25::

    pulse(x) = sinc(x/δ) · cos(π·β·x/δ) / (1 − (2·β·x/δ)²)

FMCW (``waveform="fmcw"``): each row is the de-chirped fast-time beat signal of one chirp, sampled at f_s::

    s[m, n] = Σ_k a_k(t_m) · exp(+j·2π·(2·S·R_k(t_m)/c)·n/f_s) · exp(−j·4π·R_k(t_m)/λ) + L(t_m) + w[m, n]

so a range FFT puts scatterer k in bin 2·S·R_k·N/(c·f_s), matching :attr:`RadarCIRProfile.range_bins_m`,
and the slow-time phase convention is the same as for pulse-Doppler.

Amplitudes follow the radar equation (received power ∝ G_t·G_r·λ²·σ / ((4π)³·R⁴)), so the received
amplitude is::

    a_k = A_ref · sqrt(σ_k / σ_ref) · g(θ_k) · (R_ref / R_k)²

with g(θ) = exp(−4·ln2·(θ/θ_3dB)²) the one-way power pattern of a Gaussian beam (the two-way amplitude
factor sqrt(G_t·G_r) is g itself), θ_3dB the one-way half-power beam width. A_ref is the calibration
constant: the per-pulse amplitude of a σ_ref = −20 dBsm target at R_ref = 0.3 m on boresight,
set from ``ref_snr_db`` (per-pulse SNR, with complex noise of standard deviation ``noise_std`` per
component, i.e. noise power 2·noise_std²). With ``num_rx > 1`` receive antennas spaced λ/2 along x,
antenna q adds the phase exp(+j·π·q·x_k/R_k).

L(t) is the direct Tx→Rx leakage at zero range: a strong, static phasor whose phase and amplitude drift
slowly (thermal drift) — the "strong static leakage at tap 0" every 60 GHz module shows.
w is complex white Gaussian noise, ``noise_std`` per real component.

Approximations (documented, deliberate): the pulse *envelope* of a scatterer is evaluated at its range
at the centre of the burst (32 pulses = 8 ms for ad60), while the *phase* exp(−j·4π·R_k(t_p)/λ), which
carries the Doppler, is exact per pulse; a 2 m/s hand moves 1.6 cm (< 0.3 tap) during a burst, so the
envelope error is a few percent at the burst edges and nothing in the phase. Point scatterers, no multipath, no occlusion, no polarisation,
RCS per scatterer constant apart from an aspect factor applied by the scene.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgesense.errors import ProfileError
from edgesense.profiles import SPEED_OF_LIGHT, RadarCIRProfile

__all__ = ["RadarPhysics", "ScattererSet", "pulse_shape", "beam_gain", "pulse_times", "render_frames", "live_payloads"]


@dataclass(frozen=True)
class RadarPhysics:
    """Front-end and calibration constants of the simulated radar (see the module docstring)."""

    beamwidth_deg: float = 60.0        # one-way half-power beam width θ_3dB (full width: -3 dB at ±θ_3dB/2)
    ref_snr_db: float = 20.0           # per-pulse SNR of a −20 dBsm target at 0.3 m on boresight
    ref_range_m: float = 0.3
    ref_rcs_m2: float = 0.01
    noise_std: float = 1.0             # per real component, as the ad60 profile states
    leakage_amplitude: float = 300.0   # |L|: ~46 dB above the noise power, far above any target
    leakage_drift_rad: float = 0.02    # peak phase wander of the leakage (slow, thermal)
    pulse_rolloff: float = 0.25        # β of the raised-cosine range pulse
    min_range_m: float = 0.02          # the radar equation is clamped below this range

    @property
    def ref_amplitude(self) -> float:
        """A_ref: amplitude giving ``ref_snr_db`` against noise power 2·noise_std²."""
        return math.sqrt(2.0 * self.noise_std ** 2 * 10.0 ** (self.ref_snr_db / 10.0))


@dataclass
class ScattererSet:
    """Scatterers at a set of times: positions ``(..., K, 3)`` in metres and RCS ``(..., K)`` in m².

    The leading axes match the times they were evaluated at. RCS already contains aspect factors
    and presence (0 for a scatterer that is not in the scene).
    """

    positions: np.ndarray
    rcs: np.ndarray

    @staticmethod
    def concat(parts: list["ScattererSet"]) -> "ScattererSet":
        parts = [p for p in parts if p.rcs.shape[-1] > 0]
        if not parts:
            raise ValueError("no scatterers")
        return ScattererSet(np.concatenate([p.positions for p in parts], axis=-2),
                            np.concatenate([p.rcs for p in parts], axis=-1))


def pulse_shape(x_m: np.ndarray, bandwidth_hz: float, rolloff: float = 0.25) -> np.ndarray:
    """Raised-cosine range pulse: 1 at x=0, first null at ±c/(2·B) (float32, same shape as ``x_m``)."""
    u = np.asarray(x_m, dtype=np.float32) / np.float32(SPEED_OF_LIGHT / (2.0 * bandwidth_hz))
    main = np.sinc(u)
    if rolloff <= 0:
        return main.astype(np.float32, copy=False)
    bu = np.float32(2.0 * rolloff) * u
    denom = np.float32(1.0) - bu * bu
    singular = np.abs(denom) < 1e-4
    taper = np.cos(np.float32(math.pi * rolloff) * u) / np.where(singular, np.float32(1.0), denom)
    taper = np.where(singular, np.float32(math.pi / 4.0), taper)
    return (main * taper).astype(np.float32, copy=False)


_TABLE_STEP_M = 2e-5   # 0.02 mm: nearest-neighbour lookup error below 0.1 % of the pulse peak


@functools.lru_cache(maxsize=8)
def _pulse_table(bandwidth_hz: float, rolloff: float, half_width_m: float) -> np.ndarray:
    n = int(math.ceil(half_width_m / _TABLE_STEP_M))
    return pulse_shape(np.arange(-n, n + 1) * _TABLE_STEP_M, bandwidth_hz, rolloff)


def _pulse_lookup(x_m: np.ndarray, bandwidth_hz: float, rolloff: float, half_width_m: float) -> np.ndarray:
    """:func:`pulse_shape` through a cached fine table (what makes simulating thousands of clips fast)."""
    table = _pulse_table(bandwidth_hz, rolloff, half_width_m)
    centre = (len(table) - 1) // 2
    idx = np.rint(x_m * np.float32(1.0 / _TABLE_STEP_M)).astype(np.int32)
    np.clip(idx, -centre, centre, out=idx)
    idx += centre
    return table[idx]


def beam_gain(positions: np.ndarray, beamwidth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Range ``|r|`` and two-way amplitude factor g(θ) of positions ``(..., 3)`` (boresight +z)."""
    rng = np.sqrt(np.sum(positions * positions, axis=-1))
    cos_theta = np.clip(positions[..., 2] / np.maximum(rng, 1e-9), -1.0, 1.0)
    theta = np.arccos(cos_theta)
    theta3 = math.radians(beamwidth_deg)
    return rng, np.exp(-4.0 * math.log(2.0) * (theta / theta3) ** 2)


def pulse_times(profile: RadarCIRProfile, first_frame: int, n_frames: int) -> np.ndarray:
    """Times (s) of every pulse/chirp of frames ``first_frame .. first_frame+n_frames-1``: ``(F, P)``."""
    frames = np.arange(first_frame, first_frame + n_frames, dtype=np.float64)[:, None]
    pulses = np.arange(profile.pulses_per_frame, dtype=np.float64)[None, :]
    return frames * profile.frame_period_s + pulses * profile.pulse_interval_s


def leakage_phasor(t: np.ndarray, physics: RadarPhysics, phase0: float = 0.0) -> np.ndarray:
    """Slowly drifting Tx->Rx leakage L(t) (periods of tens of seconds)."""
    phase = phase0 + physics.leakage_drift_rad * (np.sin(2 * np.pi * t / 37.0) + 0.5 * np.sin(2 * np.pi * t / 11.0 + 1.0))
    amp = physics.leakage_amplitude * (1.0 + 0.002 * np.sin(2 * np.pi * t / 23.0))
    return amp * np.exp(1j * phase)


def render_frames(profile: RadarCIRProfile, scatterers: ScattererSet, times: np.ndarray,
                  rng: np.random.Generator | None, physics: RadarPhysics = RadarPhysics(),
                  leakage_phase: float = 0.0) -> np.ndarray:
    """Raw frames for scatterers evaluated at pulse ``times`` ``(F, P)``: complex64 ``(F, *payload_shape)``.

    ``scatterers`` must have leading axes ``(F, P)`` (one position per pulse, so Doppler and range
    migration are exact). ``rng=None`` renders without noise (for tests).
    """
    if not isinstance(profile, RadarCIRProfile):
        raise ProfileError(f"the radar simulator needs a radar_cir profile, got {profile.kind!r} ({profile.name})")
    n_frames, n_pulses = times.shape
    if n_pulses != profile.pulses_per_frame:
        raise ValueError(f"times has {n_pulses} pulses per frame, profile {profile.name!r} has {profile.pulses_per_frame}")
    lam = profile.wavelength_m
    rng_m, gain = beam_gain(scatterers.positions, physics.beamwidth_deg)            # (F, P, K)
    r_eff = np.maximum(rng_m, physics.min_range_m)
    amp = (physics.ref_amplitude * np.sqrt(scatterers.rcs / physics.ref_rcs_m2) * gain
           * (physics.ref_range_m / r_eff) ** 2)
    two_way = np.exp(-1j * (4.0 * np.pi / lam) * rng_m)                               # (F, P, K)
    n_rx = profile.num_rx
    n = np.arange(profile.num_taps)
    leak = leakage_phasor(times, physics, leakage_phase)                              # (F, P)
    out = np.empty((n_frames, n_rx, n_pulses, profile.num_taps), dtype=np.complex64)
    for q in range(n_rx):
        coef = (amp * two_way).astype(np.complex64)
        if q:
            sin_x = scatterers.positions[..., 0] / np.maximum(rng_m, 1e-9)
            coef = coef * np.exp(1j * np.pi * q * sin_x).astype(np.complex64)
        if profile.waveform == "pulse_doppler":
            x = (n * profile.range_bin_m + profile.first_tap_range_m).astype(np.float32)
            half_width = float(x[-1]) + 4.0                                            # beyond: clipped
            burst_range = rng_m.mean(axis=1).astype(np.float32)                        # (F, K) at burst centre
            env = _pulse_lookup(x[None, None, :] - burst_range[..., None], profile.bandwidth_hz,
                                physics.pulse_rolloff, half_width)                      # (F, K, N)
            sig = np.einsum("fpk,fkn->fpn", coef, env.astype(np.complex64), optimize=False)
            sig += (leak[..., None] * pulse_shape(x, profile.bandwidth_hz, physics.pulse_rolloff)).astype(np.complex64)
        else:
            assert profile.chirp_slope_hz_per_s is not None
            beat = 2.0 * profile.chirp_slope_hz_per_s * rng_m / SPEED_OF_LIGHT / profile.sample_rate_hz  # cycles/sample
            tone = np.exp(1j * 2 * np.pi * beat[..., None] * n).astype(np.complex64)                  # (F, P, K, N)
            sig = np.einsum("fpk,fpkn->fpn", coef, tone, optimize=False)
            sig += leak[..., None].astype(np.complex64)
        out[:, q] = sig
    if rng is not None:
        noise = rng.standard_normal((*out.shape, 2), dtype=np.float32) * np.float32(physics.noise_std)
        out += noise.view(np.complex64)[..., 0]
    return out[:, 0] if n_rx == 1 else out


def live_payloads(profile: RadarCIRProfile, seed: int = 0, **options: str | int):
    """Payload function for live simulated radar sources (``sim://ad60?user=3&session=1``).

    Returns a :class:`edgesense.sim.radar_gestures.LiveRadarScene`: ``payload(k)`` is frame ``k`` of an
    endless stream of random gestures by simulated user ``user`` in environment ``session``.
    """
    from edgesense.sim.radar_gestures import LiveRadarScene

    known = {"user", "session"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ProfileError(f"unknown radar simulator option(s) {unknown}; known: {sorted(known)}")
    try:
        values = {k: int(v) for k, v in options.items()}
    except (TypeError, ValueError):
        raise ProfileError("radar simulator options user= and session= must be whole numbers") from None
    return LiveRadarScene(profile, seed=seed, **values)
