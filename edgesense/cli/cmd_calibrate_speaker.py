"""``edgesense calibrate speaker``: identify a known speaker's large-signal parameters from labelled recordings."""

from __future__ import annotations

import argparse

from edgesense.cli.common import add_json_flag, positive_float, print_json

COMMAND = ("calibrate", "speaker")
HELP = "identify a known speaker's large-signal parameters (Bl(x), Kms(x), L'(x)) from laser-labelled V/I recordings"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", required=True,
                        help="dataset directory with v, i, x recordings (repeatable)")
    parser.add_argument("--speaker", required=True,
                        help="speaker profile name (e.g. sim-ref) or recording subject (e.g. ref) to calibrate")
    parser.add_argument("--out", required=True, help="calibration .json to write")
    parser.add_argument("--split", default="train", help="dataset split to use (default train; 'all' for every clip)")
    parser.add_argument("--scenarios", default="nominal",
                        help="comma-separated recording scenarios to use (default nominal; 'all' for every one)")
    parser.add_argument("--band-hz", type=positive_float, default=2000.0,
                        help="equations low-passed at this frequency before the least-squares fit (default 2000)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgesense.errors import EdgesenseError
    from edgesense.speaker.largesignal import calibrate, save_calibration
    from edgesense.speaker.pipeline import load_signals

    out = Path(args.out)
    if not out.parent.is_dir():
        raise EdgesenseError(f"output directory does not exist: {out.parent}")
    scenarios = None if args.scenarios == "all" else set(args.scenarios.split(","))
    chosen = []
    for k, d in enumerate(args.data):
        if not Path(d).exists():
            raise EdgesenseError(f"dataset not found: {d}")
        for s in load_signals(d, None if args.split == "all" else args.split):
            if args.speaker not in (s.profile.name, s.metadata.get("subject")):
                continue
            if scenarios is not None and str(s.metadata.get("scenario")) not in scenarios:
                continue
            if s.x is None:
                raise EdgesenseError(f"{d}/{s.name}: no laser channel x to calibrate from")
            # clips of one stream are joined in order; streams of different datasets stay apart
            s.metadata["stream"] = f"{k}:{s.metadata.get('stream', s.name)}"
            chosen.append(s)
    if not chosen:
        raise EdgesenseError(f"no {args.split} recordings of speaker {args.speaker!r} in {', '.join(args.data)}")
    names = {s.profile.name for s in chosen}
    if len(names) > 1:
        raise EdgesenseError(f"speaker {args.speaker!r} matches several profiles: {', '.join(sorted(names))}")
    source = f"{', '.join(args.data)}: {args.split} clips, scenarios {args.scenarios}"
    params = calibrate(chosen, chosen[0].speaker, chosen[0].fs, band_hz=args.band_hz,
                       speaker=chosen[0].profile.name, source=source)
    save_calibration(params, out)
    if args.json:
        print_json({"out": str(out), "clips": len(chosen)} | params.to_dict())
    else:
        p = params
        print(f"{p.speaker}: {len(chosen)} clips -> {out}\n  Bl0 {p.bl:.4f} N/A, Kms0 {p.kms:.1f} N/m, Rms {p.rms:.4f} kg/s "
              f"(Mms {p.mms * 1e3:.4f} g fixed), Bl shape {[round(c, 4) for c in p.bl_shape]}, "
              f"Kms shape {[round(c, 4) for c in p.k_shape]}, Le slope (uH) {[round(c * 1e6, 3) for c in p.le_slope]}")
    return 0
