from hypothesis import given
from hypothesis import strategies as st

from edgesense.stream.frame import SEQ_MODULUS
from edgesense.stream.stats import GapTracker, SourceStats


def test_gaps_across_the_u32_wrap():
    stats = SourceStats()
    tracker = GapTracker(stats)
    seqs = [SEQ_MODULUS - 3, SEQ_MODULUS - 2, 1, 2, 5]  # lost 2**32-1 and 0, then 3 and 4
    missing = [tracker.observe(s) for s in seqs]
    assert missing == [0, 0, 2, 0, 2]
    assert stats.gaps == 2 and stats.frames_missing == 4 and dict(stats.gap_sizes) == {2: 2}
    assert stats.frames_received == 5


def test_duplicates_and_backward_steps_are_counted_not_gaps():
    stats = SourceStats()
    tracker = GapTracker(stats)
    for s in [10, 11, 11, 5, 6]:
        tracker.observe(s)
    assert stats.out_of_order == 2 and stats.gaps == 0


@given(start=st.integers(0, SEQ_MODULUS - 1), keep=st.lists(st.booleans(), min_size=1, max_size=300))
def test_every_lost_frame_is_counted(start, keep):
    keep[0] = True
    stats = SourceStats()
    tracker = GapTracker(stats)
    last_kept = max(i for i, k in enumerate(keep) if k)
    for i, k in enumerate(keep):
        if k:
            tracker.observe((start + i) % SEQ_MODULUS)
    assert stats.frames_received == sum(keep)
    assert stats.frames_missing == sum(1 for i in range(last_kept) if not keep[i])
