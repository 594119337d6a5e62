import numpy as np
import pytest

from edgesense.radar.spotting import GestureSpotter, SpotterConfig, spot

CLASSES = ("noise", "swipe", "pull_push")


def probs_for(labels, confidence=0.9):
    out = np.zeros((len(labels), len(CLASSES)))
    for i, lab in enumerate(labels):
        out[i, :] = (1 - confidence) / (len(CLASSES) - 1)
        out[i, CLASSES.index(lab)] = confidence
    return out


def test_one_event_per_burst_and_noise_never_reported():
    labels = ["noise"] * 10 + ["swipe"] * 6 + ["noise"] * 10
    events = spot(probs_for(labels), CLASSES)
    assert [e.label for e in events] == ["swipe"]
    ev = events[0]
    assert ev.start == 10 and ev.onset == 11  # k=2 of n=3: confirmed on the second frame
    assert ev.end == 16
    assert ev.confidence == pytest.approx(0.9)


def test_single_frame_flicker_does_not_trigger():
    labels = ["noise", "swipe", "noise", "noise", "pull_push", "noise", "noise", "swipe", "noise", "noise"] * 5
    assert spot(probs_for(labels), CLASSES) == []


def test_repeated_identical_gestures_each_detected():
    labels = (["noise"] * 5 + ["swipe"] * 5) * 4 + ["noise"] * 5
    events = spot(probs_for(labels), CLASSES)
    assert [e.label for e in events] == ["swipe"] * 4
    assert [e.onset for e in events] == [6, 16, 26, 36]


def test_no_double_event_when_probability_wobbles_inside_a_gesture():
    labels = ["noise"] * 3 + ["swipe"] * 4 + ["noise"] + ["swipe"] * 4 + ["noise"] * 6
    events = spot(probs_for(labels), CLASSES)
    assert len(events) == 1  # a one-frame dip is shorter than release_frames


def test_low_confidence_is_ignored_and_ignore_list_respected():
    labels = ["noise"] * 3 + ["swipe"] * 6 + ["noise"] * 3
    assert spot(probs_for(labels, confidence=0.5), CLASSES) == []
    cfg = SpotterConfig(ignore=("swipe",))
    assert spot(probs_for(labels), CLASSES, cfg) == []


def test_streaming_equals_batch():
    rng = np.random.default_rng(0)
    labels = list(rng.choice(CLASSES, size=300, p=[0.6, 0.2, 0.2]))
    probs = probs_for(labels)
    batch = spot(probs, CLASSES)
    sp = GestureSpotter(CLASSES)
    streamed = [e for i, row in enumerate(probs) for e in sp.update(i, row)]
    sp.finish(len(probs))
    assert [(e.label, e.start, e.onset, e.end) for e in streamed] == [(e.label, e.start, e.onset, e.end) for e in batch]
    assert len(batch) > 5


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        SpotterConfig(k=4, n=3)
    with pytest.raises(ValueError):
        SpotterConfig(on_threshold=0.3, off_threshold=0.5)
