"""Online impedance tracking: causal, block-size invariant, follows heating and leaks."""

import numpy as np

from edgesense.sim.speaker import sense, simulate
from edgesense.sim.speaker_params import SCENARIOS, Nonlinearity, named_speaker
from edgesense.speaker.linear import predict_linear
from edgesense.speaker.tracking import ImpedanceTracker, track

FS = 48_000.0
REF = named_speaker("ref").replace(nonlinearity=Nonlinearity())


def _run(sp, seconds=2.0, level=1.0, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(int(seconds * FS)) * level
    res = simulate([sp], u[None], thermal=False)
    v, i = sense(res.u[0], res.i[0], rng)
    return v, i, res.x[0] * 1e3


def test_streaming_in_any_blocks_equals_batch():
    v, i, _ = _run(REF, seconds=1.2)
    whole = track(v, i, REF.true_params())
    assert len(whole.history) >= 2
    tracker = ImpedanceTracker(REF.true_params())
    rng = np.random.default_rng(1)
    parts, pos = [], 0
    while pos < len(v):
        n = int(rng.integers(1, 700))
        parts.append(tracker.process(v[pos:pos + n], i[pos:pos + n]))
        pos += n
    assert np.array_equal(np.concatenate(parts), whole.x_mm)
    assert len(tracker._spectra) <= tracker.window_segments       # bounded state


def test_identifies_a_hot_coil_and_a_leak():
    hot_leaky = REF.replace(re=REF.re * 1.25, kms=REF.kms * 0.7, rms=REF.rms * 1.6, datasheet=REF.true_params())
    v, i, x = _run(hot_leaky, seconds=2.0)
    res = track(v, i, hot_leaky.published())
    last = res.history[-1]
    assert abs(last.re / hot_leaky.re - 1) < 0.02
    assert abs(last.coil_c - (25 + 0.25 / 0.00393)) < 6
    assert abs(last.resonance_hz / hot_leaky.resonance_hz - 1) < 0.03
    assert abs(last.kms / hot_leaky.kms - 1) < 0.08
    late = slice(-int(0.5 * FS), None)
    err_track = np.sqrt(np.mean((res.x_mm[late] - x[late]) ** 2))
    err_datasheet = np.sqrt(np.mean((predict_linear(i, hot_leaky.published())[late] - x[late]) ** 2))
    assert err_track < 0.5 * err_datasheet


def test_silence_keeps_the_datasheet_model():
    tracker = ImpedanceTracker(REF.true_params(), keep_history=True)
    quiet = np.random.default_rng(0).standard_normal(int(FS)) * 1e-4
    tracker.process(quiet, quiet / 8)
    assert tracker.updates == 0 and np.allclose(tracker.theta, tracker._theta_ds)
    assert SCENARIOS["nominal"].ambient_c == 25.0


def test_fast_filter_path_matches_scipy_lfilter():
    from scipy import signal

    from edgesense.speaker.tracking import _lfilter

    b, a = signal.bilinear([1e3], [1.6e-4, 0.3, 4060.0], FS)
    b, a = b / a[0], a / a[0]
    x = np.random.default_rng(0).standard_normal(300)
    zi = np.array([0.1, -0.2])
    y_ref, z_ref = signal.lfilter(b, a, x, zi=zi)
    y, z = _lfilter(b, a, x, zi.copy())
    assert np.allclose(y, y_ref, rtol=0, atol=1e-12) and np.allclose(z, z_ref, rtol=0, atol=1e-12)
