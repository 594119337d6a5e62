"""Measurements behind docs/radar-simulator.md: ``python -m edgesense.sim.radar_study [--json] [--clips N]``.

1. Background removal: how visible a still hand (palm_hold) is, and how much ghost a hand leaves after
   it is gone, for the ``ema`` (two-rate, gated) background versus the classic per-frame mean.
2. Restoration: error of restored RDIs under 20 % random-plus-bursty drops, for zero fill and our
   bounded-lookahead rule (lookahead 0 = hold-last, 1-3) and offline interpolation with unlimited lookahead.
3. Difficulty: a linear classifier on simple RDI features, trained and tested on different users.
4. Cost: CIR -> RDI per frame (``process``), restoration per frame, simulator clips per second.

Everything is seeded; figures depend only on ``--clips`` and ``--seed`` (timings on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from edgesense.profiles import RadarCIRProfile, load_profile
from edgesense.radar.rdi import RDIConfig, RDIProcessor
from edgesense.radar.restore import FrameRestorer, restore_sequence
from edgesense.sim.radar import RadarPhysics
from edgesense.sim.radar_gestures import (GESTURES, render_scripts, make_session, make_users, script_gesture,
                                          simulate_clip)
from edgesense.stream.faults import random_plus_bursty


def background_study(profile: RadarCIRProfile, clips: int, seed: int) -> dict:
    """Hand level (dB over the noise floor) late in a hold and 0.25-0.5 s after the hand left."""
    users = make_users(30, seed)
    modes = {"ema": RDIConfig(backgrounds=("ema",)), "frame_mean": RDIConfig(backgrounds=("frame_mean",))}
    hold_db = {m: [] for m in modes}
    ghost_db = {m: [] for m in modes}
    period = profile.frame_period_s
    for k in range(clips):
        user = users[k % len(users)]
        rng = np.random.default_rng([seed, 11, k])
        script = script_gesture("palm_hold", user, rng, lambda d: 0.3)
        hand = script.actors[0]
        t_hold1 = float(hand.knots_t[2])
        n = int(np.ceil((script.end_s + 0.6) / period))
        frames = render_scripts(profile, make_session(user, 0, seed), [script], 0, n, rng, RadarPhysics())
        tap = int(round(float(np.linalg.norm(hand.knots_p[1])) / profile.range_bin_m))
        taps = slice(max(tap - 1, 1), tap + 2)
        late = slice(int((t_hold1 - 0.25) / period), int(t_hold1 / period))
        after = slice(int((script.end_s + 0.25) / period), int((script.end_s + 0.5) / period))
        for m, cfg in modes.items():
            rdi = RDIProcessor(profile, cfg).process_batch(frames)[:, 0]
            hold_db[m].append(40.0 * float(rdi[late, :, taps].max(axis=(1, 2)).mean()))
            ghost_db[m].append(40.0 * float(rdi[after, :, taps].max(axis=(1, 2)).mean()))
    out = {}
    for m in modes:
        out[m] = {"late_hold_db_mean": round(float(np.mean(hold_db[m])), 1),
                  "late_hold_db_min": round(float(np.min(hold_db[m])), 1),
                  "visible_share": round(float(np.mean(np.array(hold_db[m]) > 15.0)), 3),
                  "ghost_db_mean": round(float(np.mean(ghost_db[m])), 1)}
    out["note"] = ("dB of the strongest cell at the hand's range bins over the noise floor; 'late hold' = last 0.25 s "
                   "of a 0.5-1.5 s hold, 'ghost' = 0.25-0.5 s after the hand left; visible = > 15 dB. "
                   "Empty-scene maximum over those cells is ~10 dB.")
    return out


def restoration_study(profile: RadarCIRProfile, clips: int, seed: int, rate: float = 0.2) -> dict:
    """RMSE (in dB) of restored frames against the true RDIs, over dropped frames inside gestures."""
    users = make_users(30, seed)
    proc = RDIProcessor(profile)
    methods = ["zero", "ours_lookahead_0", "ours_lookahead_1", "ours_lookahead_2", "ours_lookahead_3",
               "offline_linear"]
    sq = {m: 0.0 for m in methods}
    sq_prof = {m: 0.0 for m in methods}
    count = count_prof = scored = 0
    model = random_plus_bursty(rate)
    for k in range(clips):
        user = users[k % len(users)]
        label = GESTURES[k % 4]
        clip = simulate_clip(profile, label, user, make_session(user, 0, seed), np.random.SeedSequence([seed, 12, k]))
        proc.reset()
        truth = proc.process_batch(clip.payloads)
        rng = np.random.default_rng([seed, 13, k])
        valid = ~model.mask(len(truth), rng)
        valid[0] = valid[-1] = True
        target = ~valid & (clip.activity == 1)
        if not target.any():
            continue
        outs = {"zero": np.where(valid[:, None, None, None], truth, 0.0)}
        for la in range(4):
            outs[f"ours_lookahead_{la}"] = restore_sequence(truth, valid, lookahead=la)
        outs["offline_linear"] = restore_sequence(truth, valid, lookahead=len(truth))
        t = truth[target]
        signal = t > 0.25                                         # cells > 10 dB above the noise floor
        t_prof = np.concatenate([t.mean(axis=-1), t.mean(axis=-2)], axis=-1)
        for m in methods:
            o = outs[m][target]
            sq[m] += float(np.sum((o[signal] - t[signal]) ** 2))
            o_prof = np.concatenate([o.mean(axis=-1), o.mean(axis=-2)], axis=-1)
            sq_prof[m] += float(np.sum((o_prof - t_prof) ** 2))
        count += int(signal.sum())
        scored += int(target.sum())
        count_prof += int(t_prof.size)
    return {"drop_rate": rate, "frames_scored": scored,
            "rmse_db_signal_cells": {m: round(40.0 * float(np.sqrt(sq[m] / max(count, 1))), 2) for m in methods},
            "rmse_db_profiles": {m: round(40.0 * float(np.sqrt(sq_prof[m] / max(count_prof, 1))), 2) for m in methods},
            "note": ("dropped frames inside gesture events; RMSE in dB (RDI units x 40) over cells more than 10 dB above "
                     "the noise floor, and over the frame's Doppler and range profiles (means over range / Doppler); "
                     "lookahead 0 is hold-last; zero = noise-floor fill")}


def cost_study(profile: RadarCIRProfile, seed: int) -> dict:
    """Per-frame CPU time (thread CPU clock, so other processes on a shared machine do not count) and wall time."""
    users = make_users(5, seed)
    session = make_session(users[0], 0, seed)
    c0 = time.thread_time()
    clips = [simulate_clip(profile, GESTURES[k % 5], users[k % 5], session, k) for k in range(20)]
    sim_cpu = (time.thread_time() - c0) / 20
    frames = np.concatenate([c.payloads for c in clips])
    proc = RDIProcessor(profile)
    cpu, wall, rdis = [], [], []
    for f in frames:
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        rdis.append(proc.process(f))
        cpu.append(time.thread_time_ns() - c0)
        wall.append(time.perf_counter_ns() - w0)
    rest = FrameRestorer()
    cpu_r = []
    for i, r in enumerate(rdis):
        if i % 5 == 3:
            continue                                   # 20 % drops
        c0 = time.thread_time_ns()
        rest.push(i, r)
        cpu_r.append(time.thread_time_ns() - c0)

    def pct(v):
        v = np.array(v[50:]) / 1e3
        return {"p50": round(float(np.percentile(v, 50)), 1), "p99": round(float(np.percentile(v, 99)), 1)}

    return {"rdi_cpu_us_per_frame": pct(cpu), "rdi_wall_us_per_frame": pct(wall),
            "restore_cpu_us_per_frame": pct(cpu_r), "simulate_cpu_ms_per_80_frame_clip": round(sim_cpu * 1e3, 1),
            "load_average_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}


def _clip_features(rdi: np.ndarray) -> np.ndarray:
    """Order-free summaries of a clip's RDIs (T, C, D, R): how strong, how long, how fast, how much motion."""
    d = rdi.shape[2]
    centre = d // 2
    speed = np.abs(np.arange(d) - centre)
    out = []
    for c in range(rdi.shape[1]):
        x = rdi[:, c]
        peak = x.max(axis=(1, 2))                                            # (T,)
        lin = np.maximum(x, 0.0)
        dop = lin.max(axis=2)                                                # (T, D)
        spread = (dop * speed).sum(1) / (dop.sum(1) + 1e-6)                  # mean |Doppler| per frame
        rng_peak = np.argmax(x.max(axis=1), axis=1)                          # range bin of the peak per frame
        active = peak > 0.375                                                # > 15 dB
        out += [np.percentile(peak, q) for q in (50, 80, 95, 100)]
        out += [np.percentile(spread, q) for q in (50, 80, 95)]
        out += [active.mean(), np.std(rng_peak[active]) if active.sum() > 1 else 0.0,
                np.mean(np.abs(np.diff(peak)))]
        out += list(np.percentile(dop, 95, axis=0))                          # Doppler signature
    return np.array(out, dtype=np.float64)


def baseline_study(profile: RadarCIRProfile, clips_per_class: int, seed: int) -> dict:
    """How hard the clip task is: a linear (softmax) classifier on hand-made RDI features, held-out users.

    Features per clip (:func:`_clip_features`): per channel, percentiles over time of the peak level and
    of the Doppler spread, active time, range wander, frame-to-frame change and the 95th-percentile
    Doppler profile. 20 users train, 10 users test.
    """
    users = make_users(30, seed)
    proc = RDIProcessor(profile)
    feats, labels, groups = [], [], []
    for u, user in enumerate(users):
        for c, label in enumerate(GESTURES):
            for k in range(clips_per_class):
                clip = simulate_clip(profile, label, user, make_session(user, k % 2, seed),
                                     np.random.SeedSequence([seed, 14, u, c, k]))
                proc.reset()
                rdi = proc.process_batch(clip.payloads)                                   # (T, C, D, R)
                feats.append(_clip_features(rdi))
                labels.append(c)
                groups.append(u)
    x, y, g = np.array(feats, np.float64), np.array(labels), np.array(groups)
    train = g < 20
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    x = (x - mu) / sd
    w = np.zeros((x.shape[1], len(GESTURES)))
    b = np.zeros(len(GESTURES))
    onehot = np.eye(len(GESTURES))[y[train]]
    for _ in range(600):                                   # full-batch gradient descent, L2 1e-3
        z = x[train] @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = p - onehot
        w -= 0.1 * (x[train].T @ grad / train.sum() + 1e-3 * w)
        b -= 0.1 * grad.mean(0)
    pred = np.argmax(x @ w + b, axis=1)
    test = ~train
    recall = {lab: round(float(np.mean(pred[test & (y == c)] == c)), 3) for c, lab in enumerate(GESTURES)}
    return {"train_accuracy": round(float(np.mean(pred[train] == y[train])), 3),
            "test_accuracy_heldout_users": round(float(np.mean(pred[test] == y[test])), 3),
            "test_recall": recall, "clips": int(len(y)),
            "note": "linear softmax on order-free RDI clip summaries; 20 train users, 10 held-out users"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="ad60")
    parser.add_argument("--only", choices=("background", "restoration", "cost", "baseline"))
    parser.add_argument("--baseline-clips", type=int, default=6, help="clips per class per user for the baseline")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    result = {}
    if args.only in (None, "background"):
        result["background"] = background_study(profile, args.clips, args.seed)
    if args.only in (None, "restoration"):
        result["restoration"] = restoration_study(profile, args.clips, args.seed)
    if args.only in (None, "baseline"):
        result["baseline"] = baseline_study(profile, args.baseline_clips, args.seed)
    if args.only in (None, "cost"):
        result["cost"] = cost_study(profile, args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
