"""The datasheet large-signal model of an unseen speaker (family prior shapes) and its eval row."""

import numpy as np
import pytest

from edgesense.errors import ProfileError
from edgesense.profiles import SpeakerParams
from edgesense.sim.speaker import simulate
from edgesense.sim.speaker_params import max_drive_volts, random_speaker
from edgesense.speaker.adapt import FAMILY_SHAPES, datasheet_large_signal, family_shapes
from edgesense.speaker.largesignal import predict_large_signal
from edgesense.speaker.linear import predict_linear
from edgesense.speaker.metrics import excursion_metrics

FS = 48_000.0
DATASHEET = SpeakerParams(bl=1.0, re=8.0, le=40e-6, mms=0.162e-3, kms=4060.0, rms=0.30, xmax=0.4e-3)


def test_params_carry_the_datasheet_and_only_even_shapes():
    p = datasheet_large_signal(DATASHEET, (-0.3, 0.02, 0.7), name="spk")
    assert (p.bl, p.mms, p.kms, p.rms, p.xmax) == (1.0, 0.162e-3, 4060.0, 0.30, 0.4e-3)
    assert p.bl_shape == (0.0, -0.3, 0.0, 0.02) and p.k_shape == (0.0, 0.7) and p.le_slope == (0.0, 0.0)
    assert p.speaker == "spk"
    # the tracker reference is the datasheet: drift following starts from it
    assert p.tracker_reference["bl"] == 1.0
    assert p.tracker_reference["kms_per_mms"] == pytest.approx(4060.0 / 0.162e-3)
    assert p.tracker_reference["rms_per_mms"] == pytest.approx(0.30 / 0.162e-3)


def test_missing_datasheet_values_are_a_profile_error():
    with pytest.raises(ProfileError, match="xmax"):
        datasheet_large_signal(SpeakerParams(bl=1.0, mms=1e-4, kms=3000.0, rms=0.2))


def test_family_shapes_average_the_even_terms():
    nl = [{"b1": 0.1, "b2": -0.2, "b3": 0.0, "b4": 0.01, "k1": -0.1, "k2": 0.4},
          {"b1": -0.1, "b2": -0.4, "b3": 0.0, "b4": 0.03, "k1": 0.1, "k2": 0.8}]
    assert family_shapes(nl) == pytest.approx((-0.3, 0.02, 0.6))
    with pytest.raises(ValueError):
        family_shapes([])
    b2, b4, k2 = FAMILY_SHAPES   # the shipped prior: Bl drops and the suspension stiffens away from rest
    assert b2 < 0 < k2 and b4 >= 0


def test_small_signal_equals_the_linear_model():
    """Far below Xmax the shapes do nothing: the linear X/I with the datasheet parameters."""
    rng = np.random.default_rng(0)
    i = 1e-3 * rng.standard_normal(4800)
    x = predict_large_signal(None, i, datasheet_large_signal(DATASHEET), None, FS, follow=False)
    lin = predict_linear(i, DATASHEET, FS)
    assert np.max(np.abs(x - lin)) < 1e-3 * np.max(np.abs(lin))


@pytest.fixture(scope="module")
def overdriven():
    """A 0.6 s log sweep (300-1500 Hz) at the amplifier's full drive through a random family speaker
    (not in any training set), coil at ambient: the family is designed to reach 0.9-1.8 x Xmax there."""
    from scipy.signal import chirp

    sp = random_speaker(np.random.default_rng(1232), "t-prior")
    t = np.arange(int(0.6 * FS)) / FS
    u = max_drive_volts(sp.re) * chirp(t, 300.0, t[-1], 1500.0, method="log") * np.minimum(1.0, t / 0.05)
    res = simulate([sp], u[None], FS, thermal=False)
    return sp, res.i[0].astype(np.float64), res.x[0].astype(np.float64) * 1e3


def test_prior_shapes_beat_the_linear_model_on_an_unseen_speaker(overdriven):
    """Datasheet only (within tolerance of the truth), no labels: the prior's compression near Xmax
    brings the error down against the same model without shapes."""
    sp, i, x = overdriven
    ds = sp.published()
    assert np.max(np.abs(x)) > sp.xmax * 1e3          # driven past Xmax
    prior = predict_large_signal(None, i, datasheet_large_signal(ds), None, FS, follow=False)
    linear = predict_large_signal(None, i, datasheet_large_signal(ds, (0.0, 0.0, 0.0)), None, FS, follow=False)
    m_prior = excursion_metrics(x, prior, FS, skip=2400)
    m_lin = excursion_metrics(x, linear, FS, skip=2400)
    assert m_prior.rmse_mm < 0.5 * m_lin.rmse_mm
    assert m_prior.peak_error_mm < 0.5 * m_lin.peak_error_mm


def test_eval_row(tmp_path):
    """`eval excursion --datasheet-prior` adds the row, equal to the estimator run over the stream."""
    from edgesense.cli.cmd_eval_excursion import DATASHEET_PRIOR, evaluate_excursion, load_streams

    signals, segments = load_streams("datasets/samples/speaker", None, limit=1)
    rep = evaluate_excursion(signals, [], baselines=False, segments=segments, datasheet_prior=True)
    rows = {r["method"]: r for r in rep["rows"]}
    assert DATASHEET_PRIOR in rows
    sig = signals[0]
    ref = predict_large_signal(sig.v, sig.i, datasheet_large_signal(sig.speaker), sig.speaker, sig.fs)
    want = excursion_metrics(sig.x, np.asarray(ref, np.float32), sig.fs)
    assert rows[DATASHEET_PRIOR]["rmse_mm"] == pytest.approx(want.rmse_mm, rel=1e-6)
    assert rows[DATASHEET_PRIOR]["rmse_mm"] < rows["zero"]["rmse_mm"]


def test_adapt_cli_writes_the_datasheet_prior_as_a_calibration_the_pipeline_runs(tmp_path):
    from edgesense.cli.main import main
    from edgesense.speaker.largesignal import load_calibration
    from edgesense.speaker.pipeline import ExcursionPipeline, load_signals

    data = "datasets/samples/speaker/ref_hot/ref_hot_000.esr"
    out = tmp_path / "ref_prior.json"
    assert main(["adapt", "--datasheet-prior", "--data", data, "--out", str(out)]) == 0
    sig = load_signals(data)[0]
    cal = load_calibration(out)
    assert cal == datasheet_large_signal(sig.speaker, name=sig.profile.name)
    pipe = ExcursionPipeline(sig.profile, out)
    assert pipe.streamer is None and pipe.estimator.follow      # drift followed by the tracker
    for bad in (["--model", "models/hybrid/hybrid.onnx"], []):
        target = str(tmp_path / ("x.json" if bad else "x.onnx"))
        assert main(["adapt", "--datasheet-prior", "--data", data, "--out", target, *bad]) != 0
        assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.onnx").exists()
