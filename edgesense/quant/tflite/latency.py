"""Batch-1 latency of the INT8 model on ONNX Runtime and on LiteRT, side by side, on one thread; where the
time goes inside a ``.tflite`` (every operator timed alone); interleaved A/B timing on a shared machine."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgesense.quant.tflite.parity import ort_session, tflite_interpreter

__all__ = ["Latency", "measure_latency", "interleaved", "op_latency"]


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


def interleaved(cases: dict[str, Callable[[], object]], rounds: int = 20, calls: int = 100,
                warmup: int = 50) -> dict[str, dict]:
    """Time several calls side by side on a shared machine: ``rounds`` rounds, each running ``calls``
    calls of every case in turn (the order rotated from round to round, so no case always runs first or
    right after the same neighbour), so load changes hit all cases alike. Per case, over all calls (µs):
    median and p99 of the wall time and of this thread's CPU time (``time.thread_time``: preemption
    by other processes not counted)."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    wall = {k: np.empty(rounds * calls) for k in cases}
    cpu = {k: np.empty(rounds * calls) for k in cases}
    clock, thread = time.perf_counter, time.thread_time
    items = list(cases.items())
    for r in range(rounds):
        for k, fn in items[r % len(items):] + items[:r % len(items)]:
            w, c = wall[k], cpu[k]
            for i in range(r * calls, (r + 1) * calls):
                t0, c0 = clock(), thread()
                fn()
                c[i], w[i] = thread() - c0, clock() - t0
    return {k: {"wall_median_us": float(np.median(wall[k]) * 1e6), "wall_p99_us": float(np.percentile(wall[k], 99) * 1e6),
                "cpu_median_us": float(np.median(cpu[k]) * 1e6), "cpu_p99_us": float(np.percentile(cpu[k], 99) * 1e6)}
            for k in cases}


def op_latency(tflite_model: str | os.PathLike | bytes, rounds: int = 10, calls: int = 100) -> list[dict]:
    """Every operator of a ``.tflite`` alone: a one-operator model (its non-constant inputs as model
    inputs, random int8 data; its outputs as outputs) per operator, timed interleaved with the whole
    model (:func:`interleaved`, one thread, default delegate). Rows: operator index, name, input shapes,
    CPU and wall median µs; the last row is the whole model. A one-operator model carries one invoke's
    fixed cost (~1 µs), so the rows add up to a little more than the whole."""
    from tflite import BuiltinOperator

    from edgesense.quant.tflite.flatbuffer import read_model

    data = bytes(tflite_model) if isinstance(tflite_model, (bytes, bytearray)) else Path(tflite_model).read_bytes()
    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    whole = read_model(data)
    cases, rows, keep = {}, [], []
    for k, op in enumerate(whole.operators):
        fb = read_model(data)
        fb.operators = [fb.operators[k]]
        fb.opcodes = {op.opcode: whole.opcodes[op.opcode]}
        fb.inputs = [i for i in op.inputs if i >= 0 and fb.tensors[i].buffer == 0]
        fb.outputs = list(op.outputs)
        label = f"{k}:{names.get(op.opcode, op.opcode)}"
        cases[label] = _invoker(fb.serialize(), keep)
        rows.append({"index": k, "op": names.get(op.opcode, str(op.opcode)),
                     "inputs": [list(whole.shape(i)) for i in op.inputs if i >= 0 and whole.tensors[i].buffer == 0]})
    cases["whole model"] = _invoker(data, keep)
    rows.append({"index": None, "op": "whole model", "inputs": [list(whole.shape(i)) for i in whole.inputs]})
    timed = interleaved(cases, rounds=rounds, calls=calls)
    for row, label in zip(rows, cases):
        row.update(cpu_median_us=timed[label]["cpu_median_us"], wall_median_us=timed[label]["wall_median_us"])
    return rows


def _invoker(data: bytes, keep: list) -> Callable[[], None]:
    """``invoke`` of a one-thread interpreter on random int8 (or normal float) inputs."""
    it = tflite_interpreter(data, num_threads=1)
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            it.set_tensor(d["index"], rng.integers(info.min, info.max + 1, size=d["shape"]).astype(d["dtype"]))
        else:
            it.set_tensor(d["index"], rng.normal(size=d["shape"]).astype(d["dtype"]))
    keep.append(it)
    return it.invoke
