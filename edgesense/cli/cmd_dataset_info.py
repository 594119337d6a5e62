"""``edgesense dataset info``: summarise and validate a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json
from edgesense.recording import Dataset

COMMAND = ("dataset", "info")
HELP = "summarise a dataset (classes, counts, subjects, duration) and validate every recording"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="dataset directory (with index.json)")
    parser.add_argument("--quick", action="store_true",
                        help="check headers and frame counts only, not every chunk's CRC")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    ds = Dataset.open(args.directory)
    summary = ds.summary()
    problems = ds.validate(verify_payloads=not args.quick)
    summary["valid"] = not problems
    summary["problems"] = [{"path": p.path, "reason": p.reason} for p in problems]
    if args.json:
        print_json(summary)
    else:
        print(f"dataset {summary['root']}: {summary['recordings']} recordings, {summary['subjects']} subjects, "
              f"{summary['duration_s'] / 60:.1f} min, profiles {', '.join(summary['profiles'])}")
        print(f"  classes: {', '.join(summary['classes']) or '(none)'}")
        if summary["clips_per_class"]:
            print("  clips per class: " + ", ".join(f"{k} {v}" for k, v in summary["clips_per_class"].items()))
        if summary["events"]:
            print(f"  events: {summary['events']}")
        print("  splits: " + ", ".join(f"{k} {v} recordings / {summary['subjects_per_split'].get(k, 0)} subjects"
                                       for k, v in summary["recordings_per_split"].items()))
        if problems:
            print(f"  {len(problems)} problem(s):")
            for p in problems:
                print(f"    {p.path}: {p.reason}")
        else:
            print("  all recordings valid")
    return 0 if not problems else 1
