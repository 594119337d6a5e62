"""Incremental decoder of a bridge byte stream: bytes in, verified messages out, damage counted.

:class:`StreamDecoder` never raises on bad input. It splits the stream at ``0x00`` delimiters
(``bytes.split``, so the cost is a few C-level passes per chunk), COBS-decodes each candidate,
checks its CRC-32 and header, and returns the messages that pass. Everything else is counted in
:class:`DecoderStats`: each candidate that fails is one corrupt frame, so garbage between frames,
a truncated frame or a flipped bit costs exactly the candidates it touches and decoding is back in
step at the next delimiter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgesense.bridge.cobs import CobsError, cobs_decode
from edgesense.bridge.protocol import KNOWN_TYPES, FrameError, Message, VersionMismatch, parse_body

__all__ = ["DEFAULT_MAX_FRAME", "DecoderStats", "StreamDecoder"]

DEFAULT_MAX_FRAME = (1 << 20) + 1024  # largest candidate (encoded) the decoder buffers


@dataclass
class DecoderStats:
    """What a :class:`StreamDecoder` has seen. ``corrupt`` is the total of the failure reasons."""

    bytes_received: int = 0
    messages: int = 0
    corrupt: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    unknown_messages: int = 0
    incompatible: int = 0
    incompatible_version: tuple[int, int] | None = None

    def count(self, reason: str) -> None:
        self.corrupt += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return {"bytes_received": self.bytes_received, "messages": self.messages, "corrupt": self.corrupt,
                "reasons": dict(sorted(self.reasons.items())), "unknown_messages": self.unknown_messages,
                "incompatible": self.incompatible,
                "incompatible_version": list(self.incompatible_version) if self.incompatible_version else None}


class StreamDecoder:
    """Feed bytes with :meth:`feed`; get back the verified messages completed by them.

    Messages of a type this protocol version does not define are skipped and counted
    (``unknown_messages``), as section 6 of PROTOCOL.md requires; messages of another major
    version are never interpreted, only counted (``incompatible``, ``incompatible_version``).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.stats = DecoderStats()
        self._pending = bytearray()
        self._discarding = False  # inside an oversized candidate: drop bytes until the next delimiter

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Consume ``data``; returns the messages completed in it, in order. Never raises on bad input."""
        stats = self.stats
        stats.bytes_received += len(data)
        data = bytes(data)
        if b"\x00" not in data:
            if not self._discarding:
                self._pending += data
                if len(self._pending) > self.max_frame:
                    self._pending.clear()
                    self._discarding = True
            return []
        pieces = data.split(b"\x00")
        tail = pieces.pop()
        out: list[Message] = []
        first = True
        for piece in pieces:
            if first:
                first = False
                if self._discarding:
                    self._discarding = False
                    stats.count("oversize")
                    continue
                if self._pending:
                    piece = bytes(self._pending) + piece
                    self._pending.clear()
            if not piece:
                continue  # empty frames (repeated delimiters) are allowed
            message = self._decode(piece)
            if message is not None:
                out.append(message)
        if len(tail) > self.max_frame:
            self._discarding = True
        else:
            self._pending += tail
        return out

    def _decode(self, candidate: bytes) -> Message | None:
        stats = self.stats
        if len(candidate) > self.max_frame:
            stats.count("oversize")
            return None
        try:
            message = parse_body(cobs_decode(candidate))
        except VersionMismatch as exc:
            stats.incompatible += 1
            stats.incompatible_version = (exc.major, exc.minor)
            return None
        except CobsError:
            stats.count("cobs")
            return None
        except FrameError as exc:
            stats.count(exc.reason)
            return None
        if message.msg_type not in KNOWN_TYPES:
            stats.unknown_messages += 1
            return None
        stats.messages += 1
        return message

    def reset(self) -> None:
        """Forget a partial candidate (the link was re-opened); a non-empty one counts as truncated."""
        if self._pending or self._discarding:
            self.stats.count("truncated")
        self._pending.clear()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete candidate waiting for its delimiter."""
        return len(self._pending)


