"""INT8 excursion models' rails: saturated outputs and clipped track inputs are counted, never silent."""

from pathlib import Path

import numpy as np
import pytest

from edgesense.runtime.model import quantize
from edgesense.speaker.streaming import ExcursionStreamer, frame_inputs, predict_signal

MODELS = Path(__file__).resolve().parents[2] / "models"


def _hybrid(suffix=".tflite"):
    path = MODELS / "hybrid" / f"hybrid_int8{suffix}"
    if not path.is_file():
        pytest.skip(f"no shipped {path.name}")
    return path


LOUD = 1.5      # beyond the front end's full scale: drives the shipped INT8 hybrid into its output rail


def _drive(amp, n=4_800, f=60.0):
    """v, i and a tracked prediction (mm): a low sine scaled by ``amp`` (1: near the front end's full scale)."""
    t = np.arange(n) / 48_000
    v = (amp * 9.0 * np.sin(2 * np.pi * f * t + 0.3)).astype(np.float32)
    i = (amp * 1.4 * np.sin(2 * np.pi * f * t)).astype(np.float32)
    track = (amp * 1.0 * np.sin(2 * np.pi * f * t - 0.2)).astype(np.float32)
    return v, i, track


@pytest.mark.parametrize("direct", [True, False])
def test_loud_drive_saturates_the_shipped_int8_hybrid_and_is_counted(direct):
    bl = 1.0
    s = ExcursionStreamer(_hybrid(), bl, direct=direct)
    assert (s._direct is not None) == direct
    lo, hi = s.rail_mm
    assert lo < 0 < hi
    v, i, track = _drive(LOUD)
    x = predict_signal(s, v, i, bl, track, chunk=48)
    mask = s.saturated(x)
    # the rails are exactly the values the model returns when clipped, and nothing lies beyond them
    assert np.float32(lo) <= x.min() and x.max() <= np.float32(hi)
    assert x.max() == np.float32(hi) or x.min() == np.float32(lo)
    np.testing.assert_array_equal(mask, (x == np.float32(lo)) | (x == np.float32(hi)))
    assert 0.05 < mask.mean() < 1.0
    assert s.track_saturated(track).mean() > 0.05


def test_quiet_drive_is_not_counted():
    bl = 1.0
    s = ExcursionStreamer(_hybrid(), bl)
    v, i, track = _drive(0.05)
    x = predict_signal(s, v, i, bl, track, chunk=48)
    assert np.abs(x).max() > 0.005                 # a real output, just inside the rails
    assert not s.saturated(x).any()
    assert not s.track_saturated(track).any()


def test_rails_scale_with_bl_and_track_rail_matches_the_model_input_codes():
    path = _hybrid()
    r1 = ExcursionStreamer(path, 1.0).rail_mm
    r2 = ExcursionStreamer(path, 2.0).rail_mm
    np.testing.assert_allclose(r2, np.array(r1) / 2, rtol=1e-6)
    s = ExcursionStreamer(path, 0.8)
    v, i, track = _drive(0.6, n=480)
    x = frame_inputs(s.spec, v, i, s.bl, track)                  # (1, 3*frame, steps)
    xs = s._x_spec
    codes = quantize(x, xs.scale, xs.zero_point, xs.dtype)[0, 2 * s.spec.frame:]   # the track channel
    want = ((codes == -128) | (codes == 127)).T.reshape(-1)     # back to time order
    got = s.track_saturated(track)
    assert want.any() and not want.all()
    np.testing.assert_array_equal(got, want)


def test_float_models_have_no_rails(onnx_model):
    s = ExcursionStreamer(onnx_model, 1.0)
    assert s.rail_mm is None
    assert not s.saturated(np.full(10, 100.0, np.float32)).any()
    assert not s.track_saturated(np.full(10, 100.0, np.float32)).any()


def test_qdq_onnx_rails_equal_the_tflite_rails(tmp_path):
    """A QDQ model and its .tflite conversion report the same rails (the shipped .onnx and .tflite are built for
    different targets, so the .tflite here is converted from the shipped .onnx)."""
    import shutil

    pytest.importorskip("onnx")
    from edgesense.quant.tflite import export_tflite

    bl = 1.0
    qdq = _hybrid(".onnx")
    lite = export_tflite(qdq, tmp_path / "h.tflite", input_shapes={"x": (1, 12, 12)}, channel_last=True)
    shutil.copyfile(qdq.with_suffix(".json"), lite.with_suffix(".json"))
    s = ExcursionStreamer(qdq, bl)
    assert s.rail_mm == ExcursionStreamer(lite, bl).rail_mm
    v, i, track = _drive(LOUD, n=960)
    x = predict_signal(s, v, i, bl, track)
    assert s.saturated(x).any() and x.max() == np.float32(s.rail_mm[1])


def _signals(amp):
    from edgesense.profiles import load_profile
    from edgesense.speaker.pipeline import SpeakerSignal

    profile = load_profile("speaker-ref")
    v, i, _ = _drive(amp, n=9_600)
    return [SpeakerSignal("r", v, i, 0.5 * np.sin(np.arange(len(v)) * 2 * np.pi * 60 / 48_000).astype(np.float32),
                          profile, {})]


def test_eval_excursion_reports_the_rail_share_and_warns(onnx_model):
    from edgesense.cli.cmd_eval_excursion import RAIL_WARN_SHARE, evaluate_excursion, format_table

    path = str(_hybrid())
    loud = evaluate_excursion(_signals(LOUD), [path, str(onnx_model)], baselines=False)
    rows = {r["method"]: r for r in loud["rows"]}
    assert "output_rail_share" not in rows[Path(str(onnx_model)).stem]       # float model: no rail
    share = rows["hybrid_int8"]["output_rail_share"]
    assert share > RAIL_WARN_SHARE and rows["hybrid_int8"]["track_rail_share"] is not None
    [sat] = loud["saturation"]
    assert sat["model"] == "hybrid_int8" and sat["output_rail_share"] == share and sat["warning"]
    assert loud["warnings"] == [sat["warning"]] and "calibrated on the training speakers" in sat["warning"]
    table = format_table(loud)
    assert "int8 rails hybrid_int8" in table and "WARNING: hybrid_int8" in table
    # the share is the streamer's own count over the scored samples
    sig = _signals(LOUD)[0]
    from edgesense.speaker.pipeline import tracked_prediction

    s = ExcursionStreamer(path, sig.speaker.bl)
    track = tracked_prediction(sig.v, sig.i, sig.profile)
    x = predict_signal(s, sig.v, sig.i, sig.speaker.bl, track)
    assert share == pytest.approx(s.saturated(x).mean(), abs=1e-12)
    # of the samples beyond 0.1 mm, the share within 1 ms (48 samples) of an output or track rail
    near = np.convolve((s.saturated(x) | s.track_saturated(track)).astype(float), np.ones(97), mode="same") > 0.5
    bad = np.abs(x - sig.x) >= 0.1
    assert bad.any() and rows["hybrid_int8"]["beyond_0_1_near_rail_share"] == pytest.approx((bad & near).sum() / bad.sum())

    quiet = evaluate_excursion(_signals(0.01), [path], baselines=False)
    [sat] = quiet["saturation"]
    assert sat["output_rail_share"] == 0.0 and sat["warning"] is None and quiet["warnings"] == []
    assert "WARNING" not in format_table(quiet)


def test_pipeline_users_ask_the_streamer_per_block():
    """ExcursionPipeline blocks: ``pipe.streamer.saturated(block.x)`` flags the clipped samples of each block."""
    from edgesense.profiles import load_profile
    from edgesense.speaker.pipeline import ExcursionPipeline
    from edgesense.stream import SimulatedSource

    profile = load_profile("speaker-ref")
    n = 100
    v, i, _ = _drive(LOUD, n=n * 48)
    pay = np.zeros((n, 48, len(profile.channels)), np.float32)
    pay[..., profile.channel_index("v")] = v.reshape(n, 48)
    pay[..., profile.channel_index("i")] = i.reshape(n, 48)
    pipe = ExcursionPipeline(profile, _hybrid())
    with SimulatedSource(profile, lambda k: pay[k], speed=None, max_frames=n) as src:
        blocks = list(pipe.run(src))
    per_block = np.concatenate([pipe.streamer.saturated(b.x) for b in blocks])
    x = np.concatenate([b.x for b in blocks])
    lo, hi = pipe.streamer.rail_mm
    assert per_block.any()
    np.testing.assert_array_equal(per_block, (x == np.float32(lo)) | (x == np.float32(hi)))


def test_eval_excursion_cli_json_has_the_rail_fields_and_warns_on_stderr(tmp_path, capsys):
    import json

    from edgesense.cli.main import main
    from edgesense.recording import RecordingWriter

    import dataclasses

    sig = _signals(LOUD)[0]
    profile = dataclasses.replace(sig.profile, channels=("v", "i", "x"))
    n = len(sig.v) // 48
    pay = np.zeros((n, 48, len(profile.channels)), np.float32)
    for name, arr in (("v", sig.v), ("i", sig.i), ("x", sig.x)):
        pay[..., profile.channel_index(name)] = arr[:n * 48].reshape(n, 48)
    path = tmp_path / "loud.esr"
    with RecordingWriter(path, profile) as w:
        w.write_batch(np.arange(n, dtype=np.uint32), np.arange(n, dtype=np.int64) * 1000, pay)
    rc = main(["eval", "excursion", "--data", str(path), "--split", "all", "--model", str(_hybrid()),
               "--no-baselines", "--skip-ms", "0", "--json"])
    out = capsys.readouterr()
    assert rc == 0
    report = json.loads(out.out)
    [row] = [r for r in report["rows"] if r["method"] == "hybrid_int8"]
    assert row["output_rail_share"] > 0.001 and report["saturation"][0]["output_rail_share"] == row["output_rail_share"]
    assert "warning: hybrid_int8: output at its int8 rail" in out.err


def test_models_with_the_same_stem_get_a_row_each():
    """hybrid_int8.tflite beside hybrid_int8.onnx: two rows named by file, not one row for both."""
    from edgesense.cli.cmd_eval_excursion import _row_names, evaluate_excursion

    assert _row_names(["a/m.onnx", "b/n.tflite"]) == ["m", "n"]
    assert _row_names(["a/m.onnx", "a/m.tflite"]) == ["m.onnx", "m.tflite"]
    assert _row_names(["a/m.onnx", "b/m.onnx"]) == ["a/m.onnx", "b/m.onnx"]
    both = [str(_hybrid(".tflite")), str(_hybrid(".onnx"))]
    methods = [r["method"] for r in evaluate_excursion(_signals(0.01), both, baselines=False)["rows"]]
    assert "hybrid_int8.tflite" in methods and "hybrid_int8.onnx" in methods
