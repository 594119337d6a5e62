#!/usr/bin/env python3
"""Per-frame cost of the live gesture pipeline on one core: CIR -> RDI -> restoration -> model -> spotting.

Feeds a simulated ad60 stream (random gestures, random+bursty frame drops) through
``GesturePipeline.process`` one frame at a time -- exactly what ``edgesense demo`` does -- with the
process pinned to one CPU and the model run with one thread, and reports the per-frame cost measured
inside the pipeline:

* CPU time of the processing thread (``PipelineStats.cpu_us``, ``time.thread_time``: what the work
  costs, not counting time the OS gave to other processes) -- p50 / p95 / p99, also split into
  steady frames (no gap before them) and gap frames (restoration ran);
* wall time (``wall_us``), which on a shared machine also contains preemption;
* with ``--breakdown``, a second set of passes with a CPU-time stopwatch around each stage of the same
  per-frame path: ``rdi`` (CIR -> RDI), ``restore`` (filling a gap's missing RDIs), ``window``
  (profiles, normalisation, quantization, shifting the model input), ``model`` (the model call:
  input copy, invoke, output copy), ``spotting``; ``other`` is the rest of the frame (bookkeeping,
  dequantization, statistics). The stopwatches add ~1 us per stage, so totals there are a bit higher.

Frames go back to back by default (warm caches: the cost of the code itself). ``--pace 40`` feeds
them at the sensor's real rate instead, as live: between two frames other processes (or idle states)
cool the caches, so each frame costs more CPU time -- on a loaded machine about 2x (measured, see
docs/radar-pipeline.md). ``--evict MB`` streams through an MB-sized buffer before every frame (outside
the frame's timing): with more than the last-level cache (64 MiB here) it reproduces the paced cost
back to back, so the paced extra is the frame's code and data coming back from DRAM. The load average at the start and end is reported: on a loaded machine CPU
time per frame rises too (shared caches), so compare figures taken at similar load.

    python tools/bench_gesture_pipeline.py --model models/gesture_cnn/gesture_cnn_int8.tflite --breakdown [--json]

Two models in one process: ``--versus OTHER_MODEL`` runs every pass on the model and then on OTHER_MODEL,
alternating, so both see the same load (e.g. a ``.tflite`` exported with and without row pairs).
``--versus-whole``: the model itself run as one graph (``GesturePipeline(split=False)``) against the
streaming split (docs/radar-pipeline.md), after checking that both give the same model inputs and
probabilities on every frame of every pass; back to back frame by frame, alternating which goes first (as
``--against`` does), paced or with ``--evict`` by whole passes (every frame of both starts cold). ``--no-split`` runs
the model as one graph throughout.

Old code against new, same load: ``--against TREE`` loads ``edgesense/radar/rdi.py``, ``restore.py``,
``spotting.py`` and ``pipeline.py`` of an older checkout (``mkdir /tmp/before && git archive COMMIT edgesense | tar -x -C /tmp/before``) next to the
current ones in this process, builds the old pipeline on the same model, first checks frame by frame that
both give the model the same input (the int8 window) and the same probabilities over every pass, then feeds
every frame to both, alternating which goes first (so both see the same load and cache state; paced, one
frame's pair is what a 25 ms gap separates).

``--host-probe`` only characterises the host (how a fixed small numpy job's cost grows with the pause
before it, spinning or sleeping): the reason a paced frame costs more than a back-to-back one.

Before/after in separate processes: without ``--breakdown`` the tool also measures an older checkout of the package, e.g.
``git archive 26871f8 edgesense | tar -x -C /tmp/before`` then ``PYTHONPATH=/tmp/before python
tools/bench_gesture_pipeline.py ...``; alternate the two runs, as the load changes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time

import numpy as np

from edgesense.radar.bench import FrameCosts, dist, gap_flags, run_pass

STAGES = ("rdi", "restore", "window", "model", "spotting")


class _Stopwatch:
    """Adds the CPU time of every call of ``fn`` to ``acc[stage]``."""

    def __init__(self, fn, acc: dict[str, float], stage: str) -> None:
        self.fn, self.acc, self.stage = fn, acc, stage

    def __call__(self, *args, **kwargs):
        t0 = time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.acc[self.stage] += (time.thread_time() - t0) * 1e6

    def __getattr__(self, name):          # e.g. processor.reset / processor.batch
        return getattr(self.fn, name)


def _instrument(pipe, acc: dict[str, float]):
    """Wrap the stages of ``pipe`` (this instance only) in stopwatches; returns an undo function.

    The steady path of a CIR radar with an 8-bit-input model calls ``_magnitude`` (rdi) and ``_window``; the
    general path the processor (rdi), ``_log_rdi`` (rdi: the RDIs made from kept magnitudes), ``_fill_gap``,
    ``_push_rdis`` / ``_pad`` (window); both ``_call`` (model) and the spotter (``update`` / ``update_values``).
    """
    wrapped = {"_fill_gap": "restore", "_push_rdis": "window", "_pad": "window", "_call": "model",
               "_window": "window", "_magnitude": "rdi", "_log_rdi": "rdi"}
    wrapped = {k: v for k, v in wrapped.items() if hasattr(pipe, k)}      # (older checkouts lack some)
    own = {k: pipe.__dict__[k] for k in wrapped if k in pipe.__dict__}    # instance attributes to put back
    for name, stage in wrapped.items():
        setattr(pipe, name, _Stopwatch(getattr(pipe, name), acc, stage))
    pipe.processor = _Stopwatch(pipe.processor, acc, "rdi")
    spot = ["update_values" if hasattr(pipe.spotter, "update_values") else "update"]   # (update calls update_values)
    for name in spot:
        setattr(pipe.spotter, name, _Stopwatch(getattr(pipe.spotter, name), acc, "spotting"))

    def undo() -> None:
        pipe.processor = pipe.processor.fn
        for name in wrapped:
            if name in own:
                pipe.__dict__[name] = own[name]
            else:
                del pipe.__dict__[name]
        for name in spot:
            del pipe.spotter.__dict__[name]
    return undo


def _old_pipeline(tree: str, model: str):
    """A ``GesturePipeline`` built from ``TREE/edgesense/radar/{rdi,restore,spotting,pipeline}.py`` (those the tree
    has; the rest of the package is the current one).

    The older modules stand in for the current ones in ``sys.modules`` while the old pipeline module runs and
    builds its pipeline, so its imports (module level and inside functions) get the older code.
    """
    mods = {}
    names = [n for n in ("rdi", "restore", "spotting", "pipeline")
             if os.path.isfile(os.path.join(tree, "edgesense", "radar", f"{n}.py"))]
    saved = {n: sys.modules.get(f"edgesense.radar.{n}") for n in names}
    try:
        for name in names:
            path = os.path.join(tree, "edgesense", "radar", f"{name}.py")
            spec = importlib.util.spec_from_file_location(f"_before_radar_{name}", path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod          # dataclasses look their module up here
            spec.loader.exec_module(mod)
            mods[name] = sys.modules[f"edgesense.radar.{name}"] = mod
        pipe = mods["pipeline"].GesturePipeline(model, threads=1)
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(f"edgesense.radar.{name}", None)
            else:
                sys.modules[f"edgesense.radar.{name}"] = mod
    return pipe


def _same_outputs(a, b, passes) -> int:
    """Frames of ``passes`` where pipelines ``a`` and ``b`` gave the model different inputs or gave different probabilities."""
    bad = 0
    for _, frames in passes:
        a.reset()
        b.reset()
        for fr in frames:
            a.process(fr)
            b.process(fr)
            bad += not (np.array_equal(a.model_input, b.model_input) and np.array_equal(a.last_probs, b.last_probs))
    return bad


def host_probe(reps: int = 200) -> dict[str, dict[str, float]]:
    """How this host cools a small numpy job: its CPU time after the thread spun (pure Python) or slept for S ms.

    The job is fixed (a 32 x 32 complex64 FFT, then log10 of the magnitudes: three numpy calls); the
    pauses are interleaved, ``reps`` times each. Spinning keeps the core busy with the interpreter's
    own loop, so a cost that grows with the pause there is not sleep states or clock ramps but the
    job's code and data being evicted meanwhile (by other tenants of the host's caches).
    """
    x = np.exp(2j * np.pi * np.random.default_rng(0).random((32, 32))).astype(np.complex64)

    def job():
        return np.log10(np.abs(np.fft.fft(x, axis=0)))

    def spin(s: float) -> None:
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass

    pauses_ms = (0.0, 0.2, 1.0, 5.0, 25.0)
    times: dict[str, list[float]] = {}
    for _ in range(reps):
        for ms in pauses_ms:
            for how in ("spin", "sleep") if ms else ("none",):
                if how == "spin":
                    spin(ms / 1e3)
                elif how == "sleep":
                    time.sleep(ms / 1e3)
                t0 = time.thread_time()
                job()
                times.setdefault(f"{how} {ms:g} ms", []).append((time.thread_time() - t0) * 1e6)
    return {k: dist(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: the shipped model edgesense demo uses)")
    ap.add_argument("--seconds", type=float, default=30.0, help="simulated stream length (default 30 s)")
    ap.add_argument("--drop-rate", type=float, default=0.2, help="random+bursty drop rate (default 0.2)")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the stream (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pace", type=float, default=0.0, metavar="HZ",
                    help="feed frames at HZ frames/s, as live (default 0: back to back)")
    ap.add_argument("--breakdown", action="store_true", help="also time each stage of the per-frame path")
    ap.add_argument("--evict", type=float, default=0.0, metavar="MB",
                    help="before every frame (untimed), read and write a buffer of MB MiB, as other processes "
                         "between two live frames would (64: more than this host's 32 MiB L3)")
    ap.add_argument("--versus", metavar="MODEL", help="also run every pass on this model, alternating (same load)")
    ap.add_argument("--versus-whole", action="store_true",
                    help="also run every pass on the same model as one graph (no streaming split), alternating")
    ap.add_argument("--no-split", action="store_true", help="run the model as one graph (no streaming split)")
    ap.add_argument("--against", metavar="TREE", help="also run every pass on the radar code of an older checkout, "
                    "alternating (after checking that it gives the same model inputs and probabilities)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--host-probe", action="store_true",
                    help="only characterise the host: a fixed small numpy job's CPU time after spinning or "
                         "sleeping 0-25 ms (see host_probe)")
    args = ap.parse_args(argv)

    pinned = None
    if hasattr(os, "sched_setaffinity"):
        pinned = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {pinned})
    if args.host_probe:
        load = os.getloadavg()
        probe = host_probe()
        if args.json:
            json.dump({"host_probe_cpu_us": probe, "load_average_start": list(load),
                       "load_average_end": list(os.getloadavg()), "pinned_cpu": pinned}, sys.stdout, indent=2)
            print()
            return 0
        print(f"fixed numpy job (32x32 complex FFT, |.|, log10), CPU us after a pause; load average "
              f"{load[0]:.1f} -> {os.getloadavg()[0]:.1f}")
        for k, u in probe.items():
            print(f"  after {k:13s}: p50 {u['p50']:4.0f}  p95 {u['p95']:4.0f}  p99 {u['p99']:4.0f}")
        return 0
    from edgesense.cli.cmd_demo import find_model
    from edgesense.radar.pipeline import GesturePipeline
    from edgesense.sim.radar_gestures import make_session, make_users, simulate_stream
    from edgesense.stream.faults import random_plus_bursty
    from edgesense.stream.frame import Frame

    model = args.model or str(find_model("gesture_cnn"))
    pipe = GesturePipeline(model, threads=1, **({"split": False} if args.no_split else {}))
    profile = pipe.profile
    user = make_users(1, seed=args.seed)[0]
    stream = simulate_stream(profile, user, make_session(user, 0, seed=args.seed), args.seconds, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    n = len(stream.payloads)
    passes = []
    for _ in range(args.repeats):
        keep = ~random_plus_bursty(args.drop_rate).mask(n, rng) if args.drop_rate > 0 else np.ones(n, bool)
        keep[0] = True
        idx = np.flatnonzero(keep)
        passes.append((idx, [Frame(profile.kind, int(k), int(k * 25_000), 0.0, stream.payloads[k]) for k in idx]))

    evict = np.zeros(int(args.evict * 2**20) // 8) if args.evict > 0 else None

    def paced(frames):
        """``frames``, released at ``args.pace`` frames/s (all at once without pacing), each after ``--evict``."""
        due = time.perf_counter()
        for fr in frames:
            if args.pace > 0:
                due += 1.0 / args.pace
                time.sleep(max(0.0, due - time.perf_counter()))
            if evict is not None:       # outside the frame: the pipeline times itself from process() on
                np.add(evict, 1.0, out=evict)
            yield fr

    if sum(map(bool, (args.versus, args.against, args.versus_whole))) > 1:
        ap.error("--versus, --versus-whole and --against are exclusive")
    other, mismatches = None, None
    if args.versus:
        other = GesturePipeline(args.versus, threads=1)
    elif args.versus_whole:
        if pipe.split is None:
            ap.error(f"--versus-whole: the model runs as one graph already ({pipe.split_reason})")
        other = GesturePipeline(model, threads=1, split=False)
        mismatches = _same_outputs(pipe, other, passes)
    elif args.against:
        other = _old_pipeline(args.against, model)
        mismatches = _same_outputs(pipe, other, passes)
    costs, other_costs = FrameCosts(), FrameCosts()
    load_start = os.getloadavg()
    for k, (idx, frames) in enumerate(passes):
        if args.against or (args.versus_whole and args.pace <= 0 and args.evict <= 0):   # frame by frame, alternating
            pipe.reset()
            other.reset()
            for i, fr in enumerate(paced(frames)):
                for which in ((other, pipe) if (i + k) % 2 == 0 else (pipe, other)):
                    which.process(fr)
        else:                # whole passes, alternating who goes first
            for which in ((other, pipe) if k % 2 == 0 else (pipe, other)):
                if which is not None:
                    run_pass(which, paced(frames))
        if other is not None:
            other_costs.add(other, idx)
        costs.add(pipe, idx)
    restored = pipe.stats.frames_restored
    cpu_a, gaps, wall, per_pass_p99 = np.asarray(costs.cpu), np.asarray(costs.gaps, bool), costs.wall, costs.pass_p99
    other_cpu, other_p99 = other_costs.cpu, other_costs.pass_p99

    stages = None
    if args.breakdown:
        acc = dict.fromkeys(STAGES, 0.0)
        rows: dict[str, list[float]] = {k: [] for k in (*STAGES, "other", "total")}
        ran: dict[str, list[float]] = {k: [] for k in STAGES}   # per stage: only frames where it ran
        undo = _instrument(pipe, acc)
        gap_rows: list[bool] = []
        try:
            for idx, frames in passes:
                pipe.reset()
                gap_rows.extend(gap_flags(idx))
                for fr in paced(frames):
                    for k in STAGES:
                        acc[k] = 0.0
                    t0 = time.thread_time()
                    pipe.process(fr)
                    total = (time.thread_time() - t0) * 1e6
                    for k in STAGES:
                        rows[k].append(acc[k])
                        if acc[k] > 0:
                            ran[k].append(acc[k])
                    rows["other"].append(total - sum(acc.values()))
                    rows["total"].append(total)
        finally:
            undo()
        stages = {k: {**dist(v), "share_of_mean": float(np.mean(v) / np.mean(rows["total"]))}
                  for k, v in rows.items()}
        for k in STAGES:
            stages[k]["when_run"] = dist(ran[k])
        g = np.asarray(gap_rows, bool)
        for k, v in rows.items():
            stages[k]["gap_frames"] = dist(np.asarray(v)[g])

    split = getattr(pipe, "split", None)     # (an older checkout has no split)
    out = {"model": model, "backend": getattr(pipe.model, "backend", type(pipe.model).__name__),
           "split": None if split is None else {"column_graphs": split.graphs, "plan": str(split.plan)},
           "split_reason": getattr(pipe, "split_reason", "n/a"),
           # (getattr: the headline loop also runs on an older checkout, for before/after comparisons)
           "model_input_dtype": str(getattr(getattr(pipe, "model_input", None), "dtype", "n/a")), "frames": len(cpu_a), "stream_seconds": args.seconds,
           "repeats": args.repeats, "drop_rate": args.drop_rate, "pace_hz": args.pace, "evict_mib": args.evict, "gap_frames": int(gaps.sum()),
           "restored_last_pass": restored,
           "cpu_us_per_frame": dist(cpu_a), "cpu_us_steady_frames": dist(cpu_a[~gaps]),
           "cpu_us_gap_frames": dist(cpu_a[gaps]), "cpu_p99_per_pass": per_pass_p99,
           "wall_us_per_frame": dist(wall),
           "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
           "pinned_cpu": pinned, "cpus": os.cpu_count(), "python": platform.python_version(),
           "numpy": np.__version__}
    if stages is not None:
        out["stage_cpu_us"] = stages
    if other is not None:
        oc = np.asarray(other_cpu)
        key = "against" if args.against else "versus"
        out[key] = {"model": "whole graph" if args.versus_whole else args.versus, "tree": args.against,
                    "mismatched_frames": mismatches,
                    "cpu_us_per_frame": dist(oc), "cpu_us_steady_frames": dist(oc[~gaps]),
                    "cpu_us_gap_frames": dist(oc[gaps]), "cpu_p99_per_pass": other_p99}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    la, lb = out["load_average_start"][0], out["load_average_end"][0]
    how = "streaming split" if split is not None else f"one graph: {out['split_reason']}"
    print(f"{model} ({out['backend']}, input {out['model_input_dtype']}, {how}): {out['frames']} frames, "
          f"{args.drop_rate:.0%} drops ({out['gap_frames']} gap frames), "
          f"{f'paced at {args.pace:g} frames/s' if args.pace > 0 else 'back to back'}"
          f"{f', {args.evict:g} MiB evicted before each frame' if args.evict > 0 else ''}, load average {la:.1f} -> {lb:.1f}")
    for key, label in (("cpu_us_per_frame", "CPU  all frames"), ("cpu_us_steady_frames", "CPU  steady   "),
                       ("cpu_us_gap_frames", "CPU  gap frames"), ("wall_us_per_frame", "wall all frames")):
        u = out[key]
        if u["n"]:
            print(f"  {label}: p50 {u['p50']:4.0f} us, p95 {u['p95']:4.0f} us, p99 {u['p99']:4.0f} us, "
                  f"mean {u['mean']:4.0f} us, max {u['max']:.0f} us")
    print("  CPU p99 per pass: " + ", ".join(f"{v:.0f}" for v in per_pass_p99) + " us")
    if other is not None:
        v = out["against" if args.against else "versus"]
        if args.versus_whole:
            print(f"  versus the whole graph, the same passes, alternating ({v['mismatched_frames']} frames with "
                  "other model inputs or probabilities):")
        elif args.versus:
            print(f"  versus {args.versus}, the same passes, alternating:")
        else:
            print(f"  against the radar code in {args.against}, the same passes, alternating "
                  f"({v['mismatched_frames']} frames with other model inputs or probabilities):")
        for key, label in (("cpu_us_per_frame", "CPU  all frames"), ("cpu_us_steady_frames", "CPU  steady   "),
                           ("cpu_us_gap_frames", "CPU  gap frames")):
            u = v[key]
            if u["n"]:
                print(f"  {label}: p50 {u['p50']:4.0f} us, p95 {u['p95']:4.0f} us, p99 {u['p99']:4.0f} us, "
                      f"mean {u['mean']:4.0f} us, max {u['max']:.0f} us")
        print("  CPU p99 per pass: " + ", ".join(f"{x:.0f}" for x in v["cpu_p99_per_pass"]) + " us")
    if stages is not None:
        print("  stage CPU per frame (stopwatched pass):")
        for k, u in stages.items():
            extra = ""
            if k in STAGES and stages[k]["when_run"]["n"] < u["n"]:
                w = stages[k]["when_run"]
                extra = f"   (on the {w['n']} frames it ran: p50 {w['p50']:.0f}, p99 {w['p99']:.0f})" if w["n"] else ""
            print(f"    {k:9s} p50 {u['p50']:4.0f}  p95 {u['p95']:4.0f}  p99 {u['p99']:4.0f}  mean {u['mean']:4.0f} us"
                  f"  ({u['share_of_mean']:4.0%}){extra}")
        print("  stage CPU on gap frames (the same pass):")
        for k in stages:
            u = stages[k]["gap_frames"]
            if u["n"]:
                print(f"    {k:9s} p50 {u['p50']:4.0f}  p95 {u['p95']:4.0f}  p99 {u['p99']:4.0f}  mean {u['mean']:4.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
