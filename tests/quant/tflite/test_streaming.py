"""Streaming (stateful) excursion models: (x, *states) -> (y, *new_states) with Concat and Slice."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tflite_export_helpers import tie_concat_grids, tflite_ops
from edgesense.errors import ModelError
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.parity import compare_with_onnx, tflite_interpreter

torch = pytest.importorskip("torch")
nn_registry = pytest.importorskip("edgesense.nn")
train_excursion = pytest.importorskip("edgesense.nn.train_excursion")

STEPS = 12


@pytest.fixture(scope="module")
def streaming_qdq(tmp_path_factory):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    d = tmp_path_factory.mktemp("stream")
    torch.manual_seed(0)
    model = nn_registry.create_model("excursion_convnet", layers=3).eval()
    states = model.initial_state(1)
    x = torch.zeros(1, model.in_signals * model.frame, STEPS)
    names = [f"state{k}" for k in range(len(states))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(train_excursion._Streaming(model), (x, *states), str(d / "f.onnx"),
                          input_names=["x", *names], output_names=["y", *[n + "_out" for n in names]],
                          dynamic_axes={"x": {2: "steps"}, "y": {2: "steps"}}, opset_version=17, dynamo=False)
    rng = np.random.default_rng(0)

    def feed():
        return {"x": rng.normal(size=tuple(x.shape)).astype(np.float32),
                **{n: rng.normal(size=tuple(s.shape)).astype(np.float32) for n, s in zip(names, states)}}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([feed() for _ in range(16)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(d / "f.onnx"), str(d / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return d / "q.onnx", [feed() for _ in range(10)], tuple(x.shape), len(states)


def test_streaming_model_structure_and_state_outputs(streaming_qdq, tmp_path):
    qdq, feeds, x_shape, n_states = streaming_qdq
    out = export_tflite(qdq, tmp_path / "s.tflite", input_shapes={"x": x_shape})
    it = tflite_interpreter(out)
    assert [d["name"] for d in it.get_input_details()] == ["x"] + [f"state{k}" for k in range(n_states)]
    assert list(it.get_input_details()[0]["shape"]) == list(x_shape)
    ops = tflite_ops(out)
    assert ops.count("CONCATENATION") == n_states and ops.count("SLICE") == n_states
    # onnxruntime calibrated each state on its own grid: the concatenation inputs are requantized, with
    # the precise requantization (1x1 depthwise conv), not QUANTIZE
    assert ops.count("DEPTHWISE_CONV_2D") >= n_states and "QUANTIZE" not in ops
    report = compare_with_onnx(qdq, out, feeds)  # LiteRT default (XNNPACK)
    assert report.passes(0.999), report
    assert all(o.exact >= 0.99 for o in report.outputs), report


def test_quantize_op_requantization_is_coarse(streaming_qdq, tmp_path):
    """Why the exporter does not use QUANTIZE to requantize: with it the same model drifts (docs §3)."""
    import onnx

    from edgesense.quant.tflite.convert import _Converter

    qdq, feeds, x_shape, _ = streaming_qdq
    data = _Converter(onnx.load(str(qdq)), "int8", {"x": x_shape}, precise_requantize=False).run()
    (tmp_path / "q.tflite").write_bytes(data)
    assert "QUANTIZE" in tflite_ops(tmp_path / "q.tflite")
    coarse = compare_with_onnx(qdq, tmp_path / "q.tflite", feeds)
    precise = compare_with_onnx(qdq, export_tflite(qdq, tmp_path / "p.tflite", input_shapes={"x": x_shape}), feeds)
    assert min(o.exact for o in precise.outputs) > min(o.exact for o in coarse.outputs)


def test_streaming_model_with_tied_concat_grids_is_bit_exact(streaming_qdq, tmp_path):
    qdq, feeds, x_shape, n_states = streaming_qdq
    tied = tie_concat_grids(qdq, tmp_path / "tied.onnx")
    out = export_tflite(tied, tmp_path / "s.tflite", input_shapes={"x": x_shape})
    ops = tflite_ops(out)
    assert "QUANTIZE" not in ops and "DEPTHWISE_CONV_2D" not in ops  # nothing to requantize
    report = compare_with_onnx(tied, out, feeds)  # LiteRT default (XNNPACK)
    assert report.passes(0.999), report
    assert all(o.exact >= 0.99 for o in report.outputs), report


def test_input_shapes_are_checked(streaming_qdq, tmp_path):
    qdq, _, x_shape, _ = streaming_qdq
    with pytest.raises(ModelError, match="not inputs"):
        export_tflite(qdq, tmp_path / "s.tflite", input_shapes={"nope": x_shape})
    with pytest.raises(ModelError, match="does not fit"):
        export_tflite(qdq, tmp_path / "s.tflite", input_shapes={"x": (1, 3, 12)})
