import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgesense.errors import EdgesenseError  # noqa: E402
from edgesense.quant import (ActQuantizerPerTensorAsym, AnalyzerConfig, Encoding, FixedQuantizer,  # noqa: E402
                             MinMaxAnalyzer, MseAnalyzer, PercentileAnalyzer, WeightQuantizerPerChannelSym,
                             get_target, grid_limits)
from edgesense.quant.functional import fake_quantize, scale_zero_point_from_range  # noqa: E402
from edgesense.quant.integer import multiply_by_quantized_multiplier, quantize_multiplier  # noqa: E402


def test_grid_limits():
    assert grid_limits(8, True, True) == (-127, 127)
    assert grid_limits(8, True, False) == (-128, 127)
    assert grid_limits(8, False, False) == (0, 255)
    assert grid_limits(4, True, True) == (-7, 7)


def test_encoding_from_range_keeps_zero_exact_and_round_trips_json():
    e = Encoding.from_range(0.3, 2.0)           # range widened to include 0
    assert e.dequantize(e.quantize(np.zeros(3))).tolist() == [0.0, 0.0, 0.0]
    assert int(e.zero_point) == -128
    assert Encoding.from_dict(e.to_dict()) == e or np.array_equal(Encoding.from_dict(e.to_dict()).scale, e.scale)
    with pytest.raises(ValueError):
        Encoding(np.float32(-1), np.int64(0), None, "int8", 8, False)
    with pytest.raises(ValueError):
        Encoding(np.ones(3, np.float32), np.zeros(3), None, "int8", 8, True)


@settings(max_examples=60, deadline=None)
@given(st.floats(-50, -1e-3), st.floats(1e-3, 50), st.integers(0, 2 ** 31 - 1), st.sampled_from(["int8", "uint8"]))
def test_fake_quant_equals_encoding_quantize_dequantize(lo, hi, seed, dtype):
    """The torch fake quantizer and the exporters' Encoding compute the same grid values."""
    q = ActQuantizerPerTensorAsym(8, dtype)
    q.set_range(lo, hi)
    x = torch.from_numpy(np.random.default_rng(seed).uniform(2 * lo, 2 * hi, 500).astype(np.float32))
    enc = q.encoding()
    np.testing.assert_array_equal(q(x).detach().numpy(), enc.dequantize(enc.quantize(x.numpy())))


def test_round_half_to_even_in_fake_quant():
    s, z = torch.tensor(1.0), torch.tensor(0.0)
    y = fake_quantize(torch.tensor([0.5, 1.5, 2.5, -0.5, 300.0]), s, z, -128, 127)
    assert y.tolist() == [0.0, 2.0, 2.0, -0.0, 127.0]


def test_weight_quantizer_per_channel_symmetric():
    w = torch.randn(6, 3, 3) * torch.arange(1, 7).reshape(6, 1, 1)
    q = WeightQuantizerPerChannelSym(8, True, channels=6)
    q.set_range_from(w)
    enc = q.encoding()
    assert enc.axis == 0 and enc.scale.shape == (6,) and not enc.zero_point.any()
    codes = enc.quantize(w.numpy())
    assert np.abs(codes).max() == 127 and codes.min() >= -127
    np.testing.assert_allclose(enc.scale, w.abs().reshape(6, -1).max(1).values.numpy() / 127, rtol=1e-6)
    pt = WeightQuantizerPerChannelSym(8, False)
    pt.set_range_from(w)
    assert pt.encoding().axis is None


def test_softmax_output_grid():
    enc = FixedQuantizer.softmax_output("int8").encoding()
    assert enc.scale == np.float32(1 / 256) and int(enc.zero_point) == -128
    assert int(FixedQuantizer.softmax_output("uint8").encoding().zero_point) == 0


def test_analyzers():
    x = torch.cat([torch.linspace(-1, 1, 10001), torch.tensor([40.0])])
    mm = MinMaxAnalyzer()
    mm.update(x)
    assert [float(v) for v in mm.compute()] == [-1.0, 40.0]
    pc = PercentileAnalyzer(percentile=99.9)
    pc.update(x)
    lo, hi = pc.compute()
    assert float(hi) < 2.0 and float(lo) == pytest.approx(-1.0, abs=0.01)
    heavy = torch.distributions.Laplace(0.0, 1.0).sample((20000,)) ** 3     # heavy tails: clipping pays off
    ms = MseAnalyzer(qmin=-8, qmax=7)
    ms.update(heavy)
    lo, hi = ms.compute()
    assert float(hi) < 0.8 * float(heavy.max()) and float(lo) > 0.8 * float(heavy.min())
    per_ch = MinMaxAnalyzer(axis=0)
    per_ch.update(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
    assert per_ch.compute()[1].tolist() == [1.0, 4.0]
    with pytest.raises(EdgesenseError):
        MinMaxAnalyzer().compute()
    with pytest.raises(EdgesenseError):
        AnalyzerConfig("entropy")


@pytest.mark.parametrize("param", ["minmax", "scale_offset", "beta_gamma"])
def test_range_parameterisations_start_on_the_same_grid_and_get_gradients(param):
    q = ActQuantizerPerTensorAsym(8, "int8", range_param=param)
    q.set_range(-1.0, 3.0)
    ref = ActQuantizerPerTensorAsym(8, "int8")
    ref.set_range(-1.0, 3.0)
    assert q.encoding().scale == pytest.approx(float(ref.encoding().scale), rel=1e-6)
    assert int(q.encoding().zero_point) == int(ref.encoding().zero_point)
    x = torch.linspace(-2, 5, 101)
    q(x).sum().backward()
    grads = [p.grad for p in q.range.parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs()) > 0 for g in grads)


def test_min_max_scale_zero_point_formula():
    s, z = scale_zero_point_from_range(torch.tensor(-1.0), torch.tensor(3.0), -128, 127)
    assert float(s) == pytest.approx(4.0 / 255)
    assert float(z) == -128 - round(-1.0 / (4.0 / 255))


def test_fixed_point_requantization_matches_reference_formula():
    m = np.array([0.3, 0.0041, 0.75, 1.7])
    m0, shift = quantize_multiplier(m)
    assert np.all((m0 >= 2 ** 30) & (m0 < 2 ** 31))
    np.testing.assert_allclose(m0 * 2.0 ** (shift - 31), m, rtol=1e-9)
    acc = np.array([[1000, -1000, 12345, -7]] * 4).T
    out = multiply_by_quantized_multiplier(acc, m0[None, :], shift[None, :])
    exact = acc * m[None, :]
    assert np.all(np.abs(out - exact) <= 0.5 + 1e-6)
    # the final rounding shift rounds ties away from zero: 10 * 0.25 = 2.5 -> 3, -2.5 -> -3
    m0h, sh = quantize_multiplier(np.array([0.25]))
    assert multiply_by_quantized_multiplier(np.array([10, -10]), m0h, sh).tolist() == [3, -3]


def test_targets():
    assert get_target("ort-cpu").per_channel_weights
    assert get_target("per-tensor-int8").per_channel_weights is False
    assert get_target("ort-cpu-u8").activation_dtype == "uint8"
    with pytest.raises(EdgesenseError, match="unknown target"):
        get_target("gpu")
