"""``python -m edgesense.quant.tflite MODEL_INT8.onnx OUT.tflite [--check N] [--bench] [--json]``

Export a QDQ INT8 ONNX model to full-integer TFLite; optionally check parity against ONNX Runtime on
N random inputs and time both runtimes (batch 1, one thread).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from edgesense.errors import EdgesenseError


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of the export command (also for ``edgesense export tflite``)."""
    p.add_argument("model", help="QDQ INT8 ONNX model")
    p.add_argument("out", help="output .tflite path")
    p.add_argument("--io-dtype", default="int8", choices=["int8", "float32"],
                   help="model input/output type (default int8; float32 adds QUANTIZE/DEQUANTIZE)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix a symbolic input shape, e.g. x=1,8,12 (repeatable; other symbolic dims become 1)")
    p.add_argument("--check", type=int, default=0, metavar="N", help="parity on N random N(0,1) inputs")
    p.add_argument("--inputs", help=".npy of float inputs (first axis = samples) for --check instead")
    p.add_argument("--bench", action="store_true", help="median/p99 latency, ORT INT8 vs LiteRT INT8")
    p.add_argument("--runs", type=int, default=2000, help="timed runs per backend for --bench (default 2000)")
    p.add_argument("--json", action="store_true", help="print results as JSON")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgesense.quant.tflite",
                                description="Export a QDQ INT8 ONNX model to full-integer LiteRT/TFLite "
                                            "(docs/tflite-export.md).")
    configure(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except EdgesenseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Export, then optionally check parity and time both runtimes; exit status 1 when parity fails."""
    from edgesense.quant.tflite import export_tflite
    from edgesense.quant.tflite.latency import measure_latency
    from edgesense.quant.tflite.parity import compare_with_onnx

    shapes = {}
    for item in args.input_shape:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise EdgesenseError(f"--input-shape {item!r}: expected NAME=D0,D1,... with integer dims") from None
    out = export_tflite(args.model, args.out, io_dtype=args.io_dtype, input_shapes=shapes or None)
    result: dict = {"tflite": str(out), "bytes": out.stat().st_size}
    status = 0
    if args.check or args.inputs:
        if args.inputs:
            xs = [x[None] for x in np.load(args.inputs, allow_pickle=False)]
        else:
            from edgesense.quant.tflite.parity import tflite_interpreter

            rng = np.random.default_rng(0)
            details = tflite_interpreter(out).get_input_details()  # static shapes, ONNX layout
            xs = [{d["name"]: rng.normal(size=d["shape"]).astype(np.float32) for d in details}
                  for _ in range(args.check)]
        rep = compare_with_onnx(args.model, out, xs)
        result["parity"] = {"samples": rep.samples, "outputs": [vars(o) for o in rep.outputs], "passes": rep.passes()}
        status = 0 if rep.passes() else 1
    if args.bench:
        result["latency"] = [lat.to_dict() for lat in measure_latency(args.model, out, runs=args.runs)]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"wrote {result['tflite']} ({result['bytes']} bytes)")
        if "parity" in result:
            for o in result["parity"]["outputs"]:
                print(f"parity {o['name']}: {o['within_1_lsb']:.4%} within 1 LSB, {o['exact']:.2%} exact, "
                      f"max {o['max_lsb']} LSB over {o['values']} values")
        for lat in result.get("latency", []):
            print(f"{lat['backend']:24s} median {lat['median_us']:8.1f} us   p99 {lat['p99_us']:8.1f} us")
    return status


if __name__ == "__main__":
    sys.exit(main())
