"""Per-layer sensitivity: SQNR of every quantized tensor against float, to explain an INT8 loss.

For each quantized tensor ``t`` (activations by tensor name, weights as ``<layer>.weight``) the report gives

* ``sqnr_db`` -- ``10 log10(sum(x_float^2) / sum((x_float - x_quant)^2))`` of the tensor in the fully
  quantized model against the same tensor of the float model (accumulated error up to that point);
* ``isolated_output_sqnr_db`` -- SQNR of the model output when *only* this quantizer is on (the error this
  quantizer alone causes; AIMET QuantAnalyzer's per-layer enable sweep, quantization.md §1.2).

``SQNR = 20 log10(|x| / |x - y|)`` is ORT's ``qdq_loss_debug`` formula (§2.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from edgesense.quant.sim import QuantSim, _key

__all__ = ["SensitivityRow", "sensitivity_report", "sqnr_db", "format_report"]


@dataclass(frozen=True)
class SensitivityRow:
    """One quantized tensor's entry in the sensitivity report."""

    tensor: str
    kind: str                       # "activation" or "weight"
    sqnr_db: float
    isolated_output_sqnr_db: float


def sqnr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``y`` against reference ``x``, in dB (inf when equal)."""
    noise = float(((x.double() - y.double()) ** 2).sum())
    signal = float((x.double() ** 2).sum())
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def _set_all(sim: QuantSim, enabled: bool) -> None:
    for _, q in sim.quantizers():
        q.enabled = enabled
    for t in sim.tied.values():
        t.enabled = enabled


def sensitivity_report(sim: QuantSim, batches: Iterable) -> list[SensitivityRow]:
    """The report over ``batches`` (inputs or (input, target) pairs), in graph order."""
    data = [b[0] if isinstance(b, (tuple, list)) else b for b in batches]
    x = torch.cat(data)
    was_training = sim.training
    sim.eval()
    rows: list[SensitivityRow] = []
    with torch.no_grad():
        old = sim.quantize
        sim.quantize = False
        out_f, env_f = sim.forward_all(x)
        sim.quantize = old
        _, env_q = sim.forward_all(x)
        ref_out = out_f[0]
        try:
            for name, q in list(sim.quantizers()):
                _set_all(sim, False)
                q.enabled = True
                if name.endswith(".weight"):
                    layer = sim.layers[_key(name[: -len(".weight")])]
                    w = layer.weight.detach()
                    tensor_sqnr = sqnr_db(w, layer.weight_quantizer(w))
                    kind = "weight"
                else:
                    tensor_sqnr = sqnr_db(env_f[name], env_q[name])
                    kind = "activation"
                iso = sqnr_db(ref_out, sim.forward_all(x)[0][0])
                rows.append(SensitivityRow(name, kind, tensor_sqnr, iso))
        finally:
            _set_all(sim, True)
    sim.train(was_training)
    return rows


def format_report(rows: list[SensitivityRow]) -> str:
    """A fixed-width table, worst isolated output SQNR marked."""
    worst = min(rows, key=lambda r: r.isolated_output_sqnr_db).tensor if rows else ""
    lines = [f"{'tensor':32s} {'kind':10s} {'SQNR dB':>9s} {'output SQNR dB (alone)':>23s}"]
    for r in rows:
        mark = "  <- most sensitive" if r.tensor == worst else ""
        lines.append(f"{r.tensor:32s} {r.kind:10s} {r.sqnr_db:9.2f} {r.isolated_output_sqnr_db:23.2f}{mark}")
    return "\n".join(lines)
