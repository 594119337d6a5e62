"""Run the C device emulator (``firmware_bridge/emulator``) and predict its payloads.

The emulator is the device side of tests, demos and benchmarks. :func:`emulator_payload`
recomputes, bit for bit, the payload the emulator sends in the frame with a given sequence number,
so a host can verify every byte it received.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from edgesense.errors import SourceError
from edgesense.profiles import SensorProfile

__all__ = ["firmware_bridge_dir", "emulator_binary", "emulator_payload", "Emulator"]


def firmware_bridge_dir() -> Path:
    """The ``firmware_bridge`` folder of a source checkout."""
    return Path(__file__).resolve().parents[2] / "firmware_bridge"


def emulator_binary(build: bool = True) -> Path:
    """Path of the built emulator, building it with ``make`` if needed; SourceError if impossible."""
    root = firmware_bridge_dir()
    binary = root / "build" / "esb_emulator"
    if not (root / "Makefile").exists():
        raise SourceError(f"the firmware bridge sources are not in {root} (a source checkout is needed)")
    if build:
        if shutil.which("make") is None or shutil.which("cc") is None:
            raise SourceError("building the device emulator needs make and a C compiler (cc)")
        result = subprocess.run(["make", "-s", "-C", str(root), "build/esb_emulator"], capture_output=True, text=True)
        if result.returncode != 0:
            raise SourceError(f"building the device emulator failed: {result.stderr.strip()[:500]}")
    if not binary.exists():
        raise SourceError(f"device emulator not built: run make -C {root}")
    return binary


def _fmix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def emulator_payload(profile: SensorProfile, seq: int, seed: int = 0) -> np.ndarray:
    """The payload the emulator sends in frame ``seq`` (see the comment at the top of esb_emulator.c)."""
    dtype, shape = profile.payload_dtype, profile.payload_shape
    nbytes = int(np.prod(shape)) * dtype.itemsize
    k = np.arange(nbytes // 4, dtype=np.uint32)
    with np.errstate(over="ignore"):
        words = _fmix32(np.uint32(seq * 0x9E3779B1 & 0xFFFFFFFF) + k * np.uint32(0x85EBCA77) + np.uint32(seed))
    if dtype.kind in "fc":
        values = ((words >> np.uint32(8)).astype(np.int32) - 8388608).astype(np.float32) * np.float32(2.0 ** -23)
        raw = values.astype("<f4").tobytes()
    else:
        raw = words.astype("<u4").tobytes()
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape).astype(dtype)


class Emulator:
    """The emulator as a subprocess: ``with Emulator(["--pty"]) as emu: emu.url`` is where to connect.

    ``args`` are the emulator's command-line flags (``--pty`` or ``--tcp 0`` plus options). The
    constructor waits for the emulator's READY line and parses its ``PTY``/``TCP`` lines into
    :attr:`url` (a path for a pty, ``socket://127.0.0.1:PORT`` for TCP).
    """

    def __init__(self, args: list[str], *, timeout_s: float = 10.0) -> None:
        self.args = [str(a) for a in args]
        self.process = subprocess.Popen([str(emulator_binary()), *self.args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.url = ""
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                err = self.process.stderr.read() if self.process.stderr else ""
                raise SourceError(f"device emulator exited: {err.strip()[:300]}")
            word, _, rest = line.strip().partition(" ")
            if word == "PTY":
                self.url = rest
            elif word == "TCP":
                self.url = f"socket://127.0.0.1:{rest}"
            elif word == "READY":
                return
        self.close()
        raise SourceError("device emulator did not become ready")

    def close(self) -> None:
        """Stop the emulator (SIGTERM, then SIGKILL after 2 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
