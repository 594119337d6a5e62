"""Post-training quantization: cross-layer equalisation, high-bias absorption, bias correction, one-call PTQ.

All of these work on a :class:`~edgesense.quant.sim.QuantSim` (whose layers already have BatchNorm folded).

* Cross-layer equalisation (Nagel et al., DFQ 2019; quantization.md §4.3): for a layer pair
  ``W1 -> ReLU -> W2`` with ``r1_i = max|W1[i]|`` and ``r2_i = max|W2[:, i]|``, scale channel ``i`` by
  ``s_i = sqrt(r1_i / r2_i)``: ``W1[i] /= s_i``, ``b1[i] /= s_i``, ``W2[:, i] *= s_i``. The float function
  is unchanged (ReLU is positively homogeneous) while per-tensor weight ranges become balanced.
* High-bias absorption (same paper, §4.3): with the folded BatchNorm's shift ``beta`` and scale ``gamma``
  (divided by ``s_i``), ``c_i = max(0, beta_i - 3 gamma_i)``; ``b1 -= c``, ``b2 += sum_taps(W2) @ c``.
* Empirical bias correction (DFQ, §4.4): layer by layer in graph order, ``b += E[y_float] - E[y_quant]``
  per output channel, measured on calibration data with all earlier corrections applied.
* Output-aware range refinement (:func:`refine_activation_ranges`): the per-tensor range methods (min/max,
  percentile, MSE) each minimise an error of the tensor itself; this greedy search re-scales the ranges of the
  tensors whose quantization costs the model output most and keeps whatever raises the end-to-end output SQNR
  on calibration data (the criterion of AIMET's per-tensor SQNR search, quantization.md §4.7, measured at the
  output instead of at the tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from edgesense.progress import progress
from edgesense.quant.adaround import AdaRoundConfig
from edgesense.quant.analyzers import AnalyzerConfig
from edgesense.quant.qat import FineTuneConfig
from edgesense.quant.quantizers import ActQuantizerPerTensorAsym
from edgesense.quant.sim import QuantConfig, QuantLayer, QuantSim, _key, calibrate
from edgesense.quant.target import TargetProfile

__all__ = ["PTQConfig", "QuantizeSteps", "equalize", "absorb_high_bias", "correct_bias", "quantize_ptq",
           "equalizable_pairs", "RangeRefinement", "refine_activation_ranges"]


@dataclass(frozen=True)
class PTQConfig:
    """Options of :func:`quantize_ptq`."""

    method: str = "minmax"                  # activation range setting: minmax, percentile, mse
    weight_method: str = "minmax"           # weight range setting: minmax or mse
    percentile: float = 99.99
    cross_layer_equalization: bool = False
    high_bias_absorption: bool = True       # only with cross_layer_equalization
    bias_correction: bool = False
    range_param: str = "minmax"
    calibration_batches: int | None = None  # None: all given
    bn_reestimation: bool = False           # re-estimate the float model's BN statistics on the calibration data first


@dataclass(frozen=True)
class QuantizeSteps:
    """What ``edgesense quantize`` (and ``tools/build_zoo.py``) runs after calibrating the ranges, in this order:
    AdaRound (:func:`edgesense.quant.adaround.adaround`, None: nearest rounding), output-aware range refinement
    (:func:`refine_activation_ranges`, against the float model's output on the calibration inputs), then a QAT
    fine-tune (None: none)."""

    adaround: AdaRoundConfig | None = None
    refine: bool = False
    qat: FineTuneConfig | None = None


def _batch_input(b):
    return b[0] if isinstance(b, (tuple, list)) else b


def equalizable_pairs(sim: QuantSim) -> list[tuple[str, str]]:
    """(first, second) layer names joined by exactly one ReLU with no other consumers, groups == 1."""
    users: dict[str, list] = {}
    for nd in sim.nodes:
        for i in nd.inputs:
            users.setdefault(i, []).append(nd)
    pairs = []
    for nd in sim.nodes:
        if nd.kind not in ("conv", "linear"):
            continue
        u = users.get(nd.name, [])
        if len(u) != 1 or u[0].kind != "relu":
            continue
        u2 = users.get(u[0].name, [])
        if len(u2) != 1 or u2[0].kind not in ("conv", "linear"):
            continue
        a, b = sim.layers[_key(nd.name)], sim.layers[_key(u2[0].name)]
        if a.attrs.get("groups", 1) != 1 or b.attrs.get("groups", 1) != 1:
            continue
        if b.weight.shape[1] != a.weight.shape[0]:
            continue
        pairs.append((nd.name, u2[0].name))
    return pairs


def equalize(sim: QuantSim, iterations: int = 3, absorb_bias: bool = True) -> list[tuple[str, str]]:
    """Cross-layer equalisation of every equalizable pair (in place); returns the pairs."""
    pairs = equalizable_pairs(sim)
    with torch.no_grad():
        for _ in range(iterations):
            for n1, n2 in pairs:
                a: QuantLayer = sim.layers[_key(n1)]
                b: QuantLayer = sim.layers[_key(n2)]
                r1 = a.weight.abs().reshape(a.weight.shape[0], -1).max(dim=1).values
                r2 = b.weight.abs().transpose(0, 1).reshape(b.weight.shape[1], -1).max(dim=1).values
                s = torch.sqrt(r1 / r2.clamp(min=1e-12)).clamp(min=1e-4, max=1e4)
                s = torch.where((r1 > 0) & (r2 > 0), s, torch.ones_like(s))
                shape1 = (-1,) + (1,) * (a.weight.ndim - 1)
                a.weight.div_(s.reshape(shape1))
                a.bias.div_(s)
                shape2 = (1, -1) + (1,) * (b.weight.ndim - 2)
                b.weight.mul_(s.reshape(shape2))
                for k in ("bn_beta", "bn_gamma"):
                    if k in a.attrs:
                        a.attrs[k] = a.attrs[k] / s
    if absorb_bias:
        absorb_high_bias(sim, pairs)
    sim.refresh_weight_ranges()
    return pairs


def absorb_high_bias(sim: QuantSim, pairs: list[tuple[str, str]] | None = None) -> int:
    """Move ``c = max(0, beta - 3 gamma)`` from each first layer's bias into the next; returns channels moved."""
    moved = 0
    with torch.no_grad():
        for n1, n2 in pairs if pairs is not None else equalizable_pairs(sim):
            a, b = sim.layers[_key(n1)], sim.layers[_key(n2)]
            if "bn_beta" not in a.attrs:
                continue
            c = torch.clamp(a.attrs["bn_beta"] - 3 * a.attrs["bn_gamma"], min=0)
            if b.kind == "conv" and any(b.attrs["pads"]):
                continue     # zero padding would not carry the absorbed constant: not exact, skip
            a.bias.sub_(c)
            wsum = b.weight.reshape(b.weight.shape[0], b.weight.shape[1], -1).sum(dim=2)
            b.bias.add_(wsum @ c)
            a.attrs["bn_beta"] = a.attrs["bn_beta"] - c
            moved += int((c > 0).sum())
    return moved


def _layer_means(sim: QuantSim, batches: list[torch.Tensor], quantize: bool) -> dict[str, torch.Tensor]:
    """Per-channel mean output of every QuantLayer (before its activation) over ``batches``."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []

    def make(name):
        def hook(_m, _inp, out):
            dims = [d for d in range(out.ndim) if d != 1] if out.ndim > 2 else [0]
            sums[name] = sums.get(name, 0) + out.detach().double().mean(dim=dims) * out.shape[0]
            counts[name] = counts.get(name, 0) + out.shape[0]
        return hook

    for name, layer in sim.layers.items():
        hooks.append(layer.register_forward_hook(make(name)))
    old = sim.quantize
    sim.quantize = quantize
    try:
        with torch.no_grad():
            for x in batches:
                sim(x)
    finally:
        sim.quantize = old
        for h in hooks:
            h.remove()
    return {k: (v / counts[k]).float() for k, v in sums.items()}


def correct_bias(sim: QuantSim, batches: Iterable, max_batches: int | None = None) -> dict[str, float]:
    """Empirical bias correction, layer by layer; returns the max |correction| per layer."""
    data = [_batch_input(b) for i, b in enumerate(batches) if max_batches is None or i < max_batches]
    ref = _layer_means(sim, data, quantize=False)
    done: dict[str, float] = {}
    was_training = sim.training
    sim.eval()
    for name in progress(list(sim.layers.keys()), desc="bias correction"):
        cur = _layer_means(sim, data, quantize=True)
        delta = ref[name] - cur[name]
        if delta.ndim == 1 and delta.shape[0] == sim.layers[name].bias.shape[0]:
            with torch.no_grad():
                sim.layers[name].bias.add_(delta)
            done[name] = float(delta.abs().max())
    sim.train(was_training)
    return done


def quantize_ptq(model: torch.nn.Module, example_input: torch.Tensor, calibration: Iterable,
                 target: str | TargetProfile = "ort-cpu", config: PTQConfig = PTQConfig()) -> QuantSim:
    """Post-training quantization in one call: capture, (CLE), calibrate, (bias correction); returns the sim."""
    data = [_batch_input(b) for i, b in enumerate(calibration)
            if config.calibration_batches is None or i < config.calibration_batches]
    if config.bn_reestimation:
        import copy

        from edgesense.nn.bn_reestimation import reestimate_bn_stats
        model = copy.deepcopy(model)
        reestimate_bn_stats(model, data, num_batches=len(data))
    qcfg = QuantConfig(activations=AnalyzerConfig(config.method, percentile=config.percentile),
                       weights=AnalyzerConfig(config.weight_method), range_param=config.range_param)
    sim = QuantSim(model, example_input, target=target, config=qcfg)
    if config.cross_layer_equalization:
        equalize(sim, absorb_bias=config.high_bias_absorption)
    calibrate(sim, progress(data, desc="calibration"))
    if config.bias_correction:
        correct_bias(sim, data)
    return sim.eval()




@dataclass
class RangeRefinement:
    """What :func:`refine_activation_ranges` did: the score before and after, and each changed range."""

    score_before: float
    score_after: float
    evaluations: int
    changed: dict[str, tuple[tuple[float, float], tuple[float, float]]]   # tensor -> ((lo, hi) before, after)


def _range_of(q: ActQuantizerPerTensorAsym) -> tuple[float, float]:
    with torch.no_grad():
        s, z = q.scale_zero_point()
    return float((q.qmin - z) * s), float((q.qmax - z) * s)


def refine_activation_ranges(sim: QuantSim, score: Callable[[], float], max_tensors: int = 8,
                             factors: tuple[float, ...] = (0.5, 0.65, 0.8, 0.9, 1.1, 1.25)) -> RangeRefinement:
    """Greedy output-aware search of activation ranges on a calibrated ``sim`` (in place).

    ``score()`` runs the sim on calibration data and returns what to maximise (e.g. the output SQNR against the
    float model, :func:`edgesense.quant.sensitivity.sqnr_db`). The ``max_tensors`` activation quantizers whose
    quantization costs the score most (each measured by leaving it alone in float) are visited in that order;
    each tries its range ``[lo, hi]`` scaled by every factor (both ends together, and for a range across zero
    each end alone) and keeps the best, so the result never scores below the start."""
    acts = {name: q for name, q in sim.quantizers()
            if isinstance(q, ActQuantizerPerTensorAsym) and q.initialized and q.enabled}
    was_training = sim.training
    sim.eval()
    n_eval = 0

    def run() -> float:
        nonlocal n_eval
        n_eval += 1
        with torch.no_grad():
            return float(score())

    base = start = run()
    cost = {}
    for name, q in progress(list(acts.items()), desc="range sensitivity"):
        q.enabled = False
        try:
            cost[name] = run() - base
        finally:
            q.enabled = True
    order = sorted(cost, key=lambda k: -cost[k])[:max_tensors]
    changed = {}
    for name in progress(order, desc="range refinement"):
        q = acts[name]
        lo, hi = _range_of(q)
        best, best_range = base, (lo, hi)
        cands = [(lo * f, hi * f) for f in factors]
        if lo < 0 < hi:
            cands += [(lo * f, hi) for f in factors] + [(lo, hi * f) for f in factors]
        for c in cands:
            q.set_range(*c)
            s = run()
            if s > best:
                best, best_range = s, c
        q.set_range(*best_range)
        if best_range != (lo, hi):
            changed[name] = ((lo, hi), _range_of(q))
        base = best
    sim.train(was_training)
    return RangeRefinement(start, base, n_eval, changed)
