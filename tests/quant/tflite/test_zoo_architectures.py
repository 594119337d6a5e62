"""The model zoo's architectures (edgesense.nn, untrained weights) through edgesense's own QDQ exporter
(edgesense.quant; targets ort-cpu and per-tensor-int8) and this TFLite exporter: LiteRT (default XNNPACK) vs ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tflite_export_helpers import tflite_ops
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.parity import compare_with_onnx

torch = pytest.importorskip("torch")
nn_registry = pytest.importorskip("edgesense.nn")
quant = pytest.importorskip("edgesense.quant")

CASES = [
    pytest.param("gesture_cnn", (2, 64, 40), "ort-cpu", id="gesture_cnn"),
    pytest.param("excursion_convnet", (8, 256), "ort-cpu", id="excursion_convnet"),
    pytest.param("gesture_crnn", (2, 64, 40), "ort-cpu", id="gesture_crnn"),
    pytest.param("excursion_fftnet", (8, 256), "ort-cpu", id="excursion_fftnet"),
    pytest.param("excursion_hybrid", (12, 256), "ort-cpu", id="excursion_hybrid"),
    # per-tensor weights (NPUs that only run those): bias on one grid too
    pytest.param("gesture_cnn", (2, 64, 40), "per-tensor-int8", id="gesture_cnn-per-tensor"),
    pytest.param("excursion_convnet", (8, 64), "per-tensor-int8", id="excursion_convnet-per-tensor"),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("name,shape,target", CASES)
def test_zoo_architecture_parity(tmp_path, name, shape, target):
    torch.manual_seed(0)
    model = nn_registry.create_model(name).eval()
    g = torch.Generator().manual_seed(0)
    calib = torch.randn((16, *shape), generator=g)
    sim = quant.QuantSim(model, calib[:1], target=target)
    quant.calibrate(sim, calib.split(8))
    sim.eval()
    qdq = tmp_path / "int8.onnx"
    quant.export_qdq_onnx(sim, qdq)
    out = export_tflite(qdq, tmp_path / "int8.tflite")
    xs = [torch.randn((1, *shape), generator=g).numpy() for _ in range(10)]
    report = compare_with_onnx(qdq, out, xs)
    assert report.passes(0.999), report
    assert report.outputs[0].exact >= 0.99, report  # XNNPACK requantizes like ORT: (nearly) bit-exact
    ops = tflite_ops(out)
    assert ops.count("TRANSPOSE") <= 2  # layout changes only at the input and output


ZOO = Path(__file__).resolve().parents[3] / "models"
SHIPPED = sorted(ZOO.glob("*/*int8*.onnx")) if ZOO.is_dir() else []


@pytest.mark.skipif(not SHIPPED, reason="no INT8 ONNX models shipped under models/ yet")
@pytest.mark.parametrize("qdq", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_int8_models(tmp_path, qdq):
    """Every INT8 ONNX model of the zoo converts and agrees with ORT (symbolic dims -> 1: one frame/block)."""
    import onnx

    out = export_tflite(qdq, tmp_path / "m.tflite")
    rng = np.random.default_rng(0)
    inputs = onnx.load(str(qdq)).graph.input
    feeds = [{i.name: rng.normal(size=[d.dim_value or 1 for d in i.type.tensor_type.shape.dim]).astype(np.float32)
              for i in inputs} for _ in range(10)]
    report = compare_with_onnx(qdq, out, feeds)
    assert report.passes(0.999), report
