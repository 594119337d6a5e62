"""Parity on LiteRT: the QDQ model converted by edgesense.quant.tflite vs edgesense's integer simulation."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
tfl = pytest.importorskip("edgesense.quant.tflite")

from tiny_nets import cnn2d, conv1d_net  # noqa: E402

from edgesense.quant import IntegerSim, QuantSim, calibrate, export_qdq_onnx  # noqa: E402
from edgesense.runtime import load_model  # noqa: E402

NETS = {"cnn2d": (cnn2d, (2, 16, 16)), "conv1d": (conv1d_net, (8, 32))}


@pytest.mark.parametrize("name,target", [("cnn2d", "tflite-int8"), ("conv1d", "ort-cpu")])
def test_litert_int8_matches_integer_simulation(tmp_path, name, target):
    factory, shape = NETS[name]
    g = torch.Generator().manual_seed(1)
    calib = torch.randn((64, *shape), generator=g)
    sim = QuantSim(factory(0), calib[:1], target=target)
    calibrate(sim, calib.split(16))
    graph = sim.eval().lower()
    onnx_path = export_qdq_onnx(sim, tmp_path / "m.onnx", graph)
    model = load_model(tfl.export_tflite(onnx_path, tmp_path / "m.tflite"))
    assert model.backend == "litert" and model.input_specs[0].dtype == np.int8
    x = torch.randn((200, *shape), generator=torch.Generator().manual_seed(2)).numpy()
    codes, enc = IntegerSim(graph).outputs(x)[0]
    raw = model.run(graph.ops[0].out_encoding.quantize(x), raw=True)      # int8 in, int8 out
    assert model.output_specs[0].scale == pytest.approx(float(enc.scale))
    diff = np.abs(raw.astype(np.int64) - codes.astype(np.int64))
    assert (diff <= 1).mean() >= 0.999
    assert (diff == 0).mean() >= 0.9


class _ResidualStack(torch.nn.Module):
    """Six residual 1-D blocks (conv, ReLU, 1x1 conv, Add, ReLU) and a 1x1 output conv: Adds in series."""

    def __init__(self, ch: int = 8) -> None:
        super().__init__()
        self.inp = torch.nn.Conv1d(2, ch, 1)
        self.a = torch.nn.ModuleList(torch.nn.Conv1d(ch, ch, 3, padding=1) for _ in range(6))
        self.b = torch.nn.ModuleList(torch.nn.Conv1d(ch, ch, 1) for _ in range(6))
        self.out = torch.nn.Conv1d(ch, 1, 1)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for a, b in zip(self.a, self.b):
            h = torch.relu(b(torch.relu(a(h))) + h)
        return self.out(h)


def test_litert_matches_integer_simulation_with_xnnpack_add_bit_for_bit(tmp_path):
    """Every Add of a residual stack on LiteRT (XNNPACK) is what IntegerSim(add="xnnpack") computes: the whole
    output is bit-exact, so nothing is left for later layers to amplify."""
    torch.manual_seed(0)
    net = _ResidualStack().eval()
    g = torch.Generator().manual_seed(1)
    calib = torch.randn((64, 2, 64), generator=g)
    sim = QuantSim(net, calib[:1], target="ort-cpu")
    calibrate(sim, calib.split(16))
    graph = sim.eval().lower()
    onnx_path = export_qdq_onnx(sim, tmp_path / "res.onnx", graph)
    model = load_model(tfl.export_tflite(onnx_path, tmp_path / "res.tflite"))
    x = torch.randn((100, 2, 64), generator=torch.Generator().manual_seed(2)).numpy()
    raw = np.concatenate([model.run(graph.ops[0].out_encoding.quantize(x[i:i + 1]), raw=True) for i in range(100)])
    codes, _ = IntegerSim(graph, add="xnnpack").outputs(x)[0]
    np.testing.assert_array_equal(raw.astype(np.int64), codes.astype(np.int64))
