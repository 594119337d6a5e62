"""Online impedance tracking: causal, block-size invariant, follows heating and leaks."""

import numpy as np
import pytest

from edgesense.sim.speaker import sense, simulate
from edgesense.sim.speaker_params import SCENARIOS, Nonlinearity, named_speaker
from edgesense.speaker.linear import predict_linear
from edgesense.speaker.tracking import ImpedanceTracker, TrackerConfig, levenberg_marquardt, track

FS = 48_000.0
REF = named_speaker("ref").replace(nonlinearity=Nonlinearity())


def _run(sp, seconds=2.0, level=1.0, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(int(seconds * FS)) * level
    res = simulate([sp], u[None], thermal=False)
    v, i = sense(res.u[0], res.i[0], rng)
    return v, i, res.x[0] * 1e3


def _in_random_blocks(tracker, v, i, seed, longest):
    """Feed v/i to ``tracker`` in random block sizes 1..longest-1; the concatenated predictions."""
    rng = np.random.default_rng(seed)
    parts, pos = [], 0
    while pos < len(v):
        n = int(rng.integers(1, longest))
        parts.append(tracker.process(v[pos:pos + n], i[pos:pos + n]))
        pos += n
    return np.concatenate(parts)


def test_streaming_in_any_blocks_equals_batch():
    v, i, _ = _run(REF, seconds=1.2)
    whole = track(v, i, REF.true_params())
    assert len(whole.history) >= 2
    tracker = ImpedanceTracker(REF.true_params())
    assert np.array_equal(_in_random_blocks(tracker, v, i, seed=1, longest=700), whole.x_mm)
    assert tracker.segments <= tracker.window_segments and tracker._svv.shape[0] == tracker.window_segments  # bounded


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


def test_mass_anchor_follows_a_heated_magnet_that_the_datasheet_bl_misses():
    # the magnet heated by ~40 K: Bl 5 % below the datasheet; mass, stiffness and damping unchanged
    warm = REF.replace(bl=REF.bl * 0.95, datasheet=REF.true_params())
    v, i, x = _run(warm, seconds=3.0)
    late = slice(-int(FS), None)
    errs = {}
    for anchor in ("mms", "bl"):
        cfg = TrackerConfig(bl_anchor=anchor, bl_smoothing=0.5)
        res = track(v, i, warm.published(), config=cfg)
        errs[anchor] = np.sqrt(np.mean((res.x_mm[late] - x[late]) ** 2))
        if anchor == "mms":
            assert abs(res.history[-1].bl / warm.bl - 1) < 0.015
            assert abs(res.history[-1].mms / warm.mms - 1) < 0.03
        else:
            assert res.history[-1].bl == REF.bl
    assert errs["mms"] < 0.5 * errs["bl"]


def test_levenberg_marquardt_finds_the_least_squares_minimum():
    from scipy import optimize

    rng = np.random.default_rng(3)
    t = np.linspace(0, 3, 80)
    y = 2.0 * np.exp(-1.3 * t) + 0.5 + 0.01 * rng.standard_normal(t.size)

    def fun(p):
        return p[0] * np.exp(-p[1] * t) + p[2] - y

    def jac(p):
        e = np.exp(-p[1] * t)
        return np.stack([e, -p[0] * t * e, np.ones_like(t)], axis=1)

    x, r = levenberg_marquardt(fun, jac, np.array([1.0, 0.5, 0.0]), max_nfev=50)
    ref = optimize.least_squares(fun, [1.0, 0.5, 0.0], jac=jac, method="lm")
    assert np.allclose(x, ref.x, atol=1e-5) and np.allclose(r, fun(x))
    assert levenberg_marquardt(lambda p: np.full(3, np.nan), jac, np.zeros(3), 10) is None


@pytest.mark.parametrize("delay", [96, 2400])
def test_delayed_refit_is_spread_over_calls_applied_later_and_block_size_invariant(monkeypatch, delay):
    """refit_delay: the same fits, applied ``delay`` samples after their boundaries, their solver
    evaluations spread one per call (what is left when the delay is too short for all of them runs
    in the block where the refit takes effect); any block sizes give the same output."""
    from edgesense.errors import ProfileError
    from edgesense.speaker import tracking

    hot_leaky = REF.replace(re=REF.re * 1.25, kms=REF.kms * 0.7, rms=REF.rms * 1.6, datasheet=REF.true_params())
    v, i, _ = _run(hot_leaky, seconds=1.6)
    params = hot_leaky.published()
    cfg = TrackerConfig(refit_delay=delay)
    now = track(v, i, params)
    later = track(v, i, params, config=cfg)
    assert len(later.history) == len(now.history) >= 2
    every = ImpedanceTracker(params).update_every
    assert [h.sample for h in later.history] == [h.sample + delay for h in now.history]
    assert all(h.sample % every == delay for h in later.history)
    # the first refit is the same fit, it only takes effect later: equal output up to its boundary
    b = now.history[0].sample
    first_now, first_later = now.history[0].to_dict(), later.history[0].to_dict()
    first_now.pop("sample"), first_later.pop("sample")
    assert first_now == first_later
    assert np.array_equal(later.x_mm[:b], now.x_mm[:b]) and not np.array_equal(later.x_mm[b:b + delay],
                                                                                  now.x_mm[b:b + delay])
    evals = {"n": 0}
    for name in ("residuals", "jacobian"):
        inner = getattr(tracking._ImpedanceFit, name)

        def counted(self, theta, inner=inner):
            evals["n"] += 1
            return inner(self, theta)
        monkeypatch.setattr(tracking._ImpedanceFit, name, counted)
    tracker = ImpedanceTracker(params, config=cfg)
    applies = {h.sample for h in later.history}
    per_call, parts = [], []
    for k in range(0, len(v), 48):
        before = evals["n"]
        parts.append(tracker.process(v[k:k + 48], i[k:k + 48]))
        if not any(k < a <= k + 48 for a in applies):      # blocks where no refit takes effect
            per_call.append(evals["n"] - before)
    assert np.array_equal(np.concatenate(parts), later.x_mm)
    assert max(per_call) <= 1
    if delay >= 48 * 40:   # room for every step: the evaluations ran one per call before the refit took effect
        assert sum(per_call) >= 4 * len(later.history)
    tracker = ImpedanceTracker(params, config=cfg)
    assert np.array_equal(_in_random_blocks(tracker, v, i, seed=4, longest=900), later.x_mm)
    for bad in (-1, every):
        with pytest.raises(ProfileError):
            ImpedanceTracker(params, config=TrackerConfig(refit_delay=bad))
