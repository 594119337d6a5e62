"""``edgesense bench``: every model on every backend, side by side (batch 1, one thread), then the end-to-end
cost of every pipeline those files (and large-signal calibrations) run in, per backend file.

Pipelines (skipped with ``--no-pipelines``): a gesture model's :class:`~edgesense.radar.pipeline.GesturePipeline`
per frame of a simulated radar stream with frame drops (:mod:`edgesense.radar.bench`), an excursion model's or a
calibration's :class:`~edgesense.speaker.pipeline.ExcursionPipeline` per block (:mod:`edgesense.speaker.bench`);
frames back to back, the process pinned to one CPU, the model on one thread. ``--json`` adds them under the
top-level key ``pipelines``; the model rows (``results``, ``failures``, ``isolated``) are unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json

COMMAND = ("bench",)
HELP = ("benchmark models per backend (torch float, ORT float, ORT INT8, LiteRT INT8): latency, throughput, memory; "
        "and each pipeline's end-to-end cost per frame or block")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path,
                        help="model directories or files (default: every directory under ./models)")
    parser.add_argument("--runs", type=int, default=300, help="timed batch-1 runs per case (default 300)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per backend (default 1)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch float backend")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run every case in this process (faster; peak memory is then not meaningful)")
    parser.add_argument("--no-pipelines", action="store_true",
                        help="skip the end-to-end pipeline rows (gesture per frame, excursion per block)")
    parser.add_argument("--pipeline-seconds", type=float, default=10.0,
                        help="seconds of simulated sensor stream per pipeline case (default 10)")
    parser.add_argument("--drop-rate", type=float, default=0.2,
                        help="share of radar frames lost in the gesture pipelines' stream (default 0.2)")
    add_json_flag(parser)


def discover(paths: list[Path]) -> tuple[list[tuple[str, list[Path]]], list[Path]]:
    """(model name, files) groups -- a directory is one model; a file is its own model (name = stem) -- and the
    large-signal calibrations (``.json`` files with a ``large_signal`` entry) among the paths and in the directories."""
    from edgesense.errors import EdgesenseError

    if not paths:
        root = Path("models")
        if not root.is_dir():
            raise EdgesenseError("no model paths given and no ./models directory")
        paths = sorted(d for d in root.iterdir() if d.is_dir())
    groups, calibrations = [], []
    for p in paths:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix in (".onnx", ".tflite"))
            stems = sorted({_family(f) for f in files})
            if len(stems) <= 1 and files:
                groups.append((p.name, files))
            else:       # several model families in one directory: one group each
                groups += [(s, [f for f in files if _family(f) == s]) for s in stems]
            calibrations += [f for f in sorted(p.glob("*.json")) if _is_calibration(f)]
        elif p.is_file() and p.suffix in (".onnx", ".tflite"):
            groups.append((p.stem, [p]))
        elif p.is_file() and _is_calibration(p):
            calibrations.append(p)
        else:
            raise EdgesenseError(f"{p}: not a model directory, an .onnx/.tflite file or a large-signal calibration")
    return groups, calibrations


def _is_calibration(path: Path) -> bool:
    """A large-signal calibration (what ``edgesense calibrate speaker`` writes)?"""
    import json

    if path.suffix != ".json":
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "large_signal" in data


def _family(f: Path) -> str:
    stem = f.stem
    for suffix in ("_float_folded", "_float", "_int8_amx", "_int8", "_fp32", "_qdq"):
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


def run_pipeline(path: Path, name: str, args: argparse.Namespace, caches: dict):
    """The pipeline cost of one file: a calibration's large-signal estimator, a gesture model's GesturePipeline or
    an excursion model's ExcursionPipeline. A file no pipeline runs raises ModelError (the reason)."""
    from edgesense.errors import ModelError
    from edgesense.radar.bench import bench_gesture_pipeline
    from edgesense.radar.pipeline import GestureModelInfo
    from edgesense.speaker.bench import bench_excursion_pipeline

    excursion = {"seconds": args.pipeline_seconds, "model_name": name, "frames_cache": caches.setdefault("speaker", {})}
    if path.suffix == ".json":
        return bench_excursion_pipeline(path, **excursion)
    try:
        GestureModelInfo.for_model(path)
    except ModelError as exc:
        not_gesture = str(exc).removeprefix(f"{path}: ")
    else:
        return bench_gesture_pipeline(path, seconds=args.pipeline_seconds, drop_rate=args.drop_rate, model_name=name,
                                      streams_cache=caches.setdefault("radar", {}))
    try:
        return bench_excursion_pipeline(path, **excursion)
    except ModelError as exc:
        raise ModelError(f"no pipeline runs it ({not_gesture}; {str(exc).removeprefix(f'{path}: ')})") from None


def run(args: argparse.Namespace) -> int:
    import os
    import time
    from contextlib import ExitStack

    from edgesense.errors import EdgesenseError, ModelError
    from edgesense.progress import progress
    from edgesense.runtime.bench import bench_isolated, bench_model, describe_machine, machine_info, one_cpu

    if args.runs < 1 or args.threads < 1:
        raise EdgesenseError("--runs and --threads must be >= 1")
    pipelines = not args.no_pipelines
    if pipelines and not args.pipeline_seconds > 0:
        raise EdgesenseError(f"--pipeline-seconds must be positive, got {args.pipeline_seconds:g}")
    if pipelines and not 0.0 <= args.drop_rate < 1.0:
        raise EdgesenseError(f"--drop-rate must be in [0, 1), got {args.drop_rate:g}")
    torch_float = not args.no_torch
    if torch_float:
        try:
            import importlib.util
            torch_float = importlib.util.find_spec("torch") is not None
        except ImportError:
            torch_float = False
    groups, calibrations = discover(list(args.paths))
    if not pipelines:
        calibrations = []
    if not groups and not calibrations:
        raise EdgesenseError("no .onnx or .tflite models found")
    todo = [("model", case) for case in cases(groups, torch_float)]
    if pipelines:
        todo += [("pipeline", (name, f)) for name, files in groups for f in files]
        todo += [("pipeline", (f.stem, f)) for f in calibrations]
    results, failures, rows, skipped = [], [], [], []
    fn = bench_isolated if not args.no_isolate else bench_model
    caches: dict = {}
    info: dict = {}
    with ExitStack() as pinned:
        for kind, case in progress(todo, desc="bench"):
            if kind == "model":
                name, path, backend = case
                try:
                    results.append(fn(path, backend, runs=args.runs, warmup=args.warmup, threads=args.threads,
                                      model_name=name))
                except (ModelError, EdgesenseError) as exc:
                    failures.append({"model": name, "path": str(path), "backend": backend, "error": str(exc)})
                continue
            if not info:      # the first pipeline case: pin to one CPU until the last
                info = {"pinned_cpu": pinned.enter_context(one_cpu()), "load_average_start": list(os.getloadavg()),
                        "wall_s": -time.perf_counter()}
            name, path = case
            try:
                rows.append(run_pipeline(path, name, args, caches))
            except EdgesenseError as exc:
                skipped.append({"model": name, "path": str(path), "reason": str(exc)})
    if pipelines:
        from edgesense.speaker import largesignal

        info["wall_s"] = round(info["wall_s"] + time.perf_counter(), 2) if "wall_s" in info else 0.0
        info.update({"load_average_end": list(os.getloadavg()), "stream_seconds": args.pipeline_seconds,
                     "drop_rate": args.drop_rate, "largesignal_kernel": largesignal.KERNEL})
    ok = 0 if results or rows else 2
    if args.json:
        out = {"results": [r.to_dict() for r in results], "failures": failures, "isolated": not args.no_isolate,
               "machine": machine_info()}
        if pipelines:
            out["pipelines"] = {"rows": [r.to_dict() for r in rows], "skipped": skipped, **info}
        print_json(out)
        return ok
    print(f"machine: {describe_machine(machine_info())}")
    if results or failures:
        bw = max([14] + [len(r.backend) for r in results] + [len(f["backend"]) for f in failures])
        print(f"{'model':22s} {'backend':{bw}s} {'median us':>10s} {'p99 us':>10s} {'inf/s':>9s} {'peak MB':>8s}  file")
    for r in results:
        mem = f"{r.peak_memory_mb:8.1f}" if r.peak_memory_mb is not None and not args.no_isolate else "       -"
        print(f"{r.model:22s} {r.backend:{bw}s} {r.median_us:10.1f} {r.p99_us:10.1f} {r.throughput_per_s:9.0f} {mem}  "
              f"{Path(r.path).name}")
    for f in failures:
        print(f"{f['model']:22s} {f['backend']:{bw}s} failed: {f['error']}")
    if pipelines:
        print_pipelines(rows, skipped, info)
    return ok


def print_pipelines(rows: list, skipped: list[dict], info: dict) -> None:
    """The pipelines table: CPU time per frame (gesture) or block (excursion), and what each row ran."""
    cpu = "" if info.get("pinned_cpu") is None else f", pinned to CPU {info['pinned_cpu']}"
    la, lb = (info.get(k, [float("nan")])[0] for k in ("load_average_start", "load_average_end"))
    print(f"\npipelines: end-to-end cost per frame / block in us, back to back{cpu}, model on one thread; "
          f"{info['stream_seconds']:g} s of simulated stream each ({info['drop_rate']:.0%} of radar frames lost); "
          f"load average {la:.2f} -> {lb:.2f}; {info['wall_s']:.1f} s")
    bw = max([22] + [len(r.backend) for r in rows])
    print(f"{'model':22s} {'backend':{bw}s} {'per':10s} {'CPU p50':>8s} {'CPU p99':>8s} {'CPU mean':>8s} "
          f"{'wall p99':>8s}  {'rate':40s} file")
    for r in rows:
        if r.pipeline == "gesture":
            per = "frame"
            rate = (f"{r.frames_per_s:5.0f} frames/s, {r.restore_share:.0%} after a gap"
                    + (", split" if r.streaming_split else ""))
        else:
            per = f"{r.block_us / 1000:g} ms block"
            extra = [x for x, on in (("tracker", r.tracker), ("direct", r.direct),
                                     (f"{r.largesignal_kernel} loop", r.largesignal_kernel)) if on]
            rate = f"RTF {r.real_time_factor:.4f}" + (f" ({', '.join(extra)})" if extra else "")
        print(f"{r.model:22s} {r.backend:{bw}s} {per:10s} {r.cpu_p50_us:8.1f} {r.cpu_p99_us:8.1f} {r.cpu_mean_us:8.1f} "
              f"{r.wall_p99_us:8.1f}  {rate:40s} {Path(r.path).name}")
    for s in skipped:
        print(f"{s['model']:22s} skipped {Path(s['path']).name}: {s['reason']}")
