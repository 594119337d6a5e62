"""Messages of the edgesense bridge protocol 1.0 (``firmware_bridge/PROTOCOL.md``).

A message on the wire is ``COBS(header payload crc32) 0x00``. This module builds and parses
message bodies and the records inside them (device info, status, fault settings); framing of a
byte stream is :mod:`edgesense.bridge.decoder`. Everything here is pure Python plus numpy.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edgesense.bridge.cobs import cobs_encode

__all__ = [
    "PROTOCOL_MAJOR", "PROTOCOL_MINOR", "HEADER_LEN", "MsgType", "NakCode", "SENSOR_KINDS", "DTYPES",
    "Capability", "Message", "FrameError", "VersionMismatch", "DeviceInfo", "DeviceStatus", "FaultSettings",
    "encode_message", "encode_data", "parse_body", "dtype_code", "kind_code",
]

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
HEADER_LEN = 36
CRC_LEN = 4
MAX_NDIM = 4
MIN_BODY = 3 + CRC_LEN  # the invariant prefix (major, minor, header_len) and the CRC

_HEADER = struct.Struct("<BBBBBBBBIQ4I")  # 36 bytes
_CRC = struct.Struct("<I")


class MsgType(enum.IntEnum):
    HELLO = 0x01
    START = 0x02
    STOP = 0x03
    CONFIGURE = 0x04
    PING = 0x05
    GET_STATUS = 0x06
    FAULTS = 0x40  # emulator fault injection (vendor/test range)
    ACK = 0x80
    NAK = 0x81
    DATA = 0x90
    STATUS = 0x91


KNOWN_TYPES = frozenset(int(t) for t in MsgType)


class NakCode(enum.IntEnum):
    VERSION = 1
    UNKNOWN_TYPE = 2
    MALFORMED = 3
    UNKNOWN_PROFILE = 4
    BUSY = 5
    UNSUPPORTED = 6


class Capability(enum.IntFlag):
    STATUS = 0x1
    CONFIGURE = 0x2
    FAULTS = 0x4


SENSOR_KINDS: dict[int, str] = {0: "none", 1: "radar_cir", 2: "rdi", 3: "speaker_iv", 255: "other"}

DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"), 2: np.dtype("<i1"), 3: np.dtype("<u2"), 4: np.dtype("<i2"), 5: np.dtype("<u4"),
    6: np.dtype("<i4"), 7: np.dtype("<f4"), 8: np.dtype("<f8"), 9: np.dtype("<c8"), 10: np.dtype("<c16"),
}
_DTYPE_CODES = {dt: code for code, dt in DTYPES.items()}


def dtype_code(dtype: np.dtype | str) -> int:
    """The wire code of a numpy dtype; raises ValueError for types the protocol cannot carry."""
    dt = np.dtype(dtype)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("<")
    try:
        return _DTYPE_CODES[dt]
    except KeyError:
        raise ValueError(f"dtype {np.dtype(dtype)} cannot be sent over the bridge") from None


def kind_code(kind: str) -> int:
    """The wire code of a sensor kind name (``"radar_cir"`` ...); unknown kinds are 255 (other)."""
    for code, name in SENSOR_KINDS.items():
        if name == kind:
            return code
    return 255


class FrameError(ValueError):
    """A received body is not a valid message; ``reason`` says which check failed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class VersionMismatch(FrameError):
    """A valid message (CRC checked) of another protocol major version."""

    def __init__(self, major: int, minor: int) -> None:
        super().__init__("version", f"protocol {major}.{minor}")
        self.major = major
        self.minor = minor


@dataclass(frozen=True, slots=True)
class Message:
    """One received or sent message. ``payload`` is the bytes after the header (before the CRC)."""

    msg_type: int
    seq: int = 0
    time_us: int = 0
    payload: bytes | bytearray | memoryview = b""
    sensor_kind: int = 0
    flags: int = 0
    dtype: int = 0
    dims: tuple[int, ...] = ()
    major: int = PROTOCOL_MAJOR
    minor: int = PROTOCOL_MINOR

    def array(self) -> np.ndarray:
        """The DATA payload as a numpy array of the header's dtype and shape (a view on the bytes)."""
        dt = DTYPES[self.dtype]
        return np.frombuffer(self.payload, dtype=dt).reshape(self.dims)

    @property
    def answers(self) -> int:
        """For ACK/NAK: the type of the request answered."""
        return self.payload[0] if len(self.payload) else 0

    @property
    def nak_code(self) -> int:
        return self.payload[1] if len(self.payload) > 1 else 0

    @property
    def answer(self) -> bytes:
        """For ACK/NAK: the answer after the 4-byte prefix."""
        return bytes(self.payload[4:])


def encode_message(msg_type: int, seq: int = 0, time_us: int = 0, payload: bytes | bytearray | memoryview = b"", *,
                   sensor_kind: int = 0, flags: int = 0, dtype: int = 0, dims: tuple[int, ...] = (),
                   major: int = PROTOCOL_MAJOR, minor: int = PROTOCOL_MINOR, extra_header: bytes = b"") -> bytes:
    """The wire bytes of one message: ``COBS(header payload crc32) 0x00``.

    ``major``, ``minor`` and ``extra_header`` (trailing header fields of a newer minor) exist for
    compatibility tests; normal senders leave them alone.
    """
    if len(dims) > MAX_NDIM:
        raise ValueError(f"at most {MAX_NDIM} dimensions, got {len(dims)}")
    padded = tuple(dims) + (0,) * (MAX_NDIM - len(dims))
    header = _HEADER.pack(major, minor, HEADER_LEN + len(extra_header), msg_type, sensor_kind, flags, dtype,
                          len(dims), seq & 0xFFFFFFFF, time_us & 0xFFFFFFFFFFFFFFFF, *padded)
    body = b"".join((header, extra_header, bytes(payload)))
    return cobs_encode(body + _CRC.pack(zlib.crc32(body))) + b"\x00"


def encode_data(seq: int, time_us: int, array: np.ndarray, sensor_kind: int = 0) -> bytes:
    """The wire bytes of a DATA frame carrying ``array``."""
    arr = np.asarray(array)
    code = dtype_code(arr.dtype)
    return encode_message(MsgType.DATA, seq, time_us, arr.astype(DTYPES[code], copy=False).tobytes(order="C"),
                          sensor_kind=sensor_kind, dtype=code, dims=arr.shape)


def parse_body(body: bytes | bytearray) -> Message:
    """Parse and verify a COBS-decoded body; raises :class:`FrameError` (or :class:`VersionMismatch`)."""
    n = len(body)
    if n < MIN_BODY:
        raise FrameError("short", f"{n} bytes")
    if zlib.crc32(memoryview(body)[:n - CRC_LEN]) != _CRC.unpack_from(body, n - CRC_LEN)[0]:
        raise FrameError("crc")
    major, minor, header_len = body[0], body[1], body[2]
    if major != PROTOCOL_MAJOR:
        raise VersionMismatch(major, minor)
    if header_len < HEADER_LEN or n < header_len + CRC_LEN:
        raise FrameError("header", f"header_len {header_len} in a {n}-byte body")
    (_, _, _, msg_type, sensor_kind, flags, dtype, ndim, seq, time_us,
     d0, d1, d2, d3) = _HEADER.unpack_from(body, 0)
    if ndim > MAX_NDIM:
        raise FrameError("header", f"ndim {ndim}")
    dims = (d0, d1, d2, d3)[:ndim]
    payload = memoryview(body)[header_len:n - CRC_LEN]
    if msg_type == MsgType.DATA:
        dt = DTYPES.get(dtype)
        if dt is None:
            raise FrameError("dtype", f"unknown dtype code {dtype}")
        count = 1
        for d in dims:
            count *= d
        if count * dt.itemsize != len(payload):
            raise FrameError("size", f"{len(payload)} payload bytes for {dt}{list(dims)}")
    return Message(msg_type, seq, time_us, payload, sensor_kind, flags, dtype, dims, major, minor)


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself in its answer to HELLO and CONFIGURE."""

    capabilities: int
    max_payload: int
    frame_period_us: int
    sensor_kind: int
    dtype: int
    dims: tuple[int, ...]
    profile: str
    firmware: str = ""

    _FIXED = struct.Struct("<IIIBBBB4IH")  # 34 bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeviceInfo":
        if len(data) < cls._FIXED.size:
            raise FrameError("record", f"device info of {len(data)} bytes")
        caps, max_payload, period, kind, dtype, ndim, _, d0, d1, d2, d3, plen = cls._FIXED.unpack_from(data, 0)
        end = cls._FIXED.size + plen
        if len(data) < end + 1 or ndim > MAX_NDIM:
            raise FrameError("record", "device info truncated")
        flen = data[end]
        try:
            profile = bytes(data[cls._FIXED.size:end]).decode("utf-8")
            firmware = bytes(data[end + 1:end + 1 + flen]).decode("utf-8", errors="replace")
        except UnicodeDecodeError:
            raise FrameError("record", "device profile is not UTF-8") from None
        return cls(caps, max_payload, period, kind, dtype, (d0, d1, d2, d3)[:ndim], profile, firmware)

    def to_bytes(self) -> bytes:
        profile = self.profile.encode("utf-8")
        firmware = self.firmware.encode("utf-8")[:255]
        dims = tuple(self.dims) + (0,) * (MAX_NDIM - len(self.dims))
        return (self._FIXED.pack(self.capabilities, self.max_payload, self.frame_period_us, self.sensor_kind,
                                 self.dtype, len(self.dims), 0, *dims, len(profile))
                + profile + bytes([len(firmware)]) + firmware)


@dataclass(frozen=True)
class DeviceStatus:
    """A device's STATUS record (PROTOCOL.md section 5); fields a device does not send are None."""

    frames_captured: int | None = None
    frames_sent: int | None = None
    overflow_drops: int | None = None
    rx_corrupt: int | None = None
    rx_unknown: int | None = None
    last_error: int | None = None
    uptime_ms: int | None = None

    FIELDS = ("frames_captured", "frames_sent", "overflow_drops", "rx_corrupt", "rx_unknown", "last_error",
              "uptime_ms")

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeviceStatus":
        count = min(len(data) // 4, len(cls.FIELDS))
        values = struct.unpack_from(f"<{count}I", data, 0) if count else ()
        return cls(**dict(zip(cls.FIELDS, values)))

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True)
class FaultSettings:
    """Payload of the emulator's FAULTS request (PROTOCOL.md section 7). Rates are probabilities."""

    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    garbage_rate: float = 0.0
    truncate_rate: float = 0.0
    stall_ms: int = 0
    disconnect_ms: int = 0

    def to_bytes(self) -> bytes:
        rates = [self.drop_rate, self.corrupt_rate, self.garbage_rate, self.truncate_rate]
        for rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rates must be in [0, 1], got {rate}")
        return struct.pack("<6I", *(int(round(r * 1e6)) for r in rates), self.stall_ms, self.disconnect_ms)


