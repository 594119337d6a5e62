"""Channel packing of narrow int8 convolutions (``export_tflite(..., pack_channels=64)``, opt-in): the packed
graph computes bit for bit what the default export computes (XNNPACK and the builtin kernels), the graph really
changed (convolutions with more output channels), a corrupted packed weight is seen, and the default export is
untouched. No timing is asserted here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper as h
from tflite import BuiltinOperator as Op

from tflite_export_helpers import float_model, quantize_qdq, rand, tflite_ops
from edgesense.errors import ModelError
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.convert import convert_qdq_model
from edgesense.quant.tflite.flatbuffer import read_model
from edgesense.quant.tflite.pack_channels import pack_channels
from edgesense.quant.tflite.parity import tflite_interpreter

ROOT = Path(__file__).resolve().parents[3]
RNG = np.random.default_rng(11)


def _conv_outs(data: bytes) -> list[int]:
    """Output channels of every CONV_2D."""
    fb = read_model(data)
    return [fb.shape(op.outputs[0])[-1] for op in fb.operators if op.opcode == Op.CONV_2D]


def _without_softmax(data: bytes) -> bytes:
    """The model's logits: a final SOFTMAX removed (random inputs saturate it; the logits show every change)."""
    fb = read_model(data)
    if fb.operators[-1].opcode == Op.SOFTMAX:
        fb.outputs = [fb.operators[-1].inputs[0]]
        fb.operators = fb.operators[:-1]
    return fb.serialize()


def _outputs(data: bytes, xs: list[np.ndarray], xnnpack: bool) -> np.ndarray:
    it = tflite_interpreter(data, xnnpack=xnnpack)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    ys = []
    for x in xs:
        it.set_tensor(d["index"], x)
        it.invoke()
        ys.append(it.get_tensor(o["index"]).copy())
    return np.array(ys)


def _inputs(data: bytes, n: int, seed: int = 0) -> list[np.ndarray]:
    shape = tflite_interpreter(data).get_input_details()[0]["shape"]
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=shape).astype(np.int8) for _ in range(n)]


def _assert_identical(ref: bytes, packed: bytes, n: int = 30) -> None:
    xs = _inputs(ref, n)
    for xnnpack in (True, False):
        a, b = _outputs(ref, xs, xnnpack), _outputs(packed, xs, xnnpack)
        assert len(np.unique(a)) > 4  # the comparison sees real outputs, not a saturated constant
        np.testing.assert_array_equal(a, b, err_msg=f"xnnpack={xnnpack}")


def _conv_model(c, n, rows, cols, kernel, pads, strides=(1, 1), dil=(1, 1), pool=None, relu=True, second=None):
    """x (1, c, rows, cols) -> Conv (n outputs) [-> Relu] [-> MaxPool] [-> Conv (second outputs, 3x3 pad 1)]."""
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=list(pads), strides=list(strides),
                         dilations=list(dil))]
    weights = {"w": rand(RNG, n, c, *kernel), "b": rand(RNG, n, scale=0.1)}
    ho = (rows + pads[0] + pads[2] - (kernel[0] - 1) * dil[0] - 1) // strides[0] + 1
    wo = (cols + pads[1] + pads[3] - (kernel[1] - 1) * dil[1] - 1) // strides[1] + 1
    last = "c"
    if relu:
        nodes.append(h.make_node("Relu", [last], ["r"]))
        last = "r"
    if pool is not None:
        nodes.append(h.make_node("MaxPool", [last], ["p"], kernel_shape=list(pool), strides=list(pool)))
        last, ho, wo = "p", ho // pool[0], wo // pool[1]
    if second is not None:
        nodes.append(h.make_node("Conv", [last, "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]))
        weights.update(w2=rand(RNG, second, n, 3, 3), b2=rand(RNG, second, scale=0.1))
        last, n = "c2", second
    nodes[-1].output[0] = "y"
    return float_model(nodes, {"x": (1, c, rows, cols)}, {"y": (1, n, ho, wo)}, weights)


CONFIGS = {
    # name: (c, n, rows, cols, kernel, pads, strides, dilations, pool, second conv)
    "3x3-same-n16-pool": (3, 16, 16, 12, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), (2, 2), None),
    "3x3-same-n12-pool-conv": (8, 12, 16, 20, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), (2, 2), 4),
    "3x3-same-n4": (12, 4, 8, 10, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), None, None),
    "3x3-valid-n8": (5, 8, 10, 14, (3, 3), (0, 0, 0, 0), (1, 1), (1, 1), None, None),
    "5x3-pad21-n8": (2, 8, 12, 8, (5, 3), (2, 1, 2, 1), (1, 1), (1, 1), None, None),
    "asymmetric-pads-n16": (4, 16, 10, 12, (3, 3), (0, 1, 2, 1), (1, 1), (1, 1), None, None),
    "1x1-n24": (16, 24, 6, 8, (1, 1), (0, 0, 0, 0), (1, 1), (1, 1), None, None),
    "5x1-rows-n16": (3, 16, 16, 8, (5, 1), (2, 0, 2, 0), (1, 1), (1, 1), None, None),
    "stride2-rows-n24": (16, 24, 16, 8, (5, 1), (0, 0, 0, 0), (2, 1), (1, 1), None, None),
    "stride2-cols-n8": (4, 8, 6, 16, (1, 3), (0, 1, 0, 1), (1, 2), (1, 1), None, None),
    "stride2-both-n8": (5, 8, 13, 17, (3, 3), (0, 0, 0, 0), (2, 2), (1, 1), None, None),
    "dilated-cols-n8": (6, 8, 1, 24, (1, 3), (0, 2, 0, 2), (1, 1), (1, 2), None, None),
    "3x3-same-n4-pool-b4": (5, 4, 8, 8, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), (2, 2), None),  # square: b 4, pool 2
    "unaligned-input-n16-pool": (5, 16, 8, 10, (3, 3), (0, 0, 0, 0), (1, 1), (1, 1), (2, 2), None),
}


#: square blocks need equal strides, an output height and width the block divides and 4*N <= 64 (the first
#: convolution on 3 channels with a pool after it computes row pairs: N = 2*16)
SQUARE_SKIPS = {"3x3-same-n16-pool", "1x1-n24", "stride2-rows-n24", "stride2-cols-n8",
                "dilated-cols-n8"}


@pytest.fixture(scope="module")
def qdq_models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pack")
    out = {}
    for name, (c, n, rows, cols, kernel, pads, strides, dil, pool, second) in CONFIGS.items():
        m = _conv_model(c, n, rows, cols, kernel, pads, strides, dil, pool, second=second)
        out[name] = onnx.load(str(quantize_qdq(m, tmp / f"{name}.qdq.onnx", (1, c, rows, cols))))
    return out


@pytest.mark.parametrize("blocks", ["cols", "square"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_synthetic_convs_are_packed_and_bit_identical(qdq_models, name, blocks):
    ref = convert_qdq_model(qdq_models[name])
    packed, report = pack_channels(ref, 64, blocks)
    widths = {r.channels[1] for r in report}
    if blocks == "square" and name in SQUARE_SKIPS:
        assert (packed, report) == (ref, [])
        return
    assert report, f"{name}: nothing packed"
    assert max(_conv_outs(packed)) > max(_conv_outs(ref)) and max(widths) <= 64
    _assert_identical(ref, packed)


def test_square_blocks_use_space_to_depth_and_the_pool_view(qdq_models):
    ref = convert_qdq_model(qdq_models["3x3-same-n12-pool-conv"])
    packed, report = pack_channels(ref, 64, "square")
    assert [(r.block, r.channels, r.pool) for r in report] == [((2, 2), (12, 48), True), ((2, 2), (4, 16), False)]
    ops = tflite_ops(packed)
    assert "SPACE_TO_DEPTH" in ops and "DEPTH_TO_SPACE" in ops
    _assert_identical(ref, packed)


def test_cols_blocks_move_no_data(qdq_models):
    """Blocks of columns: only RESHAPEs (and a PAD where the padding needs one) around the convolutions."""
    ref = convert_qdq_model(qdq_models["3x3-same-n12-pool-conv"])
    packed, report = pack_channels(ref, 64)
    assert len(report) == 2 and all(r.block[0] == 1 and r.padding == "SAME" for r in report)
    extra = set(tflite_ops(packed)) - set(tflite_ops(ref))
    assert extra <= {"RESHAPE"}


def test_corrupted_packed_weight_changes_outputs(qdq_models):
    """Negative control: the comparison sees one changed weight of the packed convolution."""
    ref = convert_qdq_model(qdq_models["3x3-same-n16-pool"])
    packed, _ = pack_channels(ref, 64)
    fb = read_model(packed)
    conv = next(op for op in fb.operators if op.opcode == Op.CONV_2D)
    t = fb.tensors[conv.inputs[1]]
    w = np.frombuffer(fb.buffers[t.buffer], np.int8).copy()
    k = int(np.flatnonzero(w)[0])
    w[k] = -w[k] if w[k] != -128 else 127
    fb.buffers[t.buffer] = w.tobytes()
    bad = fb.serialize()
    xs = _inputs(ref, 30)
    for xnnpack in (True, False):
        assert not np.array_equal(_outputs(ref, xs, xnnpack), _outputs(bad, xs, xnnpack))


def test_square_pool_view_with_a_smaller_pool(qdq_models):
    ref = convert_qdq_model(qdq_models["3x3-same-n4-pool-b4"])
    packed, report = pack_channels(ref, 64, "square")
    assert [(r.block, r.pool) for r in report] == [((4, 4), True)]
    assert "DEPTH_TO_SPACE" in tflite_ops(packed)   # the pooled 2x2 blocks go back in place
    _assert_identical(ref, packed)


def test_no_eligible_conv_leaves_bytes_unchanged(qdq_models):
    ref = convert_qdq_model(qdq_models["1x1-n24"])
    assert pack_channels(ref, 32) == (ref, [])   # 2*24 > 32: nothing fits


def test_width_is_checked():
    with pytest.raises(ModelError, match="width"):
        pack_channels(b"", 2)
    with pytest.raises(ModelError, match="blocks"):
        pack_channels(b"", 64, "diagonal")


# ------------------------------------------------------------------ shipped models

SHIPPED = {
    "gesture_cnn": ROOT / "models" / "gesture_cnn" / "gesture_cnn_int8.onnx",
    # the shipped gesture_crnn .tflite comes from a QAT tflite-int8 QDQ that is not committed: the shipped
    # (ORT-target) QDQ of the same architecture is exported the same way instead
    "gesture_crnn": ROOT / "models" / "gesture_crnn" / "gesture_crnn_int8.onnx",
}


@pytest.mark.parametrize("model,layout", [("gesture_cnn", "onnx"), ("gesture_crnn", "onnx"), ("gesture_cnn", "nwhc")])
def test_shipped_models_packed_logits_bit_identical(tmp_path, model, layout):
    qdq = SHIPPED[model]
    if not qdq.exists():
        pytest.skip(f"{qdq} not present")
    ref = export_tflite(qdq, tmp_path / "ref.tflite", input_layout=layout).read_bytes()
    packed = export_tflite(qdq, tmp_path / "packed.tflite", pack_channels=64, input_layout=layout).read_bytes()
    assert 64 in _conv_outs(packed) and max(_conv_outs(ref)) <= 24
    assert tflite_ops(packed).count("CONV_2D") == tflite_ops(ref).count("CONV_2D")
    _assert_identical(_without_softmax(ref), _without_softmax(packed), n=60)
    _assert_identical(ref, packed, n=20)


def test_default_export_unchanged(tmp_path):
    qdq = SHIPPED["gesture_cnn"]
    shipped = qdq.with_suffix(".tflite")
    if not qdq.exists() or not shipped.exists():
        pytest.skip("gesture_cnn not present")
    assert export_tflite(qdq, tmp_path / "a.tflite").read_bytes() == shipped.read_bytes()
    assert export_tflite(qdq, tmp_path / "b.tflite", pack_channels=None).read_bytes() == shipped.read_bytes()


def test_command_line_flag(tmp_path, capsys):
    from edgesense.quant.tflite.__main__ import main

    qdq = SHIPPED["gesture_cnn"]
    if not qdq.exists():
        pytest.skip("gesture_cnn not present")
    out = tmp_path / "p.tflite"
    assert main([str(qdq), str(out), "--pack-channels", "64", "--check", "5"]) == 0
    assert "100.00% exact" in capsys.readouterr().out
    assert 64 in _conv_outs(out.read_bytes())


@pytest.mark.parametrize("model", ["fftnet", "convnet", "hybrid"])
def test_excursion_models_are_left_alone(model):
    """12-sample streaming blocks already fill one 16-pixel tile row (and fftnet's dilation 128 would spread a
    packed kernel over 65 blocks): nothing is packed, the bytes stay the same."""
    path = ROOT / "models" / model / f"{model}_int8.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    data = path.read_bytes()
    assert pack_channels(data, 64) == (data, [])
