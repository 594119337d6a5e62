"""PyTorch model families and their training (the ``train`` extra: needs torch).

Run-time code never imports this package; models ship as ONNX / TFLite files run by
:mod:`edgesense.runtime`.
"""

from edgesense.nn.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
