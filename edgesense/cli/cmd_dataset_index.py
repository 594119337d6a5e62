"""``edgesense dataset index``: (re)build a dataset's index with splits by subject."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json, split_fractions
from edgesense.errors import EdgesenseError
from edgesense.recording import write_dataset_index

COMMAND = ("dataset", "index")
HELP = "scan a directory of recordings and write index.json with train/val/test splits by subject"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="directory holding .esr recordings (searched recursively)")
    parser.add_argument("--splits", type=split_fractions, default={"train": 0.7, "val": 0.15, "test": 0.15},
                        help="split fractions by subject (default: train=0.7,val=0.15,test=0.15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject shuffle (default: 0)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    if not args.splits:
        raise EdgesenseError("--splits needs at least one NAME=FRACTION")
    ds = write_dataset_index(args.directory, args.splits, seed=args.seed,
                             progress_desc=None if args.json else "indexing")
    summary = ds.summary()
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {args.directory / 'index.json'}: {summary['recordings']} recordings, "
              f"{summary['subjects']} subjects, splits {summary['recordings_per_split']}")
    return 0
