"""Message encoding and parsing, checked against the spec's worked example and the C encoder."""

import shutil
import subprocess
import zlib

import numpy as np
import pytest

from edgesense.bridge import (
    DeviceInfo, DeviceStatus, FaultSettings, FrameError, MsgType, VersionMismatch, cobs_decode, cobs_encode,
    encode_data, encode_message, parse_body,
)
from edgesense.bridge.emulator import firmware_bridge_dir
from edgesense.bridge.protocol import dtype_code

WORKED_EXAMPLE = ("02010324050101010207010101010101010101010101010101010101010101010101010103010205"
                  "cc0e33d200")


def body_of(wire: bytes) -> bytearray:
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    return cobs_decode(wire[:-1])


def test_worked_example_from_protocol_md():
    wire = encode_message(MsgType.PING, 7, 0, b"\x01\x02\x00")
    assert wire.hex() == WORKED_EXAMPLE
    body = body_of(wire)
    assert len(body) == 43 and body[2] == 0x24
    assert int.from_bytes(body[39:], "little") == zlib.crc32(body[:39])


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="no C compiler / make")
def test_c_encoder_produces_the_same_worked_example():
    root = firmware_bridge_dir()
    subprocess.run(["make", "-s", "-C", str(root), "build/test_esb"], check=True, capture_output=True)
    out = subprocess.run([str(root / "build" / "test_esb")], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("worked-example:"))
    assert line.split(":", 1)[1] == WORKED_EXAMPLE


@pytest.mark.parametrize("dtype,shape", [("complex64", (32, 32)), ("float32", (48, 2)), ("int16", (3, 4, 5, 2)),
                                         ("uint8", (7,)), ("float64", ())])
def test_data_round_trip(dtype, shape):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal(shape) * 100).astype(dtype)
    msg = parse_body(body_of(encode_data(0xFFFFFFFF, 2**40 + 5, arr, sensor_kind=1)))
    assert msg.msg_type == MsgType.DATA and msg.seq == 0xFFFFFFFF and msg.time_us == 2**40 + 5
    assert msg.sensor_kind == 1 and msg.dims == shape
    out = msg.array()
    assert out.dtype == np.dtype(dtype) and out.shape == shape
    assert out.tobytes() == arr.tobytes()


def test_every_single_bit_error_is_rejected():
    body = body_of(encode_message(MsgType.DATA, 3, 9, bytes(range(16)), dtype=1, dims=(16,)))
    for byte in range(len(body)):
        for bit in range(8):
            damaged = bytearray(body)
            damaged[byte] ^= 1 << bit
            with pytest.raises(FrameError):
                parse_body(damaged)


def test_foreign_major_version_is_reported_not_parsed():
    wire = encode_message(MsgType.DATA, 1, 0, b"\x00" * 8, dtype=9, dims=(1,), major=2, minor=3)
    with pytest.raises(VersionMismatch) as info:
        parse_body(body_of(wire))
    assert (info.value.major, info.value.minor) == (2, 3)


def test_newer_minor_extra_header_fields_are_skipped():
    wire = encode_message(MsgType.DATA, 5, 1, b"\x01\x02\x03\x04", dtype=1, dims=(4,), minor=9,
                          extra_header=b"\xee" * 20)
    msg = parse_body(body_of(wire))
    assert msg.minor == 9 and msg.seq == 5 and bytes(msg.payload) == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b[:5], "short"),
    (lambda b: bytes([1, 0, 20]) + bytes(b[3:]), "header"),  # header_len below 36
])
def test_impossible_bodies(mutate, reason):
    body = bytes(mutate(body_of(encode_message(MsgType.PING, 1))))
    body = body[:-4] + zlib.crc32(body[:-4]).to_bytes(4, "little") if len(body) >= 7 else body
    with pytest.raises(FrameError) as info:
        parse_body(body)
    assert info.value.reason == reason


def test_data_size_must_match_shape():
    body = bytearray(body_of(encode_message(MsgType.DATA, 1, 0, b"\x00" * 7, dtype=9, dims=(1,))))
    with pytest.raises(FrameError) as info:
        parse_body(body)
    assert info.value.reason == "size"


def test_records_round_trip():
    info = DeviceInfo(7, 8192, 25000, 1, 9, (32, 32), "ad60", "fw 1.2")
    assert DeviceInfo.from_bytes(info.to_bytes()) == info
    assert DeviceInfo.from_bytes(info.to_bytes() + b"future fields") == info
    status = DeviceStatus.from_bytes(bytes(range(28)) + b"\x01\x00\x00\x00")
    assert status.frames_captured == int.from_bytes(bytes(range(4)), "little")
    assert DeviceStatus.from_bytes(b"\x05\x00\x00\x00").frames_sent is None
    assert len(FaultSettings(0.01, 0.02).to_bytes()) == 24
    with pytest.raises(ValueError):
        FaultSettings(drop_rate=2.0).to_bytes()


def test_dtype_codes():
    assert dtype_code("complex64") == 9 and dtype_code(">f4") == 7
    with pytest.raises(ValueError):
        dtype_code("U3")
    assert cobs_encode(b"") == b"\x01"
