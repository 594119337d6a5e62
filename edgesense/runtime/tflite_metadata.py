"""Read the ``metadata`` entries of a ``.tflite`` file (name -> bytes) without the ``tflite``/``flatbuffers`` packages.

The LiteRT interpreter does not expose a model's metadata, and the packages that parse the schema are
the ``train`` extra, so this walks the few flatbuffer tables involved by hand (the FlatBuffers binary
format: little-endian, a root offset, tables found through vtables). Schema (TensorFlow's
``schema.fbs``): ``Model`` field 4 is ``buffers: [Buffer]`` and field 6 ``metadata: [Metadata]``;
``Metadata`` is ``(name: string, buffer: uint)``; ``Buffer`` field 0 is ``data: [ubyte]`` (models over
2 GB keep data outside the flatbuffer: ``offset``/``size``, fields 1 and 2).
"""

from __future__ import annotations

import struct

from edgesense.errors import ModelError

__all__ = ["read_metadata"]

_MODEL_BUFFERS, _MODEL_METADATA = 4, 6


def _field(data: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the table at ``table``, or None when absent."""
    vtable = table - struct.unpack_from("<i", data, table)[0]
    vt_size = struct.unpack_from("<H", data, vtable)[0]
    if 4 + 2 * index + 2 > vt_size:
        return None
    off = struct.unpack_from("<H", data, vtable + 4 + 2 * index)[0]
    return table + off if off else None


def _deref(data: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", data, pos)[0]


def _vector(data: bytes, table: int, index: int) -> tuple[int, int]:
    """(position of the first element, length) of a vector field; (0, 0) when absent."""
    pos = _field(data, table, index)
    if pos is None:
        return 0, 0
    vec = _deref(data, pos)
    return vec + 4, struct.unpack_from("<I", data, vec)[0]


def read_metadata(data: bytes) -> dict[str, bytes]:
    """The model's metadata entries, ``{name: bytes}`` (empty when it has none)."""
    try:
        model = _deref(data, 0)
        meta_at, meta_n = _vector(data, model, _MODEL_METADATA)
        if not meta_n:
            return {}
        buf_at, buf_n = _vector(data, model, _MODEL_BUFFERS)
        out = {}
        for i in range(meta_n):
            entry = _deref(data, meta_at + 4 * i)
            name_pos = _field(data, entry, 0)
            buf_pos = _field(data, entry, 1)
            if name_pos is None:
                continue
            s = _deref(data, name_pos)
            name = data[s + 4:s + 4 + struct.unpack_from("<I", data, s)[0]].decode()
            buffer = struct.unpack_from("<I", data, buf_pos)[0] if buf_pos is not None else 0
            value = b""
            if buffer < buf_n:
                b_at, b_n = _vector(data, _deref(data, buf_at + 4 * buffer), 0)
                value = bytes(data[b_at:b_at + b_n])
            out[name] = value
        return out
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise ModelError(f"unreadable .tflite metadata ({exc})") from None
