"""``edgesense export tflite``: a QDQ INT8 ONNX model to a full-integer LiteRT/TFLite model."""

from __future__ import annotations

import argparse

COMMAND = ("export", "tflite")
HELP = "convert a QDQ INT8 ONNX model to a full-integer LiteRT/TFLite model (same quantization parameters)"


def configure(parser: argparse.ArgumentParser) -> None:
    from edgesense.quant.tflite.__main__ import configure as tflite_arguments  # torch-free

    tflite_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from edgesense.quant.tflite.__main__ import run as export_run

    return export_run(args)
