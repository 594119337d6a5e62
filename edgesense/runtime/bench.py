"""Latency, throughput and peak memory of one model on one backend, batch 1.

Backends: ``onnxruntime`` (float or INT8 ``.onnx``), ``litert`` (``.tflite``) and ``torch`` (a float
model on torch eager -- imported lazily; torch is optional). Integer-I/O models are timed on already
quantized int8 inputs (the model's own latency, without numpy's float-to-int8 conversion). :func:`bench_isolated` runs each case in a
fresh Python process so its peak-memory figure (growth of the process's maximum resident set size while
loading and running the model) is not polluted by other models.

Also a module entry point used by the isolation: ``python -m edgesense.runtime.bench PATH --backend B``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgesense.errors import EdgesenseError, ModelError

__all__ = ["BenchResult", "bench_model", "bench_isolated", "is_int8_onnx", "backend_label", "one_cpu", "machine_info",
           "describe_machine"]

# CPU features that decide which kernels ORT (MLAS) and LiteRT (XNNPACK) run on x86, as /proc/cpuinfo names them
_ISA_FLAGS = ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "amx_int8")


@dataclass(frozen=True)
class BenchResult:
    """Timing of ``runs`` batch-1 inferences after ``warmup`` untimed ones."""

    model: str
    backend: str            # "torch float", "ORT float", "ORT INT8", "LiteRT INT8", "LiteRT float"
    path: str
    median_us: float
    p99_us: float
    throughput_per_s: float
    peak_memory_mb: float | None
    runs: int
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def machine_info() -> dict:
    """Where latency was measured: CPU model, logical CPUs, the x86 features that pick ORT's and LiteRT's kernels
    (``isa``; empty off x86 Linux) and the runtime versions. Latency rankings differ between CPUs (docs/quantization.md
    §10), so every benchmark carries this."""
    from importlib import metadata

    from edgesense.runtime.cpu import cpu_flags, cpu_model

    cpu, flags = cpu_model(), cpu_flags()
    versions = {}
    for dist in ("onnxruntime", "ai-edge-litert", "tflite-runtime"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "isa": [f for f in _ISA_FLAGS if f in flags], **versions}


def describe_machine(info: dict) -> str:
    """One line for :func:`machine_info`: ``CPU, N logical CPUs (avx2, ...); onnxruntime X, ai-edge-litert Y``."""
    isa = f" ({', '.join(info['isa'])})" if info.get("isa") else ""
    runtimes = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("cpu", "logical_cpus", "isa"))
    return f"{info['cpu']}, {info['logical_cpus']} logical CPUs{isa}" + (f"; {runtimes}" if runtimes else "")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux reports KiB


def is_int8_onnx(path: str | Path) -> bool:
    """True for a quantized ONNX model (QDQ or QOperator), judged from its op names."""
    data = Path(path).read_bytes()
    return b"DequantizeLinear" in data or b"QLinearConv" in data or b"QGemm" in data


def backend_label(path: str | Path, backend: str) -> str:
    """Human label of a (file, backend) pair."""
    if backend == "torch":
        return "torch float"
    if backend == "litert":
        from edgesense.runtime.litert_backend import input_perms

        data = Path(path).read_bytes()
        label = "LiteRT INT8" if b"QUANTIZE" in data or _tflite_int8(path) else "LiteRT float"
        try:
            perms = input_perms(data)
        except ModelError:
            perms = {}
        # an input in another layout than the ONNX model's (export input_layout="nwhc") is timed in that layout
        label += " (nwhc input)" if perms else ""
        # the zoo's twin with convolutions packed for XNNPACK's AMX tile (export pack_channels=64)
        return label + " (AMX-packed)" if Path(path).stem.endswith("_amx") else label
    return "ORT INT8" if is_int8_onnx(path) else "ORT float"


def _tflite_int8(path) -> bool:
    try:
        from edgesense.runtime import load_model
        m = load_model(path, warmup=0)
        return any(np.issubdtype(s.dtype, np.integer) for s in m.input_specs)
    except ModelError:
        return False


@contextmanager
def one_cpu() -> Iterator[int | None]:
    """Pin this process to the lowest CPU it may run on for the ``with`` block, then restore its CPUs.

    Yields that CPU, or None where the OS has no affinity call or refuses it (then nothing is pinned).
    """
    try:
        before = os.sched_getaffinity(0)
        cpu = min(before)
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def time_calls(fn, runs: int, warmup: int) -> np.ndarray:
    """Seconds taken by each of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        t[i] = time.perf_counter() - t0
    return t


def _torch_callable(path: Path, threads: int, arch: str | None, arch_args: str | None, example_shape):
    import torch

    torch.set_num_threads(threads)
    if path.suffix == ".pt":
        from edgesense.quant.model_io import architecture_args, load_torch_model
        if not arch:
            raise EdgesenseError(f"{path}: a .pt model needs its architecture name to run on torch")
        model = load_torch_model(path, arch, architecture_args(path, arch_args))
        if example_shape is None:
            raise EdgesenseError(f"{path}: give the input shape of a .pt model")
        shape = example_shape
    else:  # a float ONNX, rebuilt as a torch module (BN folded) by the quantization importer
        from edgesense.quant.sim import QuantSim
        sim = QuantSim.from_onnx(path)
        model = sim.float_model().eval()
        xs = [torch.randn((1, *shp[1:])) for shp in sim.input_shapes]

        def run_all():
            with torch.inference_mode():
                model(*xs)
        return run_all
    x = torch.randn(shape)

    def run():
        with torch.inference_mode():
            model(x)
    return run


def bench_model(path: str | Path, backend: str, runs: int = 200, warmup: int = 20, threads: int = 1,
                model_name: str | None = None, arch: str | None = None, arch_args: str | None = None,
                input_shape: tuple[int, ...] | None = None) -> BenchResult:
    """Benchmark ``path`` on ``backend`` (``onnxruntime``, ``litert`` or ``torch``) in this process."""
    path = Path(path)
    if runs < 1:
        raise EdgesenseError("runs must be >= 1")
    if backend == "torch":
        import torch  # noqa: F401  (import cost excluded from the memory baseline)
        base = _maxrss_mb()
        fn = _torch_callable(path, threads, arch, arch_args, input_shape)
    elif backend in ("onnxruntime", "litert"):
        if backend == "onnxruntime":
            import onnxruntime  # noqa: F401
        base = _maxrss_mb()
        from edgesense.runtime import load_model
        model = load_model(path, threads=threads, warmup=0)
        feeds = model.dummy_inputs(batch=1)
        raw = all(s.quantized for s in model.input_specs)
        if raw:   # integer-I/O model: time the model itself, inputs already quantized
            from edgesense.runtime.model import quantize
            feeds = {s.name: quantize(feeds[s.name], s.scale, s.zero_point, s.dtype) for s in model.input_specs}

        def fn():
            model.run(feeds, raw=raw)
    else:
        raise EdgesenseError(f"unknown backend {backend!r}; choose onnxruntime, litert or torch")
    t = time_calls(fn, runs, warmup)
    peak = _maxrss_mb() - base
    return BenchResult(model_name or path.stem, backend_label(path, backend), str(path),
                       float(np.median(t) * 1e6), float(np.percentile(t, 99) * 1e6), float(1.0 / t.mean()),
                       round(peak, 2), runs, threads)


def bench_isolated(path: str | Path, backend: str, runs: int = 200, warmup: int = 20, threads: int = 1,
                   model_name: str | None = None, arch: str | None = None, arch_args: str | None = None,
                   input_shape: tuple[int, ...] | None = None, timeout_s: float = 600) -> BenchResult:
    """:func:`bench_model` in a fresh Python process (clean peak-memory figure)."""
    cmd = [sys.executable, "-m", "edgesense.runtime.bench", str(path), "--backend", backend, "--runs", str(runs),
           "--warmup", str(warmup), "--threads", str(threads)]
    for flag, value in (("--name", model_name), ("--arch", arch), ("--arch-args", arch_args)):
        if value:
            cmd += [flag, value]
    if input_shape:
        cmd += ["--input-shape", ",".join(map(str, input_shape))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise ModelError(f"benchmark of {path} on {backend} failed: {last}")
    return BenchResult(**json.loads(proc.stdout))


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgesense.runtime.bench")
    p.add_argument("path")
    p.add_argument("--backend", required=True)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name")
    p.add_argument("--arch")
    p.add_argument("--arch-args")
    p.add_argument("--input-shape")
    a = p.parse_args(argv)
    shape = tuple(int(v) for v in a.input_shape.split(",")) if a.input_shape else None
    r = bench_model(a.path, a.backend, a.runs, a.warmup, a.threads, a.name, a.arch, a.arch_args, shape)
    print(json.dumps(r.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
