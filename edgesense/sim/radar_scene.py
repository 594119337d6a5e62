"""What the simulated radar sees: a hand, a body and static clutter as moving point scatterers.

Every actor has ``scatterers(t) -> ScattererSet`` for pulse times ``t`` of any shape, so a whole clip
is evaluated in one vectorised call (positions per pulse, shape ``(*t.shape, K, 3)``).

Hand model (local frame, metres, hand scale 1, palm facing the radar, fingers along +y, +z away from
the radar): 5 palm points, 4 fingers x 2 points (middle phalanx, tip), thumb knuckle and tip, wrist
and forearm: 17 scatterers, in family with the 15-20 point hand models of the simulators cited in
/work/shared/reference/radar.md §4.1. Dimensions follow an adult hand (palm ~9 x 8 cm, middle finger
~10 cm); ``hand_scale`` scales them and the RCS (σ ∝ area ∝ scale²).

RCS values are calibration choices, not measurements (60 GHz hand RCS depends strongly on pose):
palm points 4e-3 m² each (−24 dBsm; the five add up to ≈ −17 dBsm), finger points 8e-4 m²
(−31 dBsm), thumb knuckle 1.5e-3 m², thumb tip (pad) 3e-3 m², wrist 3e-3 m², forearm 6e-3 m². Palm and finger returns are scaled by
an aspect factor 0.05 + 0.95·cos²ψ (palm) / 0.2 + 0.8·cosψ (fingers), ψ the angle between the line of
sight and the palm normal, so a palm seen edge-on reflects much less (specular plate behaviour). The palm
faces the radar in the flat pose and is tilted 80° (hand on its side, thumb up) in the finger-slide pinch pose.
The torso is three points of 0.1 m² (−10 dBsm) each; furniture points 0.01-0.3 m².

Hand motion = scripted keyframe path (minimum-jerk between keyframes, Flash & Hogan 1985) + physiological
tremor (8-12 Hz, 0.05-0.3 mm, Elble & Koller 1990 give 8-12 Hz for the physiological hand tremor
component) + low-frequency postural sway (0.3-1 Hz, ~1-2 mm) + optional thumb slide (finger_slide).
Breathing moves the torso 2-5 mm at 0.2-0.33 Hz (normal adult breathing rate of 12-20 per minute).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgesense.sim.radar import ScattererSet

__all__ = ["min_jerk_path", "HandActor", "BodyActor", "StaticClutter", "TypingActor", "HAND_POSES"]


def min_jerk_path(t: np.ndarray, knots_t: np.ndarray, knots_p: np.ndarray) -> np.ndarray:
    """Position at times ``t`` moving between keyframes with minimum-jerk profiles: ``(*t.shape, D)``.

    Before the first keyframe the position is the first one, after the last it is the last one; equal
    consecutive positions make a hold.
    """
    knots_t = np.asarray(knots_t, dtype=np.float64)
    knots_p = np.asarray(knots_p, dtype=np.float64)
    if len(knots_t) == 1:
        return np.broadcast_to(knots_p[0], (*np.shape(t), knots_p.shape[1])).copy()
    idx = np.clip(np.searchsorted(knots_t, t, side="right") - 1, 0, len(knots_t) - 2)
    t0, t1 = knots_t[idx], knots_t[idx + 1]
    s = np.clip((t - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
    blend = s ** 3 * (10.0 - 15.0 * s + 6.0 * s * s)
    return knots_p[idx] + (knots_p[idx + 1] - knots_p[idx]) * blend[..., None]


# Local scatterer layouts (x across the hand toward the thumb of a right hand, y along the fingers,
# z away from the radar), RCS in m² at hand scale 1, and the kind of each point.
_FLAT = np.array([
    [0.000, 0.000, 0.000], [0.030, 0.025, 0.000], [-0.030, 0.025, 0.000], [0.028, -0.030, 0.000],
    [-0.028, -0.030, 0.000],                                                     # palm
    [0.024, 0.075, 0.000], [0.026, 0.100, 0.000],                                # index mid, tip
    [0.007, 0.080, 0.000], [0.008, 0.108, 0.000],                                # middle
    [-0.011, 0.076, 0.000], [-0.012, 0.102, 0.000],                              # ring
    [-0.028, 0.066, 0.000], [-0.030, 0.086, 0.000],                              # little
    [0.050, 0.005, 0.005], [0.075, 0.040, 0.005],                                # thumb knuckle, tip
    [0.000, -0.070, 0.015], [0.000, -0.200, 0.070],                              # wrist, forearm
])
# finger_slide pose: fingers curled toward the radar, index finger pointing down and forward so the
# thumb tip slides along it with a radial component.
_PINCH = np.array([
    [0.000, 0.000, 0.000], [0.030, 0.025, 0.000], [-0.030, 0.025, 0.000], [0.028, -0.030, 0.000],
    [-0.028, -0.030, 0.000],
    [0.028, 0.060, -0.020], [0.032, 0.075, -0.045],                              # index mid, tip (bent)
    [0.008, 0.060, -0.030], [0.008, 0.050, -0.045],                              # middle curled
    [-0.011, 0.056, -0.028], [-0.012, 0.046, -0.040],                            # ring curled
    [-0.028, 0.050, -0.022], [-0.030, 0.040, -0.032],                            # little curled
    [0.050, 0.005, -0.005], [0.040, 0.050, -0.022],                              # thumb knuckle, tip on index
    [0.000, -0.070, 0.015], [0.000, -0.200, 0.070],
])
HAND_POSES = {"flat": _FLAT, "pinch": _PINCH}
# palm tilt from facing the radar: in the pinch pose the hand is held on its side (thumb up), so the
# specular palm return drops and the moving thumb and index finger stand out more
_PALM_TILT_DEG = {"flat": 0.0, "pinch": 80.0}
_RCS = np.array([4e-3] * 5 + [8e-4] * 8 + [1.5e-3, 3e-3] + [3e-3, 6e-3])
_KIND = np.array([0] * 5 + [1] * 10 + [2, 2])   # 0 palm (specular), 1 finger, 2 arm (diffuse)
_THUMB_KNUCKLE, _THUMB_TIP = 13, 14
_INDEX_MID, _INDEX_TIP = 5, 6


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass
class HandActor:
    """A hand following ``knots_p`` (hand-centre keyframes, m) at ``knots_t`` (s), present in [t_in, t_out].

    ``slide`` is an optional thumb-slide script ``(knots_t, distances_m)`` along the index finger.
    """

    knots_t: np.ndarray
    knots_p: np.ndarray
    t_in: float
    t_out: float
    scale: float = 1.0
    handedness: float = 1.0            # +1 right hand, -1 left hand (mirrors x)
    pose: str = "flat"
    tremor_m: float = 1e-4
    tremor_hz: float = 10.0
    sway_m: float = 1.5e-3
    sway_hz: float = 0.5
    slide: tuple[np.ndarray, np.ndarray] | None = None
    seed: int = 0
    ramp_s: float = 0.08               # presence fades in/out over this time at the edges of the beam

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._dirs = np.stack([_unit(rng.standard_normal(3)) for _ in range(3)])
        self._phases = rng.uniform(0, 2 * np.pi, 4)
        self._finger_jitter = rng.standard_normal((17, 3)) * 2e-4 * self.scale

    def layout(self) -> np.ndarray:
        local = HAND_POSES[self.pose] * self.scale + self._finger_jitter
        return local * np.array([self.handedness, 1.0, 1.0])

    def scatterers(self, t: np.ndarray) -> ScattererSet:
        centre = min_jerk_path(t, self.knots_t, self.knots_p)                      # (..., 3)
        tw = 2 * np.pi * t
        shake = (self.tremor_m * (np.sin(tw * self.tremor_hz + self._phases[0])[..., None] * self._dirs[0]
                                  + 0.4 * np.sin(tw * 1.9 * self.tremor_hz + self._phases[1])[..., None] * self._dirs[1])
                 + self.sway_m * np.sin(tw * self.sway_hz + self._phases[2])[..., None] * self._dirs[2])
        local = self.layout()
        pos = centre[..., None, :] + shake[..., None, :] + local                    # (..., K, 3)
        if self.slide is not None:
            along = _unit(local[_INDEX_TIP] - local[_INDEX_MID])
            d = min_jerk_path(t, self.slide[0], np.asarray(self.slide[1], dtype=np.float64)[:, None])[..., 0]
            pos[..., _THUMB_TIP, :] += d[..., None] * along
            pos[..., _THUMB_KNUCKLE, :] += 0.5 * d[..., None] * along   # the whole distal thumb moves
            # the index tip yields under the thumb (flexion), 40 % of the thumb travel, radially
            pos[..., _INDEX_TIP, :] += 0.4 * d[..., None] * np.array([0.0, 0.0, -1.0])
        rng_m = np.linalg.norm(pos, axis=-1)
        tilt = np.radians(_PALM_TILT_DEG[self.pose])
        normal = np.array([self.handedness * np.sin(tilt), 0.0, -np.cos(tilt)])   # palm normal, toward the radar
        cos_psi = np.clip(-(pos @ normal) / np.maximum(rng_m, 1e-9), 0.0, 1.0)
        aspect = np.where(_KIND == 0, 0.05 + 0.95 * cos_psi ** 2,
                          np.where(_KIND == 1, 0.2 + 0.8 * cos_psi, 1.0))
        presence = np.clip(np.minimum(t - self.t_in, self.t_out - t) / self.ramp_s, 0.0, 1.0)
        rcs = _RCS * self.scale ** 2 * aspect * presence[..., None]
        return ScattererSet(pos, rcs)


@dataclass
class BodyActor:
    """The user's torso: three points near ``centre`` breathing along ``normal``, plus optional sway."""

    centre: np.ndarray
    breath_m: float = 3e-3
    breath_hz: float = 0.25
    sway_m: float = 0.0
    sway_hz: float = 0.4
    sway_dir: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    rcs_m2: float = 0.1
    phase: float = 0.0

    def scatterers(self, t: np.ndarray) -> ScattererSet:
        offsets = np.array([[0.0, 0.0, 0.0], [0.12, 0.0, 0.10], [-0.12, 0.0, 0.10]])
        toward = _unit(-np.asarray(self.centre, dtype=np.float64))        # chest moves toward the radar
        breath = self.breath_m * np.sin(2 * np.pi * self.breath_hz * t + self.phase)
        sway = self.sway_m * np.sin(2 * np.pi * self.sway_hz * t + 2 * self.phase)
        move = breath[..., None] * toward + sway[..., None] * _unit(np.asarray(self.sway_dir, dtype=np.float64))
        pos = np.asarray(self.centre)[None, :] + offsets
        pos = pos + move[..., None, :]
        rcs = np.broadcast_to(np.full(3, self.rcs_m2), pos.shape[:-1])
        return ScattererSet(pos, rcs)


@dataclass
class StaticClutter:
    """Furniture and objects: fixed points with fixed RCS."""

    positions: np.ndarray   # (K, 3)
    rcs_m2: np.ndarray      # (K,)

    def scatterers(self, t: np.ndarray) -> ScattererSet:
        shape = (*np.shape(t), len(self.rcs_m2))
        pos = np.broadcast_to(self.positions, (*shape, 3))
        return ScattererSet(pos, np.broadcast_to(self.rcs_m2, shape))


@dataclass
class TypingActor:
    """Fingers tapping (typing-like motion) around ``centre``: 6 fingertips, random 5-10 mm taps at 3-7 Hz."""

    centre: np.ndarray
    t_in: float
    t_out: float
    seed: int = 0

    def scatterers(self, t: np.ndarray) -> ScattererSet:
        rng = np.random.default_rng(self.seed)
        n = 6
        spots = np.asarray(self.centre) + np.column_stack([rng.uniform(-0.08, 0.08, n), rng.uniform(-0.04, 0.04, n),
                                                           np.zeros(n)])
        rate = rng.uniform(3.0, 7.0, n)
        depth = rng.uniform(0.005, 0.010, n)
        phase = rng.uniform(0, 2 * np.pi, n)
        # a tap is a raised-cosine dip; |sin| to the 4th power gives short strokes at the tap rate
        stroke = depth * np.sin(np.pi * rate * t[..., None] + phase) ** 4
        pos = np.broadcast_to(spots, (*np.shape(t), n, 3)).copy()
        pos[..., 2] -= stroke
        presence = ((t >= self.t_in) & (t <= self.t_out)).astype(np.float64)
        rcs = np.full(n, 1e-3) * presence[..., None]
        return ScattererSet(pos, rcs)
