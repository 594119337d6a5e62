import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from tiny_nets import conv1d_net  # noqa: E402

from edgesense.runtime import load_model  # noqa: E402

DATA = Path(__file__).parent / "data"


def _main(argv, capsys):
    from edgesense.cli.main import main
    rc = main(argv)
    return rc, capsys.readouterr()


def test_quantize_float_onnx_writes_int8_model_and_report(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((40, 2, 16, 16)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    rc, out = _main(["quantize", "--model", str(DATA / "example_cnn2d_float.onnx"), "--calib", str(tmp_path / "calib.npy"),
                     "--out", str(tmp_path / "q"), "--method", "percentile", "--json"], capsys)
    assert rc == 0
    summary = json.loads(out.out)
    assert summary["target"] == "ort-cpu" and summary["output_sqnr_db"] > 30
    assert summary["argmax_agreement"] >= 0.9 and summary["sensitivity"]
    model = load_model(summary["int8_onnx"])
    y = model.run(x[:4])
    assert y.shape == (4, 5) and np.allclose(y.sum(1), 1, atol=0.05)
    assert (tmp_path / "q" / "example_cnn2d_float_int8.encodings.json").is_file()


def test_quantize_state_dict_with_arch(tmp_path, capsys, monkeypatch):
    from edgesense.nn import registry
    monkeypatch.setitem(registry._REGISTRY, "test_conv1d_net", lambda **kw: conv1d_net(0))
    torch.save(conv1d_net(0).state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "c.npy", np.random.default_rng(1).standard_normal((30, 8, 32)).astype(np.float32))
    rc, out = _main(["quantize", "--model", str(tmp_path / "m.pt"), "--arch", "test_conv1d_net", "--calib",
                     str(tmp_path / "c.npy"), "--out", str(tmp_path / "o"), "--cle", "--bias-correction"], capsys)
    assert rc == 0 and "SQNR" in out.out
    assert (tmp_path / "o" / "m_int8.onnx").is_file()


@pytest.mark.parametrize("argv,match", [
    (["--model", "missing.onnx"], "no such model file"),
    (["--model", str(DATA / "example_cnn2d_float.onnx"), "--target", "gpu"], "unknown target"),
])
def test_quantize_user_errors_are_one_line(tmp_path, capsys, argv, match):
    np.save(tmp_path / "c.npy", np.zeros((4, 2, 16, 16), np.float32))
    rc, out = _main(["quantize", *argv, "--calib", str(tmp_path / "c.npy"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and match in out.err and "Traceback" not in out.err


def test_quantize_rejects_calibration_of_the_wrong_shape(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros((4, 3), np.float32))
    rc, out = _main(["quantize", "--model", str(DATA / "example_cnn2d_float.onnx"), "--calib", str(tmp_path / "c.npy"),
                     "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "sample shape" in out.err


@pytest.mark.slow
def test_quantize_excursion_model_with_qat_fine_tune(tmp_path, capsys):
    """`--qat-steps` fine-tunes a calibrated streaming excursion model on a speaker dataset's labels: the
    exported weights move away from the post-training ones and the report records the QAT run."""
    import onnx
    from onnx import numpy_helper

    from edgesense.nn.train_excursion import TrainConfig, build_model, export_model, spec_for
    from edgesense.sim.speaker_dataset import write_speaker_dataset

    torch.manual_seed(0)
    model = build_model("convnet")
    f = export_model(model, spec_for(model, "convnet", TrainConfig()), tmp_path / "convnet.onnx")[0]
    data = tmp_path / "speaker"
    write_speaker_dataset(data, "ref", "nominal", seconds=2.0, seed=0, clip_s=0.4, show_progress=False)
    common = ["quantize", "--model", str(f), "--calib", str(data), "--max-samples", "2", "--stream-block", "200",
              "--calib-split", "train", "--json"]
    rc, _ = _main(common + ["--out", str(tmp_path / "ptq")], capsys)
    assert rc == 0
    rc, out = _main(common + ["--out", str(tmp_path / "qat"), "--qat-steps", "4", "--qat-signals", "2"], capsys)
    assert rc == 0
    summary = json.loads(out.out)
    assert summary["qat"]["steps"] == 4 and len(summary["qat"]["loss"]) == 1
    assert np.isfinite(summary["qat"]["loss"][0])

    def weights(d):
        m = onnx.load(str(d / "convnet_int8.onnx"))
        return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer if i.name.endswith("weight_q")}

    a, b = weights(tmp_path / "ptq"), weights(tmp_path / "qat")
    assert a.keys() == b.keys() and any(not np.array_equal(a[k], b[k]) for k in a)
    y = load_model(tmp_path / "qat" / "convnet_int8.onnx").run(
        {s.name: np.zeros([1] + [int(d) if isinstance(d, int) else 12 for d in s.shape[1:]], np.float32)
         for s in load_model(tmp_path / "qat" / "convnet_int8.onnx").input_specs})
    assert np.all(np.isfinite(y["y"]))


MODEL_2D = DATA / "example_cnn2d_float.onnx"


def test_step_flags_give_the_int8_model_of_the_library_calls(tmp_path, capsys):
    """`--adaround --refine --qat-steps` = calibrate, then adaround, refine_activation_ranges (logit SQNR against the
    float model as it was before the steps) and train_qat_distill on the calibration part, called directly."""
    from edgesense.quant import QuantConfig, QuantSim, export_qdq_onnx, get_target
    from edgesense.quant.adaround import AdaRoundConfig, adaround
    from edgesense.quant.analyzers import AnalyzerConfig
    from edgesense.quant.ptq import refine_activation_ranges
    from edgesense.quant.qat import train_qat_distill
    from edgesense.quant.sensitivity import sqnr_db
    from edgesense.quant.sim import calibrate

    x = np.random.default_rng(0).standard_normal((40, 2, 16, 16)).astype(np.float32)
    np.save(tmp_path / "c.npy", x)
    rc, out = _main(["quantize", "--model", str(MODEL_2D), "--calib", str(tmp_path / "c.npy"), "--out",
                     str(tmp_path / "cli"), "--method", "mse", "--adaround", "--adaround-iters", "12", "--refine",
                     "--qat-steps", "3", "--json"], capsys)
    assert rc == 0
    s = json.loads(out.out)
    assert s["adaround"]["iterations"] == 12 and s["adaround"]["samples"] == 32
    assert s["refinement"]["output_sqnr_db_after"] >= s["refinement"]["output_sqnr_db_before"]
    assert s["qat"]["objective"] == "float outputs" and s["qat"]["steps"] == 3 and s["sensitivity"]

    sim = QuantSim.from_onnx(MODEL_2D, get_target("ort-cpu"),
                             QuantConfig(activations=AnalyzerConfig("mse"), weights=AnalyzerConfig("minmax")))
    calib = torch.from_numpy(x)[8:]                  # the CLI holds out the first fifth
    calibrate(sim, list(calib.split(64)))
    logits = next(nd.inputs[0] for nd in sim.nodes if nd.kind == "softmax")

    def logit_out(quantize: bool):
        sim.quantize = quantize
        try:
            with torch.no_grad():
                return sim.forward_all(calib)[1][logits]
        finally:
            sim.quantize = True

    ref = logit_out(False)
    adaround(sim, list(calib.split(64)), AdaRoundConfig(iterations=12, seed=0))
    refine_activation_ranges(sim, lambda: sqnr_db(ref, logit_out(True)))
    train_qat_distill(sim, calib, 3, 1e-4, seed=0)
    sim.eval()
    export_qdq_onnx(sim, tmp_path / "lib.onnx", sim.lower())
    assert (tmp_path / "cli" / "example_cnn2d_float_int8.onnx").read_bytes() == (tmp_path / "lib.onnx").read_bytes()


@pytest.mark.parametrize("argv,match", [
    (["--adaround", "--weight-method", "mse"], "--adaround needs --weight-method minmax"),
    (["--adaround-iters", "5"], "--adaround-iters needs --adaround"),
    (["--qat-objective", "task"], "--qat-objective needs --qat-steps"),
    (["--qat-steps", "2", "--qat-objective", "task"], "needs labels"),
    (["--qat-steps", "2", "--qat-objective", "task+float"], "needs labels"),
])
def test_impossible_step_combinations_are_one_line_errors(tmp_path, capsys, argv, match):
    np.save(tmp_path / "c.npy", np.zeros((4, 2, 16, 16), np.float32))
    rc, out = _main(["quantize", "--model", str(MODEL_2D), "--calib", str(tmp_path / "c.npy"), "--out",
                     str(tmp_path / "o"), *argv], capsys)
    assert rc == 2 and match in out.err and "Traceback" not in out.err
    assert len(out.err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,match", [
    (["--qat-objective", "float"], "not available for streaming models"),
    ([], "needs a speaker dataset"),
])
def test_streaming_qat_without_a_speaker_dataset_is_a_one_line_error(tmp_path, capsys, argv, match):
    model = Path(__file__).resolve().parents[2] / "models" / "convnet" / "convnet.onnx"
    if not model.is_file():
        pytest.skip("models/convnet is not shipped")
    np.save(tmp_path / "c.npy", np.zeros((2, 8, 48), np.float32))
    rc, out = _main(["quantize", "--model", str(model), "--calib", str(tmp_path / "c.npy"), "--stream-block", "12",
                     "--out", str(tmp_path / "o"), "--qat-steps", "2", *argv], capsys)
    assert rc == 2 and match in out.err and len(out.err.strip().splitlines()) == 1


def test_help_names_every_step_and_objectives_match_the_library(capsys):
    from edgesense.cli.cmd_quantize import QAT_OBJECTIVES
    from edgesense.quant.qat import QAT_OBJECTIVES as LIBRARY

    assert QAT_OBJECTIVES == LIBRARY
    with pytest.raises(SystemExit) as exc:
        _main(["quantize", "--help"], capsys)
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--adaround", "--adaround-iters", "--refine", "--qat-steps", "--qat-objective", "--qat-clips"):
        assert flag in text
    assert "steps after calibration" in text and "AdaRound" in text


def test_adaround_on_a_model_without_weights_is_a_one_line_error(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Softmax", ["r"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "relu.onnx")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32))
    common = ["quantize", "--model", str(tmp_path / "relu.onnx"), "--calib", str(tmp_path / "c.npy")]
    rc, out = _main([*common, "--out", str(tmp_path / "o"), "--adaround"], capsys)
    assert rc == 2 and "no conv or linear layer" in out.err and len(out.err.strip().splitlines()) == 1
    rc, _ = _main([*common, "--out", str(tmp_path / "o2"), "--refine"], capsys)
    assert rc == 0 and (tmp_path / "o2" / "relu_int8.onnx").is_file()
