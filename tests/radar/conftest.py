"""Fixtures shared by the radar tests."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def dropped_ad60_stream():
    """``(seconds, seed, drop_rate, mask_seed, outage) -> (profile, received indices, received CIR payloads)``:
    a simulated ad60 user stream with random+bursty drops, its first frame kept and ``outage`` (a slice) lost."""
    from edgesense.profiles import load_profile
    from edgesense.sim.radar_gestures import make_session, make_users, simulate_stream
    from edgesense.stream.faults import random_plus_bursty

    def make(seconds: float, seed: int, drop_rate: float, mask_seed: int, outage: slice):
        ad60 = load_profile("ad60")
        user = make_users(1, seed=seed)[0]
        stream = simulate_stream(ad60, user, make_session(user, 0, seed=seed), seconds, seed=seed)
        keep = ~random_plus_bursty(drop_rate).mask(len(stream.payloads), np.random.default_rng(mask_seed))
        keep[0] = True
        keep[outage] = False
        received = np.flatnonzero(keep)
        return ad60, received, stream.payloads[received]
    return make
