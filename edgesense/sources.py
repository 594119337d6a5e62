"""Open any frame source from a URL, pyserial-style.

* ``sim://PROFILE?seconds=10&speed=1&drop=0.01&seed=0`` -- a simulator-backed live source;
  ``speed=0`` runs as fast as possible, ``drop`` loses that share of frames (random + bursty).
* ``replay://PATH?speed=1&loop=0`` or a path ending in ``.esr`` -- play a recording back.
* anything else (``/dev/ttyUSB0``, ``COM3``, ``loop://``, ``socket://host:port``, a pty path) --
  a device speaking the firmware-bridge protocol, through :class:`edgesense.stream.serial.SerialSource`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from edgesense.errors import EdgesenseError, SourceError
from edgesense.profiles import SensorProfile, load_profile
from edgesense.stream.faults import random_plus_bursty
from edgesense.stream.replay import ReplaySource
from edgesense.stream.simulated import PayloadFn, SimulatedSource, noise_payloads
from edgesense.stream.source import Source


def simulator_payloads(profile: SensorProfile, seed: int = 0, **options: Any) -> PayloadFn:
    """The best live simulator for ``profile``: physical simulators where one exists, else noise."""
    factory = _live_simulators().get(profile.kind)
    if factory is None:
        return noise_payloads(profile, seed)
    return factory(profile, seed=seed, **options)


def _live_simulators() -> dict[str, Callable[..., PayloadFn]]:
    found: dict[str, Callable[..., PayloadFn]] = {}
    try:
        from edgesense.sim.radar import live_payloads as radar_live  # type: ignore[attr-defined]
        found["radar_cir"] = radar_live
    except ImportError:
        pass
    try:
        from edgesense.sim.speaker import live_payloads as speaker_live  # type: ignore[attr-defined]
        found["speaker_iv"] = speaker_live
    except ImportError:
        pass
    return found


def _query(url: urllib.parse.SplitResult) -> dict[str, str]:
    return {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}


def _number(options: dict[str, str], key: str, default: float | None, kind=float):
    if key not in options:
        return default
    try:
        return kind(options.pop(key))
    except ValueError:
        raise EdgesenseError(f"source option {key}= must be a number") from None


def open_source(url: str, *, profile: SensorProfile | str | None = None, **kwargs: Any) -> Source:
    """Open the source named by ``url`` (see the module docstring)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "sim":
        options = _query(parts)
        name = (parts.netloc + parts.path) or (profile if isinstance(profile, str) else None) or "ad60"
        prof = profile if isinstance(profile, SensorProfile) else load_profile(name)
        seconds = _number(options, "seconds", None)
        speed = _number(options, "speed", 1.0)
        drop = _number(options, "drop", 0.0)
        seed = int(_number(options, "seed", 0, int))
        if not 0.0 <= drop < 1.0:
            raise EdgesenseError(f"sim source: drop= must be in [0, 1), got {drop}")
        payloads = simulator_payloads(prof, seed=seed, **options)
        return SimulatedSource(prof, payloads, speed=None if speed == 0 else speed, duration_s=seconds,
                               drops=random_plus_bursty(drop) if drop else None, seed=seed, **kwargs)
    if parts.scheme == "replay" or (parts.scheme in ("", "file") and url.endswith(".esr")):
        options = _query(parts) if parts.scheme == "replay" else {}
        path = (parts.netloc + parts.path) if parts.scheme else url
        speed = _number(options, "speed", 1.0)
        loop = bool(_number(options, "loop", 0, int))
        return ReplaySource(path, speed=None if speed == 0 else speed, loop=loop, **kwargs)
    try:
        from edgesense.stream.serial import SerialSource
    except ImportError as exc:  # pragma: no cover - serial support ships with the package
        raise SourceError(f"serial sources are unavailable: {exc}") from None
    prof = load_profile(profile) if isinstance(profile, str) else profile
    return SerialSource(url, prof, **kwargs)
