"""Frames, sources and the bounded buffers between them."""

from edgesense.stream.buffer import BoundedBuffer, OverflowPolicy
from edgesense.stream.frame import SEQ_MODULUS, Frame, seq_distance
from edgesense.stream.simulated import SimulatedSource, noise_payloads
from edgesense.stream.source import Source, ThreadedSource
from edgesense.stream.stats import GapTracker, SourceStats

__all__ = ["BoundedBuffer", "Frame", "GapTracker", "OverflowPolicy", "SEQ_MODULUS", "SimulatedSource",
           "Source", "SourceStats", "ThreadedSource", "noise_payloads", "seq_distance"]
