"""``edgesense simulate radar``: write a simulated radar gesture dataset (clips or continuous streams)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_float, positive_int, print_json
from edgesense.errors import ProfileError
from edgesense.profiles import RadarCIRProfile, load_profile

COMMAND = ("simulate", "radar")
HELP = "simulate users performing radar hand gestures and write a dataset (clips or streams) with splits by user"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", required=True, type=Path, help="dataset directory to write")
    parser.add_argument("--mode", choices=("clip", "stream"), default="clip",
                        help="clip: one recording per gesture clip; stream: long recordings with gesture events")
    parser.add_argument("--users", type=positive_int, default=30, help="number of simulated users (default 30)")
    parser.add_argument("--clips-per-class", type=positive_int, default=40,
                        help="clip mode: clips per class per user (default 40)")
    parser.add_argument("--frames", type=positive_int, default=80, help="clip mode: frames per clip (default 80 = 2 s)")
    parser.add_argument("--minutes", type=positive_float, default=10.0,
                        help="stream mode: total minutes, spread over the users (default 10)")
    parser.add_argument("--sessions", type=positive_int, default=None,
                        help="environments per user (default 2 in clip mode, 1 in stream mode)")
    parser.add_argument("--seed", type=int, default=0, help="everything is deterministic in the seed (default 0)")
    parser.add_argument("--profile", default="ad60", help="radar CIR profile name or JSON file (default ad60)")
    parser.add_argument("--store", choices=("cir", "rdi"), default="cir",
                        help="clip mode: write raw complex frames (cir, default) or their range-Doppler images (rdi)")
    parser.add_argument("--overwrite", action="store_true", help="replace recordings already in --out")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from edgesense.sim.radar_dataset import write_clip_dataset, write_stream_dataset

    profile = load_profile(args.profile)
    if not isinstance(profile, RadarCIRProfile):
        raise ProfileError(f"profile {profile.name!r} is {profile.kind!r}; simulate radar needs a radar_cir profile")
    if args.mode == "clip":
        summary = write_clip_dataset(args.out, profile, users=args.users, clips_per_class=args.clips_per_class,
                                     seed=args.seed, n_frames=args.frames, sessions=args.sessions or 2,
                                     overwrite=args.overwrite, store=args.store)
    else:
        summary = write_stream_dataset(args.out, profile, users=args.users, minutes=args.minutes, seed=args.seed,
                                       sessions=args.sessions or 1, overwrite=args.overwrite)
    if args.json:
        print_json(summary.to_dict())
    else:
        split_text = ", ".join(f"{k}: {len(v)} users" for k, v in summary.splits.items())
        print(f"wrote {summary.recordings} {summary.mode} recordings ({summary.frames} frames, {summary.events} "
              f"gesture events, profile {summary.profile}) to {summary.out} in {summary.seconds:.1f} s; {split_text}")
    return 0
