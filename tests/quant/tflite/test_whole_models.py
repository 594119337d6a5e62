"""Whole small models: LiteRT int8 vs ONNX Runtime on the same QDQ model, and vs edgesense's integer simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tflite_export_helpers import quantize_qdq, samples, singles_and_batch, tflite_ops
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.parity import compare_with_onnx, tflite_interpreter

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("xnnpack", [True, False], ids=["xnnpack", "builtin-kernels"])
@pytest.mark.parametrize("name", ["cnn2d", "conv1d"])
def test_edgesense_qdq_examples(tmp_path, name, xnnpack):
    """The quantization engineer's QDQ exports (docs/quantization.md section 3) convert and agree."""
    qdq = DATA / f"example_{name}_int8.onnx"
    if not qdq.exists():
        pytest.skip(f"{qdq.name} not committed")
    x = np.load(DATA / f"example_{name}_inputs.npy", allow_pickle=False)
    codes = np.load(DATA / f"example_{name}_codes.npy", allow_pickle=False)
    out = export_tflite(qdq, tmp_path / f"{name}.tflite")

    report = compare_with_onnx(qdq, out, [s[None] for s in x], xnnpack=xnnpack)
    assert report.passes(0.999), report

    # against edgesense's integer simulation (the codes the quantization toolkit predicts)
    it = tflite_interpreter(out, xnnpack=xnnpack)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    s, z = i["quantization"]
    got = []
    for sample in x:
        it.set_tensor(i["index"], np.clip(np.rint(sample[None] / s) + z, -128, 127).astype(np.int8))
        it.invoke()
        got.append(it.get_tensor(o["index"])[0])
    diff = np.abs(np.stack(got).astype(int) - codes.astype(int))
    assert np.mean(diff <= 1) >= 0.999, diff.max()
    # layout changes only at the I/O boundary: cnn2d's NCHW input; conv1d's (N, C, L) input and output
    assert tflite_ops(out).count("TRANSPOSE") == {"cnn2d": 1, "conv1d": 2}[name]


torch = pytest.importorskip("torch")
nn = torch.nn


class GestureCNN(nn.Module):
    """Range-Doppler-image classifier shape: conv, pool, strided conv, depthwise residual, FC, softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.fc = nn.Linear(16 * 8 * 8, 6)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.relu(self.c2(x))
        x = torch.relu(self.dw(x)) + x
        return torch.softmax(self.fc(x.flatten(1)), -1)


class FFTNetLike(nn.Module):
    """Kernel-2 dilated causal Conv1d stack (FFTNet-style) on (V, I) blocks, linear 1x1 head."""

    def __init__(self, ch: int = 16, dilations=(1, 2, 4, 8)) -> None:
        super().__init__()
        self.dilations = dilations
        self.inp = nn.Conv1d(2, ch, 1)
        self.layers = nn.ModuleList([nn.Conv1d(ch, ch, 2, dilation=d) for d in dilations])
        self.out = nn.Conv1d(ch, 1, 1)

    def forward(self, x):
        x = torch.relu(self.inp(x))
        for d, layer in zip(self.dilations, self.layers):
            x = torch.relu(layer(nn.functional.pad(x, (d, 0))))
        return self.out(x)


def _torch_to_qdq(tmp_path: Path, model: nn.Module, shape: tuple, dynamo: bool) -> Path:
    torch.manual_seed(0)
    f = tmp_path / "float.onnx"
    with torch.no_grad():
        torch.onnx.export(model.eval(), torch.randn(*shape), str(f), input_names=["x"], output_names=["y"],
                          dynamo=dynamo, **({} if dynamo else {"opset_version": 17}))
    return quantize_qdq(f, tmp_path / "int8.onnx", shape)


CASES = [
    pytest.param(GestureCNN, (1, 2, 32, 32), False, id="cnn-legacy"),
    pytest.param(FFTNetLike, (1, 2, 128), False, id="fftnet-legacy"),
    pytest.param(GestureCNN, (1, 2, 32, 32), True, id="cnn-dynamo", marks=pytest.mark.slow),
    pytest.param(FFTNetLike, (1, 2, 128), True, id="fftnet-dynamo", marks=pytest.mark.slow),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("cls,shape,dynamo", CASES)
def test_torch_exported_models(tmp_path, cls, shape, dynamo):
    torch.manual_seed(0)
    qdq = _torch_to_qdq(tmp_path, cls(), shape, dynamo)
    out = export_tflite(qdq, tmp_path / "m.tflite")
    for xnnpack in (True, False):
        report = compare_with_onnx(qdq, out, samples(shape, 50), xnnpack=xnnpack)
        assert report.passes(0.999), (xnnpack, report)
    ops = tflite_ops(out)
    if cls is GestureCNN:
        assert "DEPTHWISE_CONV_2D" in ops and "FULLY_CONNECTED" in ops and "SOFTMAX" in ops
        assert ops.count("TRANSPOSE") == 1  # input only: the flatten before FC permutes weights instead
    else:
        assert ops.count("CONV_2D") == 6 and ops.count("PAD") == 4


@pytest.mark.parametrize("xnnpack", [True, False], ids=["xnnpack", "builtin-kernels"])
@pytest.mark.parametrize("name", ["cnn2d", "conv1d"])
def test_symbolic_batch_stays_resizable(tmp_path, name, xnnpack):
    """A model exported with a symbolic batch runs at batch 5 after resize_tensor_input, sample for sample
    equal to batch 1 (shape constants carry -1 where the batch leads; I/O carry a shape signature)."""
    qdq = DATA / f"example_{name}_int8.onnx"
    if not qdq.exists():
        pytest.skip(f"{qdq.name} not committed")
    out = export_tflite(qdq, tmp_path / "m.tflite")
    x = np.load(DATA / f"example_{name}_inputs.npy", allow_pickle=False)[:5]
    it = tflite_interpreter(out, xnnpack=xnnpack)
    assert list(it.get_input_details()[0]["shape_signature"]) == [-1, *x.shape[1:]]
    singles, batch = singles_and_batch(it, x)
    assert np.array_equal(batch, singles)
