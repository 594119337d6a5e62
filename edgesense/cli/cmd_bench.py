"""``edgesense bench``: every model on every backend, side by side (batch 1, one thread)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json

COMMAND = ("bench",)
HELP = "benchmark models per backend (torch float, ORT float, ORT INT8, LiteRT INT8): latency, throughput, memory"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path,
                        help="model directories or files (default: every directory under ./models)")
    parser.add_argument("--runs", type=int, default=300, help="timed batch-1 runs per case (default 300)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per backend (default 1)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch float backend")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run every case in this process (faster; peak memory is then not meaningful)")
    add_json_flag(parser)


def discover(paths: list[Path]) -> list[tuple[str, list[Path]]]:
    """(model name, files) groups: a directory is one model; a file is its own model (name = stem)."""
    from edgesense.errors import EdgesenseError

    if not paths:
        root = Path("models")
        if not root.is_dir():
            raise EdgesenseError("no model paths given and no ./models directory")
        paths = sorted(d for d in root.iterdir() if d.is_dir())
    groups = []
    for p in paths:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix in (".onnx", ".tflite"))
            stems = sorted({_family(f) for f in files})
            if len(stems) <= 1 and files:
                groups.append((p.name, files))
            else:       # several model families in one directory: one group each
                groups += [(s, [f for f in files if _family(f) == s]) for s in stems]
        elif p.is_file() and p.suffix in (".onnx", ".tflite"):
            groups.append((p.stem, [p]))
        else:
            raise EdgesenseError(f"{p}: not a model directory or an .onnx/.tflite file")
    if not groups:
        raise EdgesenseError("no .onnx or .tflite models found")
    return groups


def _family(f: Path) -> str:
    stem = f.stem
    for suffix in ("_float_folded", "_float", "_int8", "_fp32", "_qdq"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def cases(groups, torch_float: bool) -> list[tuple[str, Path, str]]:
    """(model, file, backend) to run; torch float runs the first float ONNX of each model."""
    from edgesense.runtime.bench import is_int8_onnx

    out = []
    for name, files in groups:
        floats = [f for f in files if f.suffix == ".onnx" and not is_int8_onnx(f)]
        if torch_float and floats:
            out.append((name, floats[0], "torch"))
        for f in files:
            out.append((name, f, "onnxruntime" if f.suffix == ".onnx" else "litert"))
    return out


def run(args: argparse.Namespace) -> int:
    from edgesense.errors import EdgesenseError, ModelError
    from edgesense.progress import progress
    from edgesense.runtime.bench import bench_isolated, bench_model

    if args.runs < 1 or args.threads < 1:
        raise EdgesenseError("--runs and --threads must be >= 1")
    torch_float = not args.no_torch
    if torch_float:
        try:
            import importlib.util
            torch_float = importlib.util.find_spec("torch") is not None
        except ImportError:
            torch_float = False
    todo = cases(discover(list(args.paths)), torch_float)
    results, failures = [], []
    fn = bench_model if args.no_isolate else bench_isolated
    for name, path, backend in progress(todo, desc="bench"):
        try:
            results.append(fn(path, backend, runs=args.runs, warmup=args.warmup, threads=args.threads, model_name=name))
        except (ModelError, EdgesenseError) as exc:
            failures.append({"model": name, "path": str(path), "backend": backend, "error": str(exc)})
    if args.json:
        print_json({"results": [r.to_dict() for r in results], "failures": failures,
                    "isolated": not args.no_isolate})
        return 0 if results else 2
    print(f"{'model':22s} {'backend':14s} {'median us':>10s} {'p99 us':>10s} {'inf/s':>9s} {'peak MB':>8s}  file")
    for r in results:
        mem = f"{r.peak_memory_mb:8.1f}" if r.peak_memory_mb is not None and not args.no_isolate else "       -"
        print(f"{r.model:22s} {r.backend:14s} {r.median_us:10.1f} {r.p99_us:10.1f} {r.throughput_per_s:9.0f} {mem}  "
              f"{Path(r.path).name}")
    for f in failures:
        print(f"{f['model']:22s} {f['backend']:14s} failed: {f['error']}")
    return 0 if results else 2
