"""End to end (issue 3): the C emulator -> SerialSource for 10 s at the ad60 radar rate (40 frames/s of
32x32 complex64, ~330 kB/s) with 1 % injected corruption and 1 % drops, over a pseudo-terminal and
over TCP loopback. Every undamaged frame arrives bit-exact; every lost frame is reported as a gap
and every damaged one is also a counted corrupt frame; nothing else happens.
"""

import shutil
import time

import pytest

from edgesense.bridge.emulator import Emulator, emulator_payload
from edgesense.stream.serial import SerialSource

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="the device emulator needs make and a C compiler (cc)")

SECONDS = 10
RATE = 40


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_ten_seconds_at_radar_rate_with_corruption_and_drops(tmp_path, transport):
    log = tmp_path / "faults.log"
    args = ["--pty"] if transport == "pty" else ["--tcp", "0"]
    with Emulator([*args, "--profile", "ad60", "--seed", "77", "--drop-rate", "0.01", "--corrupt-rate", "0.01",
                   "--log", str(log)]) as emu:
        with SerialSource(emu.url, profile="ad60") as src:
            received = {}
            for frame in src:
                assert frame.seq not in received
                received[frame.seq] = frame.payload.tobytes() == emulator_payload(src.profile, frame.seq, 77).tobytes()
                if frame.seq >= SECONDS * RATE - 1:
                    break
            # stop the device and take what is still buffered, so frames and stats cover the same span
            src.stop()
            time.sleep(0.3)
            while len(src.buffer):
                frame = src.buffer.get(timeout=0.1)
                received[frame.seq] = frame.payload.tobytes() == emulator_payload(src.profile, frame.seq, 77).tobytes()
            stats = src.stats
            assert stats.frames_received == len(received)
        faults: dict[int, str] = {}
        for line in log.read_text().splitlines():
            seq, kind = line.split()
            faults[int(seq)] = kind

    assert all(received.values()), "a received frame differs from what the device sent"
    first, last = min(received), max(received)
    assert last >= SECONDS * RATE - 1
    span = set(range(first, last + 1))
    missing = span - set(received)
    injected = {seq for seq, kind in faults.items() if seq in span}
    # the only frames missing are the ones the device dropped or damaged, and each of those is missing
    assert missing == injected
    assert {faults[s] for s in injected} <= {"drop", "corrupt"}  # no link overflow, nothing else lost
    assert stats.frames_missing == len(missing)
    assert stats.gaps == len([s for s in missing if s - 1 not in missing])
    corrupted = sum(1 for kind in faults.values() if kind == "corrupt")
    assert corrupted > 0 and len(missing) > corrupted  # both kinds of fault really happened
    assert stats.corrupt_frames >= sum(1 for s in injected if faults[s] == "corrupt")
    assert stats.corrupt_frames <= 2 * corrupted  # a flipped bit costs one frame (two if it made a 0x00)
    assert stats.out_of_order == 0 and stats.overflow_drops == 0
