"""INT8 quantization: simulation, PTQ, QAT and exact export (``train`` extra; needs torch).

Typical flow::

    from edgesense.quant import QuantSim, QuantConfig, AnalyzerConfig, calibrate, export_qdq_onnx
    sim = QuantSim(float_model, example_input, target="ort-cpu",
                   config=QuantConfig(activations=AnalyzerConfig("mse")))
    calibrate(sim, calib_batches)
    export_qdq_onnx(sim, "model_int8.onnx")
    IntegerSim(sim.lower())(x)        # what the integer runtime computes, in numpy

See docs/quantization.md.
"""

from edgesense.quant.analyzers import (AnalyzerConfig, MinMaxAnalyzer, MseAnalyzer, PercentileAnalyzer,
                                       make_analyzer)
from edgesense.quant.encoding import Encoding, grid_limits
from edgesense.quant.integer import IntegerSim
from edgesense.quant.onnx_export import export_float_onnx, export_qdq_onnx
from edgesense.quant.quantizers import (ActQuantizerPerTensorAsym, BetaGammaRange, FixedQuantizer, MinMaxRange,
                                        ScaleOffsetRange, TiedQuantizer, WeightQuantizerPerChannelSym)
from edgesense.quant.sim import LoweredGraph, QuantConfig, QuantSim, calibrate, calibration
from edgesense.quant.target import TARGETS, TargetProfile, get_target

__all__ = [
    "ActQuantizerPerTensorAsym", "AnalyzerConfig", "BetaGammaRange", "Encoding", "FixedQuantizer", "IntegerSim",
    "LoweredGraph", "MinMaxAnalyzer", "MinMaxRange", "MseAnalyzer", "PercentileAnalyzer", "QuantConfig", "QuantSim",
    "ScaleOffsetRange", "TARGETS", "TargetProfile", "TiedQuantizer", "WeightQuantizerPerChannelSym", "calibrate",
    "calibration", "export_float_onnx", "export_qdq_onnx", "get_target", "grid_limits", "make_analyzer",
]
