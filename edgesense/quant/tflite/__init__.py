"""Full-integer LiteRT/TFLite export of QDQ INT8 ONNX models, written straight from the TFLite schema.

Needs the ``train`` extra (``onnx``, ``flatbuffers``, ``tflite``); running the exported model needs
only ``ai-edge-litert``. See ``docs/tflite-export.md``. ``export_tflite`` is imported on first use,
so the command line can describe the exporter without the extra installed.
"""

from typing import Any

__all__ = ["export_tflite"]


def __getattr__(name: str) -> Any:
    if name == "export_tflite":
        from edgesense.quant.tflite.export import export_tflite

        return export_tflite
    raise AttributeError(f"module 'edgesense.quant.tflite' has no attribute {name!r}")
