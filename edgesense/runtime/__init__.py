"""Run models on device: one interface over onnxruntime (``.onnx``) and LiteRT (``.tflite``).

>>> from edgesense.runtime import load_model          # doctest: +SKIP
>>> model = load_model("models/gesture_cnn/int8.tflite", threads=1)
>>> probs = model.run(rdi_batch)                       # float in, float out, also for int8-I/O models

No torch here: this is run-time core.
"""

from edgesense.runtime.loader import BACKENDS, load_model
from edgesense.runtime.model import Model, TensorSpec, dequantize, quantize

__all__ = ["BACKENDS", "Model", "TensorSpec", "dequantize", "load_model", "quantize"]
