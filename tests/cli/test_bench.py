"""``edgesense bench``: the model table as before, then per backend file the end-to-end pipeline rows."""

import json
import math
import shutil
from pathlib import Path

import pytest

from edgesense.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
FAST = ["--runs", "5", "--warmup", "1", "--no-torch", "--no-isolate", "--pipeline-seconds", "0.5"]
RESULT_KEYS = {"model", "backend", "path", "median_us", "p99_us", "throughput_per_s", "peak_memory_mb", "runs",
               "threads"}


def _shipped(*names: str) -> list[Path]:
    paths = [MODELS / n for n in names]
    missing = [p for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"shipped models missing: {missing}")
    return paths


@pytest.fixture(scope="module")
def zoo_json(tmp_path_factory):
    """One run over a gesture model, an excursion model, a calibration and a model no pipeline runs."""
    gesture, excursion, cal = _shipped("gesture_cnn", "fftnet", "speaker_calibration/ref.json")
    toy = tmp_path_factory.mktemp("toy") / "toy.onnx"      # a model without a gesture or excursion description
    shutil.copy(MODELS / "gesture_cnn" / "gesture_cnn.onnx", toy)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["bench", str(gesture), str(excursion), str(cal), str(toy), *FAST, "--json"])
    return rc, json.loads(out.getvalue())


def test_json_keeps_the_model_rows_and_adds_pipelines(zoo_json):
    rc, out = zoo_json
    assert rc == 0
    assert set(out) == {"results", "failures", "isolated", "pipelines", "machine"}
    assert not out["failures"] and out["isolated"] is False
    assert all(set(r) == RESULT_KEYS for r in out["results"])
    amx = (MODELS / "gesture_cnn" / "gesture_cnn_int8_amx.tflite").is_file()
    assert len(out["results"]) == 7 + amx    # 3 gesture_cnn (+ its AMX-packed twin) + 3 fftnet files + the toy
    p = out["pipelines"]
    assert p["stream_seconds"] == 0.5 and p["drop_rate"] == 0.2
    assert p["largesignal_kernel"] in ("c", "python")
    assert len(p["load_average_start"]) == len(p["load_average_end"]) == 3 and p["wall_s"] > 0


def test_pipeline_rows_per_backend_file_with_positive_finite_costs(zoo_json):
    rows = zoo_json[1]["pipelines"]["rows"]
    by = {(r["model"], r["backend"]): r for r in rows}
    amx = {("gesture_cnn", "LiteRT INT8 (AMX-packed)")} if (MODELS / "gesture_cnn" / "gesture_cnn_int8_amx.tflite"
                                                            ).is_file() else set()
    assert set(by) == {("gesture_cnn", b) for b in ("ORT float", "ORT INT8", "LiteRT INT8")} | amx | {
        ("fftnet", b) for b in ("ORT float", "ORT INT8", "LiteRT INT8")} | {("ref", "large-signal estimator")}
    for r in rows:
        for key in ("cpu_p50_us", "cpu_p99_us", "cpu_mean_us", "wall_p99_us"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["path"], key)
        assert r["cpu_p50_us"] <= r["cpu_p99_us"]
    for b in ("ORT float", "ORT INT8", "LiteRT INT8"):
        g = by[("gesture_cnn", b)]
        assert g["pipeline"] == "gesture" and g["profile"] == "ad60" and g["frames"] > 0
        assert 0 < g["restore_share"] < 1 and g["frames_per_s"] == pytest.approx(1e6 / g["cpu_mean_us"])
        e = by[("fftnet", b)]
        assert e["pipeline"] == "excursion" and e["blocks"] == 500 and e["tracker"] is False
        assert e["real_time_factor"] == pytest.approx(e["cpu_mean_us"] / e["block_us"])
    assert by[("gesture_cnn", "LiteRT INT8")]["streaming_split"] is True
    assert by[("gesture_cnn", "ORT float")]["streaming_split"] is False
    ref = by[("ref", "large-signal estimator")]
    assert ref["pipeline"] == "large-signal" and ref["profile"] == "sim-ref" and ref["tracker"] is True
    assert ref["largesignal_kernel"] == zoo_json[1]["pipelines"]["largesignal_kernel"]


def test_a_model_no_pipeline_runs_is_skipped_with_its_reason(zoo_json):
    skipped = zoo_json[1]["pipelines"]["skipped"]
    assert [Path(s["path"]).name for s in skipped] == ["toy.onnx"]
    assert "no pipeline runs it" in skipped[0]["reason"] and "\n" not in skipped[0]["reason"]


def test_no_pipelines_gives_the_model_rows_only(tmp_path, capsys):
    gesture, = _shipped("gesture_cnn")
    rc = main(["bench", str(gesture / "gesture_cnn_int8.tflite"), *FAST, "--no-pipelines", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out) == {"results", "failures", "isolated", "machine"}
    assert out["machine"]["logical_cpus"] >= 1 and out["machine"]["onnxruntime"]
    assert [r["backend"] for r in out["results"]] == ["LiteRT INT8"]
    rc = main(["bench", str(gesture / "gesture_cnn_int8.tflite"), *FAST, "--no-pipelines"])
    text = capsys.readouterr().out
    assert rc == 0 and "LiteRT INT8" in text and "pipelines" not in text
    assert text.startswith("machine: ") and "logical CPUs" in text.splitlines()[0]


def test_table_has_a_pipelines_section_after_the_models(capsys):
    cal, = _shipped("speaker_calibration")
    lite = MODELS / "hybrid" / "hybrid_int8.tflite"
    if not lite.is_file():
        pytest.skip("hybrid INT8 model not shipped")
    rc = main(["bench", str(lite), str(cal), *FAST])
    text = capsys.readouterr().out
    assert rc == 0
    models, pipes = text.split("\npipelines:")
    assert "LiteRT INT8" in models and "hybrid_int8.tflite" in models
    rows = [line for line in pipes.splitlines() if line.endswith((".json", ".tflite"))]
    assert [line.split()[-1] for line in rows] == ["hybrid_int8.tflite", "lite4.json", "ref.json"]
    assert "RTF" in rows[0] and "tracker" in rows[0] and "loop" in rows[1]


def test_only_calibrations_is_not_an_error(capsys):
    cal, = _shipped("speaker_calibration/ref.json")
    rc = main(["bench", str(cal), *FAST, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["results"] == [] and len(out["pipelines"]["rows"]) == 1
    rc = main(["bench", str(cal), *FAST, "--no-pipelines"])
    assert rc == 2 and "no .onnx or .tflite models found" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--pipeline-seconds", "0"], "--pipeline-seconds must be positive"),
    (["--pipeline-seconds", "-1"], "--pipeline-seconds must be positive"),
    (["--drop-rate", "1"], "--drop-rate must be in [0, 1)"),
])
def test_bad_pipeline_arguments_give_a_one_line_error(args, message, capsys):
    cal, = _shipped("speaker_calibration/ref.json")
    rc = main(["bench", str(cal), "--no-torch", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_file_that_is_neither_model_nor_calibration_is_an_error(tmp_path, capsys):
    other = tmp_path / "notes.json"
    other.write_text('{"hello": 1}')
    rc = main(["bench", str(other)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a model directory" in err and len(err.strip().splitlines()) == 1
