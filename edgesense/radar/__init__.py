"""Radar processing: raw frames to range-Doppler images, and restoration of dropped frames."""

from edgesense.radar.rdi import RDIConfig, RDIProcessor

__all__ = ["RDIConfig", "RDIProcessor"]
