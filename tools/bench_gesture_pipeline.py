#!/usr/bin/env python3
"""Per-frame cost of the live gesture pipeline on one core: CIR -> RDI -> restoration -> model -> spotting.

Feeds a simulated ad60 stream (random gestures, random+bursty frame drops) through
``GesturePipeline.process`` one frame at a time -- exactly what ``edgesense demo`` does -- and reports
the distribution of the per-frame cost measured inside the pipeline: CPU time of the processing
thread (``PipelineStats.cpu_us``: what the work costs, not counting time the OS gave to other
processes) and wall time (``wall_us``: what a quiet core would also see), with the process pinned
to one CPU and the model run with one thread.

    python tools/bench_gesture_pipeline.py --model models/gesture_cnn/gesture_cnn.onnx [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: the shipped gesture_cnn)")
    ap.add_argument("--seconds", type=float, default=30.0, help="simulated stream length (default 30 s)")
    ap.add_argument("--drop-rate", type=float, default=0.2, help="random+bursty drop rate (default 0.2)")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the stream (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--breakdown", action="store_true", help="also time the RDI, profile and model stages alone")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from edgesense.cli.cmd_demo import find_model
    from edgesense.radar.pipeline import GesturePipeline, rdi_profiles
    from edgesense.sim.radar_gestures import make_session, make_users, simulate_stream
    from edgesense.stream.faults import random_plus_bursty
    from edgesense.stream.frame import Frame

    model = args.model or str(find_model("gesture_cnn"))
    pipe = GesturePipeline(model, threads=1)
    profile = pipe.profile
    user = make_users(1, seed=args.seed)[0]
    stream = simulate_stream(profile, user, make_session(user, 0, seed=args.seed), args.seconds, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    n = len(stream.payloads)
    costs, walls = [], []
    for _ in range(args.repeats):
        keep = ~random_plus_bursty(args.drop_rate).mask(n, rng) if args.drop_rate > 0 else np.ones(n, bool)
        keep[0] = True
        pipe.reset()
        for k in np.flatnonzero(keep):
            pipe.process(Frame(profile.kind, int(k), int(k * 25_000), time.monotonic(), stream.payloads[k]))
        costs.extend(pipe.stats.cpu_us)
        walls.extend(pipe.stats.wall_us)
        restored = pipe.stats.frames_restored

    if args.breakdown:  # the stages alone, same frames, CPU time per call
        def cpu_per_call(fn, items):
            out = []
            for it in items:
                t0 = time.thread_time()
                fn(it)
                out.append((time.thread_time() - t0) * 1e6)
            return out

        frames = stream.payloads[: min(n, 600)]
        pipe.processor.reset()
        rdis = [pipe.processor(f) for f in frames]
        pipe.processor.reset()
        stages = {"rdi": cpu_per_call(pipe.processor, frames),
                  "profiles": cpu_per_call(rdi_profiles, rdis),
                  "model": cpu_per_call(pipe.model.run, [pipe._x] * len(frames))}
    def dist(values):
        c = np.asarray(values)
        return {"mean": float(c.mean()), "p50": float(np.percentile(c, 50)), "p90": float(np.percentile(c, 90)),
                "p99": float(np.percentile(c, 99)), "max": float(c.max())}

    out = {"model": model, "frames": len(costs), "drop_rate": args.drop_rate, "restored_last_pass": restored,
           "cpu_us_per_frame": dist(costs), "wall_us_per_frame": dist(walls),
           "load_average": os.getloadavg(), "pinned_to_one_core": hasattr(os, "sched_setaffinity")}
    if args.breakdown:
        out["stage_cpu_us"] = {k: dist(v) for k, v in stages.items()}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"{model}: {out['frames']} frames, {args.drop_rate:.0%} drops, load average {out['load_average'][0]:.1f}")
    for key in ("cpu_us_per_frame", "wall_us_per_frame"):
        u = out[key]
        print(f"  {key[:4]} per frame: mean {u['mean']:.0f} us, p50 {u['p50']:.0f} us, p90 {u['p90']:.0f} us, "
              f"p99 {u['p99']:.0f} us, max {u['max']:.0f} us")
    for k, u in out.get("stage_cpu_us", {}).items():
        print(f"  stage {k} alone: p50 {u['p50']:.0f} us, p99 {u['p99']:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
