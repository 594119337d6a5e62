"""GesturePipeline mechanics with a transparent fake model (no torch), plus the dataset evaluator."""

import numpy as np
import pytest

from edgesense.errors import ModelError
from edgesense.profiles import RDIProfile
from edgesense.radar.pipeline import GestureModelInfo, GesturePipeline, gesture_map, rdi_profiles
from edgesense.stream.frame import Frame

CLASSES = ("noise", "swipe", "hold")
PROFILE = RDIProfile(name="flat", range_bins=4, doppler_bins=3, channels=1, frame_rate=40.0)
INFO = GestureModelInfo(name="fake", classes=CLASSES, frames=8, rdi_shape=(1, 3, 4), validity=True,
                        mean=(0.0,), std=(1.0,), profile=PROFILE.to_dict())


class Oracle:
    """'Predicts' the class whose index is the value of the newest frame; records its inputs."""

    def __init__(self):
        self.inputs = []

    def run(self, x):
        self.inputs.append(x.copy())
        v = int(round(float(x[0, 0, 0, -1])))
        p = np.full(len(CLASSES), 0.01, np.float32)
        p[min(max(v, 0), len(CLASSES) - 1)] = 0.98
        return p[None]


def frame(seq, value):
    return Frame("rdi", seq, seq * 25_000, 0.0, np.full(PROFILE.payload_shape, value, np.float32))


def test_rdi_profiles_and_gesture_map_layout():
    rdis = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    prof = rdi_profiles(rdis)
    assert prof.shape == (2, 1, 7)
    np.testing.assert_allclose(prof[0, 0, :3], rdis[0, 0].max(axis=1))
    np.testing.assert_allclose(prof[0, 0, 3:], rdis[0, 0].max(axis=0))
    info = GestureModelInfo(**{**INFO.__dict__, "frames": 2, "mean": (1.0,), "std": (2.0,)})
    x = gesture_map(prof[None], np.array([[0.0, 1.0]]), info)
    assert x.shape == (1, 2, 7, 2)
    np.testing.assert_allclose(x[0, 0, :, 1], (prof[1, 0] - 1.0) / 2.0)   # newest frame = last column
    np.testing.assert_array_equal(x[0, 1, 0], [0.0, 1.0])                  # validity channel


def test_gap_is_restored_and_marked_invalid():
    oracle = Oracle()
    pipe = GesturePipeline(oracle, info=INFO)
    for s in range(6):
        pipe.process(frame(s, 0.0))
    pipe.process(frame(9, 3.0))           # frames 6, 7, 8 lost
    x = oracle.inputs[-1][0]
    np.testing.assert_array_equal(x[1, 0], [1, 1, 1, 1, 0, 0, 0, 1])
    # edgesense.radar.restore: hold the last frame, then ramp over the last `lookahead` (2) frames
    np.testing.assert_allclose(x[0, 0, -4:], [0.0, 1.0, 2.0, 3.0], atol=1e-6)
    assert pipe.stats.frames_restored == 3 and pipe.stats.gaps == 1
    assert pipe.frame_index == 9


def test_events_at_the_right_frames_and_stream_equals_batch():
    values = np.zeros(60)
    values[10:14] = 1   # a swipe burst
    values[30:34] = 1   # the same gesture again
    values[45:50] = 2
    lost = {12, 31}     # drops inside bursts are restored
    seqs = [s for s in range(60) if s not in lost]
    live = GesturePipeline(Oracle(), info=INFO)
    streamed = [e for s in seqs for e in live.process(frame(s, values[s]))]
    live.finish()
    # frame 31 is lost: restored frames get no inference, so the second vote comes at frame 32
    assert [(e.label, e.onset) for e in streamed] == [("swipe", 11), ("swipe", 32), ("hold", 46)]

    batch = GesturePipeline(Oracle(), info=INFO)
    payloads = np.stack([frame(s, values[s]).payload for s in seqs])
    events, probs = batch.run_batch(payloads, np.array(seqs, dtype=np.uint32))
    assert [(e.label, e.start, e.onset, e.end) for e in events] == \
           [(e.label, e.start, e.onset, e.end) for e in live.events]
    assert probs.shape == (len(seqs), 3) and not np.isnan(probs).any()


def test_long_gap_is_padded_not_invented_and_naive_mode_keeps_time():
    pipe = GesturePipeline(Oracle(), info=INFO, max_restore=2)
    for s in range(5):
        pipe.process(frame(s, 1.0))
    pipe.process(frame(30, 0.0))
    assert pipe.stats.frames_padded == 25 and pipe.stats.frames_restored == 0
    assert pipe.frame_index == 30
    naive = GesturePipeline(Oracle(), info=INFO, restore=False)
    for s in (0, 1, 2, 7):
        naive.process(frame(s, 0.0))
    assert naive.frame_index == 7 and naive.stats.frames_restored == 0


def test_wrapping_sequence_numbers():
    pipe = GesturePipeline(Oracle(), info=INFO)
    start = 2**32 - 3
    for k in range(6):
        pipe.process(frame((start + k) % 2**32, 0.0))
    assert pipe.frame_index == 5 and pipe.stats.gaps == 0


def test_model_without_description_is_a_user_error(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="no gesture model description"):
        GestureModelInfo.for_model(path)


def test_streaming_window_equals_gesture_map_of_the_same_frames():
    info = GestureModelInfo(**{**INFO.__dict__, "mean": (0.3,), "std": (2.0,)})
    oracle = Oracle()
    pipe = GesturePipeline(oracle, info=info)
    rng = np.random.default_rng(0)
    rdis = rng.normal(size=(5, *PROFILE.payload_shape)).astype(np.float32)
    for s, rdi in enumerate(rdis):
        pipe.push_rdi(s, rdi)
    prof = np.concatenate([np.zeros((3, 1, 7), np.float32) + 0.3, rdi_profiles(rdis)])  # 3 padded frames
    valid = np.array([0, 0, 0, 1, 1, 1, 1, 1], np.float32)
    np.testing.assert_allclose(oracle.inputs[-1], gesture_map(prof[None], valid[None], info), atol=1e-6)
