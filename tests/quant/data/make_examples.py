"""Regenerate the example QDQ models and their float twins in this directory (seeded, deterministic).

    /work/main/.venv/bin/python tests/quant/data/make_examples.py

Writes, for ``cnn2d`` (input 1x2x16x16, 5-class softmax) and ``conv1d`` (input 1x8x32, causal dilated
regression): ``example_<name>_float.onnx`` (BN-folded float), ``example_<name>_int8.onnx`` (QDQ, target
ort-cpu, min/max calibration), ``example_<name>_inputs.npy`` (16 float32 inputs) and
``example_<name>_codes.npy`` (int8 output codes of edgesense's integer simulation for those inputs).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tiny_nets import cnn2d, conv1d_net  # noqa: E402

from edgesense.quant import IntegerSim, QuantSim, calibrate, export_float_onnx, export_qdq_onnx  # noqa: E402


def make(name: str, model, shape: tuple[int, ...], seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    calib = torch.randn((64, *shape), generator=g)
    test = torch.randn((16, *shape), generator=g)
    sim = QuantSim(model, calib[:1], target="ort-cpu")
    calibrate(sim, calib.split(16))
    sim.eval()
    export_float_onnx(sim, HERE / f"example_{name}_float.onnx")
    export_qdq_onnx(sim, HERE / f"example_{name}_int8.onnx")
    np.save(HERE / f"example_{name}_inputs.npy", test.numpy())
    codes, _ = IntegerSim(sim.lower()).outputs(test.numpy())[0]
    np.save(HERE / f"example_{name}_codes.npy", codes)


if __name__ == "__main__":
    make("cnn2d", cnn2d(0), (2, 16, 16))
    make("conv1d", conv1d_net(0), (8, 32))
    print("wrote examples to", HERE)
