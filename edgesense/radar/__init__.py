"""Radar processing: raw frames to range-Doppler images, and restoration of dropped frames."""

from edgesense.radar.rdi import RDIConfig, RDIProcessor
from edgesense.radar.restore import (FrameRestorer, RestoredFrame, add_validity_channel, drop_and_restore,
                                     restore_sequence, restore_with_flags)

__all__ = ["FrameRestorer", "RDIConfig", "RDIProcessor", "RestoredFrame", "add_validity_channel",
           "drop_and_restore", "restore_sequence", "restore_with_flags"]
