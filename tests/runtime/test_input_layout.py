"""A ``.tflite`` that takes an input in another layout than its ONNX model (``edgesense.input_layout`` metadata):
its spec has the model's own shape and ``perm``; ``run`` takes the ONNX-layout array (transposed for it) as
well as the model's own; ``invoker`` takes the model's own layout."""

from __future__ import annotations

import numpy as np
import pytest

from edgesense.errors import ModelError
from edgesense.runtime import load_model

tflite = pytest.importorskip("tflite")

PERM = (0, 3, 2, 1)


def _write(path, perm_json: bytes | None, int8: bool = True) -> None:
    """ONNX layout (N, 2, 3, 4) -> the model takes (N, 4, 3, 2); it adds a constant that differs per position,
    so a wrongly laid-out input gives other numbers."""
    from edgesense.quant.tflite.flatbuffer import ModelBuilder, QuantParams

    fb = ModelBuilder()
    qp = QuantParams.make(0.5, -3) if int8 else None
    dtype = np.int8 if int8 else np.float32
    c = np.arange(24, dtype=np.int8).reshape(1, 4, 3, 2) if int8 else np.arange(24, dtype=np.float32).reshape(1, 4, 3, 2)
    x = fb.add_tensor("image", (1, 4, 3, 2), dtype, qp)
    ci = fb.add_tensor("c", (1, 4, 3, 2), dtype, qp, c)
    y = fb.add_tensor("y", (1, 4, 3, 2), dtype, QuantParams.make(0.5, -3) if int8 else None)
    fb.add_operator(tflite.BuiltinOperator.ADD, [x, ci], [y], "AddOptions", version=2, FusedActivationFunction=0)
    fb.tensors[x].signature = (-1, 4, 3, 2)
    fb.inputs, fb.outputs = [x], [y]
    if perm_json is not None:
        fb.metadata["edgesense.input_layout"] = perm_json
    path.write_bytes(fb.serialize())


def test_spec_run_and_invoker_with_another_input_layout(tmp_path):
    _write(tmp_path / "m.tflite", b'{"image": [0, 3, 2, 1]}')
    model = load_model(tmp_path / "m.tflite")
    spec = model.input_specs[0]
    assert spec.perm == PERM and spec.shape == (None, 4, 3, 2) and spec.onnx_shape == (None, 2, 3, 4)
    rng = np.random.default_rng(0)
    x = rng.integers(-40, 40, (1, 2, 3, 4)).astype(np.int8)        # the ONNX model's layout
    native = np.ascontiguousarray(x.transpose(PERM))
    expect = native.astype(np.int32) + np.arange(24).reshape(1, 4, 3, 2) + 3    # same grid: q_a + q_c - zp
    out = model.run(x, raw=True)
    np.testing.assert_array_equal(out, np.clip(expect, -128, 127))
    np.testing.assert_array_equal(model.run(native, raw=True), out)
    np.testing.assert_array_equal(model.invoker()(native), out)
    xf = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)      # float, a batch of 3, ONNX layout
    y3 = model.run(xf)
    np.testing.assert_array_equal(y3[1:2], model.run(xf[1:2]))
    np.testing.assert_array_equal(y3, model.run(np.ascontiguousarray(xf.transpose(PERM))))
    with pytest.raises(ModelError):
        model.run(np.zeros((1, 2, 3), np.float32))                 # wrong rank: refused as always
    from edgesense.runtime.bench import backend_label

    assert backend_label(tmp_path / "m.tflite", "litert") == "LiteRT INT8 (nwhc input)"


def test_without_metadata_nothing_changes_and_bad_metadata_is_refused(tmp_path):
    _write(tmp_path / "plain.tflite", None)
    model = load_model(tmp_path / "plain.tflite")
    assert model.input_specs[0].perm is None and model.input_specs[0].onnx_shape == model.input_specs[0].shape
    from edgesense.runtime.bench import backend_label

    assert backend_label(tmp_path / "plain.tflite", "litert") == "LiteRT INT8"
    _write(tmp_path / "bad.tflite", b"[not json")
    with pytest.raises(ModelError, match="edgesense.input_layout"):
        load_model(tmp_path / "bad.tflite")
