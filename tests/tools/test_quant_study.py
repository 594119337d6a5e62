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
