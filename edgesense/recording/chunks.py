"""The chunk layer of the ``.esr`` recording format (specified in ``datasets/FORMAT.md``).

A file is an 8-byte magic followed by chunks. Each chunk is::

    sync      4 bytes   b"ESRC"
    type      4 bytes   ASCII, e.g. b"HEAD", b"FRMS", b"LABL", b"META", b"ENDS"
    meta_len  u32 LE    length of the JSON metadata
    data_len  u64 LE    length of the binary data
    meta      meta_len bytes of UTF-8 JSON (an object)
    data      data_len bytes: the arrays listed in meta["arrays"], raw C-order, back to back
    crc       u32 LE    CRC-32 (zlib) of type, meta_len, data_len, meta and data

Chunks are only ever appended, so a writer killed mid-chunk leaves every earlier chunk intact; a
reader stops at a truncated tail and resynchronises on the sync word after a damaged chunk.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgesense.errors import FormatError

MAGIC = b"\x89ESR\r\n\x1a\n"
SYNC = b"ESRC"
_HEADER = struct.Struct("<4s4sIQ")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size
MAX_META_BYTES = 16 << 20


def encode_chunk(kind: bytes, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialise one chunk; ``arrays`` are described in ``meta["arrays"]`` automatically."""
    if len(kind) != 4:
        raise ValueError(f"chunk type must be 4 bytes, got {kind!r}")
    meta = dict(meta)
    parts: list[bytes] = []
    if arrays:
        specs = []
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
            arr = arr.astype(dtype, copy=False)
            specs.append({"name": name, "dtype": dtype.str, "shape": list(arr.shape)})
            parts.append(arr.tobytes())
        meta["arrays"] = specs
    meta_bytes = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
    data = b"".join(parts)
    header = _HEADER.pack(SYNC, kind, len(meta_bytes), len(data))
    crc = zlib.crc32(data, zlib.crc32(meta_bytes, zlib.crc32(header[4:])))
    return b"".join((header, meta_bytes, data, _CRC.pack(crc)))


@dataclass
class Chunk:
    """A decoded chunk: its type, JSON metadata and arrays (views into the file buffer)."""

    kind: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    offset: int


@dataclass
class ScanReport:
    """What a scan of a file found besides good chunks."""

    chunks: int = 0
    corrupt_chunks: int = 0
    skipped_bytes: int = 0
    truncated_tail_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def _decode_arrays(meta: dict[str, Any], data: memoryview, offset: int) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    pos = 0
    for spec in meta.get("arrays", []):
        try:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(n) for n in spec["shape"])
            name = str(spec["name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"chunk at byte {offset}: bad array description {spec!r} ({exc})") from None
        if dtype.hasobject:
            raise FormatError(f"chunk at byte {offset}: object arrays are not allowed")
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        if pos + nbytes > len(data):
            raise FormatError(f"chunk at byte {offset}: array {name!r} runs past the chunk's data")
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(shape)
        pos += nbytes
    if pos != len(data):
        raise FormatError(f"chunk at byte {offset}: {len(data) - pos} bytes of data not described by its arrays")
    return arrays


def iter_chunks(buf, report: ScanReport, verify: bool = True,
                load_data: bool = True) -> Iterator[Chunk]:
    """Yield the good chunks of a whole file in ``buf`` (bytes or mmap); damage is counted in ``report``, not raised.

    With ``load_data=False`` chunk data is neither checked nor decoded (a fast header scan).
    Raises :class:`FormatError` only if the file does not start with the magic.
    """
    view = memoryview(buf)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise FormatError("not an edgesense recording (bad magic bytes)")
    pos = len(MAGIC)
    end = len(view)
    finder = buf if hasattr(buf, "find") else bytes(view)  # bytes and mmap both have .find
    while pos < end:
        problem = None
        if end - pos < HEADER_SIZE + _CRC.size:
            report.truncated_tail_bytes += end - pos
            report.problems.append(f"truncated chunk at byte {pos} ({end - pos} bytes)")
            return
        sync, kind, meta_len, data_len = _HEADER.unpack_from(view, pos)
        total = HEADER_SIZE + meta_len + data_len + _CRC.size
        if sync != SYNC:
            problem = f"no chunk sync at byte {pos}"
        elif meta_len > MAX_META_BYTES:
            problem = f"implausible chunk metadata length {meta_len} at byte {pos}"
        elif pos + total > end:
            # Damage or a writer killed mid-chunk: if no later chunk exists this is the tail.
            nxt = finder.find(SYNC, pos + 1)
            if nxt < 0:
                report.truncated_tail_bytes += end - pos
                report.problems.append(f"truncated chunk at byte {pos} (file ends inside it)")
                return
            problem = f"chunk at byte {pos} claims to run past the next chunk"
        else:
            body_start = pos + HEADER_SIZE
            meta_bytes = view[body_start: body_start + meta_len]
            data = view[body_start + meta_len: body_start + meta_len + data_len]
            if verify and load_data:
                (crc,) = _CRC.unpack_from(view, body_start + meta_len + data_len)
                calc = zlib.crc32(data, zlib.crc32(meta_bytes, zlib.crc32(view[pos + 4: pos + HEADER_SIZE])))
                if crc != calc:
                    problem = f"CRC mismatch in {kind.decode('ascii', 'replace')} chunk at byte {pos}"
            if problem is None:
                try:
                    meta = json.loads(bytes(meta_bytes))
                    if not isinstance(meta, dict):
                        raise ValueError("metadata is not a JSON object")
                    arrays = _decode_arrays(meta, data, pos) if load_data else {}
                except (ValueError, FormatError) as exc:
                    problem = f"unreadable {kind.decode('ascii', 'replace')} chunk at byte {pos}: {exc}"
                else:
                    report.chunks += 1
                    yield Chunk(kind.decode("ascii", "replace"), meta, arrays, pos)
                    pos += total
                    continue
        # Damaged chunk: count it, skip to the next sync word.
        report.corrupt_chunks += 1
        report.problems.append(problem)
        nxt = finder.find(SYNC, pos + 1)
        if nxt < 0:
            report.skipped_bytes += end - pos
            return
        report.skipped_bytes += nxt - pos
        pos = nxt
