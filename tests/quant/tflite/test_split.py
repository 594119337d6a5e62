"""Streaming split of a window model at its first convolution (``edgesense.quant.tflite.split``): the kept int8
conv output equals the whole graph's conv output after every slide, and the outputs equal the whole graph's, bit
for bit -- for the plain and the row-pair-packed first convolution, and for the CRNN's one-column first
convolution; models that do not fit are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgesense.errors import ModelError
from edgesense.quant.tflite.flatbuffer import ModelBuilder, read_model
from edgesense.quant.tflite.parity import tflite_interpreter
from edgesense.quant.tflite.split import (
    SplitModel,
    SplitUnsupported,
    column_graph,
    plan_split,
)

MODELS = Path(__file__).resolve().parents[3] / "models"


@pytest.fixture(scope="module")
def variants(tmp_path_factory, shipped_int8_tflite) -> dict[str, bytes]:
    """The shipped gesture .tflite files, and gesture_cnn exported again from its INT8 ONNX with and without row pairs."""
    from edgesense.quant.tflite import export_tflite

    out = {"cnn shipped": shipped_int8_tflite("gesture_cnn").read_bytes(),
           "crnn shipped": shipped_int8_tflite("gesture_crnn").read_bytes()}
    tmp = tmp_path_factory.mktemp("split")
    onnx_path = MODELS / "gesture_cnn" / "gesture_cnn_int8.onnx"
    for pair_rows in (True, False):
        path = export_tflite(onnx_path, tmp / f"rows{int(pair_rows)}.tflite", pair_rows=pair_rows)
        out[f"cnn row pairs={pair_rows}"] = path.read_bytes()
    return out


def _truncated_at_conv(fb: ModelBuilder, conv: int) -> bytes:
    """The whole graph's own operators up to and including the first convolution, its output the model output
    (an independent reference for the kept conv output: the original padding, layout and operators)."""
    fb.operators = fb.operators[:conv + 1]
    fb.outputs = list(fb.operators[-1].outputs)
    return fb.serialize()


def _slides(rng: np.random.Generator, shape: tuple, steps: int):
    """Windows moved on by 0..9, 12, 37 or 50 columns (as the pipeline does after gaps and outages)."""
    x = rng.integers(-128, 128, shape).astype(np.int8)
    yield x, shape[3]
    for _ in range(steps):
        new = int(rng.choice([0, 1, 1, 1, 1, 2, 3, 4, 5, 8, 9, 12, 37, 50]))
        m = min(new, shape[3])
        x = np.concatenate([x[..., m:], rng.integers(-128, 128, (*shape[:3], m)).astype(np.int8)], axis=3)
        yield x, new


@pytest.mark.parametrize("name", ["cnn shipped", "cnn row pairs=True", "cnn row pairs=False", "crnn shipped"])
def test_split_equals_the_whole_graph_bit_for_bit(variants, name):
    data = variants[name]
    split = SplitModel(data, max_new=9)
    whole = tflite_interpreter(data)
    i, o = whole.get_input_details()[0], whole.get_output_details()[0]
    head = tflite_interpreter(_truncated_at_conv(read_model(data), split.plan.split))
    hi, ho = head.get_input_details()[0]["index"], head.get_output_details()[0]["index"]
    changed = 0
    previous = None
    for x, new in _slides(np.random.default_rng(7), tuple(i["shape"]), 150):
        whole.set_tensor(i["index"], x)
        whole.invoke()
        got = split(x, new)
        np.testing.assert_array_equal(got, whole.get_tensor(o["index"]))
        head.set_tensor(hi, x)
        head.invoke()
        np.testing.assert_array_equal(split.kept, head.get_tensor(ho))   # the kept conv output, every column
        changed += previous is not None and not np.array_equal(got, previous)
        previous = got.copy()
    assert changed > 50          # the outputs really moved with the windows


def test_plans_of_the_plain_and_the_row_pair_graph(variants):
    plain = plan_split(read_model(variants["cnn row pairs=False"]))
    assert (plain.conv, plain.kernel, plain.left, plain.right, plain.rows_pad) == (1, 3, 1, 1, (1, 1))
    paired = plan_split(read_model(variants["cnn row pairs=True"]))
    # PAD (rows and columns) -> RESHAPE -> TRANSPOSE -> RESHAPE -> CONV on (1, 33, W, 6), VALID
    assert (paired.conv, paired.left, paired.right, paired.rows_pad) == (4, 1, 1, (0, 0))
    assert paired.time_axes == (3, 4, 2, 2)
    crnn = plan_split(read_model(variants["crnn shipped"]))
    assert (crnn.kernel, crnn.left, crnn.right) == (1, 0, 0)
    # past the first convolution: PAD of rows, the (5, 1)/2 and (16, 1) convolutions are one column wide too;
    # the split stops before the TCN's first 3-column convolution
    assert (crnn.conv, crnn.split) == (3, 6) and plain.split == plain.conv and paired.split == paired.conv
    assert SplitModel(variants["crnn shipped"]).kept.shape == (1, 1, 40, 24)
    # one new column: 1 + 2*2 + 1 slab columns (3 right, 1 zero point, 2 left) -> 4 conv columns
    assert plain.width(1) == 6 and plain.full_from == 37 and plain.width(37) == 42
    assert crnn.width(1) == 1


def test_column_graph_has_no_padding_along_time(variants):
    from tflite_export_helpers import tflite_ops

    fb = read_model(variants["cnn row pairs=True"])
    plan = plan_split(fb)
    g = read_model(column_graph(fb, plan, plan.width(1)))
    assert tflite_ops(column_graph(fb, plan, plan.width(1))) == ["PAD", "RESHAPE", "TRANSPOSE", "RESHAPE", "CONV_2D"]
    pads = np.frombuffer(g.buffers[g.tensors[g.operators[0].inputs[1]].buffer], np.int32).reshape(4, 2)
    np.testing.assert_array_equal(pads, [[0, 0], [0, 0], [1, 1], [0, 0]])     # rows kept, time columns not
    assert g.tensors[g.outputs[0]].shape == (1, 32, 4, 16)


@pytest.mark.parametrize("name", ["hybrid", "fftnet"])
def test_models_that_do_not_fit_are_refused_with_a_reason(name, shipped_int8_tflite):
    with pytest.raises(SplitUnsupported, match="inputs|window"):
        SplitModel(shipped_int8_tflite(name).read_bytes())


def test_a_convolution_striding_along_time_is_refused(variants):
    fb = read_model(variants["cnn row pairs=False"])
    fb.operators[1].options["StrideW"] = 2
    with pytest.raises(SplitUnsupported, match="strides or dilates along time") as exc:
        plan_split(fb)
    assert isinstance(exc.value, ModelError)
