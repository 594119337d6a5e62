"""The endless live radar scene behind ``sim://ad60`` sources."""

import numpy as np
import pytest

from edgesense.errors import EdgesenseError
from edgesense.profiles import load_profile
from edgesense.radar.rdi import RDIProcessor
from edgesense.sim.radar import live_payloads
from edgesense.sources import open_source

AD60 = load_profile("ad60")


def test_live_scene_is_deterministic_and_its_events_show_up_in_the_rdis():
    a, b = live_payloads(AD60, seed=4, user="1"), live_payloads(AD60, seed=4, user="1")
    xa = np.stack([a(k) for k in range(480)])
    xb = np.stack([b(k) for k in range(480)])
    assert xa.shape == (480, 32, 32) and xa.dtype == np.complex64 and np.array_equal(xa, xb)
    events = [e for e in a.events if e[2] <= 480]
    assert len(events) >= 2
    rdi = RDIProcessor(AD60).process_batch(xa)[:, 0, :, 2:]
    active = np.zeros(480, bool)
    for _, s, e in events:
        active[s:e] = True
    energy = rdi.max(axis=(1, 2))
    assert np.median(energy[active]) > np.median(energy[~active]) + 0.2


def test_live_scene_options_are_checked():
    with pytest.raises(EdgesenseError):
        live_payloads(AD60, hand="left")
    with pytest.raises(EdgesenseError):
        live_payloads(AD60, user="x")


def test_sim_source_uses_the_radar_simulator():
    with open_source("sim://ad60?seconds=1&speed=0&seed=2&user=3") as src:
        frames = list(src)
    assert len(frames) == 40 and frames[0].payload.shape == (32, 32)
    assert np.abs(np.mean([f.payload[:, 0] for f in frames])) > 100          # the leakage of a real scene
