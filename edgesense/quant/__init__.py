"""INT8 quantization: simulation, PTQ, QAT and exact export (``train`` extra; needs torch).

Typical flow::

    from edgesense.quant import QuantSim, QuantConfig, AnalyzerConfig, calibrate, export_qdq_onnx
    sim = QuantSim(float_model, example_input, target="ort-cpu",
                   config=QuantConfig(activations=AnalyzerConfig("mse")))
    calibrate(sim, calib_batches)
    export_qdq_onnx(sim, "model_int8.onnx")
    IntegerSim(sim.lower())(x)        # what the integer runtime computes, in numpy

See docs/quantization.md. Names are imported on first use, so the torch-free parts
(``edgesense.quant.tflite``, the encoding records) can be used without torch installed.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "AnalyzerConfig": "analyzers", "MinMaxAnalyzer": "analyzers", "MseAnalyzer": "analyzers",
    "PercentileAnalyzer": "analyzers", "make_analyzer": "analyzers",
    "Encoding": "encoding", "grid_limits": "encoding",
    "IntegerSim": "integer",
    "export_float_onnx": "onnx_export", "export_qdq_onnx": "onnx_export",
    "ActQuantizerPerTensorAsym": "quantizers", "BetaGammaRange": "quantizers", "FixedQuantizer": "quantizers",
    "MinMaxRange": "quantizers", "ScaleOffsetRange": "quantizers", "TiedQuantizer": "quantizers",
    "WeightQuantizerPerChannelSym": "quantizers",
    "LoweredGraph": "sim", "QuantConfig": "sim", "QuantSim": "sim", "calibrate": "sim", "calibration": "sim",
    "TARGETS": "target", "TargetProfile": "target", "get_target": "target",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edgesense.quant' has no attribute {name!r}")
    value = getattr(import_module(f"edgesense.quant.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ActQuantizerPerTensorAsym", "AnalyzerConfig", "BetaGammaRange", "Encoding", "FixedQuantizer", "IntegerSim",
    "LoweredGraph", "MinMaxAnalyzer", "MinMaxRange", "MseAnalyzer", "PercentileAnalyzer", "QuantConfig", "QuantSim",
    "ScaleOffsetRange", "TARGETS", "TargetProfile", "TiedQuantizer", "WeightQuantizerPerChannelSym", "calibrate",
    "calibration", "export_float_onnx", "export_qdq_onnx", "get_target", "grid_limits", "make_analyzer",
]
