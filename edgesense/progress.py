"""A small progress bar for long jobs (no dependency).

``progress(iterable, total=None, desc="...")`` yields the items of ``iterable`` and draws a bar on
stderr, at most ten times a second. It draws only when stderr is a terminal (so logs, pipes and
``--json`` output stay clean) unless ``EDGESENSE_PROGRESS=1`` forces it; ``EDGESENSE_PROGRESS=0``
silences it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_MIN_INTERVAL_S = 0.1


def _enabled(stream) -> bool:
    forced = os.environ.get("EDGESENSE_PROGRESS")
    if forced is not None:
        return forced not in ("", "0", "false", "no")
    return hasattr(stream, "isatty") and stream.isatty()


def _format_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
             stream=None) -> Iterator[T]:
    """Iterate ``iterable`` while drawing a progress bar with rate and ETA on ``stream`` (stderr)."""
    stream = sys.stderr if stream is None else stream
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if not _enabled(stream):
        yield from iterable
        return
    start = last = time.monotonic()
    count = 0

    def draw(final: bool = False) -> None:
        elapsed = time.monotonic() - start
        rate = count / elapsed if elapsed > 0 else 0.0
        prefix = f"{desc}: " if desc else ""
        if total:
            frac = min(1.0, count / total)
            width = 24
            filled = int(frac * width)
            eta = (total - count) / rate if rate > 0 else 0.0
            text = (f"{prefix}{frac * 100:5.1f}% |{'#' * filled}{'.' * (width - filled)}| {count}/{total} "
                    f"[{_format_seconds(elapsed)}<{_format_seconds(eta)}, {rate:.1f} {unit}/s]")
        else:
            text = f"{prefix}{count} {unit} [{_format_seconds(elapsed)}, {rate:.1f} {unit}/s]"
        stream.write("\r" + text + ("\n" if final else ""))
        stream.flush()

    try:
        for item in iterable:
            yield item
            count += 1
            now = time.monotonic()
            if now - last >= _MIN_INTERVAL_S:
                last = now
                draw()
    finally:
        draw(final=True)
