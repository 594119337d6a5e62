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


def test_refractory_absorbs_a_second_reading_of_the_same_gesture():
    # a swipe burst, released, then 4 frames later a pull_push burst (the same gesture read again)
    labels = ["noise"] * 5 + ["swipe"] * 4 + ["noise"] * 4 + ["pull_push"] * 12 + ["noise"] * 30 + ["pull_push"] * 4
    labels += ["noise"] * 5
    plain = spot(probs_for(labels), CLASSES)
    assert [e.label for e in plain] == ["swipe", "pull_push", "pull_push"]
    cfg = SpotterConfig(refractory_frames=20)
    events = spot(probs_for(labels), CLASSES, cfg)
    # the second burst starts inside the period (onset 14 - 6 < 20) and is held until released, so it
    # neither fires at frame 26 when the period ends nor blocks the real gesture at frame 55
    assert [(e.label, e.onset) for e in events] == [("swipe", 6), ("pull_push", 56)]


def test_refractory_keeps_repeats_spaced_beyond_it_and_resets():
    labels = (["noise"] * 10 + ["swipe"] * 5) * 4 + ["noise"] * 5
    events = spot(probs_for(labels), CLASSES, SpotterConfig(refractory_frames=15))
    assert [e.onset for e in events] == [11, 26, 41, 56]     # onsets 15 frames apart: none absorbed
    events = spot(probs_for(labels), CLASSES, SpotterConfig(refractory_frames=16))
    assert [e.onset for e in events] == [11, 41]             # every second one falls inside 16 frames
    sp = GestureSpotter(CLASSES, SpotterConfig(refractory_frames=100))
    probs = probs_for(["noise", "swipe", "swipe", "noise", "noise", "noise"])
    assert [e.onset for i, row in enumerate(probs) for e in sp.update(i, row)] == [2]
    sp.reset()                                               # a new stream forgets the last onset
    assert [e.onset for i, row in enumerate(probs) for e in sp.update(10 + i, row)] == [12]
    assert sp.active is None


def test_refractory_streaming_equals_batch_and_is_read_from_the_description():
    from edgesense.radar.pipeline import GestureModelInfo

    rng = np.random.default_rng(1)
    labels = list(rng.choice(CLASSES, size=400, p=[0.6, 0.2, 0.2]))
    probs = probs_for(labels)
    cfg = SpotterConfig(refractory_frames=12)
    batch = spot(probs, CLASSES, cfg)
    sp = GestureSpotter(CLASSES, cfg)
    streamed = [e for i, row in enumerate(probs) for e in sp.update(i, row)]
    sp.finish(len(probs))
    assert [(e.label, e.onset) for e in streamed] == [(e.label, e.onset) for e in batch]
    assert 5 < len(batch) < len(spot(probs, CLASSES))
    assert all(b.onset - a.onset >= 12 for a, b in zip(batch, batch[1:]))
    info = GestureModelInfo(name="m", classes=CLASSES, frames=40, rdi_shape=(2, 32, 32), spotter={"refractory_frames": 12})
    assert info.spotter_config().refractory_frames == 12
    with pytest.raises(ValueError):
        SpotterConfig(refractory_frames=-1)


def test_update_takes_arrays_lists_and_float32_like_update_values_takes_floats():
    rng = np.random.default_rng(3)
    labels = list(rng.choice(CLASSES, 300, p=[0.6, 0.2, 0.2]))
    probs = probs_for(labels, 0.7) + rng.uniform(-0.15, 0.15, (300, len(CLASSES)))
    probs[5, :] = [0.1, 0.8, 0.8]                        # a tie: the first maximum wins, as np.argmax
    cfg = SpotterConfig(k=2, n=3, refractory_frames=4)
    ref = GestureSpotter(CLASSES, cfg)
    forms = [lambda p: p, lambda p: p.astype(np.float32)[None], lambda p: list(p)]
    spotters = [GestureSpotter(CLASSES, cfg) for _ in forms]
    events = [[] for _ in forms]
    ref_events = []
    for i, p in enumerate(probs):
        ref_events += ref.update_values(i, p.tolist())
        for s, form, ev in zip(spotters, forms, events):
            ev += s.update(i, form(p))
    key = [(e.label, e.start, e.onset, e.end, e.confidence) for e in ref_events]
    assert len(key) >= 5
    assert [(e.label, e.start, e.onset, e.end, e.confidence) for e in events[0]] == key
    assert [(e.label, e.start, e.onset, e.end, e.confidence) for e in events[2]] == key
    # float32 values compare as their float64 conversions: the same decisions as the float32 array
    f32 = GestureSpotter(CLASSES, cfg)
    ev32 = []
    for i, p in enumerate(probs.astype(np.float32)):
        ev32 += f32.update_values(i, [float(v) for v in p])
    assert [(e.label, e.onset, e.confidence) for e in ev32] == [(e.label, e.onset, e.confidence) for e in events[1]]
