import threading
import time

import pytest

from edgesense.stream.buffer import BoundedBuffer, BufferClosed, OverflowPolicy


def test_drop_oldest_keeps_the_newest_items_and_counts_drops():
    buf = BoundedBuffer(3)
    for k in range(10):
        buf.put(k)
    assert len(buf) == 3 and buf.dropped == 7
    assert [buf.get(), buf.get(), buf.get()] == [7, 8, 9]


def test_drop_newest_keeps_the_queue():
    buf = BoundedBuffer(2, OverflowPolicy.DROP_NEWEST)
    assert [buf.put(k) for k in range(4)] == [True, True, False, False]
    assert buf.dropped == 2 and [buf.get(), buf.get()] == [0, 1]


def test_block_policy_waits_for_the_consumer():
    buf = BoundedBuffer(1, "block")
    buf.put(1)
    assert buf.put(2, timeout=0.05) is False  # full, consumer absent
    got = []
    t = threading.Thread(target=lambda: (time.sleep(0.05), got.append(buf.get())))
    t.start()
    assert buf.put(2, timeout=2.0) is True
    t.join()
    assert got == [1] and buf.dropped == 0


def test_close_drains_then_signals_end():
    buf = BoundedBuffer(4)
    buf.put("a")
    buf.close()
    assert buf.put("b") is False
    assert buf.get() == "a"
    with pytest.raises(BufferClosed):
        buf.get()


def test_get_times_out():
    with pytest.raises(TimeoutError):
        BoundedBuffer(1).get(timeout=0.01)


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        BoundedBuffer(0)
