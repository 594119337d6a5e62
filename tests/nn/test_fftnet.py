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


def test_excursion_loss_weights_loud_samples():
    from edgesense.nn.train_excursion import excursion_loss

    target = torch.tensor([[[0.1, 0.5, -0.6, 0.0]]])          # network units y = x·Bl / x_scale
    out = torch.zeros_like(target)
    plain = excursion_loss(out, target, [1.0], 0.5)
    assert torch.isclose(plain, torch.mean(target ** 2))
    # Bl 1.0, x_scale 0.5: x = 0.5·y -> 0.05, 0.25, -0.3, 0 mm; loud (>= 0.1 mm) are the middle two
    w = torch.tensor([1.0, 4.0, 4.0, 1.0])
    weighted = excursion_loss(out, target, [1.0], 0.5, loud_weight=3.0)
    assert torch.isclose(weighted, torch.sum(w * target[0, 0] ** 2) / w.sum())
    # a smaller Bl makes the same network units a larger excursion: every sample loud
    assert torch.isclose(excursion_loss(out[..., :3], target[..., :3], [0.2], 0.5, loud_weight=3.0),
                         torch.mean(target[..., :3] ** 2))


def test_stream_tracks_run_the_tracker_over_the_joined_stream():
    import dataclasses

    import numpy as np

    from edgesense.nn.train_excursion import stream_tracks
    from edgesense.profiles import load_profile
    from edgesense.speaker.pipeline import SpeakerSignal, tracked_prediction

    profile = load_profile("speaker-ref")
    rng = np.random.default_rng(0)
    v = rng.standard_normal(3 * 24_000)
    i = v / 8 + 0.001 * rng.standard_normal(v.size)
    clips = [SpeakerSignal(f"c{k}", v[k * 24_000:(k + 1) * 24_000], i[k * 24_000:(k + 1) * 24_000], None, profile,
                           {"stream": "s", "clip_index": k, "seed": [1]}) for k in range(3)]
    whole = tracked_prediction(v, i, profile)
    got = stream_tracks(clips[1:], clips)                  # clips 1, 2 in the context of the whole stream
    assert np.array_equal(got[0], whole[24_000:48_000]) and np.array_equal(got[1], whole[48_000:])
    alone = stream_tracks([clips[1]])                       # without the earlier clip: the stream starts there
    assert np.array_equal(alone[0], tracked_prediction(clips[1].v, clips[1].i, profile))
    assert not np.array_equal(alone[0], got[0])
    other = dataclasses.replace(clips[2], metadata={"stream": "s", "clip_index": 2, "seed": [2]})
    assert np.array_equal(stream_tracks([other], clips)[0], tracked_prediction(other.v, other.i, profile))


def test_target_bl_chooses_the_calibrated_or_the_datasheet_bl():
    import dataclasses

    import numpy as np

    from edgesense.errors import EdgesenseError
    from edgesense.nn.train_excursion import _target, build_model, spec_for, target_bl, TrainConfig
    from edgesense.profiles import load_profile
    from edgesense.speaker.pipeline import SpeakerSignal

    profile = load_profile("speaker-ref")
    ds = profile.speaker.bl
    x = np.linspace(-0.3, 0.3, 16).astype(np.float32)
    sig = SpeakerSignal("s", np.zeros(16, np.float32), np.zeros(16, np.float32), x, profile,
                        {"speaker_true": {"bl": 1.1 * ds}})
    assert target_bl(sig, "true") == pytest.approx(1.1 * ds)
    assert target_bl(sig, "datasheet") == ds
    no_truth = dataclasses.replace(sig, metadata={})
    assert target_bl(no_truth, "true") == ds
    with pytest.raises(EdgesenseError):
        target_bl(sig, "measured")
    spec = spec_for(build_model("hybrid"), "hybrid", TrainConfig(arch="hybrid"))
    y_true, y_ds = _target(spec, sig, "true"), _target(spec, sig, "datasheet")
    assert y_true.shape == (1, spec.frame, 16 // spec.frame)
    np.testing.assert_allclose(y_true, 1.1 * y_ds, rtol=1e-6)
    np.testing.assert_allclose(y_ds[0].T.reshape(-1), x * ds / spec.x_scale, rtol=1e-6)


def test_crop_weights_follow_length_and_scenario_weight():
    import numpy as np

    from edgesense.nn.train_excursion import crop_weights
    from edgesense.profiles import load_profile
    from edgesense.speaker.pipeline import SpeakerSignal

    profile = load_profile("speaker-ref")
    z = np.zeros(8, np.float32)
    sigs = [SpeakerSignal(n, z, z, z, profile, {"scenario": sc} if sc else {})
            for n, sc in (("a", "hot"), ("b", "nominal"), ("c", None))]
    np.testing.assert_allclose(crop_weights(sigs, [100, 300, 100]), [0.2, 0.6, 0.2])
    np.testing.assert_allclose(crop_weights(sigs, [100, 300, 100], {"hot": 3.0}), [3 / 7, 3 / 7, 1 / 7])
