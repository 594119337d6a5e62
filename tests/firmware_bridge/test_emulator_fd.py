"""The emulator on an inherited file descriptor (one end of a socketpair), driven by raw messages."""

import shutil
import socket
import subprocess
import time

import pytest

from edgesense.bridge import DeviceInfo, MsgType, NakCode, StreamDecoder, encode_message
from edgesense.bridge.emulator import emulator_binary, emulator_payload
from edgesense.profiles import load_profile

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="building the firmware bridge needs make and a C compiler (cc)")


def read_until(sock, decoder, predicate, timeout=3.0):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate(got):
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        got += decoder.feed(data)
    return got


def test_requests_over_an_inherited_fd():
    host, device = socket.socketpair()
    host.settimeout(0.2)
    proc = subprocess.Popen([str(emulator_binary()), "--fd", str(device.fileno()), "--profile", "speaker-ref",
                             "--seed", "5"], pass_fds=[device.fileno()], stdout=subprocess.PIPE, text=True)
    device.close()
    try:
        assert proc.stdout.readline().strip() == "READY"
        decoder = StreamDecoder()
        host.sendall(encode_message(MsgType.HELLO, 1, 0, bytes(8)) + encode_message(MsgType.PING, 2, 0, b"abc")
                     + encode_message(0x3C, 3) + b"\x13\x37garbage\x00" + encode_message(MsgType.START, 4))
        got = read_until(host, decoder, lambda g: sum(m.msg_type == MsgType.DATA for m in g) >= 5)
        answers = {m.seq: m for m in got if m.msg_type in (MsgType.ACK, MsgType.NAK)}
        info = DeviceInfo.from_bytes(answers[1].answer)
        assert info.profile == "speaker-ref" and info.dims == (48, 2) and info.frame_period_us == 1000
        assert answers[2].msg_type == MsgType.ACK and answers[2].answer == b"abc"
        assert answers[3].msg_type == MsgType.NAK and answers[3].nak_code == NakCode.UNKNOWN_TYPE
        assert answers[4].msg_type == MsgType.ACK and answers[4].answers == MsgType.START
        data = [m for m in got if m.msg_type == MsgType.DATA]
        profile = load_profile("speaker-ref")
        assert [m.seq for m in data[:5]] == [0, 1, 2, 3, 4]
        assert all(m.array().tobytes() == emulator_payload(profile, m.seq, 5).tobytes() for m in data)
        host.sendall(encode_message(MsgType.GET_STATUS, 5))
        got = read_until(host, decoder, lambda g: any(m.seq == 5 and m.msg_type == MsgType.ACK for m in g))
        status = next(m for m in got if m.seq == 5 and m.msg_type == MsgType.ACK)
        rx_corrupt, rx_unknown = int.from_bytes(status.answer[12:16], "little"), int.from_bytes(status.answer[16:20], "little")
        assert rx_corrupt == 1 and rx_unknown == 1  # the garbage and the unknown request
    finally:
        host.close()
    assert proc.wait(timeout=3) == 0  # the peer closed: the emulator exits
    proc.stdout.close()
