"""Benchmark streaming excursion prediction: block latency and real-time factor at 1 ms blocks.

Runs ``ExcursionStreamer`` (and the online impedance tracker, which the hybrid needs and every
product runs anyway) block by block on one CPU thread over a synthetic program signal, and reports
the per-block wall time (mean, p50, p99, max) and the real-time factor = mean block time / block
duration. The CPU time of the benchmark thread per block (``cpu_*``) is reported too: on a shared
machine wall time includes waiting for other processes, CPU time does not. Target (issue 5): RTF <= 0.05 with the INT8 model, tracking included.

    python tools/bench_excursion.py --model models/hybrid/hybrid.onnx [--blocks 2000] [--block 48] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _program(n: int, fs: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    v = sum(rng.uniform(0.3, 1) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
            for f in np.exp(rng.uniform(np.log(60), np.log(4000), 8)))
    v = (6 * v / np.max(np.abs(v))).astype(np.float32)
    return v, (v / 8).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="excursion model (.onnx)")
    parser.add_argument("--profile", default="speaker-ref", help="speaker profile (datasheet) for the tracker")
    parser.add_argument("--block", type=int, default=48, help="samples per block (48 = 1 ms at 48 kHz)")
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--no-tracker", action="store_true", help="time the network alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from edgesense.profiles import load_profile
    from edgesense.runtime import load_model
    from edgesense.speaker.pipeline import make_tracker
    from edgesense.speaker.streaming import ExcursionStreamer

    profile = load_profile(args.profile)
    fs = profile.sample_rate_hz
    streamer = ExcursionStreamer(load_model(args.model, threads=1), profile.speaker.bl)
    use_tracker = streamer.spec.needs_tracker or not args.no_tracker
    tracker = make_tracker(profile) if use_tracker else None
    v, i = _program(args.block * (args.blocks + 100), fs)
    times = np.empty(args.blocks)
    cpu = np.empty(args.blocks)
    for k in range(args.blocks + 100):
        sl = slice(k * args.block, (k + 1) * args.block)
        t0 = time.perf_counter()
        c0 = time.thread_time()
        track = tracker.process(v[sl], i[sl]) if tracker is not None else None
        streamer.process(v[sl], i[sl], track if streamer.spec.needs_tracker else None)
        dt = time.perf_counter() - t0
        dc = time.thread_time() - c0
        if k >= 100:  # the first 100 blocks warm caches up
            times[k - 100] = dt
            cpu[k - 100] = dc
    block_s = args.block / fs
    out = {"model": args.model, "tracker": use_tracker, "block_samples": args.block, "blocks": args.blocks,
           "mean_ms": times.mean() * 1e3, "p50_ms": float(np.median(times)) * 1e3,
           "p99_ms": float(np.percentile(times, 99)) * 1e3, "max_ms": times.max() * 1e3,
           "real_time_factor": times.mean() / block_s,
           "cpu_mean_ms": cpu.mean() * 1e3, "cpu_p99_ms": float(np.percentile(cpu, 99)) * 1e3,
           "cpu_max_ms": cpu.max() * 1e3, "cpu_real_time_factor": cpu.mean() / block_s}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.model}: {args.block}-sample blocks, tracker {'on' if use_tracker else 'off'}: "
              f"mean {out['mean_ms']:.3f} ms, p99 {out['p99_ms']:.3f} ms, max {out['max_ms']:.3f} ms, "
              f"real-time factor {out['real_time_factor']:.3f}; CPU: mean {out['cpu_mean_ms']:.3f} ms, "
              f"max {out['cpu_max_ms']:.3f} ms, real-time factor {out['cpu_real_time_factor']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
