"""FFTNet excursion regressor: causality, receptive field, streaming equals whole-signal, registry."""

import pytest

torch = pytest.importorskip("torch")

from edgesense.nn import create_model  # noqa: E402
from edgesense.nn.fftnet import FFTNet  # noqa: E402


def _randomise_bn(model):
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def test_registered_names_build_the_right_inputs():
    assert create_model("excursion_fftnet").in_signals == 2
    hybrid = create_model("excursion_hybrid")
    assert isinstance(hybrid, FFTNet) and hybrid.in_signals == 3


def test_receptive_field_is_two_to_the_layers_and_causal():
    torch.manual_seed(0)
    model = _randomise_bn(FFTNet(layers=5, channels=8))
    assert model.receptive_field == 32
    x = torch.randn(1, 8, 100)
    y = model(x)
    x2 = x.clone()
    x2[..., 60] += 5.0                      # a change at step 60 ...
    d = (model(x2) - y).abs().amax(dim=1)[0]
    assert torch.all(d[:60] == 0)           # ... never reaches earlier outputs (causal)
    assert d[60] > 0 and d[60 + 31] > 0     # and reaches exactly receptive_field - 1 steps ahead
    assert torch.all(d[60 + 32:] == 0)


def test_streaming_over_arbitrary_blocks_equals_whole_signal():
    torch.manual_seed(0)
    model = _randomise_bn(create_model("excursion_hybrid"))
    x = torch.randn(1, 12, 900)
    whole = model(x)
    states = model.initial_state()
    assert [tuple(s.shape[1:]) for s in states] == [(24, 2 ** k) for k in reversed(range(8))]
    outs, pos = [], 0
    for b in (1, 7, 128, 3, 300, 461):
        y, *states = model.stream(x[..., pos:pos + b], *states)
        outs.append(y)
        pos += b
    torch.testing.assert_close(torch.cat(outs, dim=-1), whole, atol=1e-5, rtol=1e-5)


def test_cost_matches_the_studied_budget():
    model = create_model("excursion_fftnet")
    assert 10_000 < model.num_parameters() < 20_000
    assert model.macs_per_step() / model.frame < 4_000   # MACs per 48 kHz sample


def test_training_split_form_equals_dilated_conv():
    from edgesense.nn.fftnet import CausalConv1d

    torch.manual_seed(0)
    conv = CausalConv1d(4, 5, 2, dilation=8)
    x = torch.randn(2, 4, 40)
    conv.train()
    a = conv(x)
    conv.eval()
    torch.testing.assert_close(a, conv(x), atol=1e-6, rtol=1e-5)


def test_hybrid_predicts_a_correction_of_the_tracked_input():
    torch.manual_seed(0)
    model = _randomise_bn(create_model("excursion_hybrid"))
    x = torch.randn(1, 12, 50)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    torch.testing.assert_close(model(x), x[:, 8:12])      # zero correction: the tracked prediction itself
    y, *_ = model.stream(x, *model.initial_state())
    torch.testing.assert_close(y, x[:, 8:12])
