"""Parity: onnxruntime running the exported QDQ model vs edgesense's integer simulation (within 1 LSB)."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from tiny_nets import cnn2d, conv1d_net  # noqa: E402

from edgesense.quant import (Encoding, IntegerSim, QuantSim, calibrate, export_float_onnx,  # noqa: E402
                             export_qdq_onnx)
from edgesense.runtime import load_model  # noqa: E402

DATA = Path(__file__).parent / "data"
NETS = {"cnn2d": (cnn2d, (2, 16, 16)), "conv1d": (conv1d_net, (8, 32))}


def _data(shape, n, seed):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def _sim(name, target="ort-cpu", **kw):
    factory, shape = NETS[name]
    calib = _data(shape, 64, 1)
    sim = QuantSim(factory(0), calib[:1], target=target, **kw)
    calibrate(sim, calib.split(16))
    return sim.eval(), shape


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("target", ["ort-cpu", "ort-cpu-u8", "ort-cpu-w8"])
def test_ort_qdq_matches_integer_simulation(tmp_path, name, target):
    sim, shape = _sim(name, target)
    graph = sim.lower()
    x = _data(shape, 200, 2).numpy()
    path = export_qdq_onnx(sim, tmp_path / "m.onnx", graph)
    y_ort = load_model(path).run(x)
    codes, enc = IntegerSim(graph).outputs(x)[0]
    ort_codes = enc.quantize(y_ort).astype(np.int64)
    diff = np.abs(ort_codes - codes.astype(np.int64))
    assert (diff <= 1).mean() >= 0.999
    assert (diff == 0).mean() >= 0.95      # most outputs are bit-exact (ORT keeps some convs in float)
    assert enc.dtype == ("uint8" if target.endswith("u8") else "int8")


def test_full_8_bit_weights_are_exact_on_ort_where_int16_pairs_would_saturate(tmp_path):
    """Equal 8-bit weights (code 127) on inputs near the top of their range: every pair of u8 x s8 products is
    about 2 x 255 x 127 > 32767, which MLAS's default x86 kernels (no VNNI) saturate (measured here: 137 LSB
    off). edgesense.runtime asks ORT for its u8 x u8 kernels there (VNNI CPUs are exact without them), so the
    `ort-cpu-w8` model matches IntegerSim on either."""
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].bias.zero_()
    calib = torch.rand(32, 8, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    sim = QuantSim(net, calib[:1], target="ort-cpu-w8")
    calibrate(sim, calib.split(8))
    graph = sim.eval().lower()
    path = export_qdq_onnx(sim, tmp_path / "m.onnx", graph)
    x = (0.9 + 0.1 * torch.rand(20, 8, 8, 8, generator=torch.Generator().manual_seed(2))).numpy()
    codes, enc = IntegerSim(graph).outputs(x)[0]
    weights = [onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer if t.data_type == 3]
    assert max(int(np.abs(w).max()) for w in weights) == 127         # int8 weights use the full 8 bits
    y = load_model(path).run(x)
    assert np.array_equal(enc.quantize(y).astype(np.int64), codes.astype(np.int64))


@pytest.mark.parametrize("name", sorted(NETS))
def test_fake_quant_simulation_matches_integer_simulation(name):
    sim, shape = _sim(name)
    x = _data(shape, 100, 3)
    with torch.no_grad():
        y_sim = sim.double()(x.double()).float().numpy()
    codes, enc = IntegerSim(sim.lower()).outputs(x.numpy())[0]
    sim_codes = enc.quantize(y_sim).astype(np.int64)
    diff = np.abs(sim_codes - codes.astype(np.int64))
    assert (diff <= 1).mean() >= 0.999 and (diff == 0).mean() >= 0.95


@pytest.mark.parametrize("name", sorted(NETS))
def test_float_twin_equals_torch_model(tmp_path, name):
    factory, shape = NETS[name]
    model = factory(0)
    x = _data(shape, 8, 4)
    sim = QuantSim(model, x[:1])
    path = export_float_onnx(sim, tmp_path / "f.onnx")
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(load_model(path).run(x.numpy()), ref, rtol=1e-4, atol=1e-5)


def test_qdq_graph_shape(tmp_path):
    """The contract documented in docs/quantization.md: int8 weights per-channel axis 0, int32 bias s_in*s_w."""
    sim, _ = _sim("cnn2d", "tflite-int8")
    graph = sim.lower()
    m = onnx.load(str(export_qdq_onnx(sim, tmp_path / "m.onnx", graph)))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    ops = [n.op_type for n in m.graph.node]
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "Add", "MaxPool", "AveragePool",
            "GlobalAveragePool", "Reshape", "Softmax", "Relu", "Clip"} <= set(ops)
    c1 = graph.op("c1")
    assert inits["c1.weight_q"].dtype == np.int8 and np.abs(inits["c1.weight_q"]).max() == 127
    assert inits["c1.weight.scale"].shape == (8,)
    assert inits["c1.bias_q"].dtype == np.int32
    s_in = graph.op("x").out_encoding.scale
    np.testing.assert_array_equal(inits["c1.bias.scale"], (np.float32(s_in) * c1.weight_encoding.scale))
    dq_w = next(n for n in m.graph.node if n.output[0] == "c1.weight")
    assert [a.i for a in dq_w.attribute if a.name == "axis"] == [0]
    sm = inits["softmax.scale"], inits["softmax.zero_point"]
    assert sm[0] == np.float32(1 / 256) and sm[1] == -128 and sm[1].dtype == np.int8
    meta = {p.key: p.value for p in m.metadata_props}
    encs = {k: Encoding.from_dict(v) for k, v in json.loads(meta["edgesense.encodings"]).items()}
    np.testing.assert_array_equal(encs["c1.weight"].scale, inits["c1.weight.scale"])
    assert m.graph.output[0].name == "output" and m.graph.input[0].name == "input"


def test_default_ort_target_uses_7_bit_weights():
    """ORT's reduce_range: exact on x86 without VNNI, where u8 x s8 pairs are summed in saturating int16."""
    graph = _sim("conv1d")[0].lower()
    for op in graph.ops:
        if op.weight_q is not None:
            assert np.abs(op.weight_q).max() == 63 and op.weight_encoding.bitwidth == 7


@pytest.mark.parametrize("name", sorted(NETS))
def test_committed_examples_run_as_recorded(name):
    x = np.load(DATA / f"example_{name}_inputs.npy", allow_pickle=False)
    codes = np.load(DATA / f"example_{name}_codes.npy", allow_pickle=False).astype(np.int64)
    m = onnx.load(str(DATA / f"example_{name}_int8.onnx"))
    encs = json.loads({p.key: p.value for p in m.metadata_props}["edgesense.encodings"])
    out_tensor = [n for n in m.graph.node if "output" in n.output][0].input[0][:-2]
    enc = Encoding.from_dict(encs[out_tensor])
    y = load_model(DATA / f"example_{name}_int8.onnx").run(x)
    diff = np.abs(enc.quantize(y).astype(np.int64) - codes)
    assert (diff <= 1).mean() >= 0.999
    yf = load_model(DATA / f"example_{name}_float.onnx").run(x)
    assert np.abs(yf - y).max() < 0.1 * max(1.0, np.abs(yf).max())


def test_constant_slicing_captures_and_matches_ort(tmp_path):
    """The hybrid excursion model adds a slice of its input (``x[:, k:k + frame]``) to its output."""
    from edgesense.nn.registry import create_model, list_models
    if "excursion_hybrid" not in list_models():
        pytest.skip("excursion_hybrid not registered")
    from tiny_nets import randomize_bn
    torch.manual_seed(0)
    model = randomize_bn(create_model("excursion_hybrid"))
    x = _data((12, 48), 48, 5)
    sim = QuantSim(model, x[:1])
    assert "slice" in [n.kind for n in sim.nodes]
    calibrate(sim, x.split(16))
    graph = sim.eval().lower()
    y = load_model(export_qdq_onnx(sim, tmp_path / "h.onnx", graph)).run(x.numpy())
    codes, enc = IntegerSim(graph).outputs(x.numpy())[0]
    diff = np.abs(enc.quantize(y).astype(np.int64) - codes.astype(np.int64))
    assert (diff <= 1).mean() >= 0.999
    with torch.no_grad():
        assert np.abs(y - model(x).numpy()).max() < 0.1 * np.abs(model(x).numpy()).max()
