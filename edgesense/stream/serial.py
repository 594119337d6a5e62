"""A live source reading a device that speaks the edgesense bridge protocol over a serial link.

``SerialSource(url)`` opens any pyserial URL (a real port such as ``/dev/ttyACM0`` or ``COM3``, a
pseudo-terminal path, ``socket://host:port``, ``loop://``), performs the handshake of
``firmware_bridge/PROTOCOL.md`` (HELLO with a version check, optional CONFIGURE, START) and then
streams the device's DATA frames from a reader thread. Damaged bytes never reach the consumer:
frames that fail COBS, CRC or header checks are discarded and counted in ``stats.corrupt_frames``,
decoding resynchronises at the next delimiter, and lost frames show up as gaps in the sequence
numbers. With ``reconnect=True`` a dropped link is re-opened and the stream continues; the frames
missed meanwhile are reported as a gap.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from edgesense.bridge.decoder import StreamDecoder
from edgesense.bridge.protocol import (
    DTYPES, PROTOCOL_MAJOR, PROTOCOL_MINOR, DeviceInfo, DeviceStatus, FaultSettings, FrameError, Message, MsgType,
    NakCode, encode_message,
)
from edgesense.errors import EdgesenseError, SourceError
from edgesense.profiles import SensorProfile, load_profile, profile_from_dict
from edgesense.stream.buffer import OverflowPolicy
from edgesense.stream.frame import Frame
from edgesense.stream.source import ThreadedSource

__all__ = ["SerialSource", "ControlError"]

_READ_TIMEOUT_S = 0.05
_READ_CHUNK = 1 << 16


class ControlError(SourceError):
    """The device refused a request (NAK); ``code`` is the protocol's NAK code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Waiter:
    event: threading.Event
    message: Message | None = None


def _open_port(url: str, baudrate: int):
    import serial  # pyserial, a core dependency

    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=_READ_TIMEOUT_S, write_timeout=2.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise SourceError(f"cannot open serial device {url!r}: {exc}") from None


def _read_available(port) -> bytes:
    """Whatever the link has ready (waiting up to the port timeout for the first byte).

    pyserial's ``socket://`` reports at most 1 byte in ``in_waiting``, so reading a socket that way
    would cost one call per byte: read its socket directly instead.
    """
    import select

    import serial

    sock = getattr(port, "_socket", None)
    if sock is not None:
        ready, _, _ = select.select([sock], [], [], _READ_TIMEOUT_S)
        if not ready:
            return b""
        data = sock.recv(_READ_CHUNK)
        if not data:
            raise serial.SerialException("socket disconnected")
        return data
    return port.read(max(1, min(port.in_waiting, _READ_CHUNK)))


def _profile_of(info: DeviceInfo) -> SensorProfile:
    text = info.profile
    try:
        if text.startswith("{"):
            return profile_from_dict(json.loads(text))
        return load_profile(text)
    except (EdgesenseError, ValueError) as exc:
        raise SourceError(f"the device describes its data with a profile edgesense cannot load ({exc}); "
                          f"pass profile= explicitly") from None


def _format_of(info: DeviceInfo) -> str:
    dt = DTYPES.get(info.dtype)
    return f"{dt if dt is not None else f'dtype#{info.dtype}'}{list(info.dims)}"


class SerialSource(ThreadedSource):
    """Frames from a bridge device at ``url`` (any pyserial URL).

    ``profile`` (a :class:`SensorProfile` or a profile name/path) is configured on the device if it
    is not the device's current one; without it the device's own profile (from its HELLO answer) is
    used. Either way :attr:`profile` is the profile the frames follow and :attr:`device_info` what
    the device said about itself. The stream starts during construction; iterate to consume it.

    Counters: ``stats`` (frames, gaps, ``corrupt_frames``, ``bytes_received``, overflow drops of the
    host buffer), :attr:`decoder_stats` (why frames were rejected, unknown message types),
    :attr:`device_status` (the device's last STATUS, e.g. its own transmit overflows) and
    :attr:`reconnects`.
    """

    def __init__(self, url: str, profile: SensorProfile | str | None = None, *, reconnect: bool = False,
                 buffer_frames: int = 256, overflow: OverflowPolicy | str = OverflowPolicy.DROP_OLDEST,
                 baudrate: int = 921_600, timeout_s: float = 1.0, retries: int = 3,
                 reconnect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.reconnect = reconnect
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.retries = retries
        self.reconnect_timeout_s = reconnect_timeout_s
        self.decoder = StreamDecoder()
        self.device_info: DeviceInfo | None = None
        self.device_status: DeviceStatus | None = None
        self.device_version: tuple[int, int] | None = None
        self.reconnects = 0
        self._wanted = load_profile(profile) if isinstance(profile, str) else profile
        self._waiters: dict[int, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._next_id = 1
        self._early: list[Message] = []
        self._streaming = False  # True once the first START was answered
        self._thread = None
        self._port = _open_port(url, baudrate)
        try:
            negotiated = self._handshake()
        except BaseException:
            self._port.close()
            raise
        super().__init__(negotiated, buffer_frames=buffer_frames, overflow=overflow)
        self._streaming = True
        self._sync_stats()
        self.start()

    # ---- control ----------------------------------------------------------------------------

    def ping(self, payload: bytes = b"edgesense") -> float:
        """Round trip time of a PING in seconds; checks the echo."""
        t0 = time.monotonic()
        answer = self._request(MsgType.PING, payload)
        if answer.answer != bytes(payload):
            raise SourceError(f"device at {self.url} echoed a different PING payload")
        return time.monotonic() - t0

    def stop(self) -> None:
        """Ask the device to stop streaming (frames already in flight still arrive)."""
        self._request(MsgType.STOP)

    def resume(self) -> None:
        """Ask the device to stream again after :meth:`stop`."""
        self._request(MsgType.START)

    def configure(self, profile: SensorProfile | str) -> SensorProfile:
        """Switch the device to another profile (it must be stopped); returns the new profile."""
        wanted = load_profile(profile) if isinstance(profile, str) else profile
        answer = self._request(MsgType.CONFIGURE, wanted.name.encode("utf-8"))
        info = DeviceInfo.from_bytes(answer.answer)
        self._check_format(wanted, info)
        self.device_info = info
        self.profile = wanted
        return wanted

    def request_status(self) -> DeviceStatus:
        """The device's counters, asked for now."""
        status = DeviceStatus.from_bytes(self._request(MsgType.GET_STATUS).answer)
        self.device_status = status
        return status

    def inject_faults(self, faults: FaultSettings) -> None:
        """Set the emulator's fault injection (PROTOCOL.md section 7); real devices refuse it."""
        self._request(MsgType.FAULTS, faults.to_bytes())

    @property
    def decoder_stats(self):
        return self.decoder.stats

    # ---- handshake ----------------------------------------------------------------------------

    def _handshake(self) -> SensorProfile:
        hello = self._request(MsgType.HELLO, (0).to_bytes(4, "little") + (1 << 20).to_bytes(4, "little"))
        self.device_version = (hello.major, hello.minor)
        try:
            info = DeviceInfo.from_bytes(hello.answer)
        except FrameError as exc:
            raise SourceError(f"device at {self.url} sent a malformed HELLO answer: {exc}") from None
        if self._wanted is not None and self._wanted.name != info.profile:
            self._request(MsgType.STOP)  # CONFIGURE is refused while streaming
            info = DeviceInfo.from_bytes(self._request(MsgType.CONFIGURE, self._wanted.name.encode("utf-8")).answer)
        profile = self._wanted if self._wanted is not None else _profile_of(info)
        self._check_format(profile, info)
        self.device_info = info
        self._request(MsgType.START)
        return profile

    def _check_format(self, profile: SensorProfile, info: DeviceInfo) -> None:
        dt = DTYPES.get(info.dtype)
        if dt != profile.payload_dtype or tuple(info.dims) != tuple(profile.payload_shape):
            raise SourceError(f"device at {self.url} streams {_format_of(info)} frames but profile "
                              f"{profile.name!r} expects {profile.payload_dtype}{list(profile.payload_shape)}")

    def _version_error(self) -> SourceError:
        major, minor = self.decoder.stats.incompatible_version or (0, 0)
        newer = "update edgesense" if major > PROTOCOL_MAJOR else "update the device firmware"
        return SourceError(f"device at {self.url} speaks bridge protocol {major}.{minor}, this edgesense speaks "
                           f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}: incompatible major versions ({newer})")

    def _new_id(self) -> int:
        with self._waiters_lock:
            rid = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
            return rid

    def _write(self, data: bytes) -> None:
        import serial

        with self._write_lock:
            try:
                self._port.write(data)
            except (serial.SerialException, OSError) as exc:
                raise SourceError(f"cannot write to device at {self.url}: {exc}") from None

    def _request(self, msg_type: MsgType, payload: bytes = b"") -> Message:
        """Send a request and wait for its ACK; NAK raises :class:`ControlError`, silence SourceError."""
        threaded = (self._thread is not None and self._thread.is_alive()
                    and self._thread is not threading.current_thread())
        for _ in range(self.retries):
            rid = self._new_id()
            if threaded:
                waiter = _Waiter(threading.Event())
                with self._waiters_lock:
                    self._waiters[rid] = waiter
                try:
                    self._write(encode_message(msg_type, rid, 0, payload))
                    waiter.event.wait(self.timeout_s)
                finally:
                    with self._waiters_lock:
                        self._waiters.pop(rid, None)
                answer = waiter.message
            else:
                answer = self._request_sync(msg_type, rid, payload)
            if answer is None:
                if self.decoder.stats.incompatible:
                    raise self._version_error()
                continue
            if answer.msg_type == MsgType.NAK:
                code = answer.nak_code
                name = NakCode(code).name.lower() if code in NakCode._value2member_map_ else f"error {code}"
                text = answer.answer.decode("utf-8", errors="replace")
                raise ControlError(f"device at {self.url} refused {msg_type.name} ({name}): {text}", code)
            return answer
        if self.decoder.stats.incompatible:
            raise self._version_error()
        raise SourceError(f"device at {self.url} did not answer {msg_type.name} "
                          f"({self.retries} tries, {self.timeout_s:g} s each)")

    def _request_sync(self, msg_type: MsgType, rid: int, payload: bytes) -> Message | None:
        """Request/answer on the calling thread (before the reader thread runs, or from it)."""
        import serial

        self._write(encode_message(msg_type, rid, 0, payload))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                data = _read_available(self._port)
            except (serial.SerialException, OSError) as exc:
                raise SourceError(f"device at {self.url} disconnected during {msg_type.name}: {exc}") from None
            if not data:
                continue
            answer = None
            for message in self.decoder.feed(data):
                kind = message.msg_type
                if kind == MsgType.DATA:
                    # Keep frames of the running stream: those behind START's answer, and during a
                    # reconnect all of them. Before the first START they predate this session.
                    if self._streaming or (answer is not None and msg_type == MsgType.START):
                        self._early.append(message)
                elif kind == MsgType.STATUS:
                    self.device_status = DeviceStatus.from_bytes(message.payload)
                elif answer is None and kind in (MsgType.ACK, MsgType.NAK) and message.seq == rid:
                    answer = message
            if answer is not None:
                return answer
            if self.decoder.stats.incompatible:
                return None
        return None

    # ---- streaming ----------------------------------------------------------------------------

    def _sync_stats(self) -> None:
        self.stats.corrupt_frames = self.decoder.stats.corrupt
        self.stats.bytes_received = self.decoder.stats.bytes_received

    def _frame(self, message: Message) -> Frame:
        profile = self.profile
        dt = DTYPES.get(message.dtype)
        if dt != profile.payload_dtype or tuple(message.dims) != tuple(profile.payload_shape):
            raise SourceError(f"device at {self.url} sent a {dt}{list(message.dims)} frame, but profile "
                              f"{profile.name!r} expects {profile.payload_dtype}{list(profile.payload_shape)}")
        return Frame(profile.kind, message.seq, message.time_us, time.monotonic(), message.array())

    def _read(self) -> Iterator[Frame]:
        import serial

        early, self._early = self._early, []
        for message in early:
            yield self._frame(message)
        while not self.closed:
            try:
                data = _read_available(self._port)
            except (serial.SerialException, OSError, TypeError) as exc:
                if self.closed:
                    return
                if not self.reconnect:
                    raise SourceError(f"device at {self.url} disconnected: {exc}") from None
                self._reopen()
                early, self._early = self._early, []
                for message in early:
                    yield self._frame(message)
                continue
            if not data:
                continue
            frames = []
            for message in self.decoder.feed(data):
                kind = message.msg_type
                if kind == MsgType.DATA:
                    frames.append(self._frame(message))
                elif kind in (MsgType.ACK, MsgType.NAK):
                    with self._waiters_lock:
                        waiter = self._waiters.get(message.seq)
                    if waiter is not None:
                        waiter.message = message
                        waiter.event.set()
                elif kind == MsgType.STATUS:
                    self.device_status = DeviceStatus.from_bytes(message.payload)
            self._sync_stats()
            if self.decoder.stats.incompatible:
                raise self._version_error()
            yield from frames

    def _reopen(self) -> None:
        """Re-open the link after a disconnect and restart the stream (on the reader thread)."""
        try:
            self._port.close()
        except Exception:  # noqa: BLE001 - the port is already broken; closing is best effort
            pass
        self.decoder.reset()
        self._sync_stats()
        old = self.profile
        deadline = time.monotonic() + self.reconnect_timeout_s
        last_error: Exception | None = None
        while not self.closed:
            if time.monotonic() > deadline:
                raise SourceError(f"device at {self.url} disconnected and did not come back within "
                                  f"{self.reconnect_timeout_s:g} s: {last_error}")
            time.sleep(0.05)
            try:
                self._port = _open_port(self.url, self.baudrate)
            except SourceError as exc:
                last_error = exc
                continue
            try:
                self._wanted = old
                profile = self._handshake()
            except ControlError:
                raise
            except SourceError as exc:
                last_error = exc
                self._port.close()
                self.decoder.reset()
                continue
            if profile.payload_dtype != old.payload_dtype or profile.payload_shape != old.payload_shape:
                raise SourceError(f"device at {self.url} came back with profile {profile.name!r}")
            self.reconnects += 1
            return

    def close(self) -> None:
        """Stop the reader, ask the device to stop streaming (best effort) and close the port."""
        if getattr(self, "_port", None) is None:
            return
        super().close()
        try:
            with self._write_lock:
                self._port.write(encode_message(MsgType.STOP, self._new_id()))
                self._port.flush()
        except Exception:  # noqa: BLE001 - the link may be gone already
            pass
        try:
            self._port.close()
        except Exception:  # noqa: BLE001
            pass
