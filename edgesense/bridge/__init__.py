"""Host side of the firmware bridge: framing, CRC and message codec of ``firmware_bridge/PROTOCOL.md``.

Pure Python (plus numpy). The serial source built on it is :class:`edgesense.stream.serial.SerialSource`.
"""

from edgesense.bridge.cobs import CobsError, cobs_decode, cobs_encode
from edgesense.bridge.decoder import DecoderStats, StreamDecoder
from edgesense.bridge.protocol import (
    HEADER_LEN, PROTOCOL_MAJOR, PROTOCOL_MINOR, Capability, DeviceInfo, DeviceStatus, FaultSettings, FrameError,
    Message, MsgType, NakCode, VersionMismatch, encode_data, encode_message, parse_body,
)

__all__ = ["HEADER_LEN", "PROTOCOL_MAJOR", "PROTOCOL_MINOR", "Capability", "CobsError", "DecoderStats",
           "DeviceInfo", "DeviceStatus", "FaultSettings", "FrameError", "Message", "MsgType", "NakCode",
           "StreamDecoder", "VersionMismatch", "cobs_decode", "cobs_encode", "encode_data", "encode_message",
           "parse_body"]
