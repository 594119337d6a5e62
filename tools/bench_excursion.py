"""Benchmark streaming excursion prediction: CPU cost per 1 ms block, by stage, and the real-time factor.

The product path is timed block by block on one thread: a speaker I/V frame in, the online impedance
tracker (which the hybrid needs and every product runs anyway), the network, excursion out
(:class:`~edgesense.speaker.pipeline.ExcursionPipeline`). CPU time of the benchmark thread
(``time.thread_time``) is what is reported: on a shared machine wall time includes waiting for
other processes, CPU time does not (wall time is reported too). Stages are timed in separate passes
over the same frames:

* ``everything`` -- ``ExcursionPipeline.process(frame)`` (plus the tracker for non-hybrid models);
* ``tracker`` -- ``ImpedanceTracker.process`` alone, its CPU time split into Welch segment spectra
  (``_add_segments``), LM refits (``_update``) and the per-block rest (filter and buffer writes);
* ``network`` -- ``ExcursionStreamer.process`` with the tracked prediction precomputed;
* ``invoke`` -- the bare model call on the same inputs (interpreter invoke for the direct INT8
  LiteRT path, ``Model.run`` otherwise): ``network - invoke`` is the streamer's Python overhead;
* ``harness`` -- an empty step timed the same way: the cost of the timing itself (a
  ``time.thread_time`` call is a system call, about 1 us here), which every other row includes.

``everything - tracker - network`` is the pipeline's own per-frame work plus what the tracker and the
network cost each other when they alternate block by block (cache evictions), which separate passes
do not see.

Real-time factor = mean CPU time per block / block duration; target (issue 5): <= 0.05 at 1 ms
blocks with the INT8 model, tracking included. It is reported as measured and net of the harness
row (what a caller that does not time every block pays). Each pass runs ``--repeat`` times; means
are the median over repeats, percentiles pool every block. The tracker's Welch spectra of an update
interval's segments are computed in one batch at the update boundary (``_add_segments``, timed as the
Welch part), just before the refit. The input is simulated program material for the
profile's speaker (the ``sim://`` source's material), or ``--data`` (a speaker ``.esr`` recording).

``everything`` is also split by what the tracker did in each block (``plain``: filter and buffer only;
``refit``: an update boundary, with the interval's Welch batch, or a step of a delayed refit),
found by replaying the tracker untimed over the same blocks: per kind the share of blocks, CPU mean,
p50 and p99, and its part of the mean cost per block (the parts sum to the mean).

``--compare OTHER`` runs a second model's ``everything``, ``network`` and ``invoke`` stages in the same
process, interleaved chunk by chunk with the first model's (an A/B under the same load), checks
that both pipelines return the same excursion for every block, and times the two bare invokes alone
side by side (``edgesense.quant.tflite.latency.interleaved``: 40 rounds of 500 calls each, order
rotated per round; CPU median and p99).

``--model`` may also be a known speaker's large-signal calibration (``.json``, e.g.
``models/speaker_calibration/ref.json``) or ``datasheet-prior`` (the large-signal estimator of
``edgesense.speaker.adapt.datasheet_large_signal`` for the profile's datasheet: the unseen-speaker
model): the pipeline then runs :class:`~edgesense.speaker.largesignal.LargeSignalEstimator` with its
drift-following tracker, and the rows are the same with ``network`` = the estimator's integration
alone (calibrated parameters, no tracker) and ``invoke`` = the bare integration loop on the block
(``largesignal.KERNEL``: the compiled kernel ``c`` or the ``python`` loop; printed). ``--kernel-ab``
adds ``everything@python``, ``network@python`` and ``invoke@python``: the same stages with the Python
loop, interleaved chunk by chunk with the compiled kernel's in the same process, after checking that
both return the same excursion for every block. With ``--data`` the profile (datasheet) is the
recording's own unless ``--profile`` names one.

``--baseline-tree DIR`` does the same for code: ``DIR`` holds another version of the package (for
example ``git archive REV edgesense | tar -x -C DIR``); its ``edgesense/speaker/tracking.py``,
``streaming.py`` and ``pipeline.py`` are loaded next to the current ones, and their ``everything`` and
``tracker`` stages are timed interleaved with the current code's (``everything@base``,
``tracker@base``), on the same frames and model, after checking that both return the same excursion
and tracked prediction for every block.

    python tools/bench_excursion.py --model models/hybrid/hybrid_int8.tflite [--blocks 3000] [--repeat 3]
        [--data REC.esr] [--generic] [--no-tracker] [--compare OTHER.tflite] [--baseline-tree DIR] [--json]
    python tools/bench_excursion.py --model models/speaker_calibration/ref.json [--kernel-ab] [--json]
    python tools/bench_excursion.py --model datasheet-prior --data UNSEEN.esr [--kernel-ab] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from edgesense.speaker.bench import WARMUP
from edgesense.speaker.bench import block_summary as _summary
from edgesense.speaker.bench import speaker_frames as _frames
from edgesense.speaker.bench import time_interleaved as _time_interleaved


class _Timed:
    """Wraps a bound method of one object, summing the thread CPU time spent in it (benchmark only)."""

    def __init__(self, obj, name: str) -> None:
        self.inner = getattr(obj, name, None)
        self.total = 0.0
        self.calls = 0
        if self.inner is not None:
            setattr(obj, name, self)

    def __call__(self, *args, **kwargs):
        c0 = time.thread_time()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.total += time.thread_time() - c0
            self.calls += 1


KINDS = ("plain", "refit")


def _block_kinds(profile, tcfg, vs: list, is_: list, warmup: int = WARMUP) -> np.ndarray:
    """What the tracker did in each timed block of the ``everything`` pass (replayed untimed: the
    tracker is deterministic and the pass feeds it ``warmup`` blocks, then blocks 0..n-1, never resetting
    it; the large-signal estimator's tracker restarts with the timed blocks: ``warmup`` 0).

    ``refit``: an update boundary (the interval's Welch spectra and a refit run, or with
    ``refit_delay`` one of its steps); ``plain``: only the filter and the buffer writes.
    """
    from edgesense.speaker.pipeline import make_tracker

    tracker = make_tracker(profile, tcfg)
    n = len(vs)
    for k in range(warmup):
        tracker.process(vs[k % n], is_[k % n])
    marks = {name: _Timed(tracker, name) for name in ("_add_segments", "_update", "_refit_step", "_finish_refit")}
    kinds = np.zeros(n, np.int8)
    for k in range(n):
        before = {name: m.calls for name, m in marks.items()}
        tracker.process(vs[k], is_[k])
        if any(m.calls > before[name] for name, m in marks.items()):
            kinds[k] = KINDS.index("refit")
    return kinds


def _by_kind(cpu_runs: list[np.ndarray], kinds: np.ndarray) -> dict:
    """CPU cost of the ``everything`` blocks by what the tracker did in them (pooled over repeats)."""
    pooled = np.concatenate(cpu_runs)
    kk = np.concatenate([kinds] * len(cpu_runs))
    out = {}
    for j, name in enumerate(KINDS):
        c = pooled[kk == j]
        if c.size:
            out[name] = {"blocks": int(c.size // len(cpu_runs)), "share": float(c.size / pooled.size),
                         "cpu_mean_us": float(c.mean()) * 1e6, "cpu_p50_us": float(np.median(c)) * 1e6,
                         "cpu_p99_us": float(np.percentile(c, 99)) * 1e6,
                         # this kind's part of the mean cost per block (the parts sum to the mean)
                         "us_per_block": float(c.sum() / pooled.size) * 1e6}
    return out


def _baseline_modules(tree: str):
    """The tracker, streamer and pipeline modules of another version of the package under ``tree``
    (loaded under private names; the rest of ``edgesense`` is the current one)."""
    import importlib.util
    import sys
    from pathlib import Path

    mods = {}
    for name in ("tracking", "streaming", "pipeline"):
        path = Path(tree) / "edgesense" / "speaker" / f"{name}.py"
        if not path.is_file():
            raise SystemExit(f"--baseline-tree: {path} not found")
        spec = importlib.util.spec_from_file_location(f"_baseline_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    mods["pipeline"].ExcursionStreamer = mods["streaming"].ExcursionStreamer   # its pipeline, its streamer
    return mods


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="excursion model (.onnx or .tflite), a large-signal calibration (.json), or "
                             "'datasheet-prior' (the large-signal estimator from the profile's datasheet)")
    parser.add_argument("--profile", default=None,
                        help="speaker profile (datasheet, block size); default: the --data recording's, else speaker-ref")
    parser.add_argument("--blocks", type=int, default=3000, help="timed blocks per pass (default 3000 = 3 s)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per stage (default 3)")
    parser.add_argument("--data", help="a speaker .esr recording to play instead of simulated material")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generic", action="store_true",
                        help="INT8 LiteRT through Model.run instead of the direct interpreter path")
    parser.add_argument("--no-tracker", action="store_true",
                        help="leave the tracker out of 'everything' (only for models that do not need it)")
    parser.add_argument("--refit-delay", type=int, default=0,
                        help="TrackerConfig.refit_delay in samples (0 = the shipped behaviour; > 0 spreads each "
                             "refit over the blocks before it takes effect, a different tracker output)")
    parser.add_argument("--compare", help="a second model (same task) timed interleaved with --model (A/B)")
    parser.add_argument("--baseline-tree", help="another version of the package (a directory holding edgesense/): "
                        "its tracker, streamer and pipeline timed interleaved with the current ones (A/B of code)")
    parser.add_argument("--kernel-ab", action="store_true",
                        help="large-signal estimator only: time the Python integration loop interleaved with the "
                             "compiled kernel (A/B, same process)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from edgesense.profiles import load_profile
    from edgesense.runtime import load_model
    from edgesense.speaker import largesignal
    from edgesense.speaker.pipeline import ExcursionPipeline, make_tracker
    from edgesense.speaker.streaming import ExcursionStreamer
    from edgesense.speaker.tracking import TrackerConfig

    calibration = args.model == "datasheet-prior" or args.model.lower().endswith(".json")
    if calibration and (args.compare or args.baseline_tree or args.generic):
        raise SystemExit("--compare, --baseline-tree and --generic are for network models, not a large-signal estimator")
    if args.kernel_ab and not calibration:
        raise SystemExit("--kernel-ab times the large-signal estimator: give a calibration .json or datasheet-prior")
    if args.kernel_ab and largesignal._lsloop is None:
        raise SystemExit("--kernel-ab: the compiled kernel edgesense.speaker._lsloop is not built")
    kernel = largesignal.KERNEL
    tcfg = TrackerConfig(refit_delay=args.refit_delay)
    load_start = os.getloadavg()
    if args.profile is None and args.data:
        from edgesense.speaker.pipeline import load_signals

        profile = load_signals(args.data)[0].profile
    else:
        profile = load_profile(args.profile or "speaker-ref")
    if calibration:
        import atexit
        import tempfile

        from edgesense.speaker.adapt import datasheet_large_signal

        if args.model == "datasheet-prior":
            params = datasheet_large_signal(profile.speaker, name=profile.name)
            fd, cal_path = tempfile.mkstemp(suffix=".json")
            os.close(fd)
            atexit.register(os.unlink, cal_path)
            largesignal.save_calibration(params, cal_path)
        else:
            cal_path = args.model
            params = largesignal.load_calibration(cal_path)
    block_s = profile.block_size / profile.sample_rate_hz
    frames = _frames(profile, args.blocks, args.data, args.seed)
    n = len(frames)
    iv = (profile.channel_index("v"), profile.channel_index("i"))
    vs = [f.payload[:, iv[0]] for f in frames]
    is_ = [f.payload[:, iv[1]] for f in frames]
    model = None if calibration else load_model(args.model, threads=1)
    other = load_model(args.compare, threads=1) if args.compare else None
    direct = not args.generic
    # the large-signal estimator runs its tracker inside the pipeline: "needs" it as the hybrid does
    needs_tracker = calibration or ExcursionStreamer(model, profile.speaker.bl, direct=False).spec.needs_tracker
    extra_tracker = not needs_tracker and not args.no_tracker

    # the tracked prediction for the network-only pass (the tracker is deterministic in its input)
    tr = make_tracker(profile, tcfg)
    tracks = [None] * n if calibration else [tr.process(v, i) for v, i in zip(vs, is_)]

    names = ["everything", "tracker", "network", "invoke", "harness"]
    base = _baseline_modules(args.baseline_tree) if args.baseline_tree else None
    if base is not None:
        names += ["everything@base", "tracker@base"]
    if other is not None:
        names += ["everything@B", "network@B", "invoke@B"]
    if args.kernel_ab:
        names += ["everything@python", "network@python", "invoke@python"]
    runs: dict[str, tuple[list, list]] = {k: ([], []) for k in names}
    mismatched_blocks = 0
    split = {"segments": [], "refits": [], "refit_calls": [], "updates": []}
    tk = tracks if needs_tracker else [None] * n

    def estimator_steps():
        """everything, the integration alone and the bare loop of the large-signal estimator (fresh)."""
        pipe = ExcursionPipeline(profile, cal_path, tracker_config=tcfg)
        everything = lambda k, pipe=pipe: pipe.process(frames[k])  # noqa: E731
        alone = largesignal.LargeSignalEstimator(params, fs=profile.sample_rate_hz, follow=False)
        network = lambda k, est=alone: est.process(None, is_[k])  # noqa: E731
        state, p, out = [0.0, 0.0, 0.0], alone._p, np.empty(profile.block_size)

        def bare(k: int, state=state, p=p, out=out) -> None:
            largesignal._kernel(i64[k], state, p, out)      # the loop in use (use_kernel), looked up per call
        return everything, network, bare, None

    if calibration:
        i64 = [np.ascontiguousarray(i, np.float64) for i in is_]

    def model_steps(m):
        """everything, network and the bare invoke of model ``m`` (fresh pipeline, streamer, tracker)."""
        if m is None:
            return estimator_steps()
        pipe = ExcursionPipeline(profile, m, direct=direct, tracker_config=tcfg)
        extra = make_tracker(profile, tcfg) if extra_tracker else None

        def everything(k: int, pipe=pipe, extra=extra) -> None:
            pipe.process(frames[k])
            if extra is not None:
                extra.process(vs[k], is_[k])

        streamer = ExcursionStreamer(m, profile.speaker.bl, direct=direct)
        if streamer._direct is not None:
            bare = lambda k, invoke=streamer._direct._invoke: invoke()  # noqa: E731
        else:
            raw = streamer._raw_state
            feeds = ({s.name: np.zeros(s.concrete_shape(), s.dtype) for s in m.input_specs} if raw
                     else m.dummy_inputs())
            bare = lambda k, feeds=feeds, raw=raw, m=m: m.run(feeds, raw=raw)  # noqa: E731
        network = lambda k, s=streamer: s.process(vs[k], is_[k], tk[k])  # noqa: E731
        return everything, network, bare, streamer

    def base_steps():
        """The baseline code's pipeline (with its tracker) and a tracker of its own (fresh, same model)."""
        bt = base["tracking"]
        bcfg = bt.TrackerConfig(refit_delay=args.refit_delay) if args.refit_delay else bt.TrackerConfig()

        def fresh():
            return bt.ImpedanceTracker(profile.speaker, profile.sample_rate_hz, bcfg)

        pipe = base["pipeline"].ExcursionPipeline(profile, model, direct=direct)
        if pipe.tracker is not None:
            pipe.tracker = fresh()
        return pipe, (fresh() if extra_tracker else None), fresh()

    base_mismatched = 0
    if base is not None:           # the same excursion and tracked prediction from both versions, block by block
        b_pipe, b_extra, b_tracker = base_steps()
        pipe, tracker = ExcursionPipeline(profile, model, direct=direct, tracker_config=tcfg), make_tracker(profile, tcfg)
        for k in range(n):
            base_mismatched += not np.array_equal(pipe.process(frames[k]).x, b_pipe.process(frames[k]).x)
            base_mismatched += not np.array_equal(tracker.process(vs[k], is_[k]), b_tracker.process(vs[k], is_[k]))

    kernel_mismatched = 0
    if args.kernel_ab:             # the same excursion from both loops, block by block
        pipes = {}
        for name in ("python", kernel):
            largesignal.use_kernel(name)
            pipes[name] = ExcursionPipeline(profile, cal_path, tracker_config=tcfg)
        for k in range(n):
            largesignal.use_kernel("python")
            xa = pipes["python"].process(frames[k]).x
            largesignal.use_kernel(kernel)
            kernel_mismatched += not np.array_equal(xa, pipes[kernel].process(frames[k]).x)

    if other is not None:          # the same excursion from both models, block by block
        sa = ExcursionStreamer(model, profile.speaker.bl, direct=direct)
        sb = ExcursionStreamer(other, profile.speaker.bl, direct=direct)
        mismatched_blocks = sum(not np.array_equal(sa.process(vs[k], is_[k], tk[k]), sb.process(vs[k], is_[k], tk[k]))
                                for k in range(n))
        invoke_ab = None
        if sa._direct is not None and sb._direct is not None:
            from edgesense.quant.tflite.latency import interleaved

            invoke_ab = interleaved({"A": sa._direct._invoke, "B": sb._direct._invoke}, rounds=40, calls=500,
                                    warmup=500)
    for _ in range(args.repeat):
        everything, network, bare, streamer = model_steps(model)

        tracker = make_tracker(profile, tcfg)
        seg = _Timed(tracker, "_add_segments")
        upd = _Timed(tracker, "_update")
        refit_steps = _Timed(tracker, "_refit_step")          # refit_delay > 0: the spread steps
        refit_finish = _Timed(tracker, "_finish_refit")
        steps = {"everything": everything, "tracker": lambda k, t=tracker: t.process(vs[k], is_[k]),
                 "network": network, "invoke": bare, "harness": lambda k: None}
        if base is not None:
            b_pipe, b_extra, b_tracker = base_steps()

            def base_everything(k: int, pipe=b_pipe, extra=b_extra) -> None:
                pipe.process(frames[k])
                if extra is not None:
                    extra.process(vs[k], is_[k])

            steps.update({"everything@base": base_everything,
                          "tracker@base": lambda k, t=b_tracker: t.process(vs[k], is_[k])})
        if other is not None:
            b_everything, b_network, b_bare, _ = model_steps(other)
            steps.update({"everything@B": b_everything, "network@B": b_network, "invoke@B": b_bare})
        enter = None
        if args.kernel_ab:
            p_everything, p_network, p_bare, _ = estimator_steps()
            steps.update({"everything@python": p_everything, "network@python": p_network,
                          "invoke@python": p_bare})

            def enter(name: str) -> None:
                largesignal.use_kernel("python" if name.endswith("@python") else kernel)
        # (the pipeline's sequence check sees the restart after the warm-up as a gap: one reset)
        timed = _time_interleaved(steps, n, enter=enter)
        largesignal.use_kernel(kernel)
        for name, (c, w) in timed.items():
            runs[name][0].append(c)
            runs[name][1].append(w)
        calls = (WARMUP + n) / n          # the wrappers also saw the warm-up blocks
        split["segments"].append(seg.total / calls / n)
        split["refits"].append((upd.total + refit_steps.total + refit_finish.total) / calls / n)
        split["refit_calls"].append(upd.calls)
        split["updates"].append(tracker.updates)

    stages = {k: _summary(c, w, block_s) for k, (c, w) in runs.items()}
    # (the restart after the warm-up is a sequence gap: the pipeline resets the large-signal estimator, its tracker
    # included, so that tracker starts again with the timed blocks; a network's tracker runs on)
    by_kind = _by_kind(runs["everything"][0], _block_kinds(profile, tcfg, vs, is_, 0 if calibration else WARMUP)) \
        if needs_tracker or extra_tracker else {}
    t_mean = stages["tracker"]["cpu_mean_us"]
    seg_us = float(np.median(split["segments"])) * 1e6
    refit_us = float(np.median(split["refits"])) * 1e6
    stages["tracker"].update({"segments_us_per_block": seg_us, "refits_us_per_block": refit_us,
                              "bookkeeping_us_per_block": t_mean - seg_us - refit_us,
                              "refit_calls": int(np.median(split["refit_calls"])),
                              "accepted_updates": int(np.median(split["updates"]))})
    harness = stages["harness"]["cpu_mean_us"]
    out = {"model": args.model, "backend": "large-signal estimator" if calibration else model.backend,
           "direct": streamer is not None and streamer._direct is not None,
           "largesignal_kernel": kernel, "profile": profile.name, "refit_delay": args.refit_delay, "data": args.data or "simulated program (sim:// material)",
           "block_samples": profile.block_size, "blocks": n, "repeat": args.repeat,
           "tracker_in_everything": needs_tracker or extra_tracker,
           "real_time_factor_cpu": stages["everything"]["cpu_rtf"],
           "real_time_factor_cpu_net_of_harness": (stages["everything"]["cpu_mean_us"] - harness) * 1e-6 / block_s,
           "rtf_without_tracker_cpu": (stages["everything"]["cpu_mean_us"] - (t_mean if needs_tracker or extra_tracker
                                                                               else 0.0)) * 1e-6 / block_s,
           "streamer_overhead_us": stages["network"]["cpu_mean_us"] - stages["invoke"]["cpu_mean_us"],
           # everything - tracker - network: the pipeline's per-frame bookkeeping plus the cost of the
           # tracker and the network evicting each other's cache lines when they alternate per block
           "pipeline_and_interleaving_us": stages["everything"]["cpu_mean_us"] - stages["network"]["cpu_mean_us"]
           - (t_mean if needs_tracker or extra_tracker else 0.0),
           "stages": stages, "everything_by_block_kind": by_kind, "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()),
           "cpu_count": os.cpu_count()}
    if base is not None:
        out["baseline"] = {"tree": args.baseline_tree, "mismatched_blocks": int(base_mismatched),
                           "real_time_factor_cpu": stages["everything@base"]["cpu_rtf"],
                           "real_time_factor_cpu_net_of_harness": (stages["everything@base"]["cpu_mean_us"] - harness)
                           * 1e-6 / block_s}
    if args.kernel_ab:
        py = stages["everything@python"]
        out["kernel_ab"] = {"kernel": kernel, "mismatched_blocks": int(kernel_mismatched),
                            "real_time_factor_cpu_python": py["cpu_rtf"],
                            "real_time_factor_cpu_python_net_of_harness": (py["cpu_mean_us"] - harness) * 1e-6 / block_s,
                            "rtf_without_tracker_cpu_python": (py["cpu_mean_us"] - t_mean) * 1e-6 / block_s}
    if other is not None:
        b = {k[:-2]: stages[k] for k in stages if k.endswith("@B")}
        out["compare"] = {"model": args.compare, "mismatched_blocks": int(mismatched_blocks),
                          "real_time_factor_cpu": b["everything"]["cpu_rtf"],
                          "real_time_factor_cpu_net_of_harness": (b["everything"]["cpu_mean_us"] - harness) * 1e-6
                          / block_s,
                          "streamer_overhead_us": b["network"]["cpu_mean_us"] - b["invoke"]["cpu_mean_us"],
                          "invoke_ab": invoke_ab}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.model} ({out['backend']}{', direct' if out['direct'] else ''}), profile {profile.name}, "
          f"{profile.block_size}-sample blocks, {n} blocks x {args.repeat}, load average {load_start[0]:.2f} -> "
          f"{out['loadavg_end'][0]:.2f}" + (f"; large-signal loop: {kernel}" if calibration else ""))
    if calibration:
        print("(network = the estimator's integration alone, invoke = the bare integration loop)")
    print(f"{'stage':15s} {'CPU mean':>9s} {'p50':>8s} {'p99':>9s} {'p99.9':>9s} {'max':>9s} {'RTF':>7s}   (us per block)")
    for k, st in stages.items():
        print(f"{k:15s} {st['cpu_mean_us']:9.1f} {st['cpu_p50_us']:8.1f} {st['cpu_p99_us']:9.1f} "
              f"{st['cpu_p999_us']:9.0f} {st['cpu_max_us']:9.0f} {st['cpu_rtf']:7.4f}")
    t = stages["tracker"]
    print(f"tracker split: bookkeeping {t['bookkeeping_us_per_block']:.1f} + Welch segments "
          f"{t['segments_us_per_block']:.1f} + refits {t['refits_us_per_block']:.1f} us per block "
          f"({t['refit_calls']} refit calls, {t['accepted_updates']} accepted)")
    if by_kind:
        print("everything by what the tracker did in the block (us of CPU):  " + "; ".join(
            f"{k} {v['share'] * 100:.1f} % of blocks, mean {v['cpu_mean_us']:.1f} p50 {v['cpu_p50_us']:.1f} "
            f"p99 {v['cpu_p99_us']:.0f} -> {v['us_per_block']:.1f} per block" for k, v in by_kind.items()))
    print(f"{'estimator' if calibration else 'streamer'} overhead (network - invoke) {out['streamer_overhead_us']:.1f} us, "
          f"pipeline + interleaving "
          f"(everything - tracker - network) {out['pipeline_and_interleaving_us']:.1f} us")
    print(f"real-time factor (CPU) {out['real_time_factor_cpu']:.4f} (net of the harness "
          f"{out['real_time_factor_cpu_net_of_harness']:.4f}), without the tracker "
          f"{out['rtf_without_tracker_cpu']:.4f}  (target <= 0.05 with the tracker)")
    if args.kernel_ab:
        c = out["kernel_ab"]
        print(f"Python loop (@python): real-time factor (CPU) {c['real_time_factor_cpu_python']:.4f} (net of the "
              f"harness {c['real_time_factor_cpu_python_net_of_harness']:.4f}), without the tracker "
              f"{c['rtf_without_tracker_cpu_python']:.4f}; blocks whose excursion differs from the {kernel} loop's: "
              f"{c['mismatched_blocks']} of {n}")
    if base is not None:
        c = out["baseline"]
        print(f"baseline code ({args.baseline_tree}): real-time factor (CPU) {c['real_time_factor_cpu']:.4f} (net of the "
              f"harness {c['real_time_factor_cpu_net_of_harness']:.4f}); blocks whose excursion or tracked prediction "
              f"differs from the current code's: {c['mismatched_blocks']} of {2 * n}")
    if other is not None:
        c = out["compare"]
        print(f"B = {args.compare}: real-time factor (CPU) {c['real_time_factor_cpu']:.4f} (net of the harness "
              f"{c['real_time_factor_cpu_net_of_harness']:.4f}); blocks whose excursion differs from A's: "
              f"{c['mismatched_blocks']} of {n}")
        if invoke_ab is not None:
            print("bare invokes side by side (CPU, us): " + ", ".join(
                f"{k} median {v['cpu_median_us']:.2f} p99 {v['cpu_p99_us']:.2f}" for k, v in invoke_ab.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
