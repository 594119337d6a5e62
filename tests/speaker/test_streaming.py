"""Streaming excursion prediction: arbitrary blocks equal whole-signal prediction, bounded state."""


import numpy as np
import pytest

from edgesense.errors import ModelError
from edgesense.speaker.streaming import ExcursionModelSpec, ExcursionStreamer, frame_inputs, predict_signal, unframe

def _signal(n=9_601, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 48_000
    v = (4 * np.sin(2 * np.pi * 700 * t) + rng.standard_normal(n)).astype(np.float32)
    i = (v / 8 + 0.01 * rng.standard_normal(n)).astype(np.float32)
    return v, i


def test_framing_round_trip_and_bl_scaling():
    spec = ExcursionModelSpec(frame=4, x_scale=0.5)
    v, i = _signal(40)
    x = frame_inputs(spec, v, i, bl=1.0)
    assert x.shape == (1, 8, 10)
    np.testing.assert_allclose(x[0, :4].T.reshape(-1), v / 10, rtol=1e-6)   # channel j = sample j of the frame
    np.testing.assert_allclose(x[0, 4:].T.reshape(-1), i / 1.5, rtol=1e-6)
    y = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    np.testing.assert_allclose(unframe(spec, y, bl=2.0), y[0].T.reshape(-1) * 0.25)
    with pytest.raises(ModelError):
        frame_inputs(ExcursionModelSpec(inputs=("v", "i", "track")), v, i, bl=1.0)


def test_arbitrary_blocks_equal_whole_signal(onnx_model):
    v, i = _signal()
    streamer = ExcursionStreamer(onnx_model, bl=0.8)
    assert streamer.streaming
    whole = predict_signal(streamer, v, i, bl=0.8, chunk=len(v))
    assert len(whole) == len(v) and np.abs(whole).max() > 0
    rng = np.random.default_rng(1)
    for trial in range(2):
        streamer.reset()
        outs, pos, sizes = [], 0, []
        while pos < len(v):
            b = int(rng.integers(1, 700))
            sizes.append(b)
            outs.append(streamer.process(v[pos:pos + b], i[pos:pos + b]))
            pos += b
            # state: the fixed ring buffers plus fewer than one frame of pending samples
            assert streamer.state_floats < sum(c * n for c, n in streamer.spec.state_shapes) + 2 * 4
        got = np.concatenate(outs)
        assert len(got) == (len(v) // 4) * 4
        np.testing.assert_allclose(got, whole[:len(got)], atol=1e-5, rtol=1e-4)


def test_state_is_bounded_and_1ms_blocks_add_no_latency(onnx_model):
    v, i = _signal(48 * 50)
    streamer = ExcursionStreamer(onnx_model, bl=1.0)
    sizes = set()
    for k in range(50):
        out = streamer.process(v[48 * k:48 * (k + 1)], i[48 * k:48 * (k + 1)])
        assert len(out) == 48                      # every sample of the block predicted within the block
        sizes.add(streamer.state_floats)
    assert len(sizes) == 1                          # state size never grows
    assert sizes.pop() == sum(c * n for c, n in streamer.spec.state_shapes)


def test_window_mode_for_models_without_state_io(onnx_model, tmp_path):
    """A model with no state inputs runs on a receptive-field window and gives the same result."""
    v, i = _signal(3_000)
    ref = ExcursionStreamer(onnx_model, bl=1.0)
    whole = predict_signal(ref, v, i, bl=1.0)

    class NoState:
        """The same streaming model seen through a plain one-input interface (zero state every call)."""

        def __init__(self, inner):
            self.inner = inner.model
            self.path = inner.model.path
            spec = [s for s in inner.model.input_specs if s.name == "x"]
            self.input_specs, self.output_specs = spec, inner.model.output_specs[:1]
            self.zeros = {s.name: np.zeros((1, *s.shape[1:]), np.float32) for s in inner.model.input_specs
                          if s.name != "x"}

        def run(self, x):
            return self.inner.run({"x": x, **self.zeros})["y"]

    windowed = ExcursionStreamer(NoState(ref), bl=1.0, spec=ref.spec)
    assert not windowed.streaming
    outs = [windowed.process(v[k:k + 100], i[k:k + 100]) for k in range(0, 3_000, 100)]
    np.testing.assert_allclose(np.concatenate(outs), whole, atol=1e-5, rtol=1e-4)


def _shipped_int8(name):
    from pathlib import Path

    from edgesense.runtime import load_model

    path = Path(__file__).resolve().parents[2] / "models" / name / f"{name}_int8.tflite"
    if not path.is_file():
        pytest.skip(f"no shipped INT8 {name}")
    return load_model(path)


def _vi(n, seed=5):
    rng = np.random.default_rng(seed)
    v = (2 * rng.standard_normal(n)).astype(np.float32)
    i = (0.1 * v + 0.01 * rng.standard_normal(n)).astype(np.float32)
    return v, i


def test_int8_tflite_state_stays_raw_and_matches_the_dequantized_path():
    """INT8 streaming models keep their state as integers between blocks: same outputs, less work per block."""
    model = _shipped_int8("fftnet")
    fast = ExcursionStreamer(model, bl=0.8, direct=False)
    slow = ExcursionStreamer(model, bl=0.8, direct=False)
    slow._raw_state = False  # the generic path: states dequantized to float and quantized again every block
    slow.reset()
    assert fast._raw_state and all(s.dtype == np.int8 for s in fast._states.values())
    v, i = _vi(48 * 60)
    got = np.concatenate([fast.process(v[k:k + 48], i[k:k + 48]) for k in range(0, v.size, 48)])
    ref = np.concatenate([slow.process(v[k:k + 48], i[k:k + 48]) for k in range(0, v.size, 48)])
    assert got.shape == (v.size,) and np.array_equal(got, ref)
    assert np.abs(got).max() > 0


@pytest.mark.parametrize("name", ["fftnet", "hybrid"])
def test_int8_tflite_direct_path_equals_model_run_path(name):
    """The direct interpreter path gives bit-identical outputs to Model.run at 1 ms blocks, also after reset."""
    model = _shipped_int8(name)
    direct = ExcursionStreamer(model, bl=0.8)
    generic = ExcursionStreamer(model, bl=0.8, direct=False)
    assert direct._direct is not None and generic._direct is None
    assert all(a.dtype == np.int8 for a in direct._direct._state_in)       # state stays raw int8
    v, i = _vi(48 * 80)
    # the hybrid's third input: float64, as the tracker returns it
    track = 0.05 * np.random.default_rng(2).standard_normal(v.size) if direct.spec.needs_tracker else None
    blocks = [(v[k:k + 48], i[k:k + 48], None if track is None else track[k:k + 48]) for k in range(0, v.size, 48)]
    ref = np.concatenate([generic.process(*b) for b in blocks])
    for _ in range(2):   # the second round checks reset()
        got = np.concatenate([direct.process(*b) for b in blocks])
        assert got.dtype == np.float32 and np.array_equal(got, ref)
        direct.reset()
    assert np.abs(ref).max() > 0.01
    assert direct.state_floats == generic.state_floats


def test_int8_tflite_direct_path_input_types_and_clamps_equal_model_run_path():
    """The hot path's fused scaling (float32 arithmetic via ``dtype=``) and framed clamp write equal the
    generic path for every input form a caller may pass: strided float32 columns of a frame payload,
    float64, int16, and samples far outside the int8 range (clamped at both ends)."""
    model = _shipped_int8("hybrid")
    direct = ExcursionStreamer(model, bl=0.8)
    generic = ExcursionStreamer(model, bl=0.8, direct=False)
    rng = np.random.default_rng(11)
    n = 48 * 40
    v, i = _vi(n, seed=9)
    v[::97] *= 40.0                                   # beyond the quantization range: clamps at both ends
    i[5::89] = -i[5::89] * 60.0
    track = 0.05 * rng.standard_normal(n)
    track[::53] = 5.0
    payload = np.stack([v, i], axis=1)                # (n, 2): columns are strided views
    forms = {
        "payload columns": (payload[:, 0], payload[:, 1], track),
        "float64": (v.astype(np.float64), i.astype(np.float64), track),
        "int16": ((v * 100).astype(np.int16), (i * 1000).astype(np.int16), (track * 100).astype(np.int16)),
        "float32 track": (v, i, track.astype(np.float32)),
    }
    for name, (a, b, t) in forms.items():
        direct.reset()
        generic.reset()
        got = np.concatenate([direct.process(a[k:k + 48], b[k:k + 48], t[k:k + 48]) for k in range(0, n, 48)])
        ref = np.concatenate([generic.process(a[k:k + 48], b[k:k + 48], t[k:k + 48]) for k in range(0, n, 48)])
        assert got.shape == (n,) and np.array_equal(got, ref), name
    # the inputs did reach both clamps of the int8 input
    from edgesense.runtime.model import quantize

    xs = direct._x_spec
    q = quantize(frame_inputs(direct.spec, v, i, 0.8, track), xs.scale, xs.zero_point, xs.dtype)
    assert (q == -128).any() and (q == 127).any()


def test_int8_tflite_direct_path_takes_any_block_size():
    """Fixed-step INT8 models stream blocks of any size (partial frames and partial calls) == 1 ms blocks."""
    model = _shipped_int8("fftnet")
    streamer = ExcursionStreamer(model, bl=0.8)
    steps = streamer._direct.steps
    n = 48 * 70 + 3
    v, i = _vi(n, seed=7)
    ref = np.concatenate([streamer.process(v[k:k + 48], i[k:k + 48]) for k in range(0, n - 3, 48)])
    rng = np.random.default_rng(3)
    for trial in range(2):
        streamer.reset()
        outs, pos = [], 0
        while pos < n:
            b = int(rng.integers(1, 300))
            outs.append(streamer.process(v[pos:pos + b], i[pos:pos + b]))
            pos += b
            # bounded: the int8 state, < one call of uncommitted frames, < one frame of samples
            assert streamer.state_floats < sum(a.size for a in streamer._direct._state_in) + 8 * 4 * steps
        got = np.concatenate(outs)
        assert len(got) == (n // 4) * 4
        np.testing.assert_array_equal(got[:len(ref)], ref)
    # whole-signal prediction in one call (many model calls plus a padded partial one)
    whole = predict_signal(streamer, v, i, bl=0.8, chunk=n)
    np.testing.assert_array_equal(whole[:len(ref)], ref)


def test_int8_tflite_state_commit_in_one_copy_equals_tensor_by_tensor():
    """The one-span state copy (used when the arena lays both state sets out alike) changes nothing."""
    from edgesense.speaker.streaming import _state_span

    model = _shipped_int8("hybrid")
    one = ExcursionStreamer(model, bl=0.8)
    each = ExcursionStreamer(model, bl=0.8)
    assert one._direct._span is not None
    each._direct._span = None
    v, i = _vi(48 * 40, seed=9)
    track = 0.05 * np.sin(np.arange(v.size) / 30.0)
    for k in range(0, v.size, 48):
        a = one.process(v[k:k + 48], i[k:k + 48], track[k:k + 48])
        b = each.process(v[k:k + 48], i[k:k + 48], track[k:k + 48])
        assert np.array_equal(a, b)
    assert all(np.array_equal(x, y) for x, y in zip(one._direct._state_in, each._direct._state_in))
    # layouts: the same offsets in both regions -> one span; different offsets -> None
    src, dst = np.arange(300).astype(np.int8), np.zeros(300, np.int8)
    alike = [(dst[0:64], src[0:64]), (dst[80:100], src[80:100])]
    span = _state_span(alike)
    assert span is not None and span[0].size == 100
    span[0][...] = span[1]
    assert np.array_equal(dst[:100], src[:100])
    assert _state_span([(dst[0:64], src[0:64]), (dst[64:84], src[80:100])]) is None


@pytest.mark.parametrize("zero_point", [-3, 0, 6, -128, 127])
def test_int8_tflite_direct_quantizer_equals_quantize_at_ties_and_range_ends(zero_point):
    """The hot path's rounding (1.5 * 2**23 added in float32) and int8 cast (the float's low byte) give
    quantize()'s codes: exact halves round to even, values far beyond the range (up to inf) clamp, also
    around 2**22 steps where the added constant no longer rounds to integers, and for odd zero points."""
    from edgesense.runtime.model import quantize

    d = ExcursionStreamer(_shipped_int8("hybrid"), bl=0.8)._direct
    scale = np.float32(0.0063020577)
    d.set_input_grid(scale, zero_point)
    halves = (np.arange(-300, 300) + 0.5).astype(np.float32)
    w_half = halves * scale
    w_half = w_half[w_half / scale == halves]                # exact ties after the division
    assert w_half.size > 100
    steps = np.float32(scale) * np.array([2.0 ** 22 - 1, 2.0 ** 22, 2.0 ** 22 + 3, 2.0 ** 23, 2.0 ** 24, 1e30],
                                         np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf], np.float32)
    rng = np.random.default_rng(4)
    values = np.concatenate([w_half, steps, -steps, special, (rng.standard_normal(2000) * scale * 90),
                             rng.uniform(-200, 200, 2000).astype(np.float32) * scale]).astype(np.float32)
    n = d._w.size
    values = np.concatenate([values, np.zeros(-values.size % n, np.float32)])
    for k in range(0, values.size, n):
        chunk = values[k:k + n].reshape(d._w.shape)
        d._w[...] = chunk
        d._quantize_into_x(d._w)
        ref = quantize(chunk, scale, zero_point, np.int8).reshape(d._x_framed.shape)
        np.testing.assert_array_equal(d._x_framed, ref)
