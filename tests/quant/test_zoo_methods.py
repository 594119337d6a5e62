"""The zoo's quantization steps, built by `edgesense quantize` (tools/build_zoo.py ``_quantize``): output-aware range
refinement and gesture QAT on labels, on the shipped gesture_cnn and a tiny simulated radar clip dataset."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gesture_cnn" / "gesture_cnn.onnx"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_radar_clips, build_zoo_tool):
    if not MODEL.is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    opts = build_zoo_tool.ZooOptions(gesture_data=tiny_radar_clips, quick=True, bench=False)
    return build_zoo_tool, opts, tiny_radar_clips, tmp_path_factory.mktemp("zoo_methods")


def _parity(graph, path, x):
    from edgesense.quant import IntegerSim
    from edgesense.runtime import load_model

    codes, enc = IntegerSim(graph).outputs([x])[0]
    y = np.asarray(load_model(path, threads=1).run(x), np.float32)
    return np.abs(enc.quantize(y).astype(int) - codes.astype(int)).max()


def test_refined_ranges_never_lower_the_output_sqnr_and_export_exactly(setup):
    tool, opts, data, tmp = setup
    _, _, base = tool._quantize(MODEL, data, tmp / "mse", "mse", opts, False)
    sim, graph, s = tool._quantize(MODEL, data, tmp / "refine", "mse-refine", opts, False)
    ref = s["refinement"]
    assert ref["output_sqnr_db_after"] >= ref["output_sqnr_db_before"] and ref["evaluations"] > 1
    assert s["method"] == "mse-refine" and s["qat"] is None
    # the starting point is edgesense quantize's mse model: same hold-out, same sample counts
    assert s["holdout_samples"] == base["holdout_samples"] and ref["samples"] == base["calibration_samples"]
    for tensor, (before, after) in ref["changed"].items():
        assert before != after
    from edgesense.cli.cmd_quantize import gesture_calibration_windows

    x = gesture_calibration_windows(data, MODEL, "train", 8, 0)
    assert _parity(graph, tmp / "refine" / "gesture_cnn_int8.onnx", x) <= 1


@pytest.mark.slow
def test_gesture_task_qat_trains_on_labels_and_is_seeded(setup):
    tool, opts, data, tmp = setup
    runs = [tool._quantize(MODEL, data, tmp / f"task{k}", "qat-task-mse", opts, False) for k in range(2)]
    (sim, graph, s), (_, graph2, _) = runs
    assert s["qat"]["objective"] == "labels+float" and s["qat"]["steps"] == opts.sizes["qat_steps"]
    assert np.isfinite(s["qat"]["loss"][0]) and not sim.training
    _, start, _ = tool._quantize(MODEL, data, tmp / "start", "mse", opts, False)
    trained = {op.name: op.weight_q for op in graph.ops if op.weight_q is not None}
    before = {op.name: op.weight_q for op in start.ops if op.weight_q is not None}
    assert trained.keys() == before.keys() and any(not np.array_equal(trained[k], before[k]) for k in trained)
    assert (tmp / "task0" / "gesture_cnn_int8.onnx").read_bytes() == (tmp / "task1" / "gesture_cnn_int8.onnx").read_bytes()
    assert "--qat-objective task+float" in tool._command_quantize("gesture_cnn", "gesture", "qat-task-mse", opts)
    assert "--qat-objective" not in tool._command_quantize("gesture_cnn", "gesture", "qat-mse", opts)


@pytest.mark.parametrize("objective,float_term", [("task+float", True), ("task", False)])
def test_cli_qat_on_labels_equals_the_library_calls(setup, tmp_path, capsys, objective, float_term):
    """`edgesense quantize --qat-objective task[+float]` on a radar gesture dataset = calibrate on the pipeline's
    windows, then train_qat_labels on the classified window and label of --qat-clips train clips."""
    import json

    from edgesense.cli.cmd_quantize import gesture_calibration_windows, gesture_windows
    from edgesense.cli.main import main
    from edgesense.quant import QuantConfig, QuantSim, export_qdq_onnx, get_target
    from edgesense.quant.analyzers import AnalyzerConfig
    from edgesense.quant.qat import train_qat_labels
    from edgesense.quant.sim import calibrate

    _, _, data, _ = setup
    rc = main(["quantize", "--model", str(MODEL), "--calib", str(data), "--method", "mse", "--max-samples", "16",
               "--qat-steps", "3", "--qat-objective", objective, "--qat-clips", "10", "--out", str(tmp_path / "cli"),
               "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["qat"]["objective"] == ("labels+float" if float_term else "labels") and s["qat"]["clips"] == 10

    x = gesture_calibration_windows(data, MODEL, "train", 16, 0)
    calib = torch.from_numpy(x[max(1, len(x) // 5):])
    sim = QuantSim.from_onnx(MODEL, get_target("ort-cpu"),
                             QuantConfig(activations=AnalyzerConfig("mse"), weights=AnalyzerConfig("minmax")))
    calibrate(sim, list(calib.split(64)))
    xw, yw = gesture_windows(data, MODEL, "train", 10, seed=0)
    assert len(yw) and (yw >= 0).all()
    train_qat_labels(sim, torch.from_numpy(xw), torch.from_numpy(yw), 3, 1e-4, seed=0, float_term=float_term)
    sim.eval()
    export_qdq_onnx(sim, tmp_path / "lib.onnx", sim.lower())
    assert (tmp_path / "cli" / "gesture_cnn_int8.onnx").read_bytes() == (tmp_path / "lib.onnx").read_bytes()
