"""``edgesense stream``: open any source and show live statistics."""

from __future__ import annotations

import argparse
import sys
import time

from edgesense.cli.common import add_json_flag, positive_float, print_json
from edgesense.sources import open_source

COMMAND = ("stream",)
HELP = "open a source (simulator, recording, serial device) and show live frame statistics"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="sim://ad60",
                        help="source URL: sim://PROFILE[?drop=0.05], replay://FILE.esr[?speed=2], FILE.esr, "
                             "or a serial port / loop:// / socket://HOST:PORT (default: %(default)s)")
    parser.add_argument("--profile", help="sensor profile for serial devices that do not announce one")
    parser.add_argument("--seconds", type=positive_float, default=5.0, help="stop after this long (default: %(default)s)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    last_print = start
    with open_source(args.source, profile=args.profile) as source:
        for _ in source:
            now = time.monotonic()
            if not args.json and now - last_print >= 1.0:
                last_print = now
                rate = source.stats.frames_received / (now - start)
                print(f"[{now - start:5.1f}s] {source.stats.summary()}, {rate:.1f} frames/s", flush=True)
            if now - start >= args.seconds:
                break
        elapsed = time.monotonic() - start
        stats = source.stats.to_dict()
        profile = source.profile
    result = {"source": args.source, "profile": profile.name, "seconds": round(elapsed, 3), **stats}
    if args.json:
        print_json(result)
    else:
        print(f"{profile.name}: {source.stats.summary()} in {elapsed:.1f} s", file=sys.stdout)
    return 0
