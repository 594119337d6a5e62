import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tiny_nets import cnn2d, conv1d_net  # noqa: E402

from edgesense.errors import ModelError  # noqa: E402
from edgesense.quant import IntegerSim, QuantSim, TargetProfile, calibrate, calibration, export_qdq_onnx  # noqa: E402
from edgesense.quant.ptq import PTQConfig, correct_bias, equalizable_pairs, equalize, quantize_ptq  # noqa: E402
from edgesense.quant.qat import QATConfig, range_parameters, train_qat  # noqa: E402
from edgesense.quant.sensitivity import format_report, sensitivity_report, sqnr_db  # noqa: E402
from edgesense.runtime import load_model  # noqa: E402


def _x(shape, n=64, seed=1):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_bn_folding_preserves_the_float_function():
    m = cnn2d(0)
    x = _x((2, 16, 16), 8)
    sim = QuantSim(m, x[:1])
    with torch.no_grad():
        np.testing.assert_allclose(sim.float_model()(x).numpy(), m(x).numpy(), atol=1e-6)
    assert "b1" not in {n.name for n in sim.nodes} and sim.nodes[1].attrs["folded_bn"] == "b1"


def test_calibration_context_manager_sets_ranges_only_on_success():
    m = conv1d_net(0)
    x = _x((8, 32))
    sim = QuantSim(m, x[:1])
    with pytest.raises(RuntimeError):
        with calibration(sim):
            sim(x)
            raise RuntimeError("interrupted")
    assert not any(q.initialized for q in sim.act_quantizers.values())
    with calibration(sim):
        sim(x)
    assert all(q.initialized for q in sim.act_quantizers.values())
    with torch.no_grad():
        assert sqnr_db(m(x), sim(x)) > 30


def test_cross_layer_equalization_keeps_function_and_balances_ranges():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 6, 1), nn.ReLU(), nn.Conv1d(6, 3, 1))
    with torch.no_grad():
        m[0].weight.mul_(torch.logspace(-2, 1, 8).reshape(8, 1, 1))   # badly balanced channels
    x = _x((4, 20), 16)
    sim = QuantSim(m, x[:1])
    before = sim.float_model()
    pairs = equalize(sim)
    assert pairs == [("_0", "_2"), ("_2", "_4")]
    with torch.no_grad():
        np.testing.assert_allclose(sim.float_model()(x).numpy(), before(x).numpy(), rtol=1e-4, atol=1e-5)
        r1 = sim.layers["_0"].weight.abs().amax(dim=(1, 2))
        r2 = sim.layers["_2"].weight.abs().amax(dim=(0, 2))
    np.testing.assert_allclose(r1.numpy(), r2.numpy(), rtol=0.2)


def test_high_bias_absorption_is_exact_when_the_bias_keeps_relu_inputs_positive():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).eval()
    with torch.no_grad():
        m[1].bias.fill_(5.0)
        m[1].weight.fill_(0.5)
    x = _x((5,), 32)
    sim = QuantSim(m, x[:1])
    before = sim.float_model()
    equalize(sim, absorb_bias=True)
    with torch.no_grad():
        np.testing.assert_allclose(sim.float_model()(x).numpy(), before(x).numpy(), rtol=1e-4, atol=1e-4)
        assert float(sim.layers["_0"].bias.abs().max()) < 4.0     # most of the 5.0 moved on


def test_bias_correction_reduces_mean_output_error():
    m = conv1d_net(0)
    x = _x((8, 32), 64)
    target = TargetProfile("w4", weight_bitwidth=4)
    sim = quantize_ptq(m, x[:1], x.split(16), target=target)
    with torch.no_grad():
        ref = m(x)
        err_before = float((sim(x) - ref).mean(dim=(0, 2)).abs().mean())
    corrected = correct_bias(sim, x.split(16))
    assert set(corrected) == set(sim.layers.keys())
    with torch.no_grad():
        err_after = float((sim(x) - ref).mean(dim=(0, 2)).abs().mean())
    assert err_after < err_before


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_ptq_methods_give_accurate_int8(method):
    m = cnn2d(0)
    x = _x((2, 16, 16), 64)
    sim = quantize_ptq(m, x[:1], x.split(32), config=PTQConfig(method=method))
    with torch.no_grad():
        assert sqnr_db(m(x), sim(x)) > 30


def test_per_tensor_target_exports_scalar_weight_scales(tmp_path):
    m = conv1d_net(0)
    x = _x((8, 32), 32)
    target = TargetProfile("per-tensor-ort", per_channel_weights=False, requantization="float")
    sim = quantize_ptq(m, x[:1], [x], target=target)
    g = sim.lower()
    assert all(op.weight_encoding.axis is None for op in g.ops if op.weight_encoding is not None)
    y = load_model(export_qdq_onnx(sim, tmp_path / "m.onnx", g)).run(x.numpy())
    codes, enc = IntegerSim(g).outputs(x.numpy())[0]
    diff = np.abs(enc.quantize(y).astype(int) - codes.astype(int))
    assert (diff <= 1).mean() >= 0.999


@pytest.mark.parametrize("param", ["minmax", "scale_offset", "beta_gamma"])
def test_qat_lowers_loss_at_4_bits(param):
    m = conv1d_net(0)
    x = _x((8, 32), 64)
    with torch.no_grad():
        ref = m(x)
    target = TargetProfile("w4a4", weight_bitwidth=4, activation_bitwidth=4)
    sim = quantize_ptq(m, x[:1], x.split(32), target=target, config=PTQConfig(range_param=param))
    assert range_parameters(sim)
    with torch.no_grad():
        before = float(((sim(x) - ref) ** 2).mean())
    data = list(zip(x.split(16), ref.split(16)))
    hist = train_qat(sim, data, lambda o, t: ((o - t) ** 2).mean(), QATConfig(epochs=4, lr=2e-3))
    with torch.no_grad():
        after = float(((sim(x) - ref) ** 2).mean())
    assert len(hist) == 4 and after < before


def test_sensitivity_report_covers_every_quantizer():
    m = cnn2d(0)
    x = _x((2, 16, 16), 32)
    sim = quantize_ptq(m, x[:1], [x])
    rows = sensitivity_report(sim, [x])
    names = [r.tensor for r in rows]
    assert names == [n for n, _ in sim.quantizers()]
    assert {"c1.weight", "fc", "softmax"} <= set(names)
    assert all(r.isolated_output_sqnr_db > 20 for r in rows)
    assert "most sensitive" in format_report(rows)
    assert all(q.enabled for _, q in sim.quantizers())


def test_mean_pool_and_unsupported_ops():
    class MeanNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.c(x)).mean(dim=(2, 3)))

    x = _x((1, 8, 8), 8)
    sim = QuantSim(MeanNet().eval(), x[:1])
    assert [n.kind for n in sim.nodes] == ["input", "conv", "relu", "gap", "reshape", "linear", "output"]
    calibrate(sim, [x])
    with torch.no_grad():
        assert sqnr_db(MeanNet.forward(sim.float_model(), x) if False else sim.float_model()(x), sim(x)) > 25

    class Bad(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    with pytest.raises(ModelError, match="unsupported operation sigmoid"):
        QuantSim(Bad(), x[:1])
    with pytest.raises(ModelError, match="unsupported layer LSTM"):
        QuantSim(nn.Sequential(nn.LSTM(8, 4)), torch.zeros(1, 2, 8))


def test_equalizable_pairs_skip_branches():
    sim = QuantSim(cnn2d(0), _x((2, 16, 16), 1))
    assert equalizable_pairs(sim) == []     # c1's ReLU feeds both c2 and the residual add


def test_bn_reestimation_before_capture_uses_the_shared_utility_and_leaves_the_model_alone():
    pytest.importorskip("edgesense.nn.bn_reestimation")
    m = conv1d_net(0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = _x((8, 32), 64) * 3 + 1          # shifted statistics
    plain = quantize_ptq(m, x[:1], x.split(32))
    reest = quantize_ptq(m, x[:1], x.split(32), config=PTQConfig(bn_reestimation=True))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not torch.allclose(plain.layers["inp"].bias, reest.layers["inp"].bias)
    with torch.no_grad():   # re-estimated BN normalises the shifted data: first-layer outputs are ~zero-mean
        h = reest.float_model().layers["inp"](x, False)
    assert float(h.mean(dim=(0, 2)).abs().max()) < 0.3


def test_beta_gamma_sigmoid_variant_starts_inside_the_calibrated_range():
    from edgesense.quant import ActQuantizerPerTensorAsym
    from edgesense.quant.quantizers import BetaGammaRange
    q = ActQuantizerPerTensorAsym(8, "int8", range_param="beta_gamma")
    q.range = BetaGammaRange(q.qmin, q.qmax, sigmoid=True)
    q.set_range(-1.0, 2.0)
    s = q.scale_zero_point()[0].detach()
    assert float(s) == pytest.approx(3.0 * float(torch.sigmoid(torch.tensor(4.0))) / 255, rel=1e-5)


def test_label_free_qat_moves_the_int8_output_towards_float():
    """train_qat_distill (the zoo's gesture QAT): no labels, the float model's own outputs are the target."""
    from edgesense.quant.qat import train_qat_distill

    m = conv1d_net(0)
    x = _x((8, 32), 64)
    with torch.no_grad():
        ref = m(x)
    sim = quantize_ptq(m, x[:1], x.split(32), target=TargetProfile("w4a4", weight_bitwidth=4, activation_bitwidth=4))
    with torch.no_grad():
        before = float(((sim(x) - ref) ** 2).mean())
    hist = train_qat_distill(sim, x, steps=40, lr=2e-3, batch=16, seed=0)
    with torch.no_grad():
        after = float(((sim(x) - ref) ** 2).mean())
    assert len(hist) == 1 and np.isfinite(hist[0]) and after < before
    assert not sim.training


def test_output_aware_range_refinement_raises_output_sqnr_and_keeps_export_exact(tmp_path):
    """refine_activation_ranges: a deliberately bad range (x4 too wide) is narrowed, the output SQNR never drops,
    and the refined sim still exports to a QDQ model that ORT runs exactly as IntegerSim predicts."""
    from edgesense.quant.ptq import refine_activation_ranges
    from edgesense.quant.quantizers import ActQuantizerPerTensorAsym

    m = conv1d_net(0)
    x = _x((8, 32), 64)
    sim = quantize_ptq(m, x[:1], x.split(32), target="ort-cpu")
    name, q = next((n, q) for n, q in sim.quantizers() if isinstance(q, ActQuantizerPerTensorAsym) and n != "x")
    with torch.no_grad():
        s, z = q.scale_zero_point()
        q.set_range(float((q.qmin - z) * s) * 8, float((q.qmax - z) * s) * 8)
        ref = m(x)

    def score():
        return sqnr_db(ref, sim(x))

    with torch.no_grad():
        start = score()
    r = refine_activation_ranges(sim, score, max_tensors=3)
    with torch.no_grad():
        assert r.score_before == pytest.approx(start) and r.score_after == pytest.approx(score())
    assert r.score_after > start + 1.0 and name in r.changed
    (lo0, hi0), (lo1, hi1) = r.changed[name]
    assert hi1 - lo1 < hi0 - lo0
    assert not sim.training
    path = export_qdq_onnx(sim, tmp_path / "refined.onnx")
    codes, enc = IntegerSim(sim.lower()).outputs([x[:4].numpy()])[0]
    y = np.asarray(load_model(path, threads=1).run(x[:4].numpy()), np.float32)
    assert np.abs(enc.quantize(y).astype(int) - codes.astype(int)).max() <= 1


def test_adaround_targets_are_the_float_models_outputs(monkeypatch):
    """Every layer is fitted to the *float* model's output (Nagel et al. 2020; AIMET): rounding an earlier layer
    writes grid weights into the sim, which must not move the reference of the layers after it."""
    import edgesense.quant.adaround as ar

    m = conv1d_net(0)
    x = _x((8, 32), 64)
    sim = quantize_ptq(m, x[:1], x.split(32), target=TargetProfile("w4", weight_bitwidth=4))
    float_out = {}
    names = [nd.name for nd in sim.nodes if nd.kind in ("conv", "linear")]
    assert len(names) >= 2
    for n in names:           # each layer's output in the untouched float model
        float_out[n] = ar._capture(sim, n, [(b,) for b in x.split(32)], quantize=False)[1]
    seen = {}
    real = ar._round_layer

    def spy(sim_, name, x_q, y_f, act, cfg):
        seen[name] = y_f.clone()
        return real(sim_, name, x_q, y_f, act, cfg)

    monkeypatch.setattr(ar, "_round_layer", spy)
    rep = ar.adaround(sim, x.split(32), ar.AdaRoundConfig(iterations=60, batch=64, lr=3e-2))
    assert sum(r["flipped"] for r in rep.values()) > 0            # earlier layers did change their weights
    for n in names:
        assert torch.equal(seen[n], float_out[n]), n


def test_adaround_lowers_layer_error_at_4_bits_and_exports_its_rounding(tmp_path):
    """AdaRound (learned rounding): at 4-bit weights the output gets closer to float than nearest rounding, each
    layer's fitted error never rises, the learned integers are what the sim's weight quantizer and the QDQ export
    carry (weights are exact grid values, scales unchanged), and ORT runs it as IntegerSim predicts."""
    from edgesense.quant.adaround import AdaRoundConfig, adaround

    m = conv1d_net(0)
    x = _x((8, 32), 128)
    target = TargetProfile("w4", weight_bitwidth=4)
    sim = quantize_ptq(m, x[:1], x.split(32), target=target)
    scales = {k: layer.weight_quantizer.scale_zero_point()[0].clone() for k, layer in sim.layers.items()}
    with torch.no_grad():
        ref = m(x)
        before = sqnr_db(ref, sim(x))
    rep = adaround(sim, x.split(32), AdaRoundConfig(iterations=80, batch=64, lr=3e-2))
    assert set(rep) and all(r["mse_adaround"] <= r["mse_nearest"] for r in rep.values())
    assert sum(r["flipped"] for r in rep.values()) > 0
    with torch.no_grad():
        after = sqnr_db(ref, sim(x))
    assert after > before + 0.5
    for k, layer in sim.layers.items():
        s, _ = layer.weight_quantizer.scale_zero_point()
        assert torch.allclose(s, scales[k])
        w = layer.weight.detach()
        q = w / s.reshape((-1,) + (1,) * (w.ndim - 1))
        assert torch.allclose(q, torch.round(q), atol=1e-3)        # on the grid: nearest rounding keeps it
    with pytest.raises(Exception, match="min/max weight ranges"):
        adaround(quantize_ptq(m, x[:1], x.split(32), config=PTQConfig(weight_method="mse")), x.split(32))
    sim8 = quantize_ptq(m, x[:1], x.split(32), target="ort-cpu")
    adaround(sim8, x.split(32), AdaRoundConfig(iterations=10))
    path = export_qdq_onnx(sim8, tmp_path / "adaround.onnx")
    codes, enc = IntegerSim(sim8.lower()).outputs([x[:4].numpy()])[0]
    y = np.asarray(load_model(path, threads=1).run(x[:4].numpy()), np.float32)
    assert np.abs(enc.quantize(y).astype(int) - codes.astype(int)).max() <= 1
