"""The zoo's quantization steps beyond `edgesense quantize` (tools/build_zoo.py ``_quantize_extended``): output-aware
range refinement and gesture QAT on labels, on the shipped gesture_cnn and a tiny simulated radar clip dataset."""

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
    assert "_quantize_extended" in tool._command_quantize("gesture_cnn", "gesture", "qat-task-mse", opts)
    assert tool._command_quantize("gesture_cnn", "gesture", "qat-mse", opts).startswith("edgesense quantize")
