"""``edgesense train gesture``: train a gesture model, export float ONNX + state_dict + model card."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_float, positive_int, print_json

COMMAND = ("train", "gesture")
HELP = "train a radar gesture model (gesture_cnn or gesture_crnn) on a dataset; writes ONNX, weights and a model card"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, action="append",
                        help="dataset directory (recording format, with index.json); repeat to train on several "
                             "(e.g. clips and streams); clip metrics are reported on the first one's test split")
    parser.add_argument("--model", default="gesture_cnn", help="model name from the registry (gesture_cnn, gesture_crnn)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (e.g. models/gesture_cnn)")
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=positive_int, default=40, help="window length T in frames (default 40)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=positive_float, default=3e-3)
    parser.add_argument("--noise-label", default="noise", help="the background class (added if the data lacks it)")
    parser.add_argument("--no-validity", action="store_true", help="do not give the model a validity channel")
    parser.add_argument("--drop-variants", type=int, default=2,
                        help="dropped+restored copies of each training recording (0 = no drop augmentation)")
    parser.add_argument("--drop-rate-range", type=float, nargs=2, default=(0.05, 0.3), metavar=("LO", "HI"),
                        help="drop rates of the augmentation variants are drawn from [LO, HI] (default 0.05 0.3)")
    parser.add_argument("--val-drop-rate", type=float, default=0.0,
                        help="also score validation clips with this drop rate when picking the checkpoint "
                             "(mean of clean and dropped accuracy; default 0 = clean only)")
    parser.add_argument("--val-drop-variants", type=positive_int, default=1,
                        help="dropped validation copies (different loss patterns) averaged in that score (default 1)")
    parser.add_argument("--negatives-per-positive", type=positive_float, default=1.0,
                        help="noise windows sampled per gesture window each epoch (default 1)")
    parser.add_argument("--near-negatives", type=float, default=0.0,
                        help="share of the noise windows drawn from windows holding part of a gesture (default 0)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="distil this float .onnx gesture model's probabilities (same classes and window)")
    parser.add_argument("--distill-weight", type=float, default=0.5,
                        help="weight of the teacher's cross-entropy in the loss (default 0.5)")
    parser.add_argument("--init", type=Path, default=None,
                        help="fine-tune from this state_dict (.pt with its .json beside it, e.g. a shipped model)")
    parser.add_argument("--max-positives", type=int, default=0,
                        help="positive windows per gesture per epoch (default 0 = all; use 3-4 on large datasets)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra model constructor argument (number), e.g. width=24 or dropout=0.3; repeatable")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--eval-stream", type=Path, default=None,
                        help="also evaluate event spotting on this stream dataset's test split")
    parser.add_argument("--eval-drop-rate", type=float, default=0.2,
                        help="also evaluate test clips with this random+bursty drop rate, with and without restoration")
    parser.add_argument("--recipe", action="append", default=[],
                        help="a command that made the data, written before the training command in the model card")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from edgesense.errors import EdgesenseError

    try:
        import torch
    except ImportError:
        raise EdgesenseError("training needs the 'train' extra: pip install 'edgesense[train]'") from None
    from edgesense.nn.train_gesture import TrainConfig, export_onnx, train_gesture, write_model_card
    from edgesense.radar.metrics import evaluate_gesture_dataset

    if not 0 <= args.distill_weight <= 1:
        raise EdgesenseError(f"--distill-weight must be in [0, 1], got {args.distill_weight}")
    if not 0 <= args.near_negatives <= 1:
        raise EdgesenseError(f"--near-negatives must be in [0, 1], got {args.near_negatives}")
    if not 0 <= args.eval_drop_rate < 1:
        raise EdgesenseError(f"--eval-drop-rate must be in [0, 1), got {args.eval_drop_rate}")
    lo, hi = args.drop_rate_range
    if not 0 <= lo <= hi < 1 or not 0 <= args.val_drop_rate < 1:
        raise EdgesenseError("drop rates must lie in [0, 1) (and LO <= HI)")
    model_kwargs = {}
    for item in args.model_arg:
        key, _, value = item.partition("=")
        try:
            model_kwargs[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            raise EdgesenseError(f"--model-arg expects KEY=NUMBER, got {item!r}") from None
    cfg = TrainConfig(model=args.model, frames=args.frames, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, validity=not args.no_validity, noise_label=args.noise_label,
                      drop_variants=max(0, args.drop_variants), threads=args.threads,
                      max_positives=max(0, args.max_positives), model_kwargs=model_kwargs,
                      drop_rate_range=(lo, hi), val_drop_rate=args.val_drop_rate,
                      val_drop_variants=args.val_drop_variants, negatives_per_positive=args.negatives_per_positive,
                      near_negatives=args.near_negatives, distill_weight=args.distill_weight,
                      teacher=str(args.teacher) if args.teacher is not None else None,
                      init=str(args.init) if args.init is not None else None)
    model, result = train_gesture(args.data, cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, result.info, out / f"{args.model}.onnx")
    torch.save(model.state_dict(), out / f"{args.model}.pt")

    evals = {}
    test_split = "test"
    if args.eval_stream is not None:  # spotter thresholds from the stream dataset's validation users
        from dataclasses import replace

        from edgesense.radar.metrics import tune_spotter

        spotter, scores = tune_spotter(onnx_path, args.eval_stream, split="val")
        if spotter:
            info = replace(result.info, spotter=spotter,
                           metrics={**result.info.metrics, "spotter_tuning": scores})
            result.info = info
            onnx_path = export_onnx(model, info, onnx_path)
    evals["clips"] = evaluate_gesture_dataset(onnx_path, args.data[0], test_split, progress_desc="eval clips")
    if args.eval_drop_rate > 0:
        for restore in (True, False):
            key = f"clips_drop{args.eval_drop_rate:g}_{'restored' if restore else 'no_restore'}"
            evals[key] = evaluate_gesture_dataset(onnx_path, args.data[0], test_split, drop_rate=args.eval_drop_rate,
                                                  restore=restore, seed=args.seed, progress_desc=key)
    if args.eval_stream is not None:
        evals["streams"] = evaluate_gesture_dataset(onnx_path, args.eval_stream, test_split, progress_desc="eval streams")
    command = "edgesense train gesture " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("gesture") + 1:]) \
        if "gesture" in sys.argv else "edgesense train gesture ..."
    card = write_model_card(out / "MODEL_CARD.md", result, evals, "\n".join([*args.recipe, command]), onnx_path)
    summary = {**result.to_dict(), "onnx": str(onnx_path), "state_dict": str(out / f"{args.model}.pt"),
               "model_card": str(card),
               "evaluation": {k: {kk: vv for kk, vv in v.items() if kk in ("clips", "streams", "cpu_us_per_frame")}
                              for k, v in evals.items()}}
    if args.json:
        print_json(summary)
    else:
        print(f"{args.model}: {result.params} parameters, {result.macs} MACs, trained in {result.seconds:.0f} s")
        for key, ev in evals.items():
            if "clips" in ev:
                m = ev["clips"]
                print(f"  {key}: clip accuracy {m.accuracy:.4f}, balanced {m.balanced_accuracy:.4f} (n={m.n})")
            if "streams" in ev:
                s = ev["streams"]
                print(f"  {key}: event F1 {s.f1:.4f}, false triggers/min {s.false_triggers_per_min:.2f}, "
                      f"latency p95 {s.latency_s.get('p95', float('nan')) * 1000:.0f} ms")
        print(f"  wrote {onnx_path}, {out / (args.model + '.pt')}, {card}")
    return 0
