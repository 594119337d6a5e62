"""``edgesense eval gesture``: clip and event metrics of a gesture model on any recording-format dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_float, print_json
from edgesense.radar.metrics import CLIP_LATENCY_S

COMMAND = ("eval", "gesture")
HELP = "evaluate a gesture model on a dataset: clip accuracy, confusion matrix, event F1, false triggers, latency"


def _drop_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"drop rate must be in [0, 1), got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset directory (with index.json)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (.onnx or .tflite with its .json description); default: the shipped gesture_cnn")
    parser.add_argument("--split", default="test", help="dataset split to evaluate, or 'all' (default: test)")
    parser.add_argument("--drop-rate", type=_drop_rate, default=0.0,
                        help="lose this share of frames (random plus bursty) before the pipeline")
    parser.add_argument("--no-restore", action="store_true", help="do not restore dropped frames (naive pipeline)")
    parser.add_argument("--tolerance", type=positive_float, default=0.5,
                        help="event matching tolerance around a labelled gesture, seconds (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drop pattern")
    parser.add_argument("--clip-latency", type=positive_float, default=CLIP_LATENCY_S,
                        help="a clip whose decision frame was lost is decided at the next received frame within "
                             f"this many seconds of the gesture's end, as the live pipeline would (default {CLIP_LATENCY_S:g}; "
                             "0.025 = the last received frame before it, the rule before session 4)")
    parser.add_argument("--plot", type=Path, default=None, help="write the confusion matrix as a PNG here")
    parser.add_argument("--tune-spotter", action="store_true",
                        help="instead of evaluating, pick spotter thresholds on this split's streams (never 'test'): "
                             "best event F1 with <= 0.8 false triggers/min and p95 latency <= 75 ms")
    parser.add_argument("--save-spotter", action="store_true",
                        help="with --tune-spotter: write the chosen thresholds into the model's .json description")
    add_json_flag(parser)


def shipped_model(name: str = "gesture_cnn") -> Path:
    """The shipped model file of ``name`` (see :func:`edgesense.cli.cmd_demo.find_model`)."""
    from edgesense.cli.cmd_demo import find_model

    return find_model(name)


def run(args: argparse.Namespace) -> int:
    from edgesense.errors import EdgesenseError
    from edgesense.radar.metrics import evaluate_gesture_dataset, plot_confusion

    model = args.model if args.model is not None else shipped_model()
    if args.tune_spotter:
        return _tune(args, model)
    if args.save_spotter:
        raise EdgesenseError("--save-spotter needs --tune-spotter")
    result = evaluate_gesture_dataset(model, args.data, args.split, drop_rate=args.drop_rate,
                                      restore=not args.no_restore, seed=args.seed, tolerance_s=args.tolerance,
                                      clip_latency_s=args.clip_latency)
    clips, streams = result.get("clips"), result.get("streams")
    if clips is None and streams is None:
        raise EdgesenseError(f"{args.data}: no recording in split {args.split!r} could be evaluated "
                             f"({'; '.join(result.get('skipped', [])[:3]) or 'no labels'})")
    if args.plot is not None:
        if clips is None:
            raise EdgesenseError("--plot needs clip recordings (a confusion matrix); this split has only streams")
        try:
            plot_confusion(clips, args.plot, title=f"{Path(str(model)).name} on {Path(args.data).name}/{args.split}")
        except ImportError:
            raise EdgesenseError("--plot needs matplotlib: pip install 'edgesense[plot]'") from None
        result["plot"] = str(args.plot)
    if args.json:
        print_json(result)
        return 0
    drop = f", {args.drop_rate:.0%} drops {'not restored' if args.no_restore else 'restored'}" if args.drop_rate else ""
    print(f"{model} on {args.data} ({args.split}{drop})")
    if clips is not None:
        print(f"  clips: {clips.n}, accuracy {clips.accuracy:.4f}, balanced accuracy {clips.balanced_accuracy:.4f}")
        print("  recall: " + ", ".join(f"{k} {v:.3f}" for k, v in clips.per_class_recall.items()))
        width = max(len(c) for c in clips.classes)
        print("  confusion (rows true, columns predicted):")
        print("    " + " " * width + " " + " ".join(f"{c[:6]:>6}" for c in clips.classes))
        for c, row in zip(clips.classes, clips.confusion):
            print(f"    {c:>{width}} " + " ".join(f"{x:6d}" for x in row))
    if streams is not None:
        lat = streams.latency_s
        print(f"  events: {streams.true_events} labelled, {streams.detections} detected, precision "
              f"{streams.precision:.4f}, recall {streams.recall:.4f}, F1 {streams.f1:.4f}")
        print(f"  false triggers: {streams.false_triggers} ({streams.false_triggers_per_min:.2f}/min over "
              f"{streams.duration_min:.1f} min)")
        if lat:
            print(f"  latency after gesture end: p50 {lat['p50'] * 1000:.0f} ms, p95 {lat['p95'] * 1000:.0f} ms, "
                  f"max {lat['max'] * 1000:.0f} ms")
    cpu = result.get("cpu_us_per_frame")
    if cpu:
        print(f"  compute per frame: mean {cpu['mean']:.0f} us, p99 {cpu['p99']:.0f} us")
    for s in result.get("skipped", []):
        print(f"  skipped {s}")
    if args.plot is not None:
        print(f"  confusion matrix: {args.plot}")
    return 0


def _tune(args: argparse.Namespace, model: Path) -> int:
    """``--tune-spotter``: thresholds from a stream split, printed and (``--save-spotter``) saved in the sidecar."""
    from dataclasses import replace

    from edgesense.errors import EdgesenseError
    from edgesense.radar.metrics import tune_spotter
    from edgesense.radar.pipeline import GestureModelInfo

    if args.split == "test":
        raise EdgesenseError("--tune-spotter refuses the test split: tune on validation users ('val', or 'all' of a "
                             "dataset of tuning users)")
    spotter, scores = tune_spotter(model, args.data, split=args.split, tolerance_s=args.tolerance)
    if not spotter:
        raise EdgesenseError(f"{args.data}: no streams in split {args.split!r} to tune the spotter on")
    result = {"model": str(model), "data": str(args.data), "split": args.split, "spotter": spotter, "scores": scores}
    if args.save_spotter:
        info = GestureModelInfo.for_model(model)
        side = Path(model).with_suffix(".json")
        info = replace(info, spotter=spotter, metrics={**info.metrics, "spotter_tuning": {**scores,
                                                                                            "data": str(args.data)}})
        info.save(side)
        result["saved"] = str(side)
        if Path(model).suffix == ".onnx":
            _update_onnx_description(Path(model), info)
    if args.json:
        print_json(result)
    else:
        print(f"spotter for {model} tuned on {args.data} ({args.split}): {spotter}")
        print(f"  F1 {scores['f1']:.4f}, false triggers {scores['false_triggers_per_min']:.2f}/min, "
              f"p95 latency {scores['latency_p95_s'] * 1000:.0f} ms ({scores['events']} events)")
        if args.save_spotter:
            print(f"  saved in {result['saved']}")
    return 0


def _update_onnx_description(path: Path, info) -> None:
    """Keep the description embedded in a float ONNX file (``export_onnx`` writes it) equal to the sidecar."""
    import json

    try:
        import onnx
    except ImportError:        # runtime-only install: the sidecar is what the pipeline reads
        return
    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "edgesense_gesture_model":
            entry.value = json.dumps(info.to_dict())
            onnx.save(proto, str(path))
            return
