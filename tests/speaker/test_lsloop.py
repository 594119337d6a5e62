"""The compiled large-signal kernel (edgesense/speaker/_lsloop.c): bit-identical to the Python loop, selection, errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesense.errors import EdgesenseError
from edgesense.sim.speaker import simulate
from edgesense.sim.speaker_params import max_drive_volts, named_speaker
from edgesense.sim.speaker_program import program
from edgesense.speaker import largesignal
from edgesense.speaker.largesignal import (
    XI_CLIP,
    LargeSignalEstimator,
    LargeSignalParams,
    use_kernel,
)

FS = 48_000.0
lsloop = largesignal._lsloop
needs_kernel = pytest.mark.skipif(lsloop is None, reason="the compiled kernel edgesense.speaker._lsloop is not built "
                                                         "(no C compiler at install time)")
COMPILER = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)

SHAPED = LargeSignalParams(bl=0.9, mms=1.2e-4, rms=0.28, kms=3500.0, xmax=4e-4, bl_shape=(-0.12, -0.35, 0.06, 0.03),
                           k_shape=(0.09, 0.45), le_slope=(-3e-6, 1.5e-6))
SHAPE_FREE = LargeSignalParams.linear(bl=0.8, mms=9e-5, rms=0.25, kms=2900.0)
# strong asymmetric shapes: at the currents below the excursion goes well past 1.6 Xmax on both sides
WILD = LargeSignalParams(bl=1.4, mms=6e-5, rms=0.15, kms=1500.0, xmax=3e-4, bl_shape=(0.3, -0.2, -0.1, 0.01),
                         k_shape=(-0.2, 0.1), le_slope=(8e-6, -5e-6))


def _p(params: LargeSignalParams) -> tuple:
    return LargeSignalEstimator(params, follow=False)._p


def _both(i: np.ndarray, p: tuple, state=(0.0, 0.0, 0.0)):
    """(out, state) of the Python loop and of the kernel from the same start."""
    a, b = np.full(len(i), np.nan), np.full(len(i), -1.0)
    sa, sb = list(state), list(state)
    largesignal._integrate(i, sa, p, a)
    lsloop.integrate(i, sb, p, b)
    return (a, sa), (b, sb)


def _same(r1, r2) -> None:
    (a, sa), (b, sb) = r1, r2          # (a run that diverges must diverge alike: inf and nan where the loop has them)
    assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(np.array(sa), np.array(sb), equal_nan=True) and all(type(s) is float for s in sb)


def test_kernel_is_built_where_a_c_compiler_is():
    """CI must not silently fall back to the Python loop: with a compiler present the extension was built."""
    if COMPILER is None:
        pytest.skip("no C compiler on PATH: the Python loop is the expected fallback")
    assert lsloop is not None, f"{COMPILER} is on PATH but edgesense.speaker._lsloop did not build (see pip's log)"


@needs_kernel
@pytest.mark.parametrize("params", [SHAPED, SHAPE_FREE, WILD], ids=["shaped", "shape-free", "clipped"])
@pytest.mark.parametrize("n", [1, 47, 4801])
def test_kernel_is_bit_identical_to_the_python_loop(params, n):
    rng = np.random.default_rng(n)
    amp = 3.0 if params is WILD else 0.5
    i = amp * np.sin(2 * np.pi * 300.0 * np.arange(n) / FS) + 0.1 * rng.standard_normal(n)
    r_py, r_c = _both(i, _p(params))
    _same(r_py, r_c)
    if params is WILD and n > 1000:           # the clip at +-1.6 Xmax was exercised on both sides
        xi = r_c[0] / params.xmax
        assert xi.max() > XI_CLIP and xi.min() < -XI_CLIP


@needs_kernel
def test_zero_current_empty_block_and_carried_state():
    p = _p(SHAPED)
    _same(*_both(np.zeros(500), p))                                      # at rest: stays at rest
    ringing = (2e-4, -0.05, 0.3)
    _same(*_both(np.zeros(501), p, ringing))                             # free decay from a state
    _same(*_both(np.zeros(3), p, (-1.0, -1.0, -1)))                       # (-1.0: the C API's error value; an int)
    (a, sa), (b, sb) = _both(np.zeros(0), p, ringing)                    # empty block: state untouched
    assert a.size == b.size == 0 and sa == sb == list(ringing)
    # state carried across calls of odd sizes equals one call over the whole signal (both loops)
    i = 0.4 * np.random.default_rng(2).standard_normal(3001)
    whole, _ = _both(i, p)
    parts, st_py, st_c, pos = [], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0
    for size in (1, 0, 2, 47, 48, 999, 1904):
        a, b = np.empty(size), np.empty(size)
        largesignal._integrate(i[pos:pos + size], st_py, p, a)
        lsloop.integrate(i[pos:pos + size], st_c, p, b)
        assert np.array_equal(a, b) and st_py == st_c
        parts.append(b)
        pos += size
    assert pos == len(i) and np.array_equal(np.concatenate(parts), whole[0]) and st_c == whole[1]


@needs_kernel
def test_non_finite_current_propagates_alike():
    i = np.array([0.1, 0.2, np.nan, 0.1, np.inf, -np.inf, 0.0])
    (a, sa), (b, sb) = _both(i, _p(SHAPED))
    assert np.array_equal(a, b, equal_nan=True) and np.array_equal(sa, sb, equal_nan=True)
    assert np.isfinite(a[:2]).all() and np.isnan(a[2:]).all()


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(bl=st.floats(0.3, 2.0), fres=st.floats(300.0, 1500.0), q=st.floats(0.5, 8.0), mms=st.floats(3e-5, 3e-4),
       shapes=st.lists(st.floats(-1.0, 1.0), min_size=8, max_size=8), amp=st.floats(0.0, 5.0),
       n=st.integers(0, 300), seed=st.integers(0, 2**31))
def test_kernel_matches_for_random_parameters(bl, fres, q, mms, shapes, amp, n, seed):
    kms = mms * (2 * np.pi * fres) ** 2
    params = LargeSignalParams(bl=bl, mms=mms, rms=float(np.sqrt(kms * mms)) / q, kms=kms, xmax=4e-4,
                               bl_shape=tuple(shapes[:4]), k_shape=tuple(shapes[4:6]),
                               le_slope=(shapes[6] * 1e-5, shapes[7] * 1e-5))
    rng = np.random.default_rng(seed)
    state = tuple((rng.standard_normal(3) * (1e-4, 0.1, 0.5)).tolist())
    _same(*_both(amp * rng.standard_normal(n), _p(params), state))


@pytest.fixture(scope="module")
def loud_lite4_2s():
    """2 s of loud program through the simulated lite4 (coil at ambient): speaker, voltage, current (A)."""
    sp = named_speaker("lite4")
    u, _ = program(2.0, np.random.default_rng(11), FS, max_volts=max_drive_volts(sp.re), loud=True)
    res = simulate([sp], u[None], FS, thermal=False)
    return sp, res.u[0], res.i[0].astype(np.float64)


@pytest.fixture
def restore_kernel():
    before = largesignal.KERNEL
    yield
    use_kernel(before)


@needs_kernel
def test_estimator_with_drift_following_is_bit_identical(loud_lite4_2s, restore_kernel):
    """Through LargeSignalEstimator with the tracker (scales change at its update boundaries), blocks of 48."""
    sp, u, i = loud_lite4_2s
    nl = sp.nonlinearity
    params = LargeSignalParams(bl=sp.bl, mms=sp.mms, rms=sp.rms, kms=sp.kms, xmax=sp.xmax,
                               bl_shape=(nl.b1, nl.b2, nl.b3, nl.b4), k_shape=(nl.k1, nl.k2),
                               le_slope=(sp.le * nl.l1, sp.le * nl.l2),
                               tracker_reference={"bl": sp.bl, "kms_per_mms": sp.kms / sp.mms,
                                                  "rms_per_mms": sp.rms / sp.mms})
    n = 40_000                                  # past three tracker updates
    runs = {}
    for kernel in ("python", "c"):
        use_kernel(kernel)
        assert largesignal.KERNEL == kernel
        est = LargeSignalEstimator(params, sp.true_params(), FS)
        out = np.concatenate([est.process(u[k:k + 48], i[k:k + 48]) for k in range(0, n, 48)])
        runs[kernel] = (out, est.scales, list(est._state))
    assert runs["c"][1] != (1.0, 1.0, 1.0)      # the parameters did move during the run
    assert np.array_equal(runs["python"][0], runs["c"][0])
    assert runs["python"][1:] == runs["c"][1:]


@needs_kernel
def test_bad_buffers_raise_clear_errors():
    p = _p(SHAPED)
    i, out = np.zeros(10), np.zeros(10)
    with pytest.raises(TypeError, match="float64"):
        lsloop.integrate(i.astype(np.float32), [0.0, 0.0, 0.0], p, out)
    with pytest.raises(TypeError, match="C-contiguous"):
        lsloop.integrate(np.zeros(20)[::2], [0.0, 0.0, 0.0], p, out)
    with pytest.raises(TypeError, match="writable"):
        ro = np.zeros(10)
        ro.flags.writeable = False
        lsloop.integrate(i, [0.0, 0.0, 0.0], p, ro)
    with pytest.raises(TypeError, match="1-D"):
        lsloop.integrate(np.zeros((2, 5)), [0.0, 0.0, 0.0], p, out)
    with pytest.raises(ValueError, match="differ in length: 10 vs 9"):
        lsloop.integrate(i, [0.0, 0.0, 0.0], p, np.zeros(9))
    with pytest.raises(ValueError, match="state"):
        lsloop.integrate(i, [0.0, 0.0], p, out)
    with pytest.raises(TypeError):
        lsloop.integrate(i, (0.0, 0.0, 0.0), p, out)                     # state must be a list
    with pytest.raises(TypeError):
        lsloop.integrate(i, [0.0, 0.0, 0.0], p[:-1], out)                # 16 parameters
    with pytest.raises(TypeError):
        lsloop.integrate(i, [0.0, "x", 0.0], p, out)
    assert not out.any()                                                 # nothing written on an error


def test_estimator_converts_any_current_layout(restore_kernel):
    """float32, strided and 2-D current blocks give what their contiguous float64 copy gives (either loop)."""
    i = 0.3 * np.random.default_rng(4).standard_normal(2000)
    ref = LargeSignalEstimator(SHAPED, follow=False).process(None, i)
    for layout in (np.repeat(i, 2)[::2], i.reshape(40, 50), np.asfortranarray(i.reshape(40, 50)).T.T,
                   np.asfortranarray(i.reshape(50, 40)).T.T.reshape(-1)):
        got = LargeSignalEstimator(SHAPED, follow=False).process(None, layout)
        assert np.array_equal(got, ref)
    f32 = LargeSignalEstimator(SHAPED, follow=False).process(None, i.astype(np.float32))
    assert np.array_equal(f32, LargeSignalEstimator(SHAPED, follow=False).process(None, i.astype(np.float32)
                                                                                     .astype(np.float64)))


def test_kernel_selection(restore_kernel, monkeypatch):   # (monkeypatch undone first)
    with pytest.raises(EdgesenseError, match="'c' or 'python'"):
        use_kernel("fortran")
    use_kernel("python")
    assert largesignal.KERNEL == "python" and largesignal._kernel is largesignal._integrate
    monkeypatch.setattr(largesignal, "_lsloop", None)
    with pytest.raises(EdgesenseError, match="not built"):
        use_kernel("c")
    assert largesignal.KERNEL == "python"


@pytest.mark.parametrize("value, expected", [("1", "python"), ("0", "c"), ("", "c")])
def test_environment_variable_forces_the_python_loop(value, expected):
    if lsloop is None:
        expected = "python"
    env = dict(os.environ, EDGESENSE_PURE_PYTHON=value)
    res = subprocess.run([sys.executable, "-c", "from edgesense.speaker import largesignal; print(largesignal.KERNEL)"],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert res.stdout.strip() == expected


ROOT = Path(__file__).resolve().parents[2]


@needs_kernel
def test_bench_excursion_times_a_calibration_with_both_loops():
    """tools/bench_excursion.py --model CAL.json --kernel-ab: the network rows' breakdown for the estimator, both
    loops interleaved, every block's excursion identical (no timing asserted)."""
    cal = ROOT / "models" / "speaker_calibration" / "ref.json"
    r = subprocess.run([sys.executable, "tools/bench_excursion.py", "--model", str(cal), "--blocks", "300",
                        "--repeat", "1", "--kernel-ab", "--json"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["largesignal_kernel"] == "c" and d["backend"] == "large-signal estimator"
    assert {"everything", "tracker", "network", "invoke", "everything@python", "network@python",
            "invoke@python"} <= set(d["stages"])
    assert d["tracker_in_everything"] and d["kernel_ab"]["mismatched_blocks"] == 0
    kinds = d["everything_by_block_kind"]
    assert sum(k["blocks"] for k in kinds.values()) == 300
    # the estimator's tracker restarts with the timed blocks (the pipeline resets it after the warm-up's seq
    # gap): its first update boundary, 12288 samples in, ends the 256th block, the only refit block of 300
    assert kinds["refit"]["blocks"] == 1
    assert d["kernel_ab"]["real_time_factor_cpu_python"] == pytest.approx(d["stages"]["everything@python"]["cpu_rtf"])

