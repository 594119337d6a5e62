"""Reproduce the parity and latency figures of docs/tflite-export.md (not a test; takes a few minutes).

    /work/main/.venv/bin/python tests/quant/tflite/report.py [--latency] [--runs 1000] [--only SECTION ...]

Parity: LiteRT (XNNPACK and builtin kernels) vs ONNX Runtime (ENABLE_BASIC) on the same QDQ model,
as exact / within 1 LSB / max LSB over all output values. Models: the quantization engineer's committed
examples, torch-exported test models quantized with onnxruntime's quantize_static, the zoo architectures
(untrained) through edgesense's QDQ exporter, and the trained streaming zoo models under models/
(quantize_static, 32 random calibration blocks, and edgesense's own `edgesense quantize --stream-block 32`
on 8 random signals). --latency adds batch-1 one-thread median / p99 (µs).

    /work/main/.venv/bin/python tests/quant/tflite/report.py --conv-shapes

prints instead the CPU time of single int8 CONV_2D operators on LiteRT + XNNPACK (one thread, interleaved,
random weights), shapes chosen to show what the cost follows (docs/tflite-export.md §6).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from tflite_export_helpers import fftnet_stack, quantize_qdq, samples  # noqa: E402

from edgesense.quant.tflite import export_tflite  # noqa: E402
from edgesense.quant.tflite.latency import measure_latency  # noqa: E402
from edgesense.quant.tflite.parity import compare_with_onnx  # noqa: E402


def row(name: str, qdq: Path, tfl: Path, inputs, latency: bool, runs: int) -> None:
    cells = []
    for xnnpack in (True, False):
        r = compare_with_onnx(qdq, tfl, inputs, xnnpack=xnnpack)
        exact = min(o.exact for o in r.outputs)
        cells.append(f"{exact:.2%} / {r.within_1_lsb:.2%} / {r.max_lsb}")
    values = sum(o.values for o in r.outputs)
    line = f"| {name} | {values} | {cells[0]} | {cells[1]} |"
    if latency:
        lat = measure_latency(qdq, tfl, runs=runs, warmup=100)
        line += "".join(f" {x.median_us:.1f} / {x.p99_us:.0f} |" for x in lat)
    print(line, flush=True)


def examples(tmp: Path, latency: bool, runs: int) -> None:
    for name in ("cnn2d", "conv1d"):
        qdq = ROOT / "tests/quant/data" / f"example_{name}_int8.onnx"
        x = np.load(ROOT / "tests/quant/data" / f"example_{name}_inputs.npy", allow_pickle=False)
        row(f"example_{name} (edgesense QDQ)", qdq, export_tflite(qdq, tmp / f"{name}.tflite"),
            [s[None] for s in x], latency, runs)


def torch_models(tmp: Path, latency: bool, runs: int) -> None:
    import torch
    from test_whole_models import FFTNetLike, GestureCNN, _torch_to_qdq

    for cls, shape in ((GestureCNN, (1, 2, 32, 32)), (FFTNetLike, (1, 2, 128))):
        torch.manual_seed(0)
        d = tmp / cls.__name__
        d.mkdir()
        qdq = _torch_to_qdq(d, cls(), shape, dynamo=False)
        row(f"{cls.__name__} (torch, quantize_static)", qdq, export_tflite(qdq, d / "m.tflite"),
            samples(shape, 50), latency, runs)
    # test_op_patterns.test_fftnet_stack's model
    qdq = quantize_qdq(fftnet_stack(np.random.default_rng(0)), tmp / "stack.onnx", (1, 1, 64))
    row("random 1-channel FFTNet stack", qdq, export_tflite(qdq, tmp / "stack.tflite"), samples((1, 1, 64), 50),
        latency, runs)


def zoo_architectures(tmp: Path, latency: bool, runs: int) -> None:
    import torch

    from edgesense.nn import create_model
    from edgesense.quant import QuantSim, calibrate, export_qdq_onnx

    for name, shape in (("gesture_cnn", (2, 64, 40)), ("gesture_crnn", (2, 64, 40)),
                        ("excursion_fftnet", (8, 256)), ("excursion_convnet", (8, 256)),
                        ("excursion_hybrid", (12, 256))):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        calib = torch.randn((16, *shape), generator=g)
        sim = QuantSim(create_model(name).eval(), calib[:1], target="ort-cpu")
        calibrate(sim, calib.split(8))
        sim.eval()
        qdq = tmp / f"{name}.onnx"
        export_qdq_onnx(sim, qdq)
        xs = [torch.randn((1, *shape), generator=g).numpy() for _ in range(10)]
        row(f"{name} (untrained, edgesense QDQ)", qdq, export_tflite(qdq, tmp / f"{name}.tflite"), xs, latency, runs)


def trained_streaming(tmp: Path, latency: bool, runs: int) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    for name in ("convnet", "fftnet", "hybrid"):
        f = ROOT / "models" / name / f"{name}.onnx"
        if not f.exists():
            continue
        model = onnx.load(str(f))
        shapes = {i.name: [d.dim_value or 1 for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
        rng = np.random.default_rng(0)

        def feed():
            return {k: (rng.normal(size=v) * 0.5).astype(np.float32) for k, v in shapes.items()}

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([feed() for _ in range(32)])

            def get_next(self):
                return next(self.it, None)

        qdq = tmp / f"{name}_stream.onnx"
        quantize_static(str(f), str(qdq), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        out = export_tflite(qdq, tmp / f"{name}_stream.tflite", input_shapes={"x": tuple(shapes["x"])})
        row(f"models/{name} streaming, 1 frame (trained, quantize_static)", qdq, out, [feed() for _ in range(20)],
            latency, runs)


def edgesense_streaming(tmp: Path, latency: bool, runs: int) -> None:
    """The trained zoo models quantized by edgesense itself (`edgesense quantize [--stream-block]`)."""
    import subprocess

    import onnx

    rng = np.random.default_rng(0)
    for name in ("gesture_cnn",):
        f = ROOT / "models" / name / f"{name}.onnx"
        if not f.exists():
            continue
        shape = [d.dim_value or 1 for d in onnx.load(str(f)).graph.input[0].type.tensor_type.shape.dim]
        np.save(tmp / "calib.npy", rng.normal(size=(64, *shape[1:])).astype(np.float32))
        subprocess.run([sys.executable, "-m", "edgesense.cli.main", "quantize", "--model", str(f), "--calib",
                        str(tmp / "calib.npy"), "--out", str(tmp / name), "--json"], check=True, capture_output=True)
        qdq = tmp / name / f"{name}_int8.onnx"
        row(f"models/{name} (trained, edgesense QDQ, random calibration)", qdq,
            export_tflite(qdq, tmp / f"{name}.tflite"), samples(tuple(shape), 50), latency, runs)
    for name in ("convnet", "fftnet", "hybrid"):
        f = ROOT / "models" / name / f"{name}.onnx"
        if not f.exists():
            continue
        channels = onnx.load(str(f)).graph.input[0].type.tensor_type.shape.dim[1].dim_value
        np.save(tmp / "sig.npy", (rng.normal(size=(8, channels, 256)) * 0.5).astype(np.float32))
        subprocess.run([sys.executable, "-m", "edgesense.cli.main", "quantize", "--model", str(f), "--calib",
                        str(tmp / "sig.npy"), "--out", str(tmp / name), "--stream-block", "32", "--json"],
                       check=True, capture_output=True)
        qdq = tmp / name / f"{name}_int8.onnx"
        out = export_tflite(qdq, tmp / f"{name}.tflite", input_shapes={"x": (1, channels, 1)})
        it_inputs = [{i.name: (rng.normal(size=[d.dim_value or 1 for d in i.type.tensor_type.shape.dim]) * 0.5)
                      .astype(np.float32) for i in onnx.load(str(qdq)).graph.input} for _ in range(20)]
        row(f"models/{name} streaming, 1 frame (trained, edgesense QDQ)", qdq, out, it_inputs, latency, runs)


SECTIONS = ("examples", "torch", "zoo", "trained", "edgesense-streaming")

# (label, input H, W, C, output channels N, kernel kh, kw, stride along H): VALID convolutions
CONV_SHAPES = [
    ("gesture_cnn conv1 as exported before", 66, 42, 3, 8, 3, 3, 1),
    ("same, 8 input channels", 66, 42, 8, 8, 3, 3, 1),
    ("gesture_cnn conv1 on row pairs", 33, 42, 6, 16, 2, 3, 1),
    ("same, 8 input channels", 33, 42, 8, 16, 2, 3, 1),
    ("gesture_crnn conv1 as exported before", 68, 40, 3, 16, 5, 1, 2),
    ("gesture_crnn conv1 on row pairs", 34, 40, 6, 16, 3, 1, 1),
    ("M 1280, 1 tap, C 16, N 16", 32, 40, 16, 16, 1, 1, 1),
    ("M 1280, 2 taps, C 8, N 16", 33, 40, 8, 16, 2, 1, 1),
    ("M 1280, 1 tap, C 32, N 16", 32, 40, 32, 16, 1, 1, 1),
    ("gesture_cnn conv2", 34, 22, 8, 12, 3, 3, 1),
    ("gesture_crnn conv2", 36, 40, 16, 24, 5, 1, 2),
]


def conv_shapes(rounds: int = 10) -> None:
    """One CONV_2D per shape, built with the flatbuffer writer, timed interleaved."""
    from tflite import BuiltinOperator, Padding

    from edgesense.quant.tflite.flatbuffer import ModelBuilder, QuantParams
    from edgesense.quant.tflite.latency import _invoker, interleaved

    rng = np.random.default_rng(0)
    cases, keep, rows = {}, [], []
    for label, h, w, c, n, kh, kw, sh in CONV_SHAPES:
        fb = ModelBuilder()
        x = fb.add_tensor("x", (1, h, w, c), np.int8, QuantParams.make(0.05, -3))
        wt = fb.add_tensor("w", (n, kh, kw, c), np.int8, QuantParams(np.full(n, 0.01, np.float32), np.zeros(n, np.int64)),
                           rng.integers(-127, 128, (n, kh, kw, c)).astype(np.int8))
        b = fb.add_tensor("b", (n,), np.int32, QuantParams(np.full(n, 5e-4, np.float32), np.zeros(n, np.int64)),
                          np.zeros(n, np.int32))
        ho, wo = (h - kh) // sh + 1, w - kw + 1
        y = fb.add_tensor("y", (1, ho, wo, n), np.int8, QuantParams.make(0.1, 2))
        fb.add_operator(BuiltinOperator.CONV_2D, [x, wt, b], [y], "Conv2DOptions", 3, Padding=Padding.VALID,
                        StrideW=1, StrideH=sh, DilationWFactor=1, DilationHFactor=1, FusedActivationFunction=0)
        fb.inputs, fb.outputs = [x], [y]
        key = f"{len(rows)}"
        cases[key] = _invoker(fb.serialize(), keep)
        rows.append((key, label, ho * wo, n, kh * kw, c))
    timed = interleaved(cases, rounds=rounds)
    print("| convolution | output pixels M | N | taps | C | 8-channel blocks x taps | CPU median µs |")
    print("|---|---|---|---|---|---|---|")
    for key, label, m, n, taps, c in rows:
        print(f"| {label} | {m} | {n} | {taps} | {c} | {taps * -(-c // 8)} | {timed[key]['cpu_median_us']:.1f} |")


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", action="store_true")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--only", choices=list(SECTIONS), action="append", help="run only these sections")
    p.add_argument("--conv-shapes", action="store_true", help="only the single-convolution cost table")
    args = p.parse_args()
    if args.conv_shapes:
        import os

        print(f"load average {os.getloadavg()}")
        conv_shapes()
        return
    sections = {"examples": examples, "torch": torch_models, "zoo": zoo_architectures,
                "trained": trained_streaming, "edgesense-streaming": edgesense_streaming}
    head = "| model | values | XNNPACK exact / ≤1 LSB / max | builtin exact / ≤1 LSB / max |"
    if args.latency:
        head += " ORT INT8 | LiteRT XNNPACK | LiteRT builtin |"
    print(head)
    with tempfile.TemporaryDirectory() as d:
        for key, section in sections.items():
            if args.only and key not in args.only:
                continue
            sub = Path(d) / key
            sub.mkdir()
            section(sub, args.latency, args.runs)


if __name__ == "__main__":
    main()
