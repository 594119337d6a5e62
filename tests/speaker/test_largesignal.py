"""Calibrated large-signal excursion estimator: integration, identification, streaming, calibration files."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgesense.errors import EdgesenseError
from edgesense.profiles import SpeakerParams
from edgesense.sim.speaker import simulate
from edgesense.sim.speaker_params import SCENARIOS, max_drive_volts, named_speaker
from edgesense.sim.speaker_program import program
from edgesense.speaker.largesignal import (
    LargeSignalEstimator,
    LargeSignalParams,
    identify,
    load_calibration,
    predict_large_signal,
    save_calibration,
)
from edgesense.speaker.linear import predict_linear

FS = 48_000.0


def _true_params(sp) -> LargeSignalParams:
    nl = sp.nonlinearity
    return LargeSignalParams(bl=sp.bl, mms=sp.mms, rms=sp.rms, kms=sp.kms, xmax=sp.xmax,
                             bl_shape=(nl.b1, nl.b2, nl.b3, nl.b4), k_shape=(nl.k1, nl.k2),
                             le_slope=(sp.le * nl.l1, sp.le * nl.l2), speaker=sp.name)


@pytest.fixture(scope="module")
def loud_lite4():
    """2 s of loud program through the simulated lite4 (coil at ambient): speaker, current (A), x (mm)."""
    sp = named_speaker("lite4")
    u, _ = program(2.0, np.random.default_rng(3), FS, max_volts=max_drive_volts(sp.re), loud=True)
    res = simulate([sp], u[None], FS, thermal=False)
    return sp, res.u[0], res.i[0].astype(np.float64), res.x[0].astype(np.float64) * 1e3


def test_shape_free_parameters_reduce_to_the_bilinear_linear_model():
    i = np.random.default_rng(0).standard_normal(5000) * 0.3
    p = LargeSignalParams.linear(bl=0.8, mms=9e-5, rms=0.25, kms=2900.0)
    x = predict_large_signal(None, i, p)
    ref = predict_linear(i, SpeakerParams(bl=0.8, mms=9e-5, rms=0.25, kms=2900.0), FS)
    assert np.max(np.abs(x - ref)) < 1e-9 * np.max(np.abs(ref))


def test_true_parameters_reproduce_the_simulator_and_shapes_matter(loud_lite4):
    sp, _, i, x = loud_lite4
    assert np.max(np.abs(x)) > 0.5 * sp.xmax * 1e3          # driven into the large-signal range
    est = predict_large_signal(None, i, _true_params(sp))
    lin = predict_large_signal(None, i, LargeSignalParams.linear(sp.bl, sp.mms, sp.rms, sp.kms, sp.xmax))
    peak = np.max(np.abs(x))
    err_nl = np.max(np.abs(est[480:] - x[480:]))
    err_lin = np.max(np.abs(lin[480:] - x[480:]))
    assert err_nl < 0.01 * peak
    assert err_lin > 5 * err_nl


def test_identification_recovers_the_large_signal_parameters(loud_lite4):
    sp, _, i, x = loud_lite4
    p = identify([(x, i)], sp.mms, sp.xmax, FS)
    nl = sp.nonlinearity
    assert p.bl == pytest.approx(sp.bl, rel=0.01)
    assert p.kms == pytest.approx(sp.kms, rel=0.01)
    assert p.rms == pytest.approx(sp.rms, rel=0.03)
    assert p.k_shape[0] == pytest.approx(nl.k1, abs=0.02)
    assert p.k_shape[1] == pytest.approx(nl.k2, abs=0.05)
    assert p.bl_shape[0] == pytest.approx(nl.b1, abs=0.02)
    # what matters: the identified model predicts the excursion as well as the true one
    est = predict_large_signal(None, i, p)
    assert np.max(np.abs(est[480:] - x[480:])) < 0.02 * np.max(np.abs(x))


def test_identification_needs_data():
    with pytest.raises(EdgesenseError):
        identify([(np.zeros(5), np.zeros(5))], 1e-4, 4e-4)


def _following(sp) -> LargeSignalParams:
    p = _true_params(sp)
    ref = {"bl": sp.bl, "kms_per_mms": sp.kms / sp.mms, "rms_per_mms": sp.rms / sp.mms}
    return LargeSignalParams.from_dict(p.to_dict() | {"tracker_reference": ref})


def test_blocks_of_any_size_equal_the_whole_signal_with_drift_following(loud_lite4):
    sp, u, i, _ = loud_lite4
    n = 40_000                                  # past one tracker update (12288 samples): scales change
    p = _following(sp)
    ds = sp.true_params()
    whole_est = LargeSignalEstimator(p, ds, FS)
    whole = whole_est.process(u[:n], i[:n])
    assert whole_est.follow and whole_est.scales != (1.0, 1.0, 1.0)
    est = LargeSignalEstimator(p, ds, FS)
    rng = np.random.default_rng(1)
    parts, pos = [], 0
    while pos < n:
        k = min(n - pos, int(rng.integers(1, 3000)))
        parts.append(est.process(u[pos:pos + k], i[pos:pos + k]))
        pos += k
    assert np.array_equal(np.concatenate(parts), whole)
    assert est.scales == whole_est.scales


def test_leak_is_followed_through_the_tracker():
    """A back-volume leak (Kms x0.7, Rms x1.6) after calibration on the nominal speaker."""
    sp = named_speaker("ref")
    leaky = SCENARIOS["leak"].apply(sp)
    u, _ = program(6.0, np.random.default_rng(5), FS, max_volts=max_drive_volts(sp.re))
    res = simulate([leaky], u[None], FS, thermal=False)
    i, x = res.i[0].astype(np.float64), res.x[0].astype(np.float64) * 1e3
    p = _following(sp)
    fixed = predict_large_signal(None, i, p, follow=False)
    est = LargeSignalEstimator(p, sp.true_params(), FS, smoothing=0.3)
    followed = est.process(res.u[0], i)
    late = slice(4 * 48_000, None)
    assert est.scales[1] == pytest.approx(0.7, rel=0.08)
    rms = lambda e: float(np.sqrt(np.mean(e[late] ** 2)))
    assert rms(followed - x) < 0.5 * rms(fixed - x)


def test_state_stays_bounded_and_decays_after_the_signal(loud_lite4):
    sp, _, i, _ = loud_lite4
    est = LargeSignalEstimator(_true_params(sp), follow=False)
    est.process(None, i)
    tail = est.process(None, np.zeros(4800))
    assert np.all(np.isfinite(tail))
    assert abs(tail[-1]) < 1e-6


def test_calibration_file_round_trip_and_errors(tmp_path):
    p = LargeSignalParams(bl=0.8, mms=9e-5, rms=0.25, kms=2900.0, xmax=5e-4, bl_shape=(0.1, -0.3, 0.0, 0.02),
                          k_shape=(-0.1, 0.8), le_slope=(1e-5, -4e-6), tracker_reference={"bl": 0.8},
                          speaker="sim-lite4", source="test")
    path = tmp_path / "lite4.json"
    save_calibration(p, path)
    assert load_calibration(path) == p
    data = json.loads(path.read_text())
    data["large_signal"]["colour"] = "red"
    path.write_text(json.dumps(data))
    with pytest.raises(EdgesenseError, match="unknown field"):
        load_calibration(path)
    path.write_text("not json")
    with pytest.raises(EdgesenseError):
        load_calibration(path)
    with pytest.raises(EdgesenseError):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(EdgesenseError, match="bl must be positive"):
        LargeSignalParams(bl=-1.0, mms=1e-4, rms=0.3, kms=4000.0, xmax=4e-4)


def test_following_needs_a_reference_and_a_datasheet():
    p = LargeSignalParams.linear(1.0, 1.6e-4, 0.3, 4000.0)
    with pytest.raises(EdgesenseError):
        LargeSignalEstimator(p, SpeakerParams(bl=1.0, re=8.0, mms=1.6e-4, rms=0.3, kms=4000.0), follow=True)
    assert not LargeSignalEstimator(p, None).follow


def _signal(sp, u, i, x, name="sim-lite4"):
    from edgesense.profiles import SpeakerIVProfile
    from edgesense.speaker.pipeline import SpeakerSignal

    prof = SpeakerIVProfile(name=name, channels=("v", "i", "x"), speaker=sp.true_params())
    return SpeakerSignal("clip", u.astype(np.float32), i.astype(np.float32), x.astype(np.float32), prof,
                         {"scenario": "nominal", "stream": "s", "clip_index": 0})


def test_calibrate_from_signals_then_evaluate_row(loud_lite4, tmp_path):
    """calibrate() on labelled clips gives a usable calibration; eval excursion adds its row."""
    from edgesense.cli.cmd_eval_excursion import LARGE_SIGNAL, evaluate_excursion
    from edgesense.speaker.largesignal import calibrate, load_calibrations

    sp, u, i, x = loud_lite4
    sig = _signal(sp, u, i, x)
    cal = calibrate([sig], sig.speaker, settle_s=0.5, speaker="sim-lite4")
    assert cal.speaker == "sim-lite4" and set(cal.tracker_reference) == {"bl", "kms_per_mms", "rms_per_mms"}
    assert cal.bl == pytest.approx(sp.bl, rel=0.02)
    save_calibration(cal, tmp_path / "lite4.json")
    cals = load_calibrations([str(tmp_path)])
    report = evaluate_excursion([sig], [], baselines=False, calibrations=cals, skip_ms=100)
    rows = {r["method"]: r for r in report["rows"]}
    assert rows[LARGE_SIGNAL]["nrmse"] < 0.1 * rows["zero"]["nrmse"]
    with pytest.raises(EdgesenseError, match="no large-signal calibration"):
        evaluate_excursion([_signal(sp, u, i, x, name="other")], [], baselines=False, calibrations=cals)


SHIPPED_CAL = Path(__file__).resolve().parents[2] / "models" / "speaker_calibration"


@pytest.mark.parametrize("name", ["ref", "lite4"])
def test_shipped_calibrations_predict_their_simulated_speaker(name):
    """The committed calibrations load and predict a fresh simulated signal of their speaker (coil at ambient)."""
    cal = load_calibration(SHIPPED_CAL / f"{name}.json")
    assert cal.speaker == f"sim-{name}" and set(cal.tracker_reference) == {"bl", "kms_per_mms", "rms_per_mms"}
    sp = named_speaker(name)
    u, _ = program(1.0, np.random.default_rng(11), FS, max_volts=max_drive_volts(sp.re), loud=True)
    res = simulate([sp], u[None], FS, thermal=False)
    x = res.x[0].astype(np.float64) * 1e3
    est = predict_large_signal(None, res.i[0].astype(np.float64), cal, follow=False)
    assert np.max(np.abs(est[480:] - x[480:])) < 0.02


def test_calibrate_command_errors_are_one_line(tmp_path, capsys):
    from edgesense.cli.main import main

    rc = main(["calibrate", "speaker", "--data", str(tmp_path / "none"), "--speaker", "ref",
               "--out", str(tmp_path / "ref.json")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "dataset not found" in err and "\n" not in err
