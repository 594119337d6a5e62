"""The program generator's fast kernels against the direct numpy/scipy expressions they replace."""

import numpy as np
import pytest
from scipy import signal

from edgesense.sim.speaker_program import _biquad, _biquads, _partials, _ramp, _tanh, program


def test_ramp_is_bitwise_linspace():
    rng = np.random.default_rng(0)
    cases = [(0, 1, n) for n in range(400)] + [(1, 0, n) for n in range(400)]
    cases += [(1, float(s), int(n)) for s, n in zip(rng.uniform(0.3, 0.9, 300), rng.integers(0, 20000, 300))]
    cases += [(0.5, 0.5, 7), (2.0, -3.0, 1)]
    for a, b, n in cases:
        want, got = np.linspace(a, b, n), _ramp(a, b, n)
        assert got.shape == want.shape and np.array_equal(got.view(np.int64), want.view(np.int64)), (a, b, n)


def test_tanh_matches_numpy_to_rounding():
    y = np.concatenate([np.random.default_rng(1).uniform(-6, 6, 200_000), np.linspace(-1e-3, 1e-3, 2001),
                        [0.0, -0.0, 1e-300, -1e-300, 20.0, -20.0, 800.0]])
    got = y.copy()
    _tanh(got)
    assert np.max(np.abs(got - np.tanh(y))) <= 3e-16
    assert np.array_equal(np.signbit(got), np.signbit(np.tanh(y)))


@pytest.mark.parametrize("n", [1, 31, 32, 1000, 4801, 60_000, 192_000])
def test_partials_equal_the_direct_sum_of_sines(n):
    rng = np.random.default_rng(n)
    fs = 48_000.0
    f = rng.uniform(55, 2000)
    ks = [k for k in range(1, 8) if f * k < 12000]
    phases = list(rng.uniform(0, 2 * np.pi, len(ks)))
    gains = [1 / k ** 1.2 for k in ks]
    tt = np.arange(n) / fs
    want = sum(g * np.sin(2 * np.pi * f * k * tt + p) for k, p, g in zip(ks, phases, gains))
    got = _partials(n, [2 * np.pi * f * k / fs for k in ks], phases, gains)
    # the direct form's own argument rounding is ~ulp(2 pi 12 kHz * 4 s) = 6e-11 rad
    assert got.shape == (n,) and np.max(np.abs(got - want)) <= 1e-10 * sum(gains)


def test_biquad_cascade_equals_chained_lfilter():
    x = np.random.default_rng(2).standard_normal(20_000)
    sections = [_biquad("highshelf", 3000, 48_000.0, gain_db=-6), _biquad("peak", 700, 48_000.0, q=1.5, gain_db=8),
                _biquad("lowshelf", 90, 48_000.0, q=0.6, gain_db=-9)]
    want = x
    for b, a in sections:
        want = signal.lfilter(b, a, want)
    assert np.max(np.abs(_biquads(sections, x) - want)) <= 1e-12 * np.max(np.abs(want))


def test_program_into_a_row_equals_a_fresh_program():
    """``out=`` (a row of a batch, not zeroed) receives exactly the program a fresh call returns."""
    want, segs = program(3.0, np.random.default_rng(6), 48_000.0, max_volts=6.0, loud=True)
    batch = np.full((2, len(want)), np.nan)
    got, got_segs = program(3.0, np.random.default_rng(6), 48_000.0, max_volts=6.0, loud=True, out=batch[1])
    assert np.shares_memory(got, batch[1])
    assert np.array_equal(batch[1], want) and got_segs == segs
    with pytest.raises(ValueError):
        program(3.0, np.random.default_rng(6), 48_000.0, out=np.empty(len(want) - 1))
