"""The steady-state quantization of new window columns by level thresholds equals the arithmetic exactly."""

from pathlib import Path

import numpy as np
import pytest

from edgesense.radar.pipeline import GesturePipeline, _float_order, _from_float_order, _level_thresholds

MODEL = Path(__file__).resolve().parents[2] / "models" / "gesture_cnn" / "gesture_cnn_int8.tflite"


def test_float_order_keys_are_monotone_and_invertible():
    v = np.array([-np.finfo(np.float32).max, -2.5, -1e-45, -0.0, 0.0, 1e-45, 3.0, np.finfo(np.float32).max], np.float32)
    k = _float_order(v)
    assert np.all(np.diff(k) >= 0) and k[3] == k[4] == 0 and k[2] == -1 and k[5] == 1
    back = _from_float_order(k)
    assert np.array_equal(back[v != 0], v[v != 0]) and np.all(back[3:5] == 0)


def _arithmetic(mean, std, scale, zp, lo, hi):
    def encode(v):
        v = (v - mean) / std / np.float32(scale)
        return np.minimum(np.maximum(np.rint(v) + zp, np.float32(lo)), np.float32(hi))
    return encode


@pytest.mark.parametrize("scale,zp", [(0.0372, -9), (0.5, 0), (1e-3, 100)])
def test_thresholds_give_the_arithmetic_level_of_every_value(scale, zp):
    mean = np.array([[0.3], [-1.2]], np.float32)
    std = np.array([[0.7], [2.5]], np.float32)
    encode = _arithmetic(mean, std, scale, zp, -128, 127)
    t = _level_thresholds(encode, 2, -128, 127)
    assert t is not None and t.shape == (2, 255) and np.all(np.diff(t, axis=1) >= 0)
    rng = np.random.default_rng(0)
    # random values over the whole quantized range and far beyond, plus every threshold and its float neighbours
    v = [rng.normal(mean, std * scale * 300, (2, 20000)).astype(np.float32),
         t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))]
    for vals in v:
        want = encode(vals.copy())
        got = np.stack([np.searchsorted(t[ch], vals[ch], side="right") for ch in range(2)]) - 128
        assert np.array_equal(got, want)


def test_a_chain_that_does_not_reach_every_level_gets_no_thresholds():
    assert _level_thresholds(lambda v: np.zeros_like(v), 1, -128, 127) is None


@pytest.mark.skipif(not MODEL.is_file(), reason="gesture_cnn INT8 model not shipped")
def test_the_pipeline_uses_thresholds_equal_to_its_own_arithmetic():
    pipe = GesturePipeline(MODEL)
    t = pipe._thresholds
    assert t is not None and t.shape == (pipe.info.rdi_shape[0], 255)
    rng = np.random.default_rng(1)
    vals = rng.uniform(-2, 4, (pipe.info.rdi_shape[0], 5000)).astype(np.float32)
    want = pipe._normalise(vals.copy()).astype(np.int8)
    got = np.stack([pipe._levels[t[ch].searchsorted(vals[ch], side="right")] for ch in range(len(t))])
    assert np.array_equal(got, want)
