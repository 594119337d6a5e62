"""Consistent Overhead Byte Stuffing (Cheshire and Baker, IEEE/ACM Trans. Networking 7(2), 1999).

COBS removes every ``0x00`` from a message so ``0x00`` can delimit messages on a byte stream: a
receiver that lost track finds the next boundary at the next ``0x00``. The encoding here is the
canonical one (no empty block after a final 254-byte run), byte-identical to the C core in
``firmware_bridge/src/esb_cobs.c``. Decoding rewrites the code bytes of a copy in place while walking
their chain in Python (the only sequential part); very zero-dense frames finish the walk in numpy
by pointer doubling.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CobsError", "cobs_encode", "cobs_decode"]

# Beyond this many code bytes the chain walk switches from a Python loop to pointer doubling.
_WALK_LIMIT = 512


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
    if b"\x00" in frame:
        raise CobsError("zero byte inside a frame")
    # Decoding in place of a copy: every code byte but the first becomes the zero it stands for,
    # except after a 254-byte block (code 0xFF), where it is removed. The walk along the chain of
    # code bytes is the only sequential part of COBS.
    out = bytearray(frame)
    removed = []
    code = frame[0]
    i = code
    for _ in range(_WALK_LIMIT):
        if i >= n:
            break
        if code == 0xFF:
            removed.append(i)
        else:
            out[i] = 0
        code = frame[i]
        i += code
    if i < n:  # very zero-dense data: the rest of the chain by pointer doubling
        return _decode_rest_numpy(frame, out, removed, i, code)
    if i != n:
        raise CobsError("code byte points past the end of the frame")
    for position in reversed(removed):
        del out[position]
    del out[0]
    return out


def _decode_rest_numpy(frame: bytes, out: bytearray, removed: list[int], start: int, code: int) -> bytearray:
    """Finish :func:`cobs_decode` from code byte ``start`` on (``code``: the code of the block before it)."""
    enc = np.frombuffer(frame, dtype=np.uint8)
    rest = start + _chain_numpy(frame[start:])
    before = np.empty(rest.size, dtype=np.uint8)
    before[0] = code
    before[1:] = enc[rest[:-1]]
    full = before == 0xFF
    arr = np.frombuffer(out, dtype=np.uint8).copy()
    arr[rest[~full]] = 0
    keep = np.ones(enc.size, dtype=bool)
    keep[0] = False
    keep[np.asarray(removed, dtype=np.intp)] = False
    keep[rest[full]] = False
    return bytearray(arr[keep].tobytes())


def _chain_numpy(frame: bytes) -> np.ndarray:
    """Positions of the code bytes of ``frame`` by pointer doubling: O(n log n) numpy work."""
    enc = np.frombuffer(frame, dtype=np.uint8)
    n = enc.size
    raw_next = np.arange(n, dtype=np.intp) + enc
    jump = np.append(np.minimum(raw_next, n), n)  # index n is the terminal
    on_chain = np.zeros(n + 1, dtype=bool)
    on_chain[0] = True
    while True:  # after step k every node within 2**(k+1) hops of 0 is marked
        on_chain[jump[on_chain]] = True
        if jump[0] >= n:
            break
        jump = jump[jump]
    on_chain[n] = False
    at = np.flatnonzero(on_chain)
    if raw_next[at[-1]] != n:
        raise CobsError("code byte points past the end of the frame")
    return at
