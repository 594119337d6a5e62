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
