"""``edgesense simulate speaker``: write a simulated micro-speaker V/I/X dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_float, print_json, split_fractions
from edgesense.errors import EdgesenseError

COMMAND = ("simulate", "speaker")
HELP = "simulate nonlinear micro-speakers playing program material and write a V/I/X dataset with splits"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", required=True, type=Path, help="dataset directory to write")
    parser.add_argument("--speakers", default="ref,lite4",
                        help="comma list of named speakers (ref, lite4) and random:N (default ref,lite4)")
    parser.add_argument("--scenarios", default="nominal,hot,leak",
                        help="comma list of scenarios: nominal, hot, leak (default all three)")
    parser.add_argument("--seconds", type=positive_float, default=60.0,
                        help="seconds of program per speaker and scenario (default 60)")
    parser.add_argument("--clip-seconds", type=positive_float, default=10.0,
                        help="seconds per recording; streams are cut into clips (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="everything is deterministic in the seed (default 0)")
    parser.add_argument("--random-splits", type=split_fractions, default={"train": 0.7, "val": 0.15, "test": 0.15},
                        help="split fractions of random speakers, by speaker (default train=0.7,val=0.15,test=0.15); "
                             "named speakers' clips are split by position in their stream")
    parser.add_argument("--oversample", type=int, default=2, help="integration steps per 48 kHz sample (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace recordings already in --out")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from edgesense.sim.speaker_dataset import write_speaker_dataset

    if args.oversample < 1:
        raise EdgesenseError("--oversample must be at least 1")
    summary = write_speaker_dataset(args.out, args.speakers, args.scenarios, args.seconds, args.seed,
                                    args.clip_seconds, args.oversample, args.random_splits, args.overwrite,
                                    show_progress=not args.json)
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['recordings']} recordings ({summary['streams']} streams, "
              f"{summary['audio_seconds']:.0f} s of audio) to {summary['out']}; simulation ran "
              f"{summary['speedup_vs_realtime']}x faster than real time (CPU time; "
              f"{summary['speedup_end_to_end']}x with program synthesis and writing; "
              f"{summary['speedup_end_to_end_wall']}x in elapsed time)")
    return 0
