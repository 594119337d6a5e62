"""Consistent Overhead Byte Stuffing (Cheshire and Baker, IEEE/ACM Trans. Networking 7(2), 1999).

COBS removes every ``0x00`` from a message so ``0x00`` can delimit messages on a byte stream: a
receiver that lost track finds the next boundary at the next ``0x00``. The encoding here is the
canonical one (no empty block after a final 254-byte run), byte-identical to the C core in
``firmware_bridge/src/esb_cobs.c``. Decoding walks the code bytes in Python for ordinary data (a
handful of slices per frame) and switches to a vectorised numpy walk for zero-dense frames.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CobsError", "cobs_encode", "cobs_decode"]

# Above this many code bytes per frame the numpy pointer-doubling walk beats the Python loop.
_LOOP_LIMIT = 96


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` (no delimiter is appended)."""
    runs = bytes(data).split(b"\x00")
    out = bytearray()
    for index, run in enumerate(runs):
        pos = 0
        while len(run) - pos >= 254:
            out.append(0xFF)
            out += run[pos:pos + 254]
            pos += 254
        rest = run[pos:]
        if rest or not run or index < len(runs) - 1:
            out.append(len(rest) + 1)
            out += rest
    return bytes(out)


def cobs_decode(frame: bytes | bytearray | memoryview) -> bytearray:
    """Decode one frame (the bytes between two delimiters); raises :class:`CobsError` if invalid."""
    frame = bytes(frame)
    n = len(frame)
    if n == 0:
        raise CobsError("empty frame")
    parts = []
    i = 0
    steps = 0
    while i < n:
        code = frame[i]
        j = i + code
        if code == 0 or j > n:
            raise CobsError("code byte points past the end of the frame" if code else "zero byte inside a frame")
        parts.append(frame[i + 1:j])
        if code != 0xFF and j < n:
            parts.append(b"\x00")
        i = j
        steps += 1
        if steps > _LOOP_LIMIT and n - i > 4 * _LOOP_LIMIT:
            return bytearray(b"").join(parts) + _decode_numpy(frame[i:])
    out = bytearray(b"").join(parts)
    if b"\x00" in frame:
        raise CobsError("zero byte inside a frame")
    return out


def _decode_numpy(frame: bytes) -> bytearray:
    """Vectorised decode: find the chain of code bytes by pointer doubling, O(n log n) in numpy."""
    enc = np.frombuffer(frame, dtype=np.uint8)
    n = enc.size
    if (enc == 0).any():
        raise CobsError("zero byte inside a frame")
    raw_next = np.arange(n, dtype=np.int64) + enc
    jump = np.minimum(raw_next, n)
    jump = np.append(jump, n)  # index n is the terminal
    on_chain = np.zeros(n + 1, dtype=bool)
    on_chain[0] = True
    while True:
        on_chain[jump[on_chain]] = True
        if jump[0] >= n:
            break
        jump = jump[jump]
    on_chain[n] = False
    codes_at = np.flatnonzero(on_chain)
    if raw_next[codes_at[-1]] != n:
        raise CobsError("code byte points past the end of the frame")
    out = enc.copy()
    keep = np.ones(n, dtype=bool)
    keep[0] = False
    later = codes_at[1:]
    out[later] = 0
    keep[later] = enc[codes_at[:-1]] != 0xFF
    return bytearray(out[keep].tobytes())
