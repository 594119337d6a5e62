"""Quantization-aware training with learnable asymmetric activation ranges.

The range parameterisation is chosen when the simulation is built (``QuantConfig(range_param=...)``):
``"minmax"`` (default), ``"scale_offset"`` or ``"beta_gamma"`` (sigmoid-free), following the study of
You, Park, Lee, An, Patel, Nagel (Qualcomm, arXiv 2404.16898; quantization.md §4.2). Its recommendations
are the defaults: min/max ranges with a scaled-up learning rate (``RangeParam.lr_scale``: ``2^b`` for
min/max, 1 otherwise), and beta/gamma without a sigmoid. Weights keep symmetric per-channel ranges that
follow the live weights during training; BatchNorm is already folded into the weights (the float model's
BN statistics can be re-estimated before capture with :mod:`edgesense.nn.bn_reestimation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from edgesense.errors import EdgesenseError
from edgesense.progress import progress
from edgesense.quant.quantizers import ActQuantizerPerTensorAsym
from edgesense.quant.sim import QuantSim

__all__ = ["QATConfig", "FineTuneConfig", "QAT_OBJECTIVES", "train_qat", "train_qat_distill", "train_qat_labels",
           "range_parameters"]

# what a short QAT fine-tune after calibration trains on: "float" the float model's own outputs (label-free),
# "task" the task's labels alone, "task+float" both (the labels, and MSE to the float model's outputs)
QAT_OBJECTIVES = ("float", "task", "task+float")


@dataclass(frozen=True)
class QATConfig:
    """Training options of :func:`train_qat`."""

    epochs: int = 3
    lr: float = 1e-3                      # weights and biases
    range_lr_scale: float | None = None   # range parameters' lr = lr * this; None: the parameterisation's default
    weight_decay: float = 0.0
    optimizer: str = "adam"               # "adam" or "sgd"
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise EdgesenseError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.epochs < 0 or self.lr <= 0:
            raise EdgesenseError("QAT needs epochs >= 0 and lr > 0")


@dataclass(frozen=True)
class FineTuneConfig:
    """The QAT fine-tune ``edgesense quantize --qat-steps`` runs after calibration (and AdaRound, range refinement).

    ``objective`` is one of :data:`QAT_OBJECTIVES`. ``signals``: excursion models, the train-split recordings
    the crops are drawn from; ``clips``: classifiers, the train-split clips whose classified windows are the
    labelled set (class-stratified, seeded)."""

    steps: int
    lr: float = 1e-4
    objective: str = "float"
    signals: int = 24
    clips: int = 1050
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objective not in QAT_OBJECTIVES:
            raise EdgesenseError(f"QAT objective must be one of {', '.join(QAT_OBJECTIVES)}, got {self.objective!r}")
        if self.steps < 1 or self.lr <= 0 or self.signals < 1 or self.clips < 1:
            raise EdgesenseError("a QAT fine-tune needs steps >= 1, lr > 0, signals >= 1 and clips >= 1")


def range_parameters(sim: QuantSim) -> list[torch.nn.Parameter]:
    """Every learnable activation-range parameter of ``sim``."""
    out: list[torch.nn.Parameter] = []
    for q in sim.act_quantizers.values():
        if isinstance(q, ActQuantizerPerTensorAsym):
            out.extend(q.range.parameters())
    return out


def _range_scale(sim: QuantSim, cfg: QATConfig) -> float:
    if cfg.range_lr_scale is not None:
        return cfg.range_lr_scale
    for q in sim.act_quantizers.values():
        if isinstance(q, ActQuantizerPerTensorAsym):
            return q.range.lr_scale()
    return 1.0


def train_qat(sim: QuantSim, batches: Callable[[], Iterable] | Iterable, loss_fn: Callable, config: QATConfig = QATConfig(),
              ) -> list[float]:
    """Fine-tune calibrated ``sim`` on ``(input, target)`` batches; returns the mean loss of each epoch.

    ``batches`` is an iterable re-iterated each epoch, or a callable returning a fresh iterable. ``input`` is
    one tensor, or a tuple of tensors for a model with several inputs (a streaming model: block, states).
    """
    ranges = range_parameters(sim)
    range_ids = {id(p) for p in ranges}
    weights = [p for p in sim.parameters() if id(p) not in range_ids and p.requires_grad]
    groups = [{"params": weights, "lr": config.lr, "weight_decay": config.weight_decay},
              {"params": ranges, "lr": config.lr * _range_scale(sim, config), "weight_decay": 0.0}]
    opt = (torch.optim.Adam(groups) if config.optimizer == "adam" else torch.optim.SGD(groups, momentum=0.9))
    history: list[float] = []
    sim.train()
    try:
        for epoch in range(config.epochs):
            total, n = 0.0, 0
            data = batches() if callable(batches) else batches
            for x, y in progress(data, desc=f"QAT epoch {epoch + 1}/{config.epochs}"):
                opt.zero_grad()
                loss = loss_fn(sim(*x) if isinstance(x, (tuple, list)) else sim(x), y)
                if not torch.isfinite(loss):
                    raise EdgesenseError(f"QAT diverged (loss {float(loss)}) in epoch {epoch + 1}; lower the learning rate")
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(weights + ranges, config.grad_clip)
                opt.step()
                bs = len(x[0]) if isinstance(x, (tuple, list)) else len(x)
                total += float(loss.detach()) * bs
                n += bs
            history.append(total / max(n, 1))
    finally:
        sim.eval()
    return history


def train_qat_distill(sim: QuantSim, inputs: torch.Tensor, steps: int, lr: float = 1e-4, batch: int = 32,
                      seed: int = 0) -> list[float]:
    """Label-free QAT: fine-tune calibrated ``sim`` so its output matches its own float model's (MSE) on
    ``steps`` random batches of ``inputs`` (N, ...); seeded. Returns the mean loss."""
    with torch.no_grad():
        teacher = torch.cat([sim.float_model()(x) for x in inputs.split(256)])
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(inputs), (steps, min(batch, len(inputs))), generator=gen)
    data = [(inputs[i], teacher[i]) for i in idx]
    return train_qat(sim, data, lambda out, y: torch.mean((out - y) ** 2), QATConfig(epochs=1, lr=lr))


def train_qat_labels(sim: QuantSim, inputs: torch.Tensor, labels: torch.Tensor, steps: int, lr: float = 1e-4,
                     batch: int = 32, seed: int = 0, float_term: bool = True) -> list[float]:
    """QAT of a calibrated classifier ``sim`` whose output is class probabilities (it ends in a softmax) on
    labelled ``inputs`` (N, ...) / ``labels`` (N,): the negative log-likelihood of the true class (probabilities
    clamped at 1e-6), plus, with ``float_term``, MSE to the float model's probabilities (keeps it near the model
    it started from); ``steps`` random batches, seeded. Returns the mean loss."""
    if not any(nd.kind == "softmax" for nd in sim.nodes):
        raise EdgesenseError("QAT on labels needs a classifier whose output is a softmax")
    with torch.no_grad():
        teacher = torch.cat([sim.float_model()(b) for b in inputs.split(256)]) if float_term else None
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(inputs), (steps, min(batch, len(inputs))), generator=gen)
    data = [(inputs[i], (labels[i], teacher[i] if float_term else None)) for i in idx]

    def loss_fn(p, target):
        y, soft = target
        nll = -torch.log(p.gather(1, y[:, None]).clamp(min=1e-6)).mean()
        return nll if soft is None else nll + torch.mean((p - soft) ** 2)

    return train_qat(sim, data, loss_fn, QATConfig(epochs=1, lr=lr))
