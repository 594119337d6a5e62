"""``python -m edgesense.quant.tflite MODEL_INT8.onnx OUT.tflite [--check N] [--bench] [--per-op] [--versus FLOAT.onnx] [--json]``

Export a QDQ INT8 ONNX model to full-integer TFLite; optionally check parity against ONNX Runtime on
N random inputs and time both runtimes (batch 1, one thread), time every operator of the .tflite alone
(``--per-op``), or time the .tflite against the float model on ORT, interleaved (``--versus``).
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
    p.add_argument("--no-pair-rows", action="store_true",
                   help="do not pack row pairs of a first convolution on few channels (same outputs, slower on XNNPACK)")
    p.add_argument("--input-layout", default="onnx", choices=["onnx", "nwhc"],
                   help="onnx (default): the .tflite takes the ONNX input shapes; nwhc: a rank-4 (N, C, H, W) input "
                        "is taken as (N, W, H, C), without its TRANSPOSE (recorded in the model's metadata)")
    p.add_argument("--pack-channels", type=int, default=None, metavar="WIDTH",
                   help="opt-in: compute blocks of output pixels of each int8 convolution with few output channels "
                        "in up to WIDTH output channels (zero weights elsewhere; bit-identical outputs). Pays off "
                        "where XNNPACK's int8 convolution tile is WIDTH channels wide (64: x86 with AMX); can be "
                        "slower elsewhere (AVX2, ARM)")
    p.add_argument("--channel-last", action="store_true",
                   help="streaming models: every input and output in the graph's own (1, 1, L, C) layout, without "
                        "their RESHAPE/TRANSPOSE operators (same numbers; what the zoo ships for excursion models)")
    p.add_argument("--per-op", action="store_true", help="CPU time of every .tflite operator alone (one thread)")
    p.add_argument("--versus", metavar="FLOAT_ONNX",
                   help="time, interleaved, ORT float (this model), ORT INT8 and LiteRT INT8 as exported and without "
                        "row pairs (with --input-layout nwhc: also with the ONNX layout; with --pack-channels: also "
                        "without the packing), all through "
                        "edgesense.runtime (Model.run), one thread, batch 1")
    p.add_argument("--rounds", type=int, default=20, help="rounds of --calls calls per case for --per-op/--versus")
    p.add_argument("--calls", type=int, default=100, help="calls per case and round for --versus (default 100)")
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
    out = export_tflite(args.model, args.out, io_dtype=args.io_dtype, input_shapes=shapes or None,
                        pair_rows=not args.no_pair_rows, input_layout=args.input_layout,
                        channel_last=args.channel_last, pack_channels=args.pack_channels)
    result: dict = {"tflite": str(out), "bytes": out.stat().st_size}
    status = 0
    if args.check or args.inputs:
        if args.inputs:
            xs = [x[None] for x in np.load(args.inputs, allow_pickle=False)]
        else:
            from edgesense.quant.tflite.parity import tflite_interpreter

            rng = np.random.default_rng(0)
            from edgesense.runtime.litert_backend import input_perms
            from edgesense.runtime.model import onnx_shape

            details = tflite_interpreter(out).get_input_details()  # static shapes
            perms = input_perms(out.read_bytes())
            shapes_onnx = {d["name"]: onnx_shape(d["shape"], perms.get(d["name"])) for d in details}
            xs = [{name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes_onnx.items()}
                  for _ in range(args.check)]
        rep = compare_with_onnx(args.model, out, xs)
        result["parity"] = {"samples": rep.samples, "outputs": [vars(o) for o in rep.outputs], "passes": rep.passes()}
        status = 0 if rep.passes() else 1
    if args.bench:
        result["latency"] = [lat.to_dict() for lat in measure_latency(args.model, out, runs=args.runs)]
    if args.per_op:
        from edgesense.quant.tflite.latency import op_latency

        result["per_op"] = op_latency(out, rounds=args.rounds)
    if args.versus:
        result["versus"] = _versus(args, out, shapes or None)
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
        for row in result.get("per_op", []):
            print(f"{'' if row['index'] is None else row['index']:>3} {row['op']:16s} {str(row['inputs']):40s} "
                  f"CPU {row['cpu_median_us']:7.1f} us")
        if "versus" in result:
            v = result["versus"]
            print(f"interleaved, {v['rounds']} rounds x {v['calls']} calls, load average {v['load_average']}")
            for name, t in v["cases"].items():
                print(f"{name:34s} CPU median {t['cpu_median_us']:7.1f} p99 {t['cpu_p99_us']:7.1f} | "
                      f"wall median {t['wall_median_us']:7.1f} p99 {t['wall_p99_us']:7.1f} us")
    return status


def _versus(args: argparse.Namespace, packed, shapes) -> dict:
    """ORT float vs ORT INT8 vs LiteRT INT8 (as exported, without row pairs and, for ``--input-layout nwhc``,
    with the ONNX layout), interleaved, as ``edgesense.runtime`` runs them: ``Model.run`` on the float input
    for the ONNX models, on its int8 quantization in each model's own layout for LiteRT."""
    import os
    import tempfile
    from pathlib import Path

    from edgesense.quant.tflite import export_tflite
    from edgesense.quant.tflite.latency import interleaved
    from edgesense.runtime import load_model
    from edgesense.runtime.model import quantize

    nwhc = args.input_layout != "onnx"
    with tempfile.TemporaryDirectory() as tmp:
        base = f"LiteRT INT8 ({args.input_layout} input" if nwhc else "LiteRT INT8 (row pairs"
        label = base + (f", channels packed to {args.pack_channels})" if args.pack_channels is not None else ")")
        models = {"ORT float": load_model(args.versus, threads=1), "ORT INT8": load_model(args.model, threads=1),
                  label: load_model(packed, threads=1)}
        if args.pack_channels is not None:   # the same export without the packing
            unpacked = export_tflite(args.model, Path(tmp) / "unpacked.tflite", io_dtype=args.io_dtype,
                                     input_shapes=shapes, pair_rows=not args.no_pair_rows,
                                     input_layout=args.input_layout, channel_last=args.channel_last)
            models[base + ")"] = load_model(unpacked, threads=1)
        if nwhc:
            onnx_layout = export_tflite(args.model, Path(tmp) / "onnx.tflite", io_dtype=args.io_dtype,
                                        input_shapes=shapes, pair_rows=not args.no_pair_rows)
            models["LiteRT INT8 (onnx input)"] = load_model(onnx_layout, threads=1)
        plain = export_tflite(args.model, Path(tmp) / "plain.tflite", io_dtype=args.io_dtype, input_shapes=shapes,
                              pair_rows=False)
        models["LiteRT INT8 (plain)"] = load_model(plain, threads=1)
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.standard_normal(s.concrete_shape()).astype(np.float32) for s in models["ORT float"].input_specs}
    cases = {}
    for name, m in models.items():
        if m.backend == "litert":
            # the int8 input in the model's own layout (what a caller keeping its data in that layout passes)
            raw = {}
            for s in m.input_specs:
                x = feeds[s.name] if s.perm is None else np.ascontiguousarray(feeds[s.name].transpose(s.perm))
                raw[s.name] = quantize(x, s.scale, s.zero_point, s.dtype) if s.quantized else x
            cases[name] = (lambda m=m, raw=raw: m.run(raw, raw=True))
        else:
            cases[name] = (lambda m=m: m.run(feeds))
    return {"rounds": args.rounds, "calls": args.calls, "load_average": [round(v, 2) for v in os.getloadavg()],
            "cases": interleaved(cases, rounds=args.rounds, calls=args.calls)}


if __name__ == "__main__":
    sys.exit(main())
