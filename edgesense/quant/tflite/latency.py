"""Batch-1 latency of the INT8 model on ONNX Runtime and on LiteRT, side by side, on one thread."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from edgesense.quant.tflite.parity import ort_session, tflite_interpreter

__all__ = ["Latency", "measure_latency"]


@dataclass
class Latency:
    """Per-inference wall time in microseconds over ``runs`` timed calls (after warm-up)."""

    backend: str
    median_us: float
    p99_us: float
    runs: int

    def to_dict(self) -> dict:
        return asdict(self)


def _summary(backend: str, times_s: list[float]) -> Latency:
    t = np.asarray(times_s) * 1e6
    return Latency(backend, float(np.median(t)), float(np.percentile(t, 99)), len(t))


def measure_latency(
    qdq_onnx: str | os.PathLike | None,
    tflite_model: str | os.PathLike | None,
    *,
    runs: int = 2000,
    warmup: int = 200,
    threads: int = 1,
    seed: int = 0,
) -> list[Latency]:
    """Time ``ort-int8`` (all graph optimizations, as deployed) and ``litert-int8`` (XNNPACK, the
    default delegate) and ``litert-int8-no-xnnpack`` on the same random input."""
    rng = np.random.default_rng(seed)
    results = []
    if qdq_onnx is not None:
        sess = ort_session(qdq_onnx, num_threads=threads, level="all")
        # same shapes as the .tflite (which fixed any symbolic dimension at export); else symbolic -> 1
        static = ({d["name"]: list(d["shape"]) for d in tflite_interpreter(tflite_model).get_input_details()}
                  if tflite_model is not None else {})
        feed = {}
        for i in sess.get_inputs():
            shape = static.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape]
            feed[i.name] = rng.normal(size=shape).astype(np.float32)
        results.append(_time("ort-int8", lambda: sess.run(None, feed), runs, warmup))
    if tflite_model is not None:
        for name, xnnpack in (("litert-int8", True), ("litert-int8-no-xnnpack", False)):
            it = tflite_interpreter(tflite_model, num_threads=threads, xnnpack=xnnpack)
            for d in it.get_input_details():
                info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
                x = (rng.integers(info.min, info.max + 1, size=d["shape"]) if info else
                     rng.normal(size=d["shape"])).astype(d["dtype"])
                it.set_tensor(d["index"], x)
            results.append(_time(name, it.invoke, runs, warmup))
    return results


def _time(name: str, fn, runs: int, warmup: int) -> Latency:
    for _ in range(warmup):
        fn()
    times = []
    clock = time.perf_counter
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return _summary(name, times)
