"""Host-side decode throughput of the firmware bridge on one core, against a profile's data rate.

Builds a stream of DATA frames of the profile (by default the C emulator's own output, else the
Python encoder), then times :class:`edgesense.bridge.StreamDecoder` on it in 64 KiB reads, the way
:class:`edgesense.stream.serial.SerialSource` reads a link, including turning each frame into its
numpy array. ``--payload zeros`` is the worst case for COBS (one code byte per payload byte).

    python tools/bench_bridge_decode.py [--profile ad60] [--frames 4000] [--payload emulator|noise|zeros] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from edgesense.bridge import StreamDecoder, encode_data
from edgesense.bridge.protocol import kind_code
from edgesense.profiles import load_profile


def make_stream(profile, frames: int, payload: str) -> bytes:
    if payload == "emulator":
        try:
            from edgesense.bridge.emulator import emulator_binary

            return subprocess.run([str(emulator_binary()), "--stdout", "--fast", "--profile", profile.name,
                                   "--max-frames", str(frames)], capture_output=True, check=True).stdout
        except Exception as exc:  # noqa: BLE001 - fall back to the Python encoder
            print(f"emulator unavailable ({exc}); using the Python encoder", file=sys.stderr)
            payload = "noise"
    rng = np.random.default_rng(0)
    shape, dtype = profile.payload_shape, profile.payload_dtype
    out = []
    for seq in range(frames):
        if payload == "zeros":
            arr = np.zeros(shape, dtype)
        else:
            arr = rng.standard_normal((*shape, 2) if dtype.kind == "c" else shape).astype(np.float32)
            arr = arr.view(np.complex64)[..., 0] if dtype.kind == "c" else arr.astype(dtype)
        out.append(encode_data(seq, seq * profile.frame_period_us, arr, kind_code(profile.kind)))
    return b"".join(out)


def bench(stream: bytes, chunk: int = 1 << 16, repeats: int = 3) -> tuple[float, int]:
    """Best-of-``repeats`` seconds to decode ``stream`` (and build every array), and frames decoded."""
    best = float("inf")
    frames = 0
    for _ in range(repeats):
        decoder = StreamDecoder()
        t0 = time.perf_counter()
        frames = 0
        for start in range(0, len(stream), chunk):
            for message in decoder.feed(stream[start:start + chunk]):
                message.array()
                frames += 1
        best = min(best, time.perf_counter() - t0)
        assert decoder.stats.corrupt == 0
    return best, frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ad60")
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--payload", choices=["emulator", "noise", "zeros"], default="emulator")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    stream = make_stream(profile, args.frames, args.payload)
    seconds, frames = bench(stream)
    wire_rate = len(stream) / frames * profile.frame_rate_hz  # bytes/s the device sends at its real rate
    result = {
        "profile": profile.name, "payload": args.payload, "frames": frames, "stream_bytes": len(stream),
        "decode_s": round(seconds, 4), "mb_per_s": round(len(stream) / seconds / 1e6, 2),
        "frames_per_s": round(frames / seconds, 1),
        "profile_wire_rate_kb_per_s": round(wire_rate / 1e3, 1),
        "x_real_time": round(len(stream) / seconds / wire_rate, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{profile.name} ({args.payload} payloads): decoded {frames} frames, {len(stream) / 1e6:.1f} MB in "
              f"{seconds:.3f} s on one core = {result['mb_per_s']} MB/s, {result['frames_per_s']:.0f} frames/s; "
              f"the device sends {result['profile_wire_rate_kb_per_s']} kB/s, so decoding runs "
              f"{result['x_real_time']}x faster than real time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
