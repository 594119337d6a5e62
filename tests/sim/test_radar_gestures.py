"""Simulated users and the five gestures: semantics, labels, determinism, visibility."""

import numpy as np
import pytest

from edgesense.profiles import load_profile
from edgesense.radar.rdi import RDIProcessor
from edgesense.sim.radar_gestures import (GESTURES, make_session, make_users, render_scripts, script_gesture,
                                          simulate_clip, simulate_stream)

AD60 = load_profile("ad60")
USERS = make_users(30, seed=0)


def _hand_track(script, t):
    hand = script.actors[0]
    s = hand.scatterers(t)
    return s.positions, s.rcs


def _scripts(label, n=12):
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        out.append((USERS[i % len(USERS)], script_gesture(label, USERS[i % len(USERS)], rng, lambda d: 0.2)))
    return out


def test_thirty_users_differ_in_every_parameter():
    assert len({u.subject for u in USERS}) == 30
    for field in ("hand_scale", "speed", "height_m", "duration", "tremor_m", "tremor_hz", "sway_m"):
        values = [getattr(u, field) for u in USERS]
        assert len(set(values)) == 30 and np.std(values) > 0
    assert make_users(30, seed=0) == USERS and make_users(30, seed=1) != USERS


def test_swipe_crosses_the_beam_closest_at_mid_pass():
    for user, s in _scripts("swipe"):
        t = np.linspace(s.start_s, s.end_s, 201)
        centre = s.actors[0].scatterers(t).positions[:, 0]          # palm centre point
        rng = np.linalg.norm(centre, axis=-1)
        assert 0.08 <= centre[100, 2] <= 0.45                        # 10-40 cm (+ tremor / arc)
        assert abs(int(np.argmin(rng)) - 100) <= 20                  # closest near mid-pass
        off_axis = np.degrees(np.arccos(centre[:, 2] / rng))
        assert off_axis[0] > 40 and off_axis[-1] > 40 and off_axis[100] < 30


def test_pull_push_moves_5_to_20_cm_radially_and_stays_in_the_beam():
    for user, s in _scripts("pull_push"):
        hand = s.actors[0]
        hover = hand.knots_p[1]
        inner = hand.knots_p[2:-1]
        travel = np.abs(inner[:, 2] - hover[2]).max()
        assert 0.05 <= travel <= 0.20
        assert np.allclose(inner[:, :2], hover[:2])                 # purely along the line of sight
        stop = np.diff(hand.knots_t)[3]
        assert 0.05 <= stop <= 0.15                                  # brief stop at the turn


def test_palm_hold_holds_still_for_half_to_one_and_a_half_seconds():
    for user, s in _scripts("palm_hold"):
        hand = s.actors[0]
        hold = hand.knots_t[2] - hand.knots_t[1]
        assert np.array_equal(hand.knots_p[1], hand.knots_p[2]) and 0.5 <= hold <= 1.5
        t = np.linspace(hand.knots_t[1] + 0.01, hand.knots_t[2] - 0.01, 300)
        palm = hand.scatterers(t).positions[:, 0]
        assert np.ptp(palm, axis=0).max() < 0.008                    # tremor and sway only
        assert 0.07 <= palm[0, 2] <= 0.31


def test_finger_slide_keeps_the_palm_still_while_the_thumb_slides_1_to_3_cm():
    for user, s in _scripts("finger_slide"):
        hand = s.actors[0]
        st, sd = hand.slide
        assert 0.01 <= sd.max() <= 0.03 and sd[0] == 0 and sd[-1] == 0
        strokes = int(np.sum(sd > 0))
        assert 1 <= strokes <= 3
        t = np.linspace(st[0], st[-1], 400)
        pos = hand.scatterers(t).positions
        assert np.ptp(pos[:, 0], axis=0).max() < 0.008               # palm still
        thumb_travel = np.ptp(pos[:, 14] - pos[:, 0], axis=0)
        assert np.linalg.norm(thumb_travel) > 0.8 * sd.max()
        assert 0.07 <= pos[0, 0, 2] <= 0.26


def test_clip_is_deterministic_labelled_and_shaped_like_the_profile():
    user, session = USERS[3], make_session(USERS[3], 0)
    a = simulate_clip(AD60, "pull_push", user, session, seed=42)
    b = simulate_clip(AD60, "pull_push", user, session, seed=42)
    c = simulate_clip(AD60, "pull_push", user, session, seed=43)
    assert np.array_equal(a.payloads, b.payloads) and not np.array_equal(a.payloads, c.payloads)
    assert a.payloads.shape == (80, 32, 32) and a.payloads.dtype == np.complex64
    assert 0 < a.start_frame < a.end_frame <= 80
    assert a.activity.sum() == a.end_frame - a.start_frame and a.activity[a.start_frame] == 1
    noise = simulate_clip(AD60, "noise", user, session, seed=1)
    assert noise.activity.sum() == 0 and noise.variant


def _peak_db(label, seed, frames):
    user, session = USERS[seed % 30], make_session(USERS[seed % 30], 0)
    clip = simulate_clip(AD60, label, user, session, seed=seed)
    rdi = RDIProcessor(AD60).process_batch(clip.payloads)
    return clip, rdi


def test_hand_at_10_to_40_cm_is_far_above_noise_and_noise_clips_are_quieter():
    gesture_peaks = []
    for seed in range(4):
        for label in ("swipe", "pull_push", "palm_hold", "finger_slide"):
            clip, rdi = _peak_db(label, seed, 80)
            gesture_peaks.append(rdi[clip.start_frame:clip.end_frame, :, :, 2:].max())
    # 0 is the noise floor, 1.0 is 40 dB above it
    assert min(gesture_peaks) > 0.5                                 # > 20 dB above noise
    user = USERS[0]
    session = make_session(user, 0)
    nothing = RDIProcessor(AD60).process_batch(simulate_clip(AD60, "noise", user, session, seed=0).payloads)
    assert np.median(nothing) < 0.05
    assert nothing[:, :, :, 2:].max() < min(gesture_peaks)          # noise clips are quieter than any gesture


def test_finger_slide_micro_doppler_is_visible_in_the_motion_channel():
    """The thumb's sub-bin micro-Doppler survives per-burst mean removal; a held palm does not."""
    def motion_db(label, k):
        user = USERS[k]
        rng = np.random.default_rng(k)
        script = script_gesture(label, user, rng, lambda d: 0.3)
        hand = script.actors[0]
        t0, t1 = (hand.slide[0][1], hand.slide[0][-1]) if label == "finger_slide" else hand.knots_t[1:3]  # strokes / hold
        frames = render_scripts(AD60, make_session(user, 0), [script], 0, int((script.end_s + 0.3) / 0.025), rng)
        rdi = RDIProcessor(AD60).process_batch(frames)[:, 1]                 # channel 1: motion
        tap = int(round(np.linalg.norm(hand.knots_p[1]) / AD60.range_bin_m))
        seg = rdi[int(t0 / 0.025) + 1:int(t1 / 0.025), :, max(tap - 2, 1):tap + 3]
        return 40 * np.percentile(seg.max(axis=(1, 2)), 80)               # dB over the noise floor
    slide = np.array([motion_db("finger_slide", k) for k in range(10)])
    hold = np.array([motion_db("palm_hold", k) for k in range(10)])
    assert slide.mean() > hold.mean() + 8.0
    assert np.mean(slide > np.median(hold) + 6.0) >= 0.8


def test_stream_has_separated_events_and_activity_mask():
    user = USERS[5]
    stream = simulate_stream(AD60, user, make_session(user, 1), seconds=20.0, seed=3)
    assert stream.payloads.shape == (800, 32, 32)
    assert len(stream.events) >= 4
    ends = [e[2] for e in stream.events]
    starts = [e[1] for e in stream.events]
    assert all(s2 >= e1 + 20 for e1, s2 in zip(ends, starts[1:]))   # idle gaps ≥ 0.5 s between events
    assert {e[0] for e in stream.events} <= set(GESTURES[:4])
    mask = np.zeros(800, np.uint8)
    for _, s, e in stream.events:
        mask[s:e] = 1
    assert np.array_equal(mask, stream.activity)


@pytest.mark.parametrize("label", GESTURES)
def test_every_gesture_renders(label):
    clip = simulate_clip(AD60, label, USERS[7], make_session(USERS[7], 0), seed=9, n_frames=64)
    assert clip.payloads.shape == (64, 32, 32) and np.isfinite(clip.payloads).all()


def test_any_radar_profile_works_fmcw_with_three_receivers():
    from edgesense.profiles import RadarCIRProfile

    fmcw = RadarCIRProfile(name="fmcw-3rx", waveform="fmcw", carrier_hz=60.5e9, sample_rate_hz=2e6, bandwidth_hz=4e9,
                           num_taps=64, pulses_per_frame=32, pulse_interval_s=300e-6, frame_period_s=0.03,
                           chirp_slope_hz_per_s=4e9 / 64e-6, num_rx=3)
    user = USERS[1]
    clip = simulate_clip(fmcw, "palm_hold", user, make_session(user, 0), seed=3, n_frames=60)
    assert clip.payloads.shape == (60, 3, 32, 64) and clip.payloads.dtype == np.complex64
    rdi = RDIProcessor(fmcw).process_batch(clip.payloads)
    assert rdi.shape == (60, 6, 32, 64)
    hand_bin = int(round(np.linalg.norm([user.lateral_m[0], user.lateral_m[1], user.height_m]) / fmcw.range_bin_m))
    during = rdi[clip.start_frame:clip.end_frame, :3, :, max(hand_bin - 3, 1):hand_bin + 4].max()
    assert during > 0.75                                              # the hand is > 30 dB above noise
