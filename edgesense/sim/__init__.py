"""Simulators that stand in for sensors: radar hand gestures (numpy only)."""

from edgesense.sim.radar import RadarPhysics, render_frames
from edgesense.sim.radar_gestures import (GESTURES, SimUser, make_session, make_users, simulate_clip,
                                          simulate_stream)

__all__ = ["GESTURES", "RadarPhysics", "SimUser", "make_session", "make_users", "render_frames",
           "simulate_clip", "simulate_stream"]
