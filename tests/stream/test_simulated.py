import time

import numpy as np
import pytest

from edgesense.profiles import load_profile
from edgesense.stream import SimulatedSource, noise_payloads
from edgesense.stream.faults import BernoulliDrops, GilbertElliottDrops, random_plus_bursty
from edgesense.stream.frame import SEQ_MODULUS


def test_frames_follow_the_profile_and_sequence_wraps():
    p = load_profile("ad60")
    with SimulatedSource(p, noise_payloads(p), speed=None, max_frames=20, start_seq=SEQ_MODULUS - 10) as src:
        frames = list(src)
    assert len(frames) == 20
    assert [f.seq for f in frames[8:12]] == [SEQ_MODULUS - 2, SEQ_MODULUS - 1, 0, 1]
    for f in frames:
        p.check_payload(f.payload)
    # device timestamps advance by the frame period
    assert np.diff([f.device_time_us for f in frames]).tolist() == [25_000] * 19
    assert src.stats.gaps == 0 and src.stats.frames_received == 20


def test_dropped_frames_consume_sequence_numbers_and_are_reported():
    p = load_profile("rdi32")
    with SimulatedSource(p, noise_payloads(p), speed=None, max_frames=2000, drops=random_plus_bursty(0.2),
                         seed=3) as src:
        seqs = [f.seq for f in src]
    missing = 2000 - len(seqs)
    assert 0.15 * 2000 < missing < 0.25 * 2000
    assert src.stats.frames_missing == seqs[-1] - seqs[0] + 1 - len(seqs)
    assert src.stats.gaps > 0 and max(src.stats.gap_sizes) > 1  # bursts, not only single drops


def test_real_time_pacing():
    p = load_profile("ad60")
    t0 = time.monotonic()
    with SimulatedSource(p, noise_payloads(p), speed=2.0, max_frames=20) as src:
        n = sum(1 for _ in src)
    elapsed = time.monotonic() - t0
    assert n == 20
    assert elapsed == pytest.approx(20 / 40 / 2, abs=0.15)


def test_slow_consumer_drops_oldest_and_memory_stays_bounded():
    p = load_profile("ad60")
    src = SimulatedSource(p, noise_payloads(p), speed=None, max_frames=500, buffer_frames=8, overflow="drop_oldest")
    seen = []
    with src:
        for f in src:
            seen.append(f.seq)
            assert len(src.buffer) <= 8
            time.sleep(0.002)
    assert src.buffer.high_water <= 8
    assert src.stats.overflow_drops > 0
    assert len(seen) + src.stats.overflow_drops == 500
    assert src.stats.gaps == 0  # overflow drops are counted as such, not as link gaps


def test_as_fast_as_possible_never_drops_for_a_slow_consumer():
    p = load_profile("rdi32")
    with SimulatedSource(p, noise_payloads(p), speed=None, max_frames=100, buffer_frames=4) as src:
        seqs = []
        for f in src:
            seqs.append(f.seq)
            time.sleep(0.001)
    assert seqs == list(range(100)) and src.stats.overflow_drops == 0


def test_reader_errors_reach_the_consumer():
    from edgesense.errors import SourceError

    p = load_profile("rdi32")

    def broken(k):
        if k == 3:
            raise RuntimeError("sensor fell off")
        return np.zeros(p.payload_shape, np.float32)

    with SimulatedSource(p, broken, speed=None) as src:
        with pytest.raises(SourceError, match="sensor fell off"):
            list(src)


@pytest.mark.parametrize("model", [BernoulliDrops(0.1), GilbertElliottDrops(0.02, 0.25), random_plus_bursty(0.2)])
def test_drop_models_hit_their_long_run_rate(model):
    mask = model.mask(40_000, np.random.default_rng(0))
    assert mask.mean() == pytest.approx(model.rate, abs=0.02)
