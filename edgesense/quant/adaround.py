"""AdaRound: learned rounding of the integer weights, layer by layer (Nagel et al. 2020; quantization.md §4.6).

Rounding every weight to its nearest grid point is not what minimises a layer's output error. AdaRound
keeps each weight's grid scale ``s`` and learns, per weight, whether to round down or up:
``W~ = s * clamp(floor(W / s) + h(V), qmin, qmax)`` with the rectified sigmoid
``h(V) = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1)``, ``zeta = 1.1``, ``gamma = -0.1``, minimising
``mean ||f(W x) - f(W~ x~)||^2 + lambda * sum(1 - |2 h(V) - 1|^beta)`` where ``x`` is the layer's input in the
float model, ``x~`` its input in the quantized simulation with every earlier layer already rounded
(sequential), ``f`` the layer's ReLU when one follows, ``lambda = 0.01`` and ``beta`` annealed from 20 to 2 by
cosine after a warm start of 20 % of the iterations without the rounding term. At the end ``h >= 0.5`` rounds
up.

The chosen integer weights are written back into the layer's float weight as exact grid values, so the
unchanged weight quantizer (its scale fixed by each channel's largest weight, which keeps its nearest rounding)
reproduces them, and every exporter carries them as they are. Only min/max weight ranges are supported: a
range searched on the weights themselves (MSE) would move once the weights move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch
from torch.nn import functional as F

from edgesense.errors import EdgesenseError
from edgesense.progress import progress
from edgesense.quant.sim import QuantSim, _key

__all__ = ["AdaRoundConfig", "adaround"]

ZETA, GAMMA = 1.1, -0.1


@dataclass(frozen=True)
class AdaRoundConfig:
    """Optimisation settings (AIMET's defaults except the iteration count: 10,000 there)."""

    iterations: int = 500
    lr: float = 1e-2
    reg: float = 0.01
    beta: tuple[float, float] = (20.0, 2.0)
    warm_start: float = 0.2
    batch: int = 32          # samples per iteration
    seed: int = 0


def _h(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _fused_relu(sim: QuantSim) -> dict[str, str]:
    """Layer name -> "relu"/"relu6" when that op is its only consumer (the runtimes fuse it)."""
    users: dict[str, list] = {}
    for nd in sim.nodes:
        for i in nd.inputs:
            users.setdefault(i, []).append(nd)
    out = {}
    for nd in sim.nodes:
        u = users.get(nd.name, [])
        if nd.kind in ("conv", "linear") and len(u) == 1 and u[0].kind in ("relu", "relu6"):
            out[nd.name] = u[0].kind
    return out


def _run_hooked(sim: QuantSim, names: list[str], batches: list[tuple], quantize: bool) -> dict[str, tuple]:
    """Run ``sim`` (quantized or in float) over ``batches`` once; every named layer's (inputs, outputs), concatenated."""
    seen: dict[str, tuple[list, list]] = {n: ([], []) for n in names}

    def hook(name):
        def record(_m, args, out) -> None:       # returns None: the layer's output is left as it is
            seen[name][0].append(args[0].detach())
            seen[name][1].append(out.detach())
        return record

    hooks = [sim.layers[_key(n)].register_forward_hook(hook(n)) for n in names]
    old = sim.quantize
    sim.quantize = quantize
    try:
        with torch.no_grad():
            for b in batches:
                sim(*b)
    finally:
        sim.quantize = old
        for h in hooks:
            h.remove()
    return {n: (torch.cat(i), torch.cat(o)) for n, (i, o) in seen.items()}


def _float_outputs(sim: QuantSim, names: list[str], batches: list[tuple]) -> dict[str, torch.Tensor]:
    """Every named layer's output over ``batches`` in the float model, in one pass: AdaRound's targets, taken
    before any layer is rounded (a layer rounded earlier must not move the float reference of later ones)."""
    return {n: out for n, (_, out) in _run_hooked(sim, names, batches, quantize=False).items()}


def _capture(sim: QuantSim, name: str, batches: list[tuple], quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of layer ``name`` over ``batches``, with the sim quantized or in float."""
    return _run_hooked(sim, [name], batches, quantize)[name]


def _round_layer(sim: QuantSim, name: str, x_q: torch.Tensor, y_f: torch.Tensor, act: str | None,
                 cfg: AdaRoundConfig) -> dict:
    layer = sim.layers[_key(name)]
    wq = layer.weight_quantizer
    with torch.no_grad():
        s, _ = wq.scale_zero_point()
        s = s.reshape((-1,) + (1,) * (layer.weight.ndim - 1)) if s.ndim else s
        w = layer.weight.detach()
        floor = torch.floor(w / s)
        rest = w / s - floor
        nearest = torch.clamp(torch.round(w / s), wq.qmin, wq.qmax)
        # each channel's largest |w| sets its scale: it keeps its nearest rounding, so the scale stays
        flat = w.abs().reshape(w.shape[0], -1) if wq.per_channel else w.abs().reshape(1, -1)
        is_max = (flat == flat.max(dim=1, keepdim=True).values).reshape(w.shape)
        free = ~is_max
        p = torch.clamp((rest - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
        v0 = torch.log(p / (1 - p))
    v = torch.nn.Parameter(v0.clone())
    opt = torch.optim.Adam([v], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    fn = {"relu": F.relu, "relu6": F.relu6}.get(act, lambda t: t)
    target = fn(y_f)
    wq.enabled = False          # the layer then uses the weight it is given as it is
    try:
        def run(weight: torch.Tensor, idx=None) -> torch.Tensor:
            xb = x_q if idx is None else x_q[idx]
            return fn(torch.func.functional_call(layer, {"weight": weight}, (xb, True)))

        def soft() -> torch.Tensor:
            q = torch.where(free, floor + _h(v), nearest)
            return s * torch.clamp(q, wq.qmin, wq.qmax)

        with torch.no_grad():
            before = float(F.mse_loss(run(s * nearest), target))
        warm = int(cfg.warm_start * cfg.iterations)
        for t in range(cfg.iterations):
            idx = torch.randint(0, len(x_q), (min(cfg.batch, len(x_q)),), generator=gen)
            rec = F.mse_loss(run(soft(), idx), target[idx])
            if t < warm:
                loss = rec
            else:
                rel = (t - warm) / max(1, cfg.iterations - warm)
                beta = cfg.beta[1] + 0.5 * (cfg.beta[0] - cfg.beta[1]) * (1 + math.cos(math.pi * rel))
                hv = _h(v)[free]
                loss = rec + cfg.reg * torch.sum(1 - torch.abs(2 * hv - 1) ** beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            hard = torch.where(free, floor + (_h(v) >= 0.5).to(w.dtype), nearest)
            hard_w = s * torch.clamp(hard, wq.qmin, wq.qmax)
            after = float(F.mse_loss(run(hard_w), target))
            changed = int((hard != nearest).sum())
            if after < before:      # never worse than nearest rounding on the data it was fitted to
                layer.weight.copy_(hard_w)
            else:
                changed = 0
    finally:
        wq.enabled = True
    with torch.no_grad():
        wq.set_range_from(layer.weight)
    return {"mse_nearest": before, "mse_adaround": min(after, before), "flipped": changed,
            "weights": int(w.numel())}


def adaround(sim: QuantSim, batches: Iterable, config: AdaRoundConfig = AdaRoundConfig()) -> dict[str, dict]:
    """Learn the rounding of every conv/linear layer's weights of a calibrated ``sim`` (in place), in graph order.

    ``batches``: model inputs, each a tensor or a tuple of tensors (all of a model's inputs). Returns, per
    layer, the output MSE on those inputs with nearest and with learned rounding, and how many weights flipped
    (a layer whose learned rounding is not better keeps nearest rounding)."""
    if sim.config.weights.method != "minmax":
        raise EdgesenseError("AdaRound needs min/max weight ranges (a weight MSE range would move with the weights)")
    data = [b if isinstance(b, (tuple, list)) else (b,) for b in batches]
    was_training = sim.training
    sim.eval()
    relu = _fused_relu(sim)
    report = {}
    torch.manual_seed(config.seed)
    layers = [nd for nd in sim.nodes if nd.kind in ("conv", "linear")]
    targets = _float_outputs(sim, [nd.name for nd in layers], data)
    for nd in progress(layers, desc="AdaRound"):
        x_q, _ = _capture(sim, nd.name, data, quantize=True)
        report[nd.name] = _round_layer(sim, nd.name, x_q, targets.pop(nd.name), relu.get(nd.name), config)
    sim.train(was_training)
    return report
