"""Fixtures shared by the speaker tests."""

from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "fftnet" / "fftnet.onnx"


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """A streaming FFTNet ONNX: exported from a randomised torch model, or the shipped one without torch."""
    try:
        import torch

        from edgesense.nn.train_excursion import TrainConfig, build_model, export_model, spec_for
    except ImportError:
        if not SHIPPED.is_file():
            pytest.skip("needs torch or the shipped models/fftnet/fftnet.onnx")
        return SHIPPED
    torch.manual_seed(0)
    model = build_model("fftnet")
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("model") / "fftnet.onnx"
    export_model(model, spec_for(model, "fftnet", TrainConfig()), path)
    return path
