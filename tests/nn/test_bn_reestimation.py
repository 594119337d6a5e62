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
