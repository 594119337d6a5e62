"""Nonlinear micro-speaker simulator: small-signal accuracy, segment joins, physics, ranges."""

import numpy as np
import pytest

from edgesense.sim.speaker import SenseConfig, linear_x_over_u, sense, simulate
from edgesense.sim.speaker_params import (Nonlinearity, SCENARIOS, max_drive_volts, named_speaker,
                                          parse_speaker_spec)
from edgesense.sim.speaker_program import program

FS = 48_000.0


def _response(x: np.ndarray, f: float, amp: float, seconds: float) -> complex:
    """Complex gain of the steady-state sine in x (drive amp*sin(2 pi f t))."""
    n = int(seconds * FS)
    t = np.arange(len(x))[-n:] / FS
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    c = np.linalg.lstsq(basis, x[-n:], rcond=None)[0]
    return complex(c[0], c[1]) / amp


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("oversample,max_f,mag_tol,deg_tol", [(2, 1500, 1.35e-3, 0.052), (4, 4000, 3e-3, 0.025)])
def test_small_signal_matches_linear_transfer_function(oversample, max_f, mag_tol, deg_tol, dtype):
    sp = named_speaker("ref")                      # nonlinear speaker, driven at 1 mV: linear regime
    freqs = [f for f in (100.0, 400.0, 800.0, 1500.0, 4000.0) if f <= max_f]
    t = np.arange(int(0.15 * FS)) / FS
    amp = 1e-3
    u = np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs])
    res = simulate([sp] * len(freqs), u, oversample=oversample, thermal=False, dtype=dtype)
    for row, f in enumerate(freqs):
        measured = _response(res.x[row], f, amp, 0.1)
        expected = linear_x_over_u(sp, np.array([f]))[0]
        assert abs(abs(measured) / abs(expected) - 1) < mag_tol, f
        assert abs(np.degrees(np.angle(measured / expected))) < deg_tol, f


def test_segments_join_exactly():
    sp = named_speaker("lite4")
    u, _ = program(0.15, np.random.default_rng(3), FS, max_volts=max_drive_volts(sp.re))
    whole = simulate([sp], u[None], segment_s=None, thermal=False, oversample=1)
    cut = simulate([sp], u[None], segment_s=0.05, warmup_s=0.025, thermal=False, oversample=1)
    peak = np.max(np.abs(whole.x))
    assert peak > 0.1 * sp.xmax
    assert np.max(np.abs(cut.x - whole.x)) < 1e-6 * peak
    assert np.max(np.abs(cut.i - whole.i)) < 1e-6 * np.max(np.abs(whole.i))


def test_asymmetric_stiffness_gives_dc_offset_of_opposite_signs():
    base = named_speaker("ref")
    t = np.arange(int(0.3 * FS)) / FS
    u = 6.0 * np.sin(2 * np.pi * 700.0 * t) * np.minimum(1, t / 0.02)
    speakers = [base.replace(nonlinearity=Nonlinearity(k1=k1, k2=0.5)) for k1 in (0.2, -0.2)]
    res = simulate(speakers, np.stack([u, u]), thermal=False)
    offset = res.x[:, -int(0.1 * FS):].mean(axis=1)
    # stiffer outward (k1 > 0) pushes the rest position inward, and vice versa
    assert offset[0] < -1e-6 and offset[1] > 1e-6
    assert abs(offset[0] + offset[1]) < 0.2 * abs(offset[0])


def test_large_signal_compresses_excursion():
    sp = named_speaker("ref")
    t = np.arange(int(0.2 * FS)) / FS
    tone = np.sin(2 * np.pi * 300.0 * t) * np.minimum(1, t / 0.02)
    res = simulate([sp, sp], np.stack([0.1 * tone, 8.0 * tone]), thermal=False)
    gain_small = np.ptp(res.x[0, -4800:]) / 0.1
    gain_large = np.ptp(res.x[1, -4800:]) / 8.0
    assert gain_large < 0.97 * gain_small         # Bl drops and Kms rises away from rest


def test_hot_scenario_heats_the_coil_and_lowers_current():
    sp = named_speaker("ref")
    rng = np.random.default_rng(0)
    u, _ = program(4.0, rng, FS, max_volts=8.0, loud=True)
    hot = simulate([sp], u[None], ambient_c=SCENARIOS["hot"].ambient_c)
    cold = simulate([sp], u[None], thermal=False)
    assert hot.coil_c[0, -1] > 60.0
    assert hot.magnet_c[0, -1] < hot.coil_c[0, -1]
    assert hot.thermal_mismatch_k < 2.0
    late = slice(-int(1 * FS), None)
    assert np.std(hot.i[0, late]) < 0.9 * np.std(cold.i[0, late])


def test_leak_lowers_resonance():
    sp = named_speaker("ref")
    leaky = SCENARIOS["leak"].apply(sp)
    assert leaky.resonance_hz < 0.9 * sp.resonance_hz
    assert leaky.published() == sp.published()   # the datasheet does not know about the leak


def test_random_family_ranges_and_both_asymmetry_signs():
    speakers = parse_speaker_spec("random:40", seed=5)
    assert len({s.name for s in speakers}) == 40
    for s in speakers:
        assert 4 <= s.re <= 8 and 20e-6 <= s.le <= 100e-6 and 0.5 <= s.bl <= 1.5
        assert 0.05e-3 <= s.mms <= 0.2e-3 and 600 <= s.resonance_hz <= 1000 and 1 <= s.qms <= 5
        assert 0.3e-3 <= s.xmax <= 0.6e-3
        assert abs(s.published().bl / s.bl - 1) <= 0.1 + 1e-12
    k1 = np.array([s.nonlinearity.k1 for s in speakers])
    assert (k1 > 0).any() and (k1 < 0).any()
    assert parse_speaker_spec("random:3", seed=5)[0] == speakers[0]


def test_sense_quantises_and_clips():
    cfg = SenseConfig()
    u = np.linspace(-12, 12, 1001)
    i = np.linspace(-2, 2, 1001)
    vs, is_ = sense(u, i, np.random.default_rng(0), cfg)
    lsb_v = 2 * cfg.v_range / 2 ** 16
    assert np.allclose(vs / lsb_v, np.round(vs / lsb_v))
    assert vs.max() <= cfg.v_range and is_.min() >= -cfg.i_range
    inside = np.abs(u) < 9
    assert np.max(np.abs(vs[inside] - u[inside])) < 6 * cfg.v_noise + lsb_v


def test_sense_into_payload_columns_equals_a_plain_call():
    """Sensing into float32 payload columns with a scratch buffer (several chunks, a short last one)
    gives the same values as a plain call with the same seed; the noise is drawn chunk by chunk, so
    a prefix of whole chunks is sensed the same alone."""
    rng = np.random.default_rng(3)
    n = 2 * 65536 + 1234
    u = rng.uniform(-11, 11, n)
    i = rng.uniform(-1.7, 1.7, n).astype(np.float32)
    want_v, want_i = sense(u, i, np.random.default_rng(9))
    assert want_v.dtype == np.float32 and want_i.dtype == np.float32
    frames = np.empty((n, 3), dtype=np.float32)
    sense(u, i, np.random.default_rng(9), out_v=frames[:, 0], out_i=frames[:, 1],
          scratch=np.empty(65536, dtype=np.float32))
    assert np.array_equal(frames[:, 0], want_v) and np.array_equal(frames[:, 1], want_i)
    head_v, _ = sense(u[:65536], i[:65536], np.random.default_rng(9))
    assert np.array_equal(head_v, want_v[:65536])
    with pytest.raises(ValueError, match="scratch"):
        sense(u, i, np.random.default_rng(9), scratch=np.empty(65536))         # float64 scratch


@pytest.mark.parametrize("m", [1, 2, 4097, 2 ** 20])
def test_box_muller_draws_are_standard_normal(m):
    from scipy import stats

    from edgesense.sim.speaker import _normal32

    z = _normal32(np.random.default_rng(12).bit_generator, np.full(m, np.nan, dtype=np.float32))
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) < 5.7          # every value written; 23-bit tails
    if m == 2 ** 20:
        z = z.astype(np.float64)
        assert abs(z.mean()) < 5e-3 and abs(z.std() - 1) < 3e-3
        assert abs(np.mean(z ** 4) - 3) < 0.03 and abs(np.mean(z ** 3)) < 0.01
        assert abs(np.corrcoef(z[:m // 2], z[m // 2:])[0, 1]) < 5e-3       # the cos and sin halves
        assert stats.kstest(z, "norm").pvalue > 0.01


def test_sense_noise_has_the_configured_rms():
    cfg = SenseConfig()
    n = 200_000
    vs, is_ = sense(np.full(n, 1.23456), np.full(n, -0.345, dtype=np.float32), np.random.default_rng(2), cfg)
    lsb_v, lsb_i = 2 * cfg.v_range / 2 ** 16, 2 * cfg.i_range / 2 ** 16
    # rounding adds lsb^2 / 12 to the noise power
    assert np.std(vs) == pytest.approx(np.sqrt(cfg.v_noise ** 2 + lsb_v ** 2 / 12), rel=0.01)
    assert np.std(is_) == pytest.approx(np.sqrt(cfg.i_noise ** 2 + lsb_i ** 2 / 12), rel=0.01)
    assert abs(np.mean(vs) - 1.23456) < 5 * cfg.v_noise / np.sqrt(n) + lsb_v / 10


def test_thermal_mean_squares_in_chunks_equal_the_whole_signal():
    """The thermal pre-pass filters and squares chunk by chunk (state carried): the same per-step means,
    bitwise, as filtering the whole signal at once, for float64 input through the linear current
    filter and for a float32 current."""
    from scipy import signal

    from edgesense.sim.speaker import _SQ_CHUNK, THERMAL_STEP, _linear_current_filter, _step_mean_squares

    n = 2 * _SQ_CHUNK + 3 * THERMAL_STEP + 17                 # a partial last chunk and a partial last step
    u = np.random.default_rng(4).standard_normal(n) * 3
    edges = np.arange(0, n, THERMAL_STEP)
    counts = np.diff(np.append(edges, n)).astype(float)
    ba = _linear_current_filter(named_speaker("ref"), FS)
    want = np.add.reduceat(signal.lfilter(*ba, u) ** 2, edges) / counts
    assert np.array_equal(_step_mean_squares(u, ba), want)
    i32 = (u / 8).astype(np.float32)
    assert np.array_equal(_step_mean_squares(i32), np.add.reduceat(i32 * i32, edges) / counts)


def test_program_levels_and_determinism():
    a, segs = program(6.0, np.random.default_rng(1), FS, max_volts=5.0)
    b, _ = program(6.0, np.random.default_rng(1), FS, max_volts=5.0)
    assert np.array_equal(a, b)
    assert len(a) == int(6 * FS) and np.max(np.abs(a)) <= 5.0 + 1e-9
    assert segs[0][1] == 0 and segs[-1][2] == len(a)
    loud, loud_segs = program(6.0, np.random.default_rng(2), FS, max_volts=8.0, loud=True)
    assert all(kind != "silence" for kind, _, _ in loud_segs)
    assert np.sqrt(np.mean(loud ** 2)) > np.sqrt(np.mean(a ** 2)) * 8 / 5 * 0.8


def test_batch_rows_are_independent_with_heating():
    sp, other = named_speaker("ref"), named_speaker("lite4")
    u = np.random.default_rng(4).standard_normal((3, int(0.3 * FS))) * np.array([[3.0], [2.0], [1.0]])
    batch = simulate([sp, other, sp], u, ambient_c=[45.0, 25.0, 25.0], segment_s=0.05)
    alone = simulate([other], u[1:2], segment_s=0.05)
    assert batch.coil_c[0, -1] > batch.coil_c[2, -1]
    assert np.array_equal(batch.i[1], alone.i[0]) and np.array_equal(batch.x[1], alone.x[0])


def test_large_signal_converges_with_oversampling():
    sp = named_speaker("ref")
    t = np.arange(int(0.1 * FS)) / FS
    f = 150.0 * np.exp(t / 0.1 * np.log(6))                  # 8 V sweep 150-900 Hz: near Xmax
    u = 8.0 * np.sin(2 * np.pi * np.cumsum(f) / FS)
    x2, x4 = (simulate([sp], u[None], thermal=False, oversample=k).x[0] for k in (2, 4))
    assert np.max(np.abs(x4)) > 0.6 * sp.xmax
    assert np.max(np.abs(x2 - x4)) < 2e-3 * np.max(np.abs(x4))


def test_live_source_frames_follow_the_profile():
    from edgesense.profiles import load_profile
    from edgesense.sim.speaker import live_payloads

    profile = load_profile("speaker-ref")
    payload = live_payloads(profile, seed=1, scenario="hot", loop="0.2")
    first = payload(0)
    assert first.shape == profile.payload_shape and first.dtype == np.float32
    assert np.array_equal(payload(200), first)                 # 0.2 s loop of 1 ms frames
    assert np.max(np.abs(np.stack([payload(k) for k in range(200)])[..., 0])) > 1.0
    with pytest.raises(Exception, match="unknown speaker simulator option"):
        live_payloads(profile, colour="red")


def _reference_run(sp, u48, oversample):
    """The integration scheme written out plainly, one scalar step at a time (no thermal drift, one segment)."""
    from scipy import signal

    from edgesense.sim.speaker_params import XI_CLIP

    q = sp.nonlinearity
    h = 1.0 / (FS * oversample)
    a = h / 2
    beta2 = a * sp.r2 / (sp.l2 + a * sp.r2)
    c2 = 1 - beta2
    u = np.append(signal.resample_poly(u48, oversample, 1) if oversample > 1 else u48, 0.0)
    i = i2 = x = v = 0.0
    out_i, out_x = np.empty(len(u48)), np.empty(len(u48))
    for k in range(len(u48)):
        out_i[k], out_x[k] = i, x
        for m in range(oversample):
            j = k * oversample + m
            xi = min(max((x + a * v) / sp.xmax, -XI_CLIP), XI_CLIP)
            bl = sp.bl * (1 + xi * (q.b1 + xi * (q.b2 + xi * (q.b3 + xi * q.b4))))
            le = sp.le * (1 + xi * (q.l1 + xi * q.l2))
            dle = sp.le * (q.l1 + 2 * q.l2 * xi) / sp.xmax
            t = x / sp.xmax
            fk = sp.kms * (1 + t * (q.k1 + t * q.k2)) * x
            kt = sp.kms * (1 + t * (2 * q.k1 + 3 * q.k2 * t))
            hh = bl + dle * i
            a11 = le + a * (sp.re + sp.r2 * c2 + dle * v)
            a22 = sp.mms + a * sp.rms + a * a * kt
            b1 = le * i + a * (u[j] + u[j + 1] - sp.re * i - sp.r2 * c2 * (i - 2 * i2) - bl * v)
            b2 = (sp.mms - a * sp.rms) * v + a * bl * i - 2 * a * fk - a * a * kt * v
            det = a11 * a22 + a * a * hh * hh
            i_new = (b1 * a22 - a * hh * b2) / det
            v_new = (a11 * b2 + a * hh * b1) / det
            x += a * (v + v_new)
            i2 = c2 * i2 + beta2 * (i + i_new - i2)
            i, v = i_new, v_new
    return out_i, out_x


@pytest.mark.parametrize("oversample", [1, 2])
def test_vectorised_integrator_equals_the_scheme_written_out(oversample):
    """The batched, scaled-state integrator computes the documented step (to the float32 rounding of
    its outputs), near Xmax too."""
    sp = named_speaker("lite4")
    u, _ = program(0.03, np.random.default_rng(8), FS, max_volts=max_drive_volts(sp.re), loud=True)
    res = simulate([sp, named_speaker("ref")], np.stack([u, 0.5 * u]), thermal=False, segment_s=None,
                   oversample=oversample)
    ref_i, ref_x = _reference_run(sp, u, oversample)
    assert np.max(np.abs(ref_x)) > 0.5 * sp.xmax                 # the nonlinear range is exercised
    assert np.max(np.abs(res.x[0] - ref_x)) < 1e-7 * np.max(np.abs(ref_x))
    assert np.max(np.abs(res.i[0] - ref_i)) < 1e-7 * np.max(np.abs(ref_i))


@pytest.mark.parametrize("scenario", ["hot", "leak"])
def test_float32_integrator_matches_float64(scenario):
    """The float32 integrator (the dataset writer's) stays within 4e-6 of the float64 run's peak over
    a loud 1.5 s program with heating, near Xmax (2e-6 measured on the 480 s benchmark job)."""
    sc = SCENARIOS[scenario]
    sps = [sc.apply(s) for s in (named_speaker("lite4"), *parse_speaker_spec("random:2", seed=3))]
    u = np.stack([program(1.5, np.random.default_rng([k, 5]), FS, max_volts=max_drive_volts(s.re), loud=True)[0]
                  for k, s in enumerate(sps)])
    ref = simulate(sps, u, ambient_c=sc.ambient_c)
    res = simulate(sps, u, ambient_c=sc.ambient_c, dtype=np.float32)
    assert np.max(np.abs(ref.x[0])) > 0.5 * sps[0].xmax
    for r in range(len(sps)):
        assert np.max(np.abs(res.x[r] - ref.x[r])) < 4e-6 * np.max(np.abs(ref.x[r])), r
        assert np.max(np.abs(res.i[r] - ref.i[r])) < 4e-6 * np.max(np.abs(ref.i[r])), r
    assert np.max(np.abs(res.coil_c - ref.coil_c)) < 1e-4
