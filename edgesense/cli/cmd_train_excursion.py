"""``edgesense train excursion``: train an excursion network (FFTNet, ConvNet or hybrid) on speaker data."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json

COMMAND = ("train", "excursion")
HELP = "train a speaker-excursion network (fftnet | convnet | hybrid) on I/V/X recordings; writes ONNX + card"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, action="append",
                        help="dataset directory with train and val splits of v, i, x (repeatable)")
    parser.add_argument("--model", choices=["fftnet", "convnet", "hybrid"], default="fftnet")
    parser.add_argument("--out", required=True, help="output directory (e.g. models/fftnet)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="epochs of --steps steps (default 30)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per epoch (default 50)")
    parser.add_argument("--init", default=None, help="fine-tune from this trained .pt (same model type)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--loud-weight", type=float, default=0.0,
                        help="extra loss weight on loud samples, |x| >= 0.1 mm (default 0: plain MSE)")
    parser.add_argument("--clip-tracks", action="store_true",
                        help="hybrid: run the tracker on each clip from rest (default: over each clip's whole "
                             "stream of train and val clips, as deployed)")
    parser.add_argument("--target-bl", choices=["true", "datasheet"], default="true",
                        help="Bl that scales the training targets: the calibrated (true) Bl of simulated "
                             "recordings (default) or the datasheet Bl the model is deployed with")
    parser.add_argument("--scenario-weight", action="append", default=[], metavar="SCENARIO=W",
                        help="sample crops of recordings of this scenario (metadata 'scenario', e.g. hot) W times "
                             "as often (repeatable; default 1)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:

    from edgesense.errors import EdgesenseError
    from edgesense.nn.train_excursion import TrainConfig, train_excursion, write_model_card

    for d in args.data:
        if not Path(d).is_dir():
            raise EdgesenseError(f"dataset directory not found: {d}")
    cfg = TrainConfig(arch=args.model, seed=args.seed, threads=args.threads)
    if args.epochs is not None:
        if args.epochs < 1:
            raise EdgesenseError(f"--epochs must be >= 1, got {args.epochs}")
        cfg.epochs = args.epochs
    if args.steps is not None:
        if args.steps < 1:
            raise EdgesenseError(f"--steps must be >= 1, got {args.steps}")
        cfg.steps_per_epoch = args.steps
    if args.lr is not None:
        if not args.lr > 0:
            raise EdgesenseError(f"--lr must be positive, got {args.lr}")
        cfg.lr = args.lr
    if not args.loud_weight >= 0:
        raise EdgesenseError(f"--loud-weight must be >= 0, got {args.loud_weight}")
    cfg.loud_weight = args.loud_weight
    cfg.stream_context = not args.clip_tracks
    cfg.target_bl = args.target_bl
    for item in args.scenario_weight:
        name, _, w = item.partition("=")
        try:
            weight = float(w)
        except ValueError:
            weight = -1.0
        if not name or not weight > 0:
            raise EdgesenseError(f"--scenario-weight wants SCENARIO=W with W > 0, got {item!r}")
        cfg.scenario_weight[name] = weight
    result = train_excursion(args.data, args.model, args.out, cfg, init=args.init)
    card = write_model_card(result, cfg, args.data, Path(args.out) / "MODEL_CARD.md")
    out = result.to_dict() | {"model_card": str(card)}
    if args.json:
        print_json(out)
    else:
        print(f"{args.model}: {result.parameters} parameters, {result.macs_per_sample:.0f} MACs/sample, "
              f"receptive field {result.receptive_field_ms:.1f} ms")
        print(f"validation NRMSE {result.val_nrmse * 100:.2f} % (RMSE {result.val_rmse_mm * 1000:.1f} um) "
              f"on {result.val_recordings} recordings; trained in {result.seconds:.0f} s")
        print(f"wrote {result.onnx}, {result.state_dict}, {card}")
    return 0
