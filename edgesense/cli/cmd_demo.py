"""``edgesense demo``: an emulated 60 GHz radar, the whole gesture pipeline live, events with latency.

By default a simulated user performs random gestures in front of a simulated ``ad60`` radar
(:class:`edgesense.sim.radar_gestures.LiveRadarScene`, rendered as frames are due), streamed in real time by a
:class:`~edgesense.stream.SimulatedSource` that also loses frames like a real link. Every frame goes
through :class:`~edgesense.radar.pipeline.GesturePipeline` with the shipped INT8 model
(``gesture_cnn_int8.tflite`` on LiteRT, one thread). Each spotted gesture is printed with its latency
after the true end of the gesture, and live statistics (frames, gaps restored, CPU time per frame)
every few seconds. ``--source`` takes any source URL instead
(a recording, a serial device); ground truth and latency are then unknown. No torch needed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_float, print_json

COMMAND = ("demo",)
HELP = "live gesture recognition demo: emulated radar -> RDI -> restoration -> model -> gesture events"

MODEL_PREFERENCE = ("*int8*.tflite", "*int8*.onnx", "{name}.onnx")


def model_dirs() -> list[Path]:
    """Where shipped models are looked for: $EDGESENSE_MODELS, the package data, the source checkout."""
    out = []
    if os.environ.get("EDGESENSE_MODELS"):
        out.append(Path(os.environ["EDGESENSE_MODELS"]))
    pkg = Path(__file__).resolve().parents[1]
    out += [pkg / "data" / "models", pkg.parent / "models"]
    return out


def find_model(name: str = "gesture_cnn") -> Path:
    """The shipped model file for ``name`` (INT8 first when present, with its JSON description)."""
    from edgesense.errors import ModelError
    from edgesense.radar.pipeline import GestureModelInfo

    for root in model_dirs():
        folder = root / name
        if not folder.is_dir():
            continue
        for pattern in MODEL_PREFERENCE:
            for cand in sorted(folder.glob(pattern.format(name=name))):
                try:
                    GestureModelInfo.for_model(cand)
                except ModelError:
                    continue
                return cand
    raise ModelError(f"no shipped {name} model found in {', '.join(str(d) for d in model_dirs())}; "
                     f"pass --model FILE")


EPILOG = """\
output:
  one line per spotted gesture: time, class, confidence and, for the simulated user, the latency
  after the gesture really ended (negative: spotted before its end); every 5 s and at the end:
  frames received, gaps and frames restored / padded, events, and the CPU time per frame (p50 and
  p99 of the pipeline thread's CPU time, raw frame in -> events out, last 4096 frames).

examples:
  edgesense demo                                  20 s, simulated user, INT8 model, 5 % frame loss
  edgesense demo --drop-rate 0.2 --seconds 60     a lossier link, longer
  edgesense demo --model models/gesture_cnn/gesture_cnn.onnx    the float model on ONNX Runtime
  edgesense demo --source session.esr             a recording (or a serial port URL) instead
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--seconds", type=positive_float, default=20.0,
                        help="how long to run, wall-clock seconds (default: %(default)s)")
    parser.add_argument("--source", default=None,
                        help="source URL instead of the simulated user (recording FILE.esr, serial port, ...)")
    parser.add_argument("--model", type=Path, default=None,
                        help="gesture model, .tflite (LiteRT) or .onnx (ONNX Runtime), with its .json description "
                             "beside it (default: the shipped INT8 gesture_cnn_int8.tflite)")
    parser.add_argument("--drop-rate", type=float, default=0.05,
                        help="frames the emulated link loses, random plus bursty (default: %(default)s)")
    parser.add_argument("--speed", type=positive_float, default=1.0,
                        help="emulated radar speed, 1 = real time (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the simulated user and session")
    add_json_flag(parser)


def _simulated_source(args: argparse.Namespace, profile):
    """A live simulated user (rendered frame by frame as the source asks) and its ground-truth event list."""
    from edgesense.sim.radar_gestures import LiveRadarScene
    from edgesense.stream import SimulatedSource
    from edgesense.stream.faults import random_plus_bursty

    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    scene = LiveRadarScene(profile, seed=seed, user=0, session=0)
    drops = random_plus_bursty(args.drop_rate) if args.drop_rate > 0 else None
    n = int(args.seconds * args.speed * profile.frame_rate_hz) + 1
    source = SimulatedSource(profile, scene, speed=args.speed, max_frames=n, drops=drops, seed=seed)
    return source, scene.events, seed


def run(args: argparse.Namespace) -> int:
    from edgesense.errors import EdgesenseError
    from edgesense.radar.pipeline import GestureModelInfo, GesturePipeline

    if not 0 <= args.drop_rate < 1:
        raise EdgesenseError(f"--drop-rate must be in [0, 1), got {args.drop_rate}")
    model_path = args.model if args.model is not None else find_model("gesture_cnn")
    info = GestureModelInfo.for_model(model_path)
    truth: list[tuple[str, int, int]] = []
    seed = None
    if args.source is None:
        profile = info.sensor_profile()
        if profile is None:
            raise EdgesenseError(f"{model_path}: the model names no sensor profile to simulate; pass --source")
        source, truth, seed = _simulated_source(args, profile)
        url = f"sim://{profile.name} (gestures, seed {seed}, drop {args.drop_rate:g})"
    else:
        from edgesense.sources import open_source

        source = open_source(args.source, profile=None)
        url = args.source
    pipe = GesturePipeline(model_path, info=info, profile=source.profile)
    period = 1.0 / source.profile.frame_rate_hz
    wall = period / (args.speed if args.source is None else 1.0)  # wall-clock seconds per frame
    rows = []
    matched: set[int] = set()
    if not args.json:
        print(f"model {model_path} ({_model_label(pipe)}; {len(info.classes)} classes: {', '.join(info.classes)})")
        print(f"source {url}")
        print(f"running for {args.seconds:g} s ...", flush=True)
    start = time.monotonic()
    t0 = None
    last_stats = start
    with source:
        for frame in source:
            if t0 is None:
                t0 = frame.host_time - wall  # frame k is complete at t0 + (k + 1) * wall
            events = pipe.process(frame)
            now = time.monotonic()
            for ev in events:
                row = {"time_s": round(now - start, 3), "label": ev.label, "confidence": round(ev.confidence, 3),
                       "frame": ev.onset}
                tol = int(0.5 / period)
                for i, (lab, s, e) in enumerate(truth):
                    if i not in matched and lab == ev.label and s - tol <= ev.onset <= e + tol:
                        matched.add(i)
                        row["latency_ms"] = round(1000 * (now - (t0 + e * wall)), 1)
                        break
                else:
                    if truth:
                        row["true"] = next((lab for lab, s, e in truth if s - tol <= ev.onset <= e + tol), "none")
                rows.append(row)
                if not args.json:
                    ms = row.get("latency_ms", 0.0)
                    lat = (f"latency {ms:.0f} ms after the gesture ended" if ms >= 0 else
                           f"{-ms:.0f} ms before the gesture ended") if "latency_ms" in row else (
                        f"(no matching gesture; truth: {row['true']})" if "true" in row else "")
                    print(f"[{row['time_s']:6.2f} s] {ev.label:<14} confidence {ev.confidence:.2f}  {lat}", flush=True)
            if not args.json and now - last_stats >= 5.0:
                last_stats = now
                print("          " + _stats_line(pipe), flush=True)
            if now - start >= args.seconds:
                break
        source_stats = source.stats.to_dict()
    pipe.finish()
    elapsed = time.monotonic() - start
    summary = {"source": url, "model": str(model_path), "streaming_split": pipe.split is not None,
               "split_reason": pipe.split_reason, "seconds": round(elapsed, 2), "seed": seed,
               "events": rows, "pipeline": pipe.stats.to_dict(), "source_stats": source_stats}
    if truth:   # gestures performed: those that ended in the run, and any detected before its end
        ended = {i for i, t in enumerate(truth) if t[2] <= pipe.frame_index + 1}
        summary["true_gestures"] = len(ended | matched)
        summary["detected_true_gestures"] = len(matched)
    if args.json:
        print_json(summary)
    else:
        print("done: " + _stats_line(pipe))
        if truth:
            print(f"      {len(matched)} of {summary['true_gestures']} performed gestures detected, "
                  f"{len(rows) - len(matched)} other events")
    return 0


def _model_label(pipe) -> str:
    """E.g. ``LiteRT, int8 input, 1 thread, streaming split``."""
    backend = {"litert": "LiteRT", "onnxruntime": "ONNX Runtime"}.get(getattr(pipe.model, "backend", ""), "custom")
    how = "streaming split" if pipe.split is not None else f"whole graph: {pipe.split_reason}"
    return f"{backend}, {pipe.model_input.dtype} input, 1 thread, {how}"


def _stats_line(pipe) -> str:
    s = pipe.stats.to_dict()
    cpu = s.get("cpu_us_per_frame", {})
    return (f"{s['frames']} frames, {s['gaps']} gaps ({s['frames_restored']} frames restored, "
            f"{s['frames_padded']} padded), {s['events']} events, CPU per frame "
            f"p50 {cpu.get('p50', 0):.0f} us / p99 {cpu.get('p99', 0):.0f} us")
