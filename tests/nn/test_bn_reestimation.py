"""BN re-estimation: average of per-batch statistics, layer selection, means only, undo handle."""

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from edgesense.nn.bn_reestimation import batchnorm_layers, reestimate_bn_stats  # noqa: E402


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 3, 1), nn.BatchNorm1d(3), nn.ReLU(), nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3))


def test_running_stats_are_the_average_of_per_batch_stats_and_undo_restores():
    net = _net().eval()
    bn = net[1]
    old_mean, old_var = bn.running_mean.clone(), bn.running_var.clone()
    batches = [torch.randn(4, 2, 50) * (k + 1) + k for k in range(3)]
    means, vars_ = [], []
    with torch.no_grad():
        for b in batches:
            h = net[0](b)
            means.append(h.mean(dim=(0, 2)))
            vars_.append(h.var(dim=(0, 2), unbiased=True))
    handle = reestimate_bn_stats(net, iter(batches), num_batches=10)
    assert handle.batches == 3 and handle.layers == ["1", "4"]
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack(vars_).mean(0))
    assert not net.training and not bn.training and bn.momentum == 0.1   # modes and momentum restored
    handle.remove()
    torch.testing.assert_close(bn.running_mean, old_mean)
    torch.testing.assert_close(bn.running_var, old_var)


def test_selected_layers_and_means_only():
    net = _net().eval()
    second = net[4]
    var_before = net[1].running_var.clone()
    second_before = second.running_mean.clone()
    batches = [torch.randn(2, 2, 30) + 3 for _ in range(4)]
    handle = reestimate_bn_stats(net, batches, num_batches=2, layers=["1"], means_only=True)
    assert handle.batches == 2
    assert not torch.allclose(net[1].running_mean, torch.zeros(3))
    torch.testing.assert_close(net[1].running_var, var_before)          # variance kept
    torch.testing.assert_close(second.running_mean, second_before)      # other layer untouched
    assert list(batchnorm_layers(net)) == ["1", "4"]
    with pytest.raises(ValueError):
        reestimate_bn_stats(net, batches, layers=["0"])
    with pytest.raises(ValueError):
        reestimate_bn_stats(net, [], num_batches=3)
    torch.testing.assert_close(second.running_mean, second_before)      # failed call left no change


def test_excursion_adaptation_guard_refuses_and_restores(monkeypatch):
    """The label-free guard undoes a re-estimation that moves the network away from the tracked model."""
    import numpy as np

    from edgesense.nn import train_excursion as te
    from edgesense.profiles import SpeakerIVProfile, SpeakerParams
    from edgesense.speaker.pipeline import SpeakerSignal

    torch.manual_seed(0)
    model = te.build_model("fftnet")
    model.eval()
    spec = te.spec_for(model, "fftnet", te.TrainConfig())
    rng = np.random.default_rng(0)
    profile = SpeakerIVProfile(name="s", channels=("v", "i"), speaker=SpeakerParams(bl=1.0))
    sig = SpeakerSignal("a", (5 * rng.standard_normal(8192)).astype(np.float32),
                        rng.standard_normal(8192).astype(np.float32), None, profile)
    # pretend the tracker agrees exactly with the unadapted network: any change can only move away
    current = te.predict(model, spec, te.prepare_inputs(spec, sig), 1.0)
    monkeypatch.setattr(te, "cached_track", lambda s: current)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = te.adapt_model(model, spec, [sig], mode="all", window=512, num_batches=4)
    assert not res.accepted and res.guard_before < 1e-6 < res.guard_after
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    res = te.adapt_model(model, spec, [sig], mode="means", window=512, num_batches=4, guard=False)
    assert res.accepted and res.batches == 4
    assert not torch.allclose(model.bn_in.running_mean, before["bn_in.running_mean"])
    torch.testing.assert_close(model.bn_in.running_var, before["bn_in.running_var"])
