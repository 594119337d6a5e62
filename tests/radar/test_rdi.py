"""CIR -> RDI: one code path for streams and batches, Doppler sign, background removal, normalisation."""

import numpy as np
import pytest

from edgesense.errors import ProfileError
from edgesense.profiles import RadarCIRProfile, RDIProfile, load_profile
from edgesense.radar.rdi import RDIConfig, RDIProcessor
from edgesense.sim.radar import RadarPhysics, ScattererSet, pulse_times, render_frames
from edgesense.sim.radar_gestures import make_session, make_users, simulate_clip

AD60 = load_profile("ad60")


def _scene(profile, z_of_t, n_frames, seed=0, physics=RadarPhysics(), rcs=0.01):
    """One point on boresight at height z_of_t(t) (None = absent), plus leakage and noise."""
    t = pulse_times(profile, 0, n_frames)
    z = z_of_t(t)
    pos = np.zeros((*t.shape, 1, 3))
    pos[..., 0, 2] = np.nan_to_num(z, nan=1.0)
    sigma = np.where(np.isnan(z), 0.0, rcs)[..., None]
    return render_frames(profile, ScattererSet(pos, sigma), t, np.random.default_rng(seed), physics)


def test_stream_and_batch_give_identical_results_in_any_chunking():
    user = make_users(1)[0]
    frames = simulate_clip(AD60, "palm_hold", user, make_session(user, 0), seed=5).payloads
    batch = RDIProcessor(AD60).process_batch(frames)
    proc = RDIProcessor(AD60)
    single = np.stack([proc.process(f) for f in frames])
    proc = RDIProcessor(AD60)
    chunks = np.concatenate([proc.process_batch(frames[i:i + 7]) for i in range(0, len(frames), 7)])
    assert np.array_equal(batch, single) and np.array_equal(batch, chunks)
    proc.reset()
    assert np.array_equal(proc.process_batch(frames), batch)


@pytest.mark.parametrize("config", [RDIConfig(backgrounds=("none", "ema")), RDIConfig(backgrounds=("frame_mean",)),
                                    RDIConfig(backgrounds=("frame_mean", "none", "ema")), RDIConfig(range_crop=(2, 30))])
def test_one_frame_path_equals_batch_for_every_background_and_crop_even_interleaved(config):
    user = make_users(1)[0]
    frames = simulate_clip(AD60, "pull_push", user, make_session(user, 0), seed=2).payloads
    batch = RDIProcessor(AD60, config).process_batch(frames)
    proc = RDIProcessor(AD60, config)
    mixed = []
    for i in range(0, len(frames), 10):   # batch chunks and single frames share the background state
        mixed.append(proc.process_batch(frames[i:i + 3]))
        mixed += [proc.process(f)[None] for f in frames[i + 3:i + 10]]
    assert np.array_equal(np.concatenate(mixed), batch)


def test_one_frame_path_with_several_antennas_and_fresh_output_arrays():
    prof = RadarCIRProfile(name="ad60x3", num_rx=3)
    frames = _scene(prof, lambda t: 0.3 - 0.5 * t, 30)
    batch = RDIProcessor(prof).process_batch(frames)
    proc = RDIProcessor(prof)
    outs = [proc.process(f) for f in frames]            # kept by the caller: never overwritten later
    assert np.array_equal(np.stack(outs), batch)


def test_output_is_described_by_an_rdi_profile():
    proc = RDIProcessor(AD60)
    out = proc.process(np.zeros(AD60.payload_shape, np.complex64))
    prof = proc.output_profile
    assert isinstance(prof, RDIProfile)
    assert out.dtype == np.float32 and out.shape == prof.payload_shape == (2, 32, 32)
    assert prof.frame_rate_hz == 40.0 and prof.range_resolution_m == pytest.approx(AD60.range_bin_m)
    cropped = RDIProcessor(AD60, RDIConfig(range_crop=(1, 25)))
    assert cropped.process(np.zeros(AD60.payload_shape, np.complex64)).shape == cropped.output_profile.payload_shape == (2, 32, 24)


def test_noise_floor_maps_to_zero():
    frames = _scene(AD60, lambda t: np.full(t.shape, np.nan), 60, physics=RadarPhysics(leakage_amplitude=0.0))
    rdi = RDIProcessor(AD60).process_batch(frames)[20:]
    # 10·log10 of an exponential variable has median 10·log10(ln 2) = -1.6 dB: -0.04 in 40 dB units
    assert np.median(rdi) == pytest.approx(10 * np.log10(np.log(2)) / 40, abs=0.01)


def test_approaching_target_lands_in_its_positive_doppler_bin_and_range_bin():
    v = -0.93                                                        # 3 Doppler bins toward the radar
    frames = _scene(AD60, lambda t: 0.40 + v * t, 6)
    rdi = RDIProcessor(AD60).process_batch(frames)[3, 0]
    d, r = np.unravel_index(np.argmax(rdi), rdi.shape)
    z_mid = 0.40 + v * (3 * AD60.frame_period_s + 16 * AD60.pulse_interval_s)
    assert d == 16 + round(abs(v) / AD60.velocity_resolution_mps) == 19
    assert abs(r - z_mid / AD60.range_bin_m) <= 1
    assert rdi[d, r] > 0.6                                          # > 24 dB above the noise floor


def test_leakage_and_static_clutter_are_removed():
    frames = _scene(AD60, lambda t: np.full(t.shape, 0.5), 80)       # static reflector + strong leakage
    rdi = RDIProcessor(AD60).process_batch(frames)
    # the largest of 1024 noise cells is ~ln(1024) = 8.4 dB above the mean floor (0.21); 80k cells: ~0.26
    assert rdi[0].max() < 0.3                                        # first frame: its own background
    assert rdi[1:].max() < 0.35                                      # never more than 14 dB above noise
    raw = RDIProcessor(AD60, RDIConfig(backgrounds=("none",))).process_batch(frames)
    assert raw[40, 0, 16, 0] > 1.2                                   # the leakage is ~60 dB without removal


def _hold_then_leave(t):
    """Approach to 20 cm by 0.5 s, hold still to 1.5 s, gone after 1.5 s."""
    z = np.where(t < 0.5, 0.6 - 0.8 * t, 0.2)
    return np.where(t > 1.5, np.nan, z)


def test_a_still_hand_stays_visible_with_ema_but_not_with_per_frame_mean():
    frames = _scene(AD60, _hold_then_leave, 100)
    tap = int(round(0.2 / AD60.range_bin_m))
    ema = RDIProcessor(AD60).process_batch(frames)[:, 0, 16, tap]
    mti = RDIProcessor(AD60, RDIConfig(backgrounds=("frame_mean",))).process_batch(frames)[:, 0, 16, tap]
    held = slice(22, 60)                                             # 0.55 s .. 1.5 s, hand perfectly still
    assert ema[held].min() > 0.5                                     # > 20 dB above noise for a whole second
    assert mti[held].max() < 0.25                                    # the per-frame mean erases it at once


def test_no_ghost_after_the_hand_leaves():
    frames = _scene(AD60, _hold_then_leave, 120)
    rdi = RDIProcessor(AD60).process_batch(frames)[:, 0]
    tap = int(round(0.2 / AD60.range_bin_m))
    assert rdi[62:, :, tap - 1:tap + 2].max() < 0.35                 # gone within 2 frames of leaving


def test_fmcw_profile_gets_a_range_fft_first():
    fmcw = RadarCIRProfile(name="fmcw-test", waveform="fmcw", carrier_hz=60e9, sample_rate_hz=2e6, bandwidth_hz=4e9,
                           num_taps=64, pulses_per_frame=32, pulse_interval_s=300e-6, frame_period_s=0.03,
                           chirp_slope_hz_per_s=4e9 / 64e-6)
    frames = _scene(fmcw, lambda t: 0.6 - 1.0 * t, 4)
    rdi = RDIProcessor(fmcw).process_batch(frames)[2, 0]
    d, r = np.unravel_index(np.argmax(rdi), rdi.shape)
    assert rdi.shape == (32, 64)
    assert d > 16 and abs(r - 0.57 / fmcw.range_bin_m) <= 1


def test_multi_rx_gives_one_channel_per_antenna_and_background():
    prof = RadarCIRProfile(name="ad60x3", num_rx=3)
    frames = _scene(prof, lambda t: 0.3 - 0.5 * t, 3)
    assert RDIProcessor(prof).process_batch(frames).shape == (3, 6, 32, 32)
    assert RDIProcessor(prof, RDIConfig(backgrounds=("ema",))).process_batch(frames).shape == (3, 3, 32, 32)


def test_user_mistakes_raise_profile_errors():
    with pytest.raises(ProfileError):
        RDIProcessor(load_profile("rdi32"))
    with pytest.raises(ProfileError):
        RDIProcessor(AD60).process_batch(np.zeros((2, 16, 32), np.complex64))
    with pytest.raises(ProfileError):
        RDIConfig(backgrounds=("median",))
    with pytest.raises(ProfileError):
        RDIProcessor(AD60, RDIConfig(range_crop=(10, 40)))


def test_magnitude_path_then_log_is_the_rdi_and_writes_into_out():
    user = make_users(1)[0]
    frames = simulate_clip(AD60, "swipe", user, make_session(user, 0), seed=4).payloads
    batch = RDIProcessor(AD60).process_batch(frames)
    proc = RDIProcessor(AD60)
    out = np.empty(batch.shape[1:], np.float32)
    for f, want in zip(frames, batch):
        mag = proc.process_magnitude(f, out)
        assert mag is out and (mag >= 0).all()
        assert np.array_equal(proc.log_rdi(mag.copy()), want)
        # the log mapping is monotone: profiles of |Y| map to the profiles of the RDI
        assert np.array_equal(proc.log_rdi(mag.max(axis=-1)), want.max(axis=-1))
        assert np.array_equal(proc.log_rdi(mag.max(axis=-2)), want.max(axis=-2))
    fmcw = RadarCIRProfile(name="fmcw-test", waveform="fmcw", carrier_hz=60e9, sample_rate_hz=2e6, bandwidth_hz=4e9,
                           num_taps=64, pulses_per_frame=32, pulse_interval_s=300e-6, frame_period_s=0.03,
                           chirp_slope_hz_per_s=4e9 / 64e-6)
    frames = _scene(fmcw, lambda t: 0.6 - 1.0 * t, 3)
    rdis = RDIProcessor(fmcw).process_batch(frames)
    proc = RDIProcessor(fmcw)
    assert all(np.array_equal(proc.log_rdi(proc.process_magnitude(f)), r) for f, r in zip(frames, rdis))
