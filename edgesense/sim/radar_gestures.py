"""Simulated users performing the five gestures, as clips or as continuous streams of raw radar frames.

Gesture semantics (issue 4), all heights are hand-centre distances above the sensor:

* ``swipe`` — the hand passes laterally across the sensor (either direction) at 10-40 cm, closest at
  mid-pass; it enters and leaves the beam (half path 30-45 cm, mean speed 0.6-1.3 m/s x user speed).
* ``pull_push`` — the hand enters, hovers, moves 5-20 cm toward the sensor then away (or away then
  toward) with a brief 50-150 ms stop at the turn, and leaves; in the beam throughout.
* ``palm_hold`` — the hand approaches and holds still (tremor and sway only) for 0.5-1.5 s, then leaves.
* ``finger_slide`` — the palm stays still at 8-25 cm while the thumb tip slides 1-3 cm along the index
  finger and back, 1-3 strokes (each way 40-120 ms / user speed, peak thumb speeds ~0.15-1.4 m/s).
* ``noise`` — non-gesture motion: body sway of a person at 0.5-1.5 m, an arm passing at 0.6-1.5 m,
  a hand drifting slowly (2-8 cm/s) through the beam, typing-like finger taps off-axis, or nothing at all.

Each simulated user (:class:`SimUser`) has a hand size, speed, preferred distance and lateral offset,
duration scale, tremor and handedness; each session adds an environment (torso position, furniture,
leakage phase). Everything is seeded: the same seed gives the same frames.

The labelled event of a gesture spans from the moment the hand enters the scene to the moment it
has left (``t_in``..``t_out`` of the hand); ``noise`` motion is never an event.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgesense.errors import ProfileError
from edgesense.profiles import RadarCIRProfile
from edgesense.sim.radar import RadarPhysics, ScattererSet, pulse_times, render_frames
from edgesense.sim.radar_scene import BodyActor, HandActor, StaticClutter, TypingActor

__all__ = ["GESTURES", "NOISE_KINDS", "SimUser", "Session", "GestureScript", "make_users", "make_session",
           "script_gesture", "render_scripts", "simulate_clip", "simulate_stream", "SimClip", "SimStream",
           "LiveRadarScene"]

GESTURES = ("swipe", "pull_push", "palm_hold", "finger_slide", "noise")
NOISE_KINDS = ("nothing", "body_sway", "far_arm", "drift", "typing")


@dataclass(frozen=True)
class SimUser:
    """How one simulated person gestures."""

    subject: str
    hand_scale: float       # hand size relative to an adult average (0.85-1.2)
    speed: float            # multiplies gesture speeds (0.7-1.4)
    height_m: float         # preferred hand height over the sensor (0.12-0.30 m)
    lateral_m: tuple[float, float]  # preferred (x, y) offset of the hand from boresight (m)
    duration: float         # multiplies holds and pauses (0.8-1.25)
    tremor_m: float         # physiological tremor amplitude (50-300 µm)
    tremor_hz: float        # 8-12 Hz
    sway_m: float           # postural sway amplitude (0.5-2.5 mm)
    handedness: float       # +1 right, -1 left


@dataclass(frozen=True)
class Session:
    """One recording environment of a user: torso, furniture, leakage phase."""

    name: str
    body: BodyActor
    clutter: StaticClutter
    leakage_phase: float


@dataclass
class GestureScript:
    """The actors of one gesture (or noise motion) and its labelled span ``[start_s, end_s]``."""

    label: str
    actors: list
    start_s: float
    end_s: float
    variant: str = ""


def make_users(n: int, seed: int = 0) -> list[SimUser]:
    """``n`` distinct simulated users, ``u00``, ``u01``, ..., deterministic in ``seed``."""
    users = []
    for i in range(n):
        r = np.random.default_rng(np.random.SeedSequence([seed, 7919, i]))
        users.append(SimUser(
            subject=f"u{i:02d}", hand_scale=float(r.uniform(0.85, 1.2)), speed=float(r.uniform(0.7, 1.4)),
            height_m=float(r.uniform(0.12, 0.30)),
            lateral_m=(float(np.clip(r.normal(0, 0.04), -0.08, 0.08)), float(np.clip(r.normal(0, 0.04), -0.08, 0.08))),
            duration=float(r.uniform(0.8, 1.25)), tremor_m=float(r.uniform(5e-5, 3e-4)),
            tremor_hz=float(r.uniform(8.0, 12.0)), sway_m=float(r.uniform(5e-4, 2.5e-3)),
            handedness=1.0 if r.random() < 0.88 else -1.0))
    return users


def make_session(user: SimUser, index: int, seed: int = 0) -> Session:
    """Environment ``index`` of ``user``: where the torso sits, what furniture is around."""
    r = np.random.default_rng(np.random.SeedSequence([seed, 104729, zlib.crc32(user.subject.encode()), index]))
    body = BodyActor(centre=np.array([r.uniform(-0.1, 0.1), r.uniform(-0.75, -0.45), r.uniform(0.15, 0.40)]),
                     breath_m=r.uniform(2e-3, 5e-3), breath_hz=r.uniform(0.2, 0.33), phase=r.uniform(0, 2 * np.pi))
    k = int(r.integers(2, 5))
    theta = np.radians(r.uniform(15, 75, k))
    phi = r.uniform(0, 2 * np.pi, k)
    dist = r.uniform(0.3, 1.5, k)
    pos = np.column_stack([dist * np.sin(theta) * np.cos(phi), dist * np.sin(theta) * np.sin(phi), dist * np.cos(theta)])
    clutter = StaticClutter(pos, 10 ** r.uniform(-2, -0.5, k))
    return Session(name=f"s{index}", body=body, clutter=clutter, leakage_phase=float(r.uniform(0, 2 * np.pi)))


def _hand(user: SimUser, knots_t, knots_p, t_in, t_out, rng, **kw) -> HandActor:
    return HandActor(np.asarray(knots_t, dtype=np.float64), np.asarray(knots_p, dtype=np.float64), t_in, t_out,
                     scale=user.hand_scale, handedness=user.handedness, tremor_m=user.tremor_m,
                     tremor_hz=user.tremor_hz, sway_m=user.sway_m, sway_hz=float(rng.uniform(0.3, 1.0)),
                     seed=int(rng.integers(2 ** 31)), **kw)


def _hover(user: SimUser, rng, lo: float, hi: float) -> np.ndarray:
    h = float(np.clip(user.height_m + rng.normal(0, 0.03), lo, hi))
    return np.array([user.lateral_m[0] + rng.normal(0, 0.02), user.lateral_m[1] + rng.normal(0, 0.02), h])


def _entry_point(p: np.ndarray, rng) -> np.ndarray:
    """Where a hand comes from: the side of the beam, a little higher (≥ 55° off boresight)."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    return p + np.array([side * rng.uniform(0.35, 0.45), rng.uniform(-0.12, 0.0), rng.uniform(0.08, 0.15)])


Place = Callable[[float], float]


def script_gesture(label: str, user: SimUser, rng: np.random.Generator, place: Place) -> GestureScript:
    """Sample one performance of ``label`` by ``user``; ``place(duration) -> start time`` positions it."""
    v = user.speed
    if label == "swipe":
        p = _hover(user, rng, 0.10, 0.40)
        half = rng.uniform(0.30, 0.45)
        direction = 1.0 if rng.random() < 0.5 else -1.0
        dur = 2 * half / (rng.uniform(0.6, 1.3) * v)
        t0 = place(dur)
        a, b = p.copy(), p.copy()
        a[0] -= direction * half
        b[0] += direction * half
        a[2] += rng.uniform(-0.03, 0.03)
        b[2] += rng.uniform(-0.03, 0.03)
        return GestureScript(label, [_hand(user, [t0, t0 + dur], [a, b], t0, t0 + dur, rng)], t0, t0 + dur)
    if label in ("pull_push", "palm_hold", "finger_slide"):
        lo, hi = {"pull_push": (0.15, 0.35), "palm_hold": (0.08, 0.30), "finger_slide": (0.08, 0.25)}[label]
        p = _hover(user, rng, lo, hi)
        e_in, e_out = _entry_point(p, rng), _entry_point(p, rng)
        t_enter = rng.uniform(0.30, 0.45) / v
        t_exit = rng.uniform(0.25, 0.40) / v
        steps: list[tuple[float, np.ndarray]] = []    # (duration to reach, position)
        slide = None
        if label == "pull_push":
            d = rng.uniform(0.05, 0.20)
            toward_first = rng.random() < 0.5
            if toward_first:
                p[2] = max(p[2], d + 0.07)
            turn = p + np.array([0.0, 0.0, -d if toward_first else d])
            leg = lambda: rng.uniform(0.20, 0.40) / v * (0.7 + 2.0 * d)  # noqa: E731
            steps = [(rng.uniform(0.05, 0.15) * user.duration, p), (leg(), turn),
                     (rng.uniform(0.05, 0.15), turn), (leg(), p)]
        elif label == "palm_hold":
            steps = [(float(np.clip(rng.uniform(0.5, 1.5) * user.duration, 0.5, 1.5)), p)]
        else:
            settle = rng.uniform(0.10, 0.25) * user.duration
            strokes = int(rng.integers(1, 4))
            dist = rng.uniform(0.01, 0.03)
            st, sd, t = [0.0], [0.0], settle
            for _ in range(strokes):
                for target in (dist, 0.0):
                    t += rng.uniform(0.04, 0.12) / v
                    st.append(t)
                    sd.append(target)
                t += rng.uniform(0.0, 0.08)
            steps = [(t + rng.uniform(0.08, 0.2), p)]
            slide = (np.array(st), np.array(sd))
        dur = t_enter + sum(s[0] for s in steps) + t_exit
        t0 = place(dur)
        knots_t, knots_p, t = [t0], [e_in], t0 + t_enter
        knots_t.append(t)
        knots_p.append(p.copy())
        for step, pos in steps:
            t += step
            knots_t.append(t)
            knots_p.append(pos)
        knots_t.append(t + t_exit)
        knots_p.append(e_out)
        kw = {}
        if slide is not None:
            kw = {"pose": "pinch", "slide": (slide[0] + t0 + t_enter, slide[1])}
        hand = _hand(user, knots_t, knots_p, t0, t0 + dur, rng, **kw)
        return GestureScript(label, [hand], t0, t0 + dur)
    if label == "noise":
        return _script_noise(user, rng, place)
    raise ValueError(f"unknown gesture {label!r}; known: {GESTURES}")


def _script_noise(user: SimUser, rng: np.random.Generator, place: Place, kind: str | None = None) -> GestureScript:
    kind = kind or str(rng.choice(NOISE_KINDS))
    dur = rng.uniform(1.0, 2.0)
    t0 = place(dur)
    actors: list = []
    if kind == "body_sway":
        dist, theta, phi = rng.uniform(0.5, 1.5), np.radians(rng.uniform(10, 50)), rng.uniform(0, 2 * np.pi)
        centre = dist * np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
        actors.append(BodyActor(centre, breath_m=rng.uniform(2e-3, 5e-3), sway_m=rng.uniform(0.02, 0.06),
                                sway_hz=rng.uniform(0.3, 0.8), sway_dir=centre.copy(), rcs_m2=0.1,
                                phase=rng.uniform(0, 2 * np.pi)))
    elif kind == "far_arm":
        h = rng.uniform(0.6, 1.5)
        half = rng.uniform(0.5, 0.8)
        y = rng.uniform(-0.3, 0.3)
        speed = rng.uniform(0.5, 1.5)
        dur = min(dur, 2 * half / speed)
        s = 1.0 if rng.random() < 0.5 else -1.0
        actors.append(_hand(user, [t0, t0 + dur], [[-s * half, y, h], [s * half, y, h]], t0, t0 + dur, rng))
    elif kind == "drift":
        p = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), rng.uniform(0.25, 0.6)])
        step = rng.standard_normal(3)
        step *= rng.uniform(0.02, 0.08) * dur / np.linalg.norm(step)
        actors.append(_hand(user, [t0, t0 + dur], [p, p + step], t0, t0 + dur, rng, ramp_s=0.4))
    elif kind == "typing":
        side = 1.0 if rng.random() < 0.5 else -1.0
        centre = np.array([side * rng.uniform(0.15, 0.3), rng.uniform(-0.3, -0.1), rng.uniform(0.05, 0.2)])
        actors.append(TypingActor(centre, t0, t0 + dur, seed=int(rng.integers(2 ** 31))))
    return GestureScript("noise", actors, t0, t0 + dur, variant=kind)


@dataclass
class SimClip:
    """One simulated clip: raw frames plus what is in them."""

    payloads: np.ndarray            # complex64 (frames, *payload_shape)
    label: str
    variant: str
    start_frame: int                # labelled event, frames [start_frame, end_frame)
    end_frame: int
    activity: np.ndarray            # uint8 per frame, 1 inside the event (all 0 for noise)


@dataclass
class SimStream:
    """A continuous simulated recording with its gesture events."""

    payloads: np.ndarray
    events: list[tuple[str, int, int]] = field(default_factory=list)   # (label, start, end) frames, end exclusive
    noise: list[tuple[str, int, int]] = field(default_factory=list)    # unlabelled noise motions, for reference
    activity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


def render_scripts(profile: RadarCIRProfile, session: Session, scripts: list[GestureScript], first_frame: int,
                   n_frames: int, rng: np.random.Generator, physics: RadarPhysics = RadarPhysics()) -> np.ndarray:
    """Raw frames ``first_frame ..`` of a session with the scripted actors that overlap them."""
    times = pulse_times(profile, first_frame, n_frames)
    t_lo, t_hi = times[0, 0], times[-1, -1]
    actors: list = [session.body, session.clutter]
    for s in scripts:
        if s.end_s >= t_lo and s.start_s <= t_hi:
            actors.extend(s.actors)
    scat = ScattererSet.concat([a.scatterers(times) for a in actors])
    return render_frames(profile, scat, times, rng, physics, session.leakage_phase)


def _frame_span(profile: RadarCIRProfile, start_s: float, end_s: float, n_frames: int) -> tuple[int, int]:
    mid = profile.pulses_per_frame * profile.pulse_interval_s / 2
    centres = np.arange(n_frames) * profile.frame_period_s + mid
    inside = np.flatnonzero((centres >= start_s) & (centres <= end_s))
    if len(inside) == 0:
        return 0, 0
    return int(inside[0]), int(inside[-1]) + 1


def simulate_clip(profile: RadarCIRProfile, label: str, user: SimUser, session: Session, seed: int | np.random.SeedSequence,
                  n_frames: int = 80, physics: RadarPhysics = RadarPhysics()) -> SimClip:
    """One clip of ``n_frames`` with ``label`` performed by ``user`` at a random time inside the clip."""
    rng = np.random.default_rng(seed)
    clip_s = n_frames * profile.frame_period_s
    lead = 0.15

    def place(dur: float) -> float:
        return float(rng.uniform(lead, max(lead, clip_s - dur - 0.05)))

    script = script_gesture(label, user, rng, place)
    frames = render_scripts(profile, session, [script], 0, n_frames, rng, physics)
    activity = np.zeros(n_frames, np.uint8)
    start = end = 0
    if label != "noise":
        start, end = _frame_span(profile, script.start_s, script.end_s, n_frames)
        activity[start:end] = 1
    return SimClip(frames, label, script.variant, start, end, activity)


def simulate_stream(profile: RadarCIRProfile, user: SimUser, session: Session, seconds: float,
                    seed: int | np.random.SeedSequence, physics: RadarPhysics = RadarPhysics(),
                    classes: tuple[str, ...] = GESTURES[:4], noise_share: float = 0.25,
                    chunk_frames: int = 200) -> SimStream:
    """A continuous recording: random gestures separated by idle gaps (0.6-2.5 s).

    Gesture events are labelled; noise motions (``noise_share`` of the segments) are not events and
    are listed in :attr:`SimStream.noise` for reference.
    """
    rng = np.random.default_rng(seed)
    n_frames = int(round(seconds / profile.frame_period_s))
    total_s = n_frames * profile.frame_period_s
    scripts: list[GestureScript] = []
    t = rng.uniform(0.5, 1.5)
    while True:
        cursor = t
        label = "noise" if rng.random() < noise_share else str(rng.choice(classes))
        script = script_gesture(label, user, rng, lambda dur: cursor)
        if script.end_s > total_s - 0.3:
            break
        scripts.append(script)
        t = script.end_s + rng.uniform(0.6, 2.5)
    frames = np.empty((n_frames, *profile.payload_shape), np.complex64)
    for f0 in range(0, n_frames, chunk_frames):
        n = min(chunk_frames, n_frames - f0)
        frames[f0:f0 + n] = render_scripts(profile, session, scripts, f0, n, rng, physics)
    out = SimStream(frames, activity=np.zeros(n_frames, np.uint8))
    for s in scripts:
        start, end = _frame_span(profile, s.start_s, s.end_s, n_frames)
        if s.label == "noise":
            out.noise.append((s.variant, start, end))
        else:
            out.events.append((s.label, start, end))
            out.activity[start:end] = 1
    return out


class LiveRadarScene:
    """An endless simulated gesture stream for live sources: ``scene(k)`` is the payload of frame ``k``.

    Frames are rendered in chunks of ``chunk_frames`` as they are asked for (in order); gestures are
    scripted a few seconds ahead. :attr:`events` lists the gestures planned so far as
    ``(label, start_frame, end_frame)``, the ground truth a demo can score itself against.
    """

    def __init__(self, profile: RadarCIRProfile, seed: int = 0, user: int = 0, session: int = 0,
                 chunk_frames: int = 40, noise_share: float = 0.25, physics: RadarPhysics = RadarPhysics()) -> None:
        if not isinstance(profile, RadarCIRProfile):
            raise ProfileError(f"the radar simulator needs a radar_cir profile, got {profile.kind!r} ({profile.name})")
        if user < 0 or session < 0 or chunk_frames < 1:
            raise ProfileError("live radar simulator: user and session must be >= 0, chunk_frames >= 1")
        self.profile = profile
        self.physics = physics
        self.user = make_users(user + 1, seed)[user]
        self.session = make_session(self.user, session, seed)
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 31337, user, session]))
        self.chunk_frames = chunk_frames
        self.noise_share = noise_share
        self.events: list[tuple[str, int, int]] = []
        self._scripts: list[GestureScript] = []
        self._next_t = float(self.rng.uniform(0.5, 1.5))
        self._chunk_start = -1
        self._chunk: np.ndarray | None = None

    def _plan_until(self, t_end: float) -> None:
        period = self.profile.frame_period_s
        while self._next_t < t_end + 3.0:
            cursor = self._next_t
            label = "noise" if self.rng.random() < self.noise_share else str(self.rng.choice(GESTURES[:4]))
            script = script_gesture(label, self.user, self.rng, lambda dur: cursor)
            self._scripts.append(script)
            if label != "noise":
                mid = self.profile.pulses_per_frame * self.profile.pulse_interval_s / 2
                start = int(np.ceil((script.start_s - mid) / period))
                end = int(np.floor((script.end_s - mid) / period)) + 1
                self.events.append((label, start, end))
            self._next_t = script.end_s + float(self.rng.uniform(0.6, 2.5))

    def __call__(self, k: int) -> np.ndarray:
        if self._chunk is None or not (self._chunk_start <= k < self._chunk_start + self.chunk_frames):
            start = k - k % self.chunk_frames
            t_end = (start + self.chunk_frames) * self.profile.frame_period_s
            self._plan_until(t_end)
            t_start = start * self.profile.frame_period_s
            self._scripts = [s for s in self._scripts if s.end_s >= t_start - 1.0]
            self._chunk = render_scripts(self.profile, self.session, self._scripts, start, self.chunk_frames, self.rng,
                                  self.physics)
            self._chunk_start = start
        return self._chunk[k - self._chunk_start]
