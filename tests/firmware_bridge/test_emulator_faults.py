"""The C emulator's free-running stream (stdout) decoded by the host: faults are all accounted for."""

import shutil
import subprocess

import numpy as np
import pytest

from edgesense.bridge import MsgType, StreamDecoder
from edgesense.bridge.emulator import emulator_binary, emulator_payload
from edgesense.profiles import load_profile

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="building the firmware bridge needs make and a C compiler (cc)")


def run_stdout(tmp_path, *args):
    log = tmp_path / "faults.log"
    raw = subprocess.run([str(emulator_binary()), "--stdout", "--fast", "--log", str(log), *map(str, args)],
                         capture_output=True, check=True, timeout=60).stdout
    faults: dict[int, set[str]] = {}
    for line in log.read_text().splitlines():
        seq, kind = line.split()
        faults.setdefault(int(seq), set()).add(kind)
    return raw, faults


@pytest.mark.parametrize("profile_name,seed", [("ad60", 11), ("speaker-ref", 12), ("rdi32", 13)])
def test_every_fault_is_accounted_for(tmp_path, profile_name, seed):
    n = 1500
    raw, faults = run_stdout(tmp_path, "--profile", profile_name, "--seed", seed, "--max-frames", n,
                             "--start-seq", 2**32 - 700, "--drop-rate", 0.02, "--corrupt-rate", 0.02,
                             "--garbage-rate", 0.02, "--truncate-rate", 0.02)
    profile = load_profile(profile_name)
    decoder = StreamDecoder()
    pieces = [raw[i:i + 4093] for i in range(0, len(raw), 4093)]  # arbitrary read sizes
    received = [m for piece in pieces for m in decoder.feed(piece)]
    sent = {(2**32 - 700 + k) % 2**32 for k in range(n)}
    lost = {seq for seq, kinds in faults.items() if kinds & {"drop", "corrupt", "truncate"}}
    kinds = [k for ks in faults.values() for k in ks]
    assert {"drop", "corrupt", "truncate", "garbage"} <= set(kinds)
    got = [m.seq for m in received]
    assert all(m.msg_type == MsgType.DATA for m in received)
    assert len(got) == len(set(got))
    assert set(got) == sent - lost          # every undamaged frame arrives, no damaged one does
    for m in received:
        assert m.array().tobytes() == emulator_payload(profile, m.seq, seed).tobytes()
    damaged = sum(1 for ks in faults.values() if ks & {"corrupt", "truncate"})
    # each damaged frame and each garbage burst is at least one counted corrupt candidate
    assert decoder.stats.corrupt >= damaged
    assert decoder.stats.corrupt <= 2 * damaged + 65 * kinds.count("garbage")


def test_payload_file_is_streamed_verbatim(tmp_path):
    profile = load_profile("speaker-ref")
    data = np.random.default_rng(0).standard_normal((5, *profile.payload_shape)).astype(np.float32)
    path = tmp_path / "payload.f32"
    path.write_bytes(data.tobytes())
    raw, _ = run_stdout(tmp_path, "--profile", "speaker-ref", "--payload-file", path, "--max-frames", 12)
    received = StreamDecoder().feed(raw)
    assert [m.seq for m in received] == list(range(12))
    for m in received:
        assert np.array_equal(m.array(), data[m.seq % 5])


def test_bad_arguments_fail_with_a_message():
    result = subprocess.run([str(emulator_binary()), "--stdout", "--profile", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown profile" in result.stderr
