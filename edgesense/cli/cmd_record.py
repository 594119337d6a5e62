"""``edgesense record``: record a live stream into the recording format, crash-safe."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from edgesense.cli.common import add_json_flag, key_value, positive_float, print_json
from edgesense.recording import RecordingWriter
from edgesense.sources import open_source

COMMAND = ("record",)
HELP = "record a device, simulator or replayed stream to an .esr file (readable even after a crash)"


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--source", help="source URL (sim://PROFILE, replay://FILE.esr, ...); default sim://ad60")
    src.add_argument("--port", help="serial device URL: /dev/ttyUSB0, COM3, loop://, socket://HOST:PORT, a pty path")
    parser.add_argument("--out", "-o", required=True, type=Path, help="output .esr file")
    parser.add_argument("--seconds", type=positive_float, help="stop after this long (default: until Ctrl-C)")
    parser.add_argument("--profile", help="sensor profile for devices that do not announce one")
    parser.add_argument("--subject", help="who is being recorded (needed for datasets)")
    parser.add_argument("--session", help="session name")
    parser.add_argument("--device", help="device name or serial number")
    parser.add_argument("--environment", help="where the recording was made")
    parser.add_argument("--meta", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="extra metadata (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_json_flag(parser)


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    url = args.port or args.source or "sim://ad60"
    metadata = {k: v for k, v in (("subject", args.subject), ("session", args.session), ("device", args.device),
                                  ("environment", args.environment)) if v is not None}
    metadata.update(dict(args.meta))
    metadata.setdefault("source", url)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    interrupted = False
    try:
        with open_source(url, profile=args.profile) as source:
            writer = RecordingWriter(args.out, source.profile, metadata, overwrite=args.overwrite)
            start = time.monotonic()          # --seconds counts from here, not from opening the source
            try:
                for frame in source:
                    writer.write(frame)
                    if args.seconds is not None and time.monotonic() - start >= args.seconds:
                        break
            except KeyboardInterrupt:
                interrupted = True
            finally:
                writer.close(stats=source.stats.to_dict())
    finally:
        signal.signal(signal.SIGTERM, previous)
    stats = source.stats
    # frames the reader took in that neither reached the file nor were dropped for overflow: still in
    # the source's buffer when the recording stopped
    unrecorded = max(0, stats.frames_received - stats.overflow_drops - writer.frames_written)
    result = {"out": str(args.out), "frames": writer.frames_written, "seconds": round(time.monotonic() - start, 3),
              "interrupted": interrupted, "not_recorded_at_stop": unrecorded, **stats.to_dict()}
    if args.json:
        print_json(result)
    else:
        tail = f"; {unrecorded} received after the stop were not recorded" if unrecorded else ""
        print(f"recorded {writer.frames_written} frames of {source.profile.name} to {args.out} "
              f"({stats.summary()}{tail})")
    return 0
