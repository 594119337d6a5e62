"""Consistent Overhead Byte Stuffing (Cheshire and Baker, IEEE/ACM Trans. Networking 7(2), 1999).

COBS removes every ``0x00`` from a message so ``0x00`` can delimit messages on a byte stream: a
receiver that lost track finds the next boundary at the next ``0x00``. The encoding here is the
canonical one (no empty block after a final 254-byte run), byte-identical to the C core in
``firmware_bridge/src/esb_cobs.c``. Decoding walks the chain of code bytes in Python (the only
sequential part) and joins slices; zero-dense frames switch to numpy (pointer doubling for the
chain, a boolean mask for the assembly).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CobsError", "cobs_encode", "cobs_decode"]

# Above this many code bytes per frame numpy assembly beats joining slices.
_LOOP_LIMIT = 48
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
    # walk the chain of code bytes: the only sequential part of COBS
    codes = []
    i = 0
    while i < n and len(codes) < _WALK_LIMIT:
        codes.append(i)
        i += frame[i]
    if i < n:  # very zero-dense: find the rest of the chain by pointer doubling
        at = np.concatenate([np.array(codes, dtype=np.intp), i + _chain_numpy(frame[i:])])
        return _assemble(frame, at)
    if i != n:
        raise CobsError("code byte points past the end of the frame")
    if len(codes) <= _LOOP_LIMIT:
        parts = []
        last = codes[-1]
        for start in codes:
            end = start + frame[start]
            parts.append(frame[start + 1:end])
            if start != last and frame[start] != 0xFF:
                parts.append(b"\x00")
        return bytearray(b"").join(parts)
    return _assemble(frame, np.array(codes, dtype=np.intp))


def _assemble(frame: bytes, at: np.ndarray) -> bytearray:
    """Decoded bytes given the positions ``at`` of every code byte: numpy instead of many slices."""
    enc = np.frombuffer(frame, dtype=np.uint8)
    n = enc.size
    out = enc.copy()
    out[at] = 0
    keep = np.ones(n, dtype=bool)
    keep[0] = False
    keep[at[1:]] = enc[at[:-1]] != 0xFF
    return bytearray(out[keep].tobytes())


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
