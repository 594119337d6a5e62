import numpy as np
import pytest

from edgesense.errors import ModelError
from edgesense.runtime import TensorSpec, dequantize, load_model, quantize

pytest.importorskip("onnx")
tiny = pytest.importorskip("tiny_models")


def test_onnx_float_model_matches_numpy(tmp_path):
    w, b = tiny.onnx_affine(tmp_path / "m.onnx")
    model = load_model(tmp_path / "m.onnx", threads=1, warmup=2)
    assert model.backend == "onnxruntime"
    assert model.input_specs == [TensorSpec("x", (None, 4), np.dtype(np.float32))]
    assert model.output_specs[0].shape == (None, 3) and not model.output_specs[0].quantized
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    np.testing.assert_allclose(model.run(x), x @ w + b, rtol=1e-5, atol=1e-5)
    out = model.run({"x": x})
    assert set(out) == {"y"}
    np.testing.assert_allclose(out["y"], x @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.run(x.tolist()), model.run(x))   # any array-like, not only ndarray


def test_fixed_batch_one_runs_larger_batches_sample_by_sample(tmp_path):
    w, b = tiny.onnx_affine(tmp_path / "m.onnx", batch=1)
    model = load_model(tmp_path / "m.onnx")
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = model.run(x)
    assert y.shape == (5, 3)
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-5, atol=1e-5)


def test_onnx_integer_io_quantization_from_metadata(tmp_path):
    tiny.onnx_int8_identity(tmp_path / "q.onnx", scale=0.1, zero_point=-4)
    model = load_model(tmp_path / "q.onnx")
    spec = model.input_specs[0]
    assert spec.quantized and spec.scale == pytest.approx(0.1) and spec.zero_point == -4
    x = np.array([[0.0, 0.25, -0.35, 100.0, -100.0]], dtype=np.float32)
    q = model.run(x, raw=False)
    # rint(x/s)+zp: 0.25/0.1=2.5 -> 2 (half to even), -3.5 -> -4; saturation at both ends
    np.testing.assert_allclose(q, [[0.0, 0.2, -0.4, 13.1, -12.4]], atol=1e-6)
    raw = model.run(np.array([[1, 2, 3, 4, 5]], dtype=np.int8), raw=True)
    assert raw.dtype == np.int8 and raw.tolist() == [[1, 2, 3, 4, 5]]
    with pytest.raises(ModelError, match="raw input"):
        model.run(np.zeros((1, 5), np.float32), raw=True)


def test_tflite_float_model(tmp_path):
    pytest.importorskip("tflite")
    c = np.arange(6, dtype=np.float32).reshape(1, 6) / 4
    tiny.tflite_add(tmp_path / "a.tflite", (1, 6), c, int8=False)
    model = load_model(tmp_path / "a.tflite")
    assert model.backend == "litert"
    assert model.input_specs[0].shape == (1, 6) and model.input_specs[0].dtype == np.float32
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(model.run(x), x + c, rtol=1e-6)


def test_tflite_int8_io_auto_quantization(tmp_path):
    pytest.importorskip("tflite")
    s, zp = 0.05, 3
    c = np.full((1, 4), 0.5, np.float32)
    tiny.tflite_add(tmp_path / "q.tflite", (1, 4), c, int8=True, scale=s, zero_point=zp)
    model = load_model(tmp_path / "q.tflite")
    ins, outs = model.input_specs[0], model.output_specs[0]
    assert ins.dtype == np.int8 and ins.scale == pytest.approx(s) and ins.zero_point == zp
    assert outs.quantized
    x = np.array([[0.1, -1.0, 2.0, 0.0]], dtype=np.float32)
    y = model.run(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x + c, atol=s)      # one output LSB
    qx = quantize(x, s, zp, np.int8)
    qy = model.run(qx, raw=True)
    assert qy.dtype == np.int8
    np.testing.assert_allclose(dequantize(qy, s, zp), y)


def test_quantize_rounds_half_to_even_and_saturates():
    q = quantize(np.array([0.5, 1.5, 2.5, -0.5, 1e6, -1e6]), 1.0, 0, np.int8)
    assert q.tolist() == [0, 2, 2, 0, 127, -128]
    assert quantize(np.array([-1e6]), 1.0, 0, np.uint8).tolist() == [0]


@pytest.mark.parametrize("name,content,match", [
    ("bad.onnx", b"this is not protobuf", "not a loadable ONNX"),
    ("bad.tflite", b"\x00" * 64, "not a loadable TFLite"),
    ("model.pb", b"", "unsupported model type"),
])
def test_corrupt_or_unsupported_files_raise_model_error(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError, match=match):
        load_model(tmp_path / name)


def test_missing_file_and_bad_inputs(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "nope.onnx")
    tiny.onnx_affine(tmp_path / "m.onnx")
    model = load_model(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match="expects shape"):
        model.run(np.zeros((2, 5), np.float32))
    with pytest.raises(ModelError, match="inputs must be named"):
        model.run({"z": np.zeros((2, 4), np.float32)})


def test_runtime_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, edgesense.runtime, edgesense.runtime.onnx_backend, edgesense.runtime.litert_backend; "
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_invoker_is_run_raw_without_the_checks(tmp_path):
    tiny.onnx_int8_identity(tmp_path / "q.onnx", scale=0.1, zero_point=-4)
    model = load_model(tmp_path / "q.onnx")
    call = model.invoker()
    x = np.array([[1, -2, 3, 127, -128]], dtype=np.int8)
    out = call(x)
    assert out.dtype == np.int8 and np.array_equal(out, model.run(x, raw=True))
    w, b = tiny.onnx_affine(tmp_path / "m.onnx")
    xf = np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)
    assert np.array_equal(load_model(tmp_path / "m.onnx").invoker()(xf), load_model(tmp_path / "m.onnx").run(xf))


def test_tflite_invoker_equals_run_raw(tmp_path):
    pytest.importorskip("tflite")
    c = np.arange(6, dtype=np.float32).reshape(1, 6) / 4
    tiny.tflite_add(tmp_path / "a.tflite", (1, 6), c, int8=True)
    model = load_model(tmp_path / "a.tflite")
    call = model.invoker()
    rng = np.random.default_rng(3)
    for _ in range(3):                  # repeated calls: inputs copied in, outputs copied out
        xq = rng.integers(-128, 128, (1, 6)).astype(np.int8)
        out = call(xq)
        assert np.array_equal(out, model.run(xq, raw=True))
        assert np.array_equal(call(xq), out)
    with pytest.raises(ValueError):
        call(np.zeros((1, 6), np.float32))        # no conversion: the wrong dtype is refused, not cast


def test_tflite_run_resizes_back_and_forth(tmp_path):
    """LiteRT re-plans its kept input/output views on every shape change: batch 3, 1, 2, 1 all right."""
    pytest.importorskip("tflite")
    c = np.arange(6, dtype=np.float32).reshape(1, 6) / 4
    tiny.tflite_add(tmp_path / "a.tflite", (1, 6), c, int8=False)
    model = load_model(tmp_path / "a.tflite")
    rng = np.random.default_rng(4)
    for batch in (3, 1, 2, 1):
        x = rng.standard_normal((batch, 6)).astype(np.float32)
        y = model.run(x)
        assert y.shape == (batch, 6)
        np.testing.assert_allclose(y, x + c, rtol=1e-6)


def test_tflite_streaming_model_refuses_another_block_length():
    """A streaming .tflite's state slices are fixed for its block: a resized run would return wrong states."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "models" / "hybrid" / "hybrid_int8.tflite"
    if not path.is_file():
        pytest.skip("models/hybrid is not shipped")
    model = load_model(path, warmup=0)
    feeds = {s.name: np.full([int(d) for d in s.shape], s.zero_point, s.dtype) for s in model.input_specs}
    out = model.run(feeds, raw=True)                              # the built block runs
    assert set(out) >= {"y"} | {f"{n}_out" for n in feeds if n.startswith("state")}
    x = next(s for s in model.input_specs if s.name == "x")
    longer = list(feeds["x"].shape)
    longer[2] *= 2                                                # twice the steps (axis 2 in either layout)
    with pytest.raises(ModelError, match="built for input 'x'"):
        model.run({**feeds, "x": np.full(longer, x.zero_point, x.dtype)}, raw=True)


def test_ort_precise_kernels_are_asked_for_exactly_where_8_bit_weights_need_them():
    """x86 without VNNI saturates u8 x s8 pairs in int16: precise u8 x u8 kernels there; VNNI and ARM64 don't."""
    from edgesense.runtime.cpu import cpu_flags, cpu_model, ort_needs_precise_u8s8

    assert ort_needs_precise_u8s8(frozenset({"sse4_2", "avx2", "fma"}), "x86_64")
    assert ort_needs_precise_u8s8(frozenset(), "x86_64")                 # features unknown: the safe kernels
    assert not ort_needs_precise_u8s8(frozenset({"avx2", "avx512f", "avx512_vnni"}), "x86_64")
    assert not ort_needs_precise_u8s8(frozenset({"avx2", "avx_vnni"}), "AMD64")
    assert not ort_needs_precise_u8s8(frozenset({"asimd", "asimddp"}), "aarch64")
    assert isinstance(cpu_flags(), frozenset) and cpu_model()
