"""Quantizing from float ONNX (as the trainers export it) and parity of the result on onnxruntime."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from tiny_nets import cnn2d, conv1d_net  # noqa: E402

from edgesense.errors import ModelError  # noqa: E402
from edgesense.quant import IntegerSim, QuantSim, calibrate, export_float_onnx, export_qdq_onnx  # noqa: E402
from edgesense.runtime import load_model  # noqa: E402


def _export(model, x, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x[:1],), str(path), input_names=["inp"], output_names=["out"], opset_version=17,
                          dynamo=False, dynamic_axes={"inp": {0: "b"}, "out": {0: "b"}})
    return path


def _registry_model(name):
    from edgesense.nn.registry import create_model, list_models
    if name not in list_models():
        pytest.skip(f"{name} not registered")
    torch.manual_seed(0)
    m = create_model(name, **({"rows": 16, "frames": 16} if name.startswith("gesture") else {})).eval()
    from tiny_nets import randomize_bn
    return randomize_bn(m)


CASES = {
    "cnn2d": lambda: (cnn2d(0), (2, 16, 16)),
    "conv1d": lambda: (conv1d_net(0), (8, 32)),
    "gesture_cnn": lambda: (_registry_model("gesture_cnn"), (2, 16, 16)),
    "gesture_crnn": lambda: (_registry_model("gesture_crnn"), (2, 16, 16)),
    "excursion_fftnet": lambda: (_registry_model("excursion_fftnet"), (8, 48)),
    "excursion_convnet": lambda: (_registry_model("excursion_convnet"), (8, 48)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_float_onnx_quantizes_with_parity(tmp_path, case):
    model, shape = CASES[case]()
    g = torch.Generator().manual_seed(0)
    calib, test = torch.randn((64, *shape), generator=g), torch.randn((100, *shape), generator=g)
    src = _export(model, calib, tmp_path / "f.onnx")
    sim = QuantSim.from_onnx(src)
    calibrate(sim, calib.split(32))
    sim.eval()
    graph = sim.lower()
    q = load_model(export_qdq_onnx(sim, tmp_path / "q.onnx", graph))
    assert q.input_specs[0].name == "inp" and q.output_specs[0].name == "out"
    y = q.run(test.numpy())
    codes, enc = IntegerSim(graph).outputs(test.numpy())[0]
    diff = np.abs(enc.quantize(y).astype(np.int64) - codes.astype(np.int64))
    assert (diff <= 1).mean() >= 0.999
    with torch.no_grad():
        ref = model(test).numpy()
    twin = load_model(export_float_onnx(sim, tmp_path / "t.onnx")).run(test.numpy())
    np.testing.assert_allclose(twin, ref, rtol=1e-4, atol=1e-4)
    rel = np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-6)
    assert rel < 0.15


def test_unsupported_onnx_op(tmp_path):
    class Sig(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    src = _export(Sig(), torch.zeros(1, 3), tmp_path / "s.onnx")
    with pytest.raises(ModelError, match="unsupported ONNX op Sigmoid"):
        QuantSim.from_onnx(src)
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        QuantSim.from_onnx(tmp_path / "bad.onnx")
