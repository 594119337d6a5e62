"""BatchNorm re-estimation (AIMET-style), with an undo handle.

Keeps every learned weight and recomputes the running statistics of selected BatchNorm layers from
unlabeled data (AdaBN; the paper's online adaptation, reference notes speaker.md §3.3). Faithful to
``aimet_torch.bn_reestimation.reestimate_bn_stats``: the model runs in eval mode except the chosen BN
layers, under ``no_grad``; each BN's momentum is set to 1.0 so its running statistics equal the
current batch's; after every batch those are accumulated, and the *average over batches* of the
per-batch means and variances is written back. The returned :class:`BNStatsHandle` restores the
previous statistics with :meth:`~BNStatsHandle.remove`.

Two options go beyond AIMET, for designs where full re-estimation hurts (speaker-findings.md):
``layers`` restricts re-estimation to the named BN modules, ``means_only`` keeps the variances.
Reusable for any model (the quantization flow uses it after QAT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

import torch
from torch import nn

__all__ = ["BNStatsHandle", "reestimate_bn_stats", "batchnorm_layers"]

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm module of ``model`` by qualified name, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _BN_TYPES)}


@dataclass
class BNStatsHandle:
    """Undo handle: :meth:`remove` puts back the statistics that were there before re-estimation."""

    saved: dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)
    batches: int = 0

    @property
    def layers(self) -> list[str]:
        return list(self.saved)

    def remove(self) -> None:
        """Restore the original running mean, variance and batch counter of every re-estimated layer."""
        for bn, mean, var, count in self.saved.values():
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            if count is not None and bn.num_batches_tracked is not None:
                bn.num_batches_tracked.copy_(count)
        self.saved.clear()


def _default_forward(model: nn.Module, batch) -> None:
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    model(batch)


def reestimate_bn_stats(model: nn.Module, batches: Iterable, num_batches: int = 100,
                        forward_fn: Callable[[nn.Module, object], object] | None = None,
                        layers: Sequence[str] | None = None, means_only: bool = False) -> BNStatsHandle:
    """Re-estimate BN statistics of ``model`` over up to ``num_batches`` batches of ``batches``.

    ``forward_fn(model, batch)`` runs one batch (default: ``model(batch)``, or ``model(batch[0])`` for
    tuples). ``layers`` names the BN modules to update (default: all). ``means_only`` updates only
    the running means. Returns a :class:`BNStatsHandle`; raises ``ValueError`` for unknown layer
    names or when no batch was given.
    """
    forward_fn = forward_fn or _default_forward
    all_bn = batchnorm_layers(model)
    if layers is None:
        chosen = all_bn
    else:
        unknown = [n for n in layers if n not in all_bn]
        if unknown:
            raise ValueError(f"not BatchNorm layers of the model: {unknown}; BN layers: {list(all_bn)}")
        chosen = {n: all_bn[n] for n in layers}
    handle = BNStatsHandle()
    for name, bn in chosen.items():
        count = bn.num_batches_tracked.clone() if bn.num_batches_tracked is not None else None
        handle.saved[name] = (bn, bn.running_mean.clone(), bn.running_var.clone(), count)
    sums = {n: [torch.zeros_like(bn.running_mean), torch.zeros_like(bn.running_var)] for n, bn in chosen.items()}
    was_training = model.training
    momenta = {n: bn.momentum for n, bn in chosen.items()}
    model.eval()
    try:
        for bn in chosen.values():
            bn.train()
            bn.momentum = 1.0
        with torch.no_grad():
            for batch in islice(batches, num_batches):
                forward_fn(model, batch)
                handle.batches += 1
                for n, bn in chosen.items():
                    sums[n][0] += bn.running_mean
                    sums[n][1] += bn.running_var
    finally:
        for n, bn in chosen.items():
            bn.momentum = momenta[n]
        model.train(was_training)
    if handle.batches == 0:
        handle.remove()
        raise ValueError("BN re-estimation got no batches")
    for n, bn in chosen.items():
        _, mean0, var0, _ = handle.saved[n]
        bn.running_mean.copy_(sums[n][0] / handle.batches)
        bn.running_var.copy_(var0 if means_only else sums[n][1] / handle.batches)
    return handle
