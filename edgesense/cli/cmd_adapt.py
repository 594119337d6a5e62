"""``edgesense adapt``: BN re-estimation of an excursion network on a speaker's unlabeled V/I, or the
datasheet-prior large-signal model of an unseen speaker (``--datasheet-prior``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json

COMMAND = ("adapt",)
HELP = ("adapt an excursion network to one speaker by BN re-estimation on unlabeled V/I, with a safety guard; "
        "or write an unseen speaker's large-signal model from its datasheet (--datasheet-prior)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="trained model: .pt (or .onnx with its .pt and .json beside it)")
    parser.add_argument("--datasheet-prior", action="store_true",
                        help="instead of a network: write --out (.json) with the speaker's large-signal model from its "
                             "profile's datasheet and the family prior shapes, a calibration that "
                             "ExcursionPipeline(profile, OUT) and eval excursion --calibration run")
    parser.add_argument("--data", required=True, help="recording (.esr) or dataset directory of ONE speaker (x not used)")
    parser.add_argument("--split", default=None, help="dataset split to use (default: all recordings)")
    parser.add_argument("--mode", choices=["means", "all", "input"], default="means",
                        help="BN statistics to re-estimate: means of every layer (default), everything "
                             "(the paper / AIMET), or the input layer only")
    parser.add_argument("--batches", type=int, default=64, help="re-estimation batches (default 64)")
    parser.add_argument("--window-ms", type=float, default=340.0, help="window per batch row (default 340 ms)")
    parser.add_argument("--no-guard", action="store_true", help="keep the adaptation even if the guard objects")
    parser.add_argument("--out", default=None, help="write the adapted model here (.onnx; .pt/.json beside it); with "
                             "--datasheet-prior the calibration .json")
    parser.add_argument("--seed", type=int, default=0)
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from edgesense.errors import EdgesenseError

    if args.datasheet_prior:
        return _datasheet_prior(args)
    if not args.model:
        raise EdgesenseError("give --model (BN re-estimation) or --datasheet-prior")
    from edgesense.nn.train_excursion import adapt_model, export_model, load_trained

    pt = Path(args.model).with_suffix(".pt")
    model, spec = load_trained(pt)
    signals, speakers = _one_speaker(args)
    window = max(1, int(args.window_ms * 48 / spec.frame))
    result = adapt_model(model, spec, signals, mode=args.mode, window=window, num_batches=args.batches,
                         seed=args.seed, guard=not args.no_guard)
    written = None
    if args.out and result.accepted:
        written = str(export_model(model, spec, args.out)[0])
    out = result.to_dict() | {"speaker": speakers[0], "recordings": len(signals), "written": written}
    if args.json:
        print_json(out)
    else:
        print(f"{speakers[0]}: BN re-estimation ({args.mode}, {result.batches} batches) "
              f"{'ACCEPTED' if result.accepted else 'REFUSED'}: {result.reason}")
        print(f"  disagreement with the tracked physics model: {result.guard_before:.4f} -> {result.guard_after:.4f}")
        if written:
            print(f"  wrote {written}")
    return 0 if result.accepted else 1


def _one_speaker(args: argparse.Namespace):
    """The recordings of ``--data`` and their one speaker profile name (an error for several)."""
    from edgesense.errors import EdgesenseError
    from edgesense.speaker.pipeline import load_signals

    signals = load_signals(args.data, args.split)
    speakers = sorted({s.profile.name for s in signals})
    if len(speakers) != 1:
        raise EdgesenseError(f"adaptation is per speaker: {args.data} holds {len(speakers)} speakers "
                             f"({', '.join(speakers[:5])}); pass one speaker's recordings")
    return signals, speakers


def _datasheet_prior(args: argparse.Namespace) -> int:
    """Write the datasheet-prior large-signal calibration of the one speaker in ``--data``."""
    from edgesense.errors import EdgesenseError
    from edgesense.speaker.adapt import datasheet_large_signal
    from edgesense.speaker.largesignal import save_calibration

    if args.model:
        raise EdgesenseError("--datasheet-prior needs no --model: it builds a physical model, not a network")
    if not args.out or Path(args.out).suffix.lower() != ".json":
        raise EdgesenseError("--datasheet-prior writes a calibration: give --out FILE.json")
    signals, speakers = _one_speaker(args)
    params = datasheet_large_signal(signals[0].profile.speaker, name=speakers[0])
    save_calibration(params, args.out)
    out = {"speaker": speakers[0], "written": args.out} | params.to_dict()
    if args.json:
        print_json(out)
    else:
        print(f"{speakers[0]}: wrote {args.out} (datasheet Bl {params.bl:.3g} N/A, Xmax {params.xmax * 1e3:.3g} mm, "
              f"shapes b2 {params.bl_shape[1]:+.4f} b4 {params.bl_shape[3]:+.4f} k2 {params.k_shape[1]:+.4f})")
    return 0
