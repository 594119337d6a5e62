"""Frame-drop restoration: the rule, bounded lookahead, stream == batch, u32 wrap, augmentation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesense.radar.restore import (FrameRestorer, add_validity_channel, drop_and_restore, long_gap_mask,
                                     restore_sequence, restore_with_flags)
from edgesense.stream.frame import SEQ_MODULUS


def _frames(n, shape=(1, 4, 3), seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def test_short_gap_is_linear_interpolation():
    x = _frames(6)
    valid = np.array([1, 1, 0, 0, 1, 1], bool)
    out, flags = restore_with_flags(x, valid, lookahead=2)
    assert np.allclose(out[2], x[1] + (x[4] - x[1]) / 3, atol=1e-6)
    assert np.allclose(out[3], x[1] + 2 * (x[4] - x[1]) / 3, atol=1e-6)
    assert np.array_equal(out[valid], x[valid]) and np.array_equal(flags, ~valid)


def test_long_burst_holds_then_ramps_over_the_lookahead_only():
    x = _frames(10)
    valid = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 1], bool)        # 6 missing, lookahead 2
    out = restore_sequence(x, valid, lookahead=2)
    for i in (1, 2, 3, 4):
        assert np.array_equal(out[i], x[0])                        # too far from frame 7: hold
    assert np.allclose(out[5], x[0] + (x[7] - x[0]) / 3, atol=1e-6)
    assert np.allclose(out[6], x[0] + 2 * (x[7] - x[0]) / 3, atol=1e-6)


def test_edges_copy_the_nearest_received_frame():
    x = _frames(6)
    valid = np.array([0, 0, 1, 1, 0, 0], bool)
    out = restore_sequence(x, valid)
    assert np.array_equal(out[0], x[2]) and np.array_equal(out[1], x[2])
    assert np.array_equal(out[4], x[3]) and np.array_equal(out[5], x[3])


def _stream(restorer, seqs, rdis):
    out = []
    for s, r in zip(seqs, rdis):
        out.extend(restorer.push(s, r))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=3, max_size=60), st.integers(0, 3))
def test_stream_equals_batch_bit_for_bit(drops, lookahead):
    n = len(drops)
    x = _frames(n, seed=n)
    valid = ~np.array(drops, bool)
    valid[0] = valid[-1] = True                                    # the stream knows only what it has seen
    out = _stream(FrameRestorer(lookahead=lookahead), np.flatnonzero(valid), x[valid])
    batch, flags = restore_with_flags(x, valid, lookahead)
    assert [f.seq for f in out] == list(range(n))
    assert np.array_equal(np.stack([f.rdi for f in out]), batch)
    assert [f.restored for f in out] == list(flags)


def test_latency_is_bounded_by_the_lookahead_with_a_clock():
    """With expire() called every frame period, no missing frame waits more than `lookahead` frames."""
    x = _frames(30)
    valid = np.ones(30, bool)
    valid[5:20] = False                                            # a 15-frame burst
    r = FrameRestorer(lookahead=2)
    emitted_at = {}
    for now in range(30):                                          # frame `now` is due at tick `now`
        ready = (r.push(now, x[now]) if valid[now] else []) + r.expire(now)
        for f in ready:
            emitted_at[f.seq] = now
    assert sorted(emitted_at) == list(range(30))
    assert max(emitted_at[s] - s for s in range(30)) <= 2
    batch = restore_sequence(x, valid, 2)
    r2 = FrameRestorer(lookahead=2)
    frames = {}
    for now in range(30):
        for f in (r2.push(now, x[now]) if valid[now] else []) + r2.expire(now):
            frames[f.seq] = f.rdi
    assert np.array_equal(np.stack([frames[s] for s in range(30)]), batch)


def test_sequence_numbers_wrap_around_u32():
    start = SEQ_MODULUS - 3
    seqs = [(start + k) % SEQ_MODULUS for k in (0, 1, 4, 5)]       # 2 frames lost across the wrap
    x = _frames(4)
    out = _stream(FrameRestorer(), seqs, x)
    assert [f.seq for f in out] == [(start + k) % SEQ_MODULUS for k in range(6)]
    assert [f.restored for f in out] == [False, False, True, True, False, False]


def test_duplicates_old_frames_and_huge_gaps():
    r = FrameRestorer(max_gap=10)
    x = _frames(5)
    assert len(r.push(100, x[0])) == 1
    assert r.push(100, x[1]) == [] and r.push(90, x[1]) == []
    assert r.stats.discarded == 2
    out = r.push(500, x[2])                                        # 399 missing > max_gap: restart
    assert [f.seq for f in out] == [500] and r.stats.resets == 1 and r.stats.restored == 0
    out = r.push(503, x[3])
    assert [f.restored for f in out] == [True, True, False] and r.stats.gaps == 1


def test_drop_and_restore_augmentation_and_validity_channel():
    x = _frames(2000, shape=(1, 2, 2))
    out, valid = drop_and_restore(x, 0.2, np.random.default_rng(1))
    assert 0.15 < 1 - valid.mean() < 0.25
    assert np.array_equal(out[valid], x[valid]) and np.isfinite(out).all()
    runs = np.diff(np.flatnonzero(np.diff(np.r_[1, valid.astype(int), 1]) != 0))[::2]
    assert runs.max() >= 4                                         # bursts, not only single drops
    with_flag = add_validity_channel(out, valid)
    assert with_flag.shape == (2000, 2, 2, 2)
    assert np.array_equal(with_flag[:, 1, 0, 0], valid.astype(np.float32))


def test_interpolation_beats_hold_last_on_a_smooth_sequence():
    t = np.linspace(0, 4 * np.pi, 400)
    x = np.sin(t)[:, None, None, None].astype(np.float32) * np.ones((1, 1, 2, 2), np.float32)
    valid = np.ones(400, bool)
    valid[np.random.default_rng(0).random(400) < 0.2] = False
    valid[0] = True
    ours = restore_sequence(x, valid)
    hold = x.copy()
    for i in range(1, 400):
        if not valid[i]:
            hold[i] = hold[i - 1]
    err = lambda y: np.sqrt(np.mean((y - x)[~valid] ** 2))  # noqa: E731
    assert err(ours) < 0.6 * err(hold)


def test_bad_arguments():
    with pytest.raises(ValueError):
        restore_sequence(_frames(3), np.ones(4, bool))
    with pytest.raises(ValueError):
        FrameRestorer(lookahead=-1)


def test_long_gap_mask_flags_only_runs_longer_than_max_gap():
    valid = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0], bool)
    mask = long_gap_mask(valid, 3)
    assert list(np.flatnonzero(mask)) == [7, 8, 9, 10]          # the run of 4 (the trailing run of 2 is short)
    assert not long_gap_mask(valid, 4).any()
    assert list(np.flatnonzero(long_gap_mask(valid, 1))) == [3, 4, 5, 7, 8, 9, 10, 12, 13]


@pytest.mark.parametrize("missing", [1, 2, 3, 7, 12])
def test_fill_gap_equals_the_streaming_and_batch_forms(missing):
    """fill_gap (one vectorised blend) == FrameRestorer.push == restore_sequence, bit for bit."""
    from edgesense.radar.restore import fill_gap

    x = _frames(missing + 2, shape=(2, 6, 5), seed=missing)
    got = fill_gap(x[0], x[-1], missing)
    r = FrameRestorer(max_gap=missing)
    r.push(10, x[0])
    streamed = np.stack([f.rdi for f in r.push(10 + missing + 1, x[-1])])
    valid = np.zeros(missing + 2, bool)
    valid[[0, -1]] = True
    batch = restore_sequence(x, valid)[1:]
    assert got.dtype == np.float32 and got.shape == (missing + 1, 2, 6, 5)
    np.testing.assert_array_equal(got, streamed)
    np.testing.assert_array_equal(got, batch)
    # within the look-ahead every missing frame ramps toward cur; beyond it the early ones hold prev
    assert np.array_equal(got[0], x[0]) == (missing > 2)
