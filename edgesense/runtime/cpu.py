"""What this CPU is: its model name and the instruction-set features that pick ORT's (MLAS) and LiteRT's (XNNPACK)
int8 kernels, read once from ``/proc/cpuinfo`` (x86 Linux; elsewhere the features are unknown: an empty set)."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# u8 x s8 dot products that accumulate in int32 without an int16 pair step (docs/quantization.md §4)
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():     # the first CPU's entries
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as ``/proc/cpuinfo`` names them (empty where unknown)."""
    return frozenset(_cpuinfo().get("flags", "").split())


def ort_needs_precise_u8s8(flags: frozenset[str] | None = None, machine: str | None = None) -> bool:
    """Whether ORT must run u8 x u8 kernels (``session.x64quantprecision=1``) to compute 8-bit weights exactly: on
    x86 without VNNI, MLAS's default u8 x s8 kernels add pairs of products in saturating int16. With VNNI the default
    kernels are exact (and the precise ones up to 15 % slower, measured on gesture_cnn); where the features are
    unknown, the precise kernels are asked for."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False                   # ARM64 and others: the option does not apply
    return not (flags & VNNI_FLAGS)
