"""tools/quant_study.py on a shipped gesture model with pipeline windows of a tiny simulated clip dataset."""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gesture_cnn" / "gesture_cnn.pt"


@pytest.fixture(scope="module")
def qs():
    sys.path.insert(0, str(ROOT / "tools"))
    import quant_study

    return quant_study


def test_gesture_data_study_scores_every_parameterisation(qs, tiny_radar_clips, capsys):
    if not MODEL.is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    from edgesense.cli.cmd_quantize import gesture_windows

    assert qs.main(["--model", str(MODEL), "--arch", "gesture_cnn", "--gesture-data", str(tiny_radar_clips),
                    "--bits", "8,4", "--lrs", "1e-3", "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert {(r["bits"], r["param"]) for r in rows} == {(b, p) for b in (8, 4)
                                                      for p in ("minmax", "scale_offset", "beta_gamma")}
    _, y_val = gesture_windows(tiny_radar_clips, MODEL, "val", None)
    for r in rows:            # accuracies on the validation users' clips: multiples of 1 / their number
        for key in ("float", "ptq", "qat"):
            assert 0.0 <= r[key] <= 1.0
            assert r[key] * len(y_val) == pytest.approx(round(r[key] * len(y_val)))


def test_a_model_that_does_not_fit_its_architecture_is_a_one_line_error(qs, tiny_radar_clips, capsys):
    crnn = ROOT / "models" / "gesture_crnn" / "gesture_crnn.pt"
    if not crnn.is_file():
        pytest.skip("models/gesture_crnn is not shipped")
    assert qs.main(["--model", str(crnn), "--arch", "gesture_crnn", "--gesture-data", str(tiny_radar_clips)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "do not fit gesture_crnn" in err and "Traceback" not in err


FFTNET = ROOT / "models" / "fftnet" / "fftnet.onnx"


@pytest.fixture(scope="module")
def tiny_speaker(tmp_path_factory) -> Path:
    """A tiny simulated speaker dataset: one 3 s stream (ref, nominal) of 12 clips of 0.25 s (3,000 frames)."""
    from edgesense.sim.speaker_dataset import write_speaker_dataset

    d = tmp_path_factory.mktemp("tiny_speaker") / "speaker"
    write_speaker_dataset(d, "ref", "nominal", seconds=3.0, seed=0, clip_s=0.25, show_progress=False)
    return d


def test_excursion_data_study_scores_the_pipeline_nrmse(qs, tiny_speaker, capsys):
    """The float NRMSE of the study (crops run whole from zero state) is the one of the ORT model streamed in 1 ms
    blocks over the same validation crops, scored past the receptive field in mm; PTQ at 8 bits stays near it."""
    if not FFTNET.is_file():
        pytest.skip("models/fftnet is not shipped")
    import numpy as np

    from edgesense.runtime import load_model
    from edgesense.speaker.metrics import combined_metrics
    from edgesense.speaker.pipeline import load_signals
    from edgesense.speaker.streaming import ExcursionStreamer, predict_signal

    assert qs.main(["--model", str(FFTNET), "--excursion-data", str(tiny_speaker), "--bits", "8", "--lrs", "1e-3",
                    "--epochs", "1", "--train-crops", "16", "--val-crops", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metric"] == "nrmse_pct" and out["lower_is_better"] is True
    assert (out["train_crops"], out["val_crops"], out["val_recordings"]) == (16, 4, 2)
    rows = out["rows"]
    assert [(r["bits"], r["param"]) for r in rows] == [(8, p) for p in ("minmax", "scale_offset", "beta_gamma")]
    # the reference: each validation crop streamed through onnxruntime from rest, the first receptive field dropped
    d = qs.excursion_data(tiny_speaker, FFTNET, 16, 4)
    spec = qs.excursion_spec(FFTNET)
    warm, n = spec.receptive_field * spec.frame, (spec.receptive_field + qs.VAL_FRAMES) * spec.frame
    sigs = {s.name: s for s in load_signals(tiny_speaker, split="val")}
    ort = load_model(FFTNET, threads=1, warmup=0)
    pairs = []
    for (name, s0), y in zip(d.val_starts, d.y_val):
        sig = sigs[name]
        p = predict_signal(ExcursionStreamer(ort, sig.speaker.bl), sig.v[s0:s0 + n], sig.i[s0:s0 + n],
                           sig.speaker.bl, chunk=48)
        pairs.append((sig.x[s0 + warm:s0 + n], p[warm:n]))
        np.testing.assert_array_equal(pairs[-1][0], y)
    reference = 100 * combined_metrics(pairs).nrmse
    for r in rows:
        assert r["float"] == pytest.approx(reference, rel=1e-4)
        assert np.isfinite(r["ptq"]) and np.isfinite(r["qat"]) and np.isfinite(r["float_finetuned"])
        assert r["float"] < r["ptq"] < 1.25 * r["float"]       # 8-bit PTQ: a little worse than float, not broken
    assert len({r["ptq"] for r in rows}) == 1                   # PTQ min/max: the same for every parameterisation


def test_excursion_table_names_its_metric(qs, tiny_speaker, capsys):
    if not FFTNET.is_file():
        pytest.skip("models/fftnet is not shipped")
    assert qs.main(["--model", str(FFTNET), "--excursion-data", str(tiny_speaker), "--bits", "8", "--lrs", "1e-3",
                    "--epochs", "0", "--train-crops", "8", "--val-crops", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("## fftnet.onnx: QAT validation NRMSE % (lower is better) by bit width")
    assert len([ln for ln in lines if ln.startswith("| 8 |")]) == 3


@pytest.mark.parametrize("model, data, match", [
    ("fftnet/fftnet.onnx", "missing", "not a speaker dataset directory"),
    ("gesture_cnn/gesture_cnn.pt", "speaker", "needs a float streaming excursion .onnx"),
])
def test_bad_excursion_data_or_model_is_a_one_line_error(qs, tiny_speaker, tmp_path, capsys, model, data, match):
    path = ROOT / "models" / model
    if not path.is_file():
        pytest.skip(f"{path} is not shipped")
    d = tiny_speaker if data == "speaker" else tmp_path / "no_such_dataset"
    assert qs.main(["--model", str(path), "--arch", "gesture_cnn", "--excursion-data", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and match in err and err.count("\n") == 1 and "Traceback" not in err
