"""Baseline excursion figures per speaker and scenario: zero predictor, datasheet linear X/I, impedance tracking.

Usage: python tools/eval_speaker_baselines.py DATASET_DIR [--split test] [--json] [--oracle] [--calibration DIR]
       python tools/eval_speaker_baselines.py DATASET_DIR --split val --bench-block 48 [--bench-clips 6]
           [--calibration DIR | --datasheet-prior] [--kernel-ab]
       python tools/eval_speaker_baselines.py DATASET_DIR --split train --family-prior

Each (speaker, scenario) stream is reassembled from its clips in order and both baselines run
causally over the whole stream (they need no labels; deployment runs them continuously); metrics
are computed on the clips of ``--split`` only (all clips with ``--split all``). ``--oracle`` adds the
linear X/I model with the simulator's true small-signal parameters of the scenario (metadata
``speaker_true``): what a perfectly identified *linear* model could do. ``--calibration DIR`` (or a
.json file) adds the calibrated large-signal estimator (``edgesense.speaker.largesignal``) for the
streams whose speaker profile has a calibration there. ``--bench-block N`` instead
times the tracker (CPU time per call of N samples) over the first ``--bench-clips`` clips of the split
(with ``--calibration``: the calibrated large-signal estimator, its tracker included; with
``--datasheet-prior``: the large-signal estimator from each speaker's datasheet and the family prior,
``edgesense.speaker.adapt.datasheet_large_signal``, the unseen-speaker model). The estimator's
integration loop in use is printed (``edgesense.speaker.largesignal.KERNEL``: ``c``, the compiled
kernel, or ``python``); ``--kernel-ab`` times both loops, clip by clip in turn in the same process.
``--family-prior`` prints the mean even-order nonlinearity shapes (b2, b4, k2) of the speakers in the
split (metadata ``speaker_true``): ``edgesense.speaker.adapt.FAMILY_SHAPES`` comes from the train split
of the randomised training family.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np

from edgesense.profiles import SpeakerParams
from edgesense.recording import Dataset
from edgesense.speaker.linear import predict_linear
from edgesense.speaker.metrics import combined_metrics, zero_predictor
from edgesense.speaker.tracking import track


def bench(root: str, split: str, block: int, clips: int = 6, repeats: int = 2,
          calibrations: dict | None = None, prior: bool = False, kernels: tuple[str, ...] | None = None) -> list[dict]:
    """Tracker CPU time per ``block``-sample call (us): mean, median, p99, p99.9, max per repeat.

    With ``calibrations`` (or ``prior``: the datasheet prior), the large-signal estimator (its tracker
    included) instead, with each of the integration loops ``kernels`` (default: the one in use) in
    turn on every clip; every row names its loop (``kernel``)."""
    from edgesense.speaker import largesignal
    from edgesense.speaker.pipeline import load_signals
    from edgesense.speaker.tracking import ImpedanceTracker

    estimator = bool(calibrations) or prior
    kernels = (kernels or (largesignal.KERNEL,)) if estimator else (None,)
    before = largesignal.KERNEL
    sigs = load_signals(root, None if split == "all" else split, clips)
    out = []
    for _ in range(repeats):
        per = {kern: [] for kern in kernels}
        for s in sigs:
            v, i = s.v.astype(np.float64), s.i.astype(np.float64)
            for kern in kernels:
                if estimator:
                    from edgesense.speaker.adapt import datasheet_large_signal

                    largesignal.use_kernel(kern)
                    params = datasheet_large_signal(s.speaker) if prior else calibrations[s.profile.name]
                    tracker = largesignal.LargeSignalEstimator(params, s.speaker, s.fs)
                else:
                    tracker = ImpedanceTracker(s.speaker, s.fs)
                for k in range(0, len(v) - block + 1, block):
                    t0 = time.thread_time_ns()
                    tracker.process(v[k:k + block], i[k:k + block])
                    per[kern].append(time.thread_time_ns() - t0)
        for kern, times in per.items():
            us = np.array(times) / 1e3
            out.append({"kernel": kern, "blocks": len(us), "mean_us": float(us.mean()),
                        "median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
                        "p99_9_us": float(np.percentile(us, 99.9)), "max_us": float(us.max()),
                        "rtf": float(us.mean()) * 1e-6 * sigs[0].fs / block})
    if estimator:
        largesignal.use_kernel(before)
    return out


def family_prior(root: str, split: str) -> dict:
    """Mean (b2, b4, k2) over the distinct speakers of ``split`` (their simulator truth)."""
    from edgesense.speaker.adapt import family_shapes

    ds = Dataset.open(root)
    shapes = {}
    for e in ds.entries:
        if split != "all" and e.split != split:
            continue
        true = ds.load(e).metadata.get("speaker_true") or {}
        if "nonlinearity" in true:
            shapes.setdefault(true.get("name", e.path), true["nonlinearity"])
    b2, b4, k2 = family_shapes(shapes.values())
    return {"speakers": len(shapes), "b2": b2, "b4": b4, "k2": k2}


def evaluate(root: str, split: str = "test", oracle: bool = False, calibrations: dict | None = None) -> list[dict]:
    ds = Dataset.open(root)
    streams: dict[str, list] = defaultdict(list)
    for e in ds.entries:
        rec = ds.load(e)
        streams[rec.metadata.get("stream", e.path)].append((rec.metadata.get("clip_index", 0), e.split, rec))
    rows = []
    for name in sorted(streams):
        clips = sorted(streams[name], key=lambda c: c[0])
        if split != "all" and not any(s == split for _, s, _ in clips):
            continue
        rec0 = clips[0][2]
        prof = rec0.profile
        p = np.concatenate([c[2].payloads.reshape(-1, len(prof.channels)) for c in clips]).astype(np.float64)
        v, i, x = (p[:, prof.channel_index(k)] for k in ("v", "i", "x"))
        t0 = time.process_time()
        tracked = track(v, i, prof.speaker, prof.sample_rate_hz)
        cpu = time.process_time() - t0
        lin = predict_linear(i, prof.speaker, prof.sample_rate_hz)
        bounds = np.cumsum([0] + [c[2].payloads.shape[0] * prof.block_size for c in clips])
        sel = [(bounds[k], bounds[k + 1]) for k, (_, s, _) in enumerate(clips) if split in ("all", s)]
        row = {"stream": name, "speaker": rec0.metadata.get("subject"), "scenario": rec0.metadata.get("session"),
               "seconds": sum(b - a for a, b in sel) / prof.sample_rate_hz,
               "tracker_cpu_per_s": cpu / (len(v) / prof.sample_rate_hz)}
        methods = [("zero", zero_predictor(x)), ("linear", lin), ("tracking", tracked.x_mm)]
        true = rec0.metadata.get("speaker_true")
        if oracle and isinstance(true, dict):
            truth = SpeakerParams(bl=true["bl"], mms=true["mms"], rms=true["rms"], kms=true["kms"])
            methods.append(("oracle", predict_linear(i, truth, prof.sample_rate_hz)))
        if calibrations and prof.name in calibrations:
            from edgesense.speaker.largesignal import predict_large_signal

            methods.append(("largesig", predict_large_signal(v, i, calibrations[prof.name], prof.speaker,
                                                             prof.sample_rate_hz)))
        for label, pred in methods:
            row[label] = combined_metrics([(x[a:b], pred[a:b]) for a, b in sel], prof.sample_rate_hz).to_dict()
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--split", default="test", help="split to score (default test; 'all' for every clip)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--oracle", action="store_true", help="add the linear X/I model with the true scenario parameters")
    ap.add_argument("--calibration", action="append", default=None,
                    help="large-signal calibration .json or directory of them: adds the calibrated estimator")
    ap.add_argument("--bench-block", type=int, default=None, help="time the tracker per call of this many samples")
    ap.add_argument("--bench-clips", type=int, default=6, help="clips of the split to time (default 6)")
    ap.add_argument("--datasheet-prior", action="store_true",
                    help="with --bench-block: time the large-signal estimator from each speaker's datasheet")
    ap.add_argument("--kernel-ab", action="store_true",
                    help="with --bench-block and an estimator: time the Python loop and the compiled kernel in turn")
    ap.add_argument("--family-prior", action="store_true",
                    help="print the mean even-order nonlinearity shapes (b2, b4, k2) of the split's speakers")
    args = ap.parse_args(argv)
    if args.family_prior:
        r = family_prior(args.dataset, args.split)
        print(json.dumps(r) if args.json else
              f"{r['speakers']} speakers: b2 {r['b2']:.4f}, b4 {r['b4']:.4f}, k2 {r['k2']:.4f}")
        return 0
    cals = None
    if args.calibration:
        from edgesense.speaker.largesignal import load_calibrations

        cals = load_calibrations(args.calibration)
    if (args.datasheet_prior or args.kernel_ab) and not args.bench_block:
        print("--datasheet-prior and --kernel-ab go with --bench-block (edgesense eval excursion --datasheet-prior "
              "scores the prior)", file=sys.stderr)
        return 2
    if args.bench_block:
        import os

        from edgesense.speaker import largesignal

        kernels = None
        if args.kernel_ab:
            if largesignal._lsloop is None:
                print("--kernel-ab: the compiled kernel edgesense.speaker._lsloop is not built", file=sys.stderr)
                return 2
            kernels = ("python", "c")
        if not args.json:
            what = ("large-signal estimator (datasheet prior)" if args.datasheet_prior else
                    "large-signal estimator (calibration)" if cals else "impedance tracker")
            print(f"{what}; large-signal loop in use: {largesignal.KERNEL}; load average "
                  + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        for r in bench(args.dataset, args.split, args.bench_block, args.bench_clips, calibrations=cals,
                       prior=args.datasheet_prior, kernels=kernels):
            print(json.dumps(r) if args.json else
                  (f"[{r['kernel']}] " if r["kernel"] else "")
                  + f"{r['blocks']} blocks of {args.bench_block}: mean {r['mean_us']:.1f} us (RTF {r['rtf']:.4f}), "
                  f"median {r['median_us']:.1f}, p99 {r['p99_us']:.0f}, p99.9 {r['p99_9_us']:.0f}, "
                  f"max {r['max_us']:.0f} us")
        return 0
    rows = evaluate(args.dataset, args.split, args.oracle, cals)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'stream':24s} {'method':9s} {'NRMSE%':>7s} {'peak mm':>8s} {'loud<.02':>8s} "
          f"{'<0.1mm':>8s} {'off<.01':>8s}")
    for r in rows:
        for m in ("zero", "linear", "tracking", "oracle", "largesig"):
            if m not in r:
                continue
            d = r[m]
            print(f"{r['stream']:24s} {m:9s} {100 * d['nrmse']:7.2f} {d['peak_error_mm']:8.4f} "
                  f"{d['loud_within_0_02']:8.4f} {d['within_0_1']:8.5f} {d['offset_within_0_01']:8.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
