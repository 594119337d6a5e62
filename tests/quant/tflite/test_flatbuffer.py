"""The schema writer on its own: a hand-built model reads back through the schema and runs."""

from __future__ import annotations

import numpy as np
import tflite

from edgesense.quant.tflite.flatbuffer import ModelBuilder, QuantParams
from edgesense.quant.tflite.parity import tflite_interpreter


def _fc_model() -> tuple[bytes, np.ndarray, np.ndarray]:
    fb = ModelBuilder(description="test")
    w = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    b = np.array([100, -50, 0], np.int32)
    x = fb.add_tensor("x", (1, 4), np.int8, QuantParams.make(0.5, 1))
    wi = fb.add_tensor("w", (3, 4), np.int8, QuantParams.make([0.1, 0.2, 0.3], 0), w)
    bi = fb.add_tensor("b", (3,), np.int32, QuantParams.make([0.05, 0.1, 0.15], 0), b)
    y = fb.add_tensor("y", (1, 3), np.int8, QuantParams.make(0.25, -2))
    fb.add_operator(tflite.BuiltinOperator.FULLY_CONNECTED, [x, wi, bi], [y], "FullyConnectedOptions", version=5)
    fb.inputs, fb.outputs = [x], [y]
    return fb.serialize(), w, b


def test_schema_round_trip():
    data, w, b = _fc_model()
    assert data[4:8] == b"TFL3"
    model = tflite.Model.GetRootAs(data, 0)
    assert model.Version() == 3 and model.Description() == b"test"
    assert model.BuffersLength() == 3 and model.Buffers(0).DataLength() == 0  # buffer 0 is the empty one
    sub = model.Subgraphs(0)
    t = sub.Tensors(1)
    assert t.Name() == b"w" and t.Type() == tflite.TensorType.INT8
    assert np.array_equal(t.Quantization().ScaleAsNumpy(), np.float32([0.1, 0.2, 0.3]))
    buf = model.Buffers(t.Buffer())
    assert np.array_equal(buf.DataAsNumpy().view(np.int8).reshape(3, 4), w)
    offset = buf.DataAsNumpy().ctypes.data - np.frombuffer(data, np.uint8).ctypes.data
    assert 0 < offset < len(data) and offset % 16 == 0  # constant data is 16-byte aligned in the file
    assert model.SignatureDefs(0).SignatureKey() == b"serving_default"


def test_hand_built_model_runs_and_matches_integer_arithmetic():
    data, w, b = _fc_model()
    it = tflite_interpreter(data)
    x = np.array([[-3, 7, 0, 120]], np.int8)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    acc = (x.astype(np.int64) - 1) @ w.T.astype(np.int64) + b
    expect = np.clip(np.rint(acc * 0.5 * np.array([0.1, 0.2, 0.3]) / 0.25) - 2, -128, 127)
    assert np.abs(y.astype(int) - expect).max() <= 1


def test_duplicate_names_are_made_unique_and_io_names_are_exact():
    fb = ModelBuilder()
    a = fb.add_tensor("t", (1,), np.int8)
    c = fb.add_tensor("t", (1,), np.int8)
    assert fb.tensors[a].name != fb.tensors[c].name
    fb.rename(c, "t")  # an output must carry its ONNX name exactly
    assert fb.tensors[c].name == "t" and fb.tensors[a].name != "t"


def test_exported_per_tensor_params_use_dimension_0(tmp_path):
    """XNNPACK declines int8 tensors whose per-tensor quantization names another dimension (ONNX's axis=1
    default); every per-tensor tensor must say 0 or LiteRT silently runs without the delegate."""
    from pathlib import Path

    from edgesense.quant.tflite import export_tflite

    qdq = Path(__file__).resolve().parents[1] / "data" / "example_cnn2d_int8.onnx"
    if not qdq.exists():
        import pytest

        pytest.skip("example model not committed")
    model = tflite.Model.GetRootAs(export_tflite(qdq, tmp_path / "m.tflite").read_bytes(), 0)
    sub = model.Subgraphs(0)
    per_tensor = per_channel = 0
    for i in range(sub.TensorsLength()):
        q = sub.Tensors(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            continue
        if q.ScaleLength() == 1:
            per_tensor += 1
            assert q.QuantizedDimension() == 0, sub.Tensors(i).Name()
        else:
            per_channel += 1
    assert per_tensor > 5 and per_channel > 3


def test_metadata_is_written_read_back_and_leaves_the_graph_alone():
    """``ModelBuilder.metadata`` entries land in the schema's ``Model.metadata`` (read by the schema package, by
    ``read_model`` and by the runtime's dependency-free reader); the graph runs as without them."""
    from edgesense.quant.tflite.flatbuffer import read_model
    from edgesense.runtime.tflite_metadata import read_metadata

    plain, _, _ = _fc_model()
    fb = read_model(plain)
    assert fb.metadata == {} and read_metadata(plain) == {} and tflite.Model.GetRootAs(plain, 0).MetadataLength() == 0
    fb.metadata = {"edgesense.a": b'{"x": [0, 1]}', "other": b"\x00\x01\x02", "empty": b""}
    data = fb.serialize()
    model = tflite.Model.GetRootAs(data, 0)
    names = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    assert sorted(names) == ["edgesense.a", "empty", "other"]
    assert model.Buffers(names["other"]).DataAsNumpy().tobytes() == b"\x00\x01\x02"
    assert read_model(data).metadata == fb.metadata == read_metadata(data)
    x = np.array([[3, -7, 0, 12]], np.int8)
    outs = []
    for content in (plain, data):
        it = tflite_interpreter(content)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(outs[0], outs[1])
