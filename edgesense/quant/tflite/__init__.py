"""Full-integer LiteRT/TFLite export of QDQ INT8 ONNX models, written straight from the TFLite schema.

Needs the ``train`` extra (``onnx``, ``flatbuffers``, ``tflite``); running the exported model needs
only ``ai-edge-litert``. See ``docs/tflite-export.md``.
"""

from edgesense.quant.tflite.export import export_tflite

__all__ = ["export_tflite"]
