"""Pick a backend from a model file's suffix and load it."""

from __future__ import annotations

from pathlib import Path

from edgesense.errors import ModelError
from edgesense.runtime.model import Model

__all__ = ["load_model", "BACKENDS"]

#: Suffix -> backend name.
BACKENDS = {".onnx": "onnxruntime", ".tflite": "litert"}


def load_model(path: str | Path, threads: int = 1, warmup: int = 1) -> Model:
    """Load ``path`` (``.onnx`` -> onnxruntime, ``.tflite`` -> LiteRT) with ``threads`` CPU threads.

    Runs ``warmup`` inferences on random inputs before returning. Missing, unsupported or corrupt
    files raise :class:`~edgesense.errors.ModelError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in BACKENDS:
        raise ModelError(f"{path}: unsupported model type {suffix or '(no suffix)'!r}; "
                         f"expected one of {sorted(BACKENDS)}")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    if suffix == ".onnx":
        from edgesense.runtime.onnx_backend import OnnxModel
        model: Model = OnnxModel(path, threads=threads)
    else:
        from edgesense.runtime.litert_backend import LiteRTModel
        model = LiteRTModel(path, threads=threads)
    model.warm_up(warmup)
    return model
