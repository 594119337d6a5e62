"""GesturePipeline mechanics with a transparent fake model (no torch), plus the dataset evaluator."""

from pathlib import Path

import numpy as np
import pytest

from edgesense.errors import ModelError, ProfileError
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


# -- the lean per-frame path against the straightforward one, with the shipped models -------------

MODELS = Path(__file__).resolve().parents[2] / "models" / "gesture_cnn"
SEQ0 = 2**32 - 100          # sequence numbers wrap inside the stream


@pytest.fixture(scope="module")
def radar_stream(dropped_ad60_stream):
    """A 15 s simulated ad60 stream with 5 gestures, 20 % random+bursty drops and one 12-frame outage
    (longer than max_restore (8): padded, spotter reset)."""
    return dropped_ad60_stream(15.0, seed=5, drop_rate=0.2, mask_seed=1, outage=slice(300, 312))


def _straightforward(model, info, rdis, received, max_restore=8):
    """Reference: the whole float window rebuilt from the full history by gesture_map, ``model.run`` on it
    (quantizing the whole window for an INT8 model), batch restoration, a fresh spotter."""
    from edgesense.radar.restore import restore_sequence
    from edgesense.radar.spotting import GestureSpotter

    t = info.frames
    pad = np.broadcast_to(np.asarray(info.mean, np.float32)[:, None], (info.rdi_shape[0], info.rows))
    prof, valid = [pad] * t, [0.0] * t                # (p - mean) / std == 0 exactly: a padded frame
    spotter = GestureSpotter(info.classes, info.spotter_config())
    inputs, probs, events = [], [], []
    for j, (k, rdi) in enumerate(zip(received, rdis)):
        missing = int(k - received[j - 1] - 1) if j else 0
        if 0 < missing <= max_restore:
            seq = np.concatenate([rdis[j - 1][None], np.zeros((missing, *rdi.shape), np.float32), rdi[None]])
            ok = np.zeros(missing + 2, bool)
            ok[[0, -1]] = True
            prof += list(rdi_profiles(restore_sequence(seq, ok)[1:-1]))
            valid += [0.0] * missing
        elif missing:
            prof += [pad] * missing
            valid += [0.0] * missing
            spotter.reset()
        prof.append(rdi_profiles(rdi))
        valid.append(1.0)
        x = gesture_map(np.stack(prof[-t:])[None], np.array(valid[-t:])[None], info)
        p = np.asarray(model.run(x), np.float32).reshape(-1)
        inputs.append(x)
        probs.append(p)
        events += spotter.update(int(k), p)
    spotter.finish(int(received[-1]) + 1)
    return inputs, probs, events


def _key(events):
    return [(e.label, e.start, e.onset, e.end, e.confidence) for e in events]


@pytest.mark.parametrize("name", ["gesture_cnn_int8.tflite", "gesture_cnn.onnx"])
def test_lean_path_equals_the_straightforward_one_on_a_stream_with_drops(radar_stream, name):
    from edgesense.radar.rdi import RDIProcessor
    from edgesense.runtime import load_model, quantize

    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} not shipped")
    ad60, received, payloads = radar_stream
    info = GestureModelInfo.for_model(path)
    model = load_model(path)
    pipe = GesturePipeline(model, info=info, profile=ad60)
    spec = model.input_specs[0]
    rdis = RDIProcessor(ad60).process_batch(payloads)           # the batch RDI path
    ref_inputs, ref_probs, ref_events = _straightforward(model, info, rdis, received)
    events = []
    for k, payload, x_ref, p_ref in zip(received, payloads, ref_inputs, ref_probs):
        events += pipe.process(Frame("radar_cir", (SEQ0 + int(k)) % 2**32, 0, 0.0, payload))
        want = quantize(x_ref, spec.scale, spec.zero_point, spec.dtype) if spec.quantized else x_ref
        assert pipe.model_input.dtype == want.dtype
        np.testing.assert_array_equal(pipe.model_input, want)    # identical model input, every frame
        np.testing.assert_array_equal(pipe.last_probs, p_ref)    # hence identical probabilities
    pipe.finish()
    assert pipe.stats.frames_restored > 20 and pipe.stats.frames_padded >= 12
    assert len(ref_events) >= 2 and _key(pipe.events) == _key(ref_events)
    assert pipe.frame_index == received[-1]


def test_rdi_only_sensor_with_the_int8_model_gives_the_same_events(shipped_int8_tflite, radar_stream):
    """The same stream delivered as RDIs by an RDI-only sensor profile: same inputs, probabilities, events."""
    from edgesense.radar.rdi import RDIProcessor

    path = shipped_int8_tflite("gesture_cnn")
    ad60, received, payloads = radar_stream
    proc = RDIProcessor(ad60)
    rdis = proc.process_batch(payloads)
    cir = GesturePipeline(path)
    rdi = GesturePipeline(path, profile=proc.output_profile)
    for k, payload, r in zip(received, payloads, rdis):
        cir.process(Frame("radar_cir", int(k), 0, 0.0, payload))
        rdi.process(Frame("rdi", int(k), 0, 0.0, r))
        np.testing.assert_array_equal(rdi.model_input, cir.model_input)
        np.testing.assert_array_equal(rdi.last_probs, cir.last_probs)
    assert _key(rdi.finish()) == _key(cir.finish())


def test_rdis_of_the_wrong_size_are_a_profile_error():
    pipe = GesturePipeline(Oracle(), info=INFO)
    with pytest.raises(ProfileError, match="model built for"):
        pipe.push_rdi(0, np.zeros((1, 4, 4), np.float32))


def test_a_model_resized_by_an_earlier_batch_still_runs_the_window(shipped_int8_tflite):
    from edgesense.runtime import load_model

    path = shipped_int8_tflite("gesture_cnn")
    info = GestureModelInfo.for_model(path)
    model = load_model(path)
    batch = np.random.default_rng(0).standard_normal((3, *info.input_shape[1:])).astype(np.float32)
    model.run(batch)                                  # LiteRT resizes its input to a batch of 3
    pipe = GesturePipeline(model, info=info, profile=GestureModelInfo.for_model(path).sensor_profile())
    x = pipe.model_input.copy()
    pipe.push_rdi(0, np.zeros(info.rdi_shape, np.float32))
    assert pipe.last_probs.shape == (len(info.classes),)
    assert not np.array_equal(pipe.model_input, x)    # the window moved on


def test_a_restored_gap_longer_than_the_window_fills_it_exactly():
    from edgesense.radar.restore import restore_sequence

    oracle = Oracle()
    pipe = GesturePipeline(oracle, info=INFO, max_restore=20)       # window of 8 frames
    pipe.process(frame(0, 2.0))
    pipe.process(frame(11, 0.0))                                     # 10 lost: 11 new columns > 8
    seq = np.stack([frame(0, 2.0).payload] + [np.zeros(PROFILE.payload_shape, np.float32)] * 10
                   + [frame(11, 0.0).payload])
    ok = np.zeros(12, bool)
    ok[[0, -1]] = True
    want = rdi_profiles(restore_sequence(seq, ok))[-8:, 0]           # (8, D+R)
    x = oracle.inputs[-1][0]
    np.testing.assert_array_equal(x[1, 0], [0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(x[0].T, want, atol=1e-6)
    assert pipe.frame_index == 11 and pipe.stats.frames_restored == 10


def test_level_table_gives_the_integers_of_the_general_path(shipped_int8_tflite):
    """Steady frames look the model's integers up from |Y|: at every threshold, just below it and at random
    magnitudes over the whole float32 range, the table gives what log_rdi + normalise + quantize compute."""
    path = shipped_int8_tflite("gesture_cnn")
    pipe = GesturePipeline(path)
    proc = pipe.processor.proc
    c = pipe.info.rdi_shape[0]
    assert pipe._levels is not None
    thresholds = pipe._levels.reshape(c, 256)[:, :255] & np.uint64(0xFFFFFFFF)
    finite = thresholds[thresholds <= 0x7F800000].astype(np.uint32)
    assert finite.size > 2 * 100               # most levels are reachable
    rng = np.random.default_rng(0)
    bits = np.concatenate([finite, finite - (finite > 0), rng.integers(0, 0x7F800001, 20_000).astype(np.uint32),
                           np.array([0, 1, 0x7F7FFFFF, 0x7F800000], np.uint32)])
    mags = bits.view(np.float32)
    for start in range(0, len(mags), pipe.info.rows):
        chunk = mags[start:start + pipe.info.rows]
        rows = np.full((c, pipe.info.rows), chunk[0], np.float32)
        rows[:, :len(chunk)] = chunk
        want = pipe._normalise(proc.log_rdi(rows.copy())[None])[0]
        pipe._col[0] = rows
        np.add(pipe._col_bits, pipe._chan, pipe._keys)
        got = pipe._level_values.take(pipe._levels.searchsorted(pipe._keys, "right"), mode="wrap")
        np.testing.assert_array_equal(got, want.astype(np.int8))


def test_repeated_and_late_frames_take_the_general_path_with_the_same_inputs(shipped_int8_tflite, radar_stream):
    """CIR frames (magnitude fast path) against the same stream as RDIs (general path), with a repeated
    sequence number, a late frame and a reset in the middle: same model inputs and probabilities."""
    from edgesense.radar.rdi import RDIProcessor

    path = shipped_int8_tflite("gesture_cnn")
    ad60, received, payloads = radar_stream
    seqs = [int(k) for k in received[:120]]
    order = list(range(40)) + [39, 39] + list(range(40, 60)) + [50] + list(range(60, 120))
    cir = GesturePipeline(path)
    rdi = GesturePipeline(path, profile=RDIProcessor(ad60).output_profile)
    proc = RDIProcessor(ad60)             # RDIs of the frames in the order they arrive (the background advances)
    for n, i in enumerate(order):
        if n == 90:
            cir.reset()
            rdi.reset()
            proc.reset()
        cir.process(Frame("radar_cir", seqs[i], 0, 0.0, payloads[i]))
        rdi.process(Frame("rdi", seqs[i], 0, 0.0, proc.process(payloads[i])))
        np.testing.assert_array_equal(cir.model_input, rdi.model_input)
        np.testing.assert_array_equal(cir.last_probs, rdi.last_probs)
    assert cir.stats.frames == rdi.stats.frames == len(order) - 90 and cir.stats.gaps == rdi.stats.gaps > 0


def test_a_gap_after_a_pushed_rdi_restores_from_that_rdi(shipped_int8_tflite, radar_stream):
    """process() and push_rdi() mixed: the frame before a gap came as an RDI, so restoration starts from it."""
    from edgesense.radar.rdi import RDIProcessor

    path = shipped_int8_tflite("gesture_cnn")
    ad60, _, payloads = radar_stream
    cir = GesturePipeline(path)
    ref = GesturePipeline(path, profile=RDIProcessor(ad60).output_profile)
    own, other = RDIProcessor(ad60), RDIProcessor(ad60)   # the CIR pipeline's processor sees no pushed frame
    for s in range(40):
        if s in (20, 30):
            r = other.process(payloads[s])
            cir.push_rdi(s, r)
            ref.push_rdi(s, r)
            continue
        other.process(payloads[s])
        if s in (21, 31):               # lost: the next frame closes a gap after a pushed RDI
            continue
        cir.process(Frame("radar_cir", s, 0, 0.0, payloads[s]))
        ref.process(Frame("rdi", s, 0, 0.0, own.process(payloads[s])))
        np.testing.assert_array_equal(cir.model_input, ref.model_input)
        np.testing.assert_array_equal(cir.last_probs, ref.last_probs)
    assert cir.stats.frames_restored == ref.stats.frames_restored == 2


def test_rdi_level_tables_give_the_integers_of_normalise(shipped_int8_tflite):
    """Restored frames' (and RDI sensors') columns are looked up per channel: at every threshold, just
    below it and at random RDI values of both signs, the same integers as _normalise + the int8 cast."""
    path = shipped_int8_tflite("gesture_cnn")
    pipe = GesturePipeline(path)
    rng = np.random.default_rng(1)
    for ch, table in enumerate(pipe._rdi_levels):
        finite = table[np.isfinite(table)]
        assert finite.size > 100 and (np.diff(finite) >= 0).all()
        values = np.concatenate([finite, np.nextafter(finite, np.float32(-np.inf)),
                                 rng.normal(0, 1, 5000).astype(np.float32),
                                 rng.normal(0, 1e4, 500).astype(np.float32),
                                 np.array([0.0, -0.0, np.inf, -np.inf, 3e38, -3e38], np.float32)])
        rows = np.repeat(values[None], pipe.info.rdi_shape[0], axis=0)[None].copy()
        with np.errstate(over="ignore"):             # (+-3e38 / std overflows to +-inf: clamped)
            want = pipe._normalise(rows)[0, ch].astype(np.int8)
        got = pipe._level_values.take(table.searchsorted(values, "right"), mode="wrap")
        np.testing.assert_array_equal(got, want)
