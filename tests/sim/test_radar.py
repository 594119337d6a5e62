"""Physics of the radar simulator: geometry, Doppler sign, radar equation, noise, leakage, FMCW."""

import numpy as np
import pytest

from edgesense.errors import ProfileError
from edgesense.profiles import RadarCIRProfile, load_profile
from edgesense.sim.radar import RadarPhysics, ScattererSet, beam_gain, pulse_shape, pulse_times, render_frames

AD60 = load_profile("ad60")
QUIET = RadarPhysics(leakage_amplitude=0.0)


def _moving_point(profile, z0, vz, n_frames=4, rcs=0.01, x=0.0):
    t = pulse_times(profile, 0, n_frames)
    pos = np.zeros((*t.shape, 1, 3))
    pos[..., 0, 0] = x
    pos[..., 0, 2] = z0 + vz * t
    return t, ScattererSet(pos, np.full((*t.shape, 1), rcs))


def test_point_target_sits_at_its_range_tap():
    r = 0.5
    t, scat = _moving_point(AD60, r, 0.0)
    h = render_frames(AD60, scat, t, None, QUIET)
    assert h.shape == (4, 32, 32) and h.dtype == np.complex64
    assert int(np.argmax(np.abs(h[0, 0]))) == int(round(r / AD60.range_bin_m))


def test_pulse_is_band_limited_with_main_lobe_width_c_over_2b():
    delta = 299_792_458.0 / (2 * AD60.bandwidth_hz)
    assert pulse_shape(np.array([0.0]), AD60.bandwidth_hz)[0] == pytest.approx(1.0)
    assert abs(pulse_shape(np.array([delta]), AD60.bandwidth_hz)[0]) < 1e-6        # first null
    assert pulse_shape(np.array([delta / 2]), AD60.bandwidth_hz)[0] > 0.5


def test_approaching_target_has_positive_doppler_at_the_right_speed():
    v = -1.0                                   # 1 m/s toward the radar
    t, scat = _moving_point(AD60, 0.4, v)
    h = render_frames(AD60, scat, t, None, QUIET)
    tap = int(np.argmax(np.abs(h[0]).sum(axis=0)))
    phase_step = np.angle(np.sum(h[0, 1:, tap] * np.conj(h[0, :-1, tap])))
    expected = 4 * np.pi * abs(v) * AD60.pulse_interval_s / AD60.wavelength_m
    assert phase_step > 0
    assert phase_step == pytest.approx(expected, rel=0.02)


def test_amplitude_follows_radar_equation_and_beam():
    amps = []
    for r in (4 * AD60.range_bin_m, 8 * AD60.range_bin_m):     # on the tap grid
        t, scat = _moving_point(AD60, r, 0.0)
        amps.append(np.abs(render_frames(AD60, scat, t, None, QUIET)[0, 0]).max())
    assert amps[0] / amps[1] == pytest.approx(4.0, rel=0.1)     # a ∝ 1/R²
    phys = RadarPhysics()
    # the reference target has the reference per-pulse SNR: |a|² / (2σ²) = 10^(snr/10)
    t, scat = _moving_point(AD60, phys.ref_range_m, 0.0, rcs=phys.ref_rcs_m2)
    tap_r = phys.ref_range_m / AD60.range_bin_m
    peak = np.abs(render_frames(AD60, scat, t, None, QUIET)[0, 0]).max() / pulse_shape(
        np.array([(round(tap_r) - tap_r) * AD60.range_bin_m]), AD60.bandwidth_hz)[0]
    assert 20 * np.log10(peak / np.sqrt(2)) == pytest.approx(phys.ref_snr_db, abs=0.1)
    _, on = beam_gain(np.array([0.0, 0.0, 0.3]), 60.0)
    _, edge = beam_gain(np.array([0.3 * np.sin(np.radians(30)), 0.0, 0.3 * np.cos(np.radians(30))]), 60.0)
    assert on == pytest.approx(1.0) and edge == pytest.approx(0.5)


def test_noise_is_complex_white_with_unit_std_per_component_and_leakage_sits_at_tap_0():
    t = pulse_times(AD60, 0, 20)
    empty = ScattererSet(np.zeros((*t.shape, 0, 3)), np.zeros((*t.shape, 0)))
    noise = render_frames(AD60, empty, t, np.random.default_rng(0), QUIET)
    assert noise.real.std() == pytest.approx(1.0, rel=0.03) and noise.imag.std() == pytest.approx(1.0, rel=0.03)
    assert abs(np.mean(noise)) < 0.05
    leak = render_frames(AD60, empty, t, None, RadarPhysics())
    profile = np.abs(leak).mean(axis=(0, 1))
    assert int(np.argmax(profile)) == 0 and profile[0] == pytest.approx(300.0, rel=0.01)


def test_fmcw_profile_puts_a_target_in_its_range_fft_bin():
    fmcw = RadarCIRProfile(name="fmcw-test", waveform="fmcw", carrier_hz=60e9, sample_rate_hz=2e6, bandwidth_hz=4e9,
                           num_taps=64, pulses_per_frame=32, pulse_interval_s=300e-6, frame_period_s=0.03,
                           chirp_slope_hz_per_s=4e9 / 64e-6)
    r = 0.6
    t, scat = _moving_point(fmcw, r, 0.0)
    s = render_frames(fmcw, scat, t, None, QUIET)
    assert s.shape == (4, 32, 64)
    spectrum = np.abs(np.fft.fft(s[0, 0]))
    assert int(np.argmax(spectrum)) == int(round(r / fmcw.range_bin_m))


def test_multi_rx_profile_has_receive_axis_and_angle_phase():
    prof = RadarCIRProfile(name="ad60x2", num_rx=2)
    t, scat = _moving_point(prof, 0.3, 0.0, x=0.1)
    h = render_frames(prof, scat, t, None, QUIET)
    assert h.shape == (4, 2, 32, 32)
    tap = int(np.argmax(np.abs(h[0, 0, 0])))
    sin_x = 0.1 / np.hypot(0.1, 0.3)
    assert np.angle(h[0, 1, 0, tap] * np.conj(h[0, 0, 0, tap])) == pytest.approx(np.pi * sin_x, abs=1e-3)


def test_render_rejects_non_radar_profiles():
    t = pulse_times(AD60, 0, 1)
    with pytest.raises(ProfileError):
        render_frames(load_profile("rdi32"), ScattererSet(np.zeros((*t.shape, 0, 3)), np.zeros((*t.shape, 0))), t, None)
