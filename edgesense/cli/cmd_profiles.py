"""``edgesense profiles``: list the built-in sensor profiles or show one."""

from __future__ import annotations

import argparse

from edgesense.cli.common import add_json_flag, print_json
from edgesense.profiles import builtin_profiles, load_profile

COMMAND = ("profiles",)
HELP = "list built-in sensor profiles, or show one (name or JSON file) in full"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="profile name or JSON file to show")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    if args.name:
        profile = load_profile(args.name)
        if args.json:
            print_json(profile.to_dict())
        else:
            for key, value in profile.to_dict().items():
                print(f"{key:>22}: {value}")
            print(f"{'payload':>22}: {profile.payload_dtype}{list(profile.payload_shape)} "
                  f"at {profile.frame_rate_hz:g} frames/s")
        return 0
    profiles = builtin_profiles()
    if args.json:
        print_json({name: p.to_dict() for name, p in profiles.items()})
        return 0
    for name, p in profiles.items():
        print(f"{name:<14} {p.kind:<11} {p.payload_dtype}{list(p.payload_shape)} @ {p.frame_rate_hz:g}/s  {p.description}")
    return 0
