"""LiteRT (TFLite) backend: ``ai_edge_litert`` interpreter, or ``tflite_runtime`` when only that exists.

``tflite-runtime`` 2.14 cannot create an interpreter under numpy 2 and has no wheels past Python
3.11 (see /work/shared/reference/stack.md), so it is only a fallback import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from edgesense.errors import ModelError
from edgesense.runtime.model import Model, TensorSpec
from edgesense.runtime.tflite_metadata import read_metadata

__all__ = ["LiteRTModel", "interpreter_class", "INPUT_LAYOUT_METADATA", "input_perms"]

#: ``.tflite`` metadata key written by ``edgesense.quant.tflite`` (``input_layout="nwhc"``): JSON
#: ``{input name: perm}``, the model's input array is the ONNX-layout array transposed by ``perm``
INPUT_LAYOUT_METADATA = "edgesense.input_layout"


def input_perms(data: bytes) -> dict[str, tuple[int, ...]]:
    """``{input name: perm}`` of the inputs a ``.tflite`` takes in another layout than its ONNX model."""
    raw = read_metadata(data).get(INPUT_LAYOUT_METADATA)
    if raw is None:
        return {}
    try:
        return {str(k): tuple(int(p) for p in v) for k, v in json.loads(raw).items()}
    except (ValueError, TypeError, AttributeError):
        raise ModelError(f"malformed {INPUT_LAYOUT_METADATA} metadata") from None


def interpreter_class():
    """The TFLite ``Interpreter`` class of whichever interpreter package is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("running .tflite models needs ai-edge-litert (pip install ai-edge-litert)") from None
    return Interpreter


class LiteRTModel(Model):
    """A ``.tflite`` file run by the LiteRT interpreter (default op resolver, XNNPACK where it applies)."""

    backend = "litert"
    resizable_inputs = True   # the interpreter re-plans for new input shapes (e.g. another block length)

    def __init__(self, path: Path, threads: int = 1) -> None:
        Interpreter = interpreter_class()
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: not a loadable TFLite model ({first[:200]})") from None
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        try:
            perms = input_perms(Path(path).read_bytes())
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None
        super().__init__(path, [self._spec(d, perms.get(d["name"])) for d in self._in],
                         [self._spec(d) for d in self._out])
        self._plan()

    def _plan(self) -> None:
        """Per input (in ``input_specs`` order): name, current shape and tensor index; the output indices."""
        by_name = {d["name"]: d for d in self._in}
        self._feeds = [(s.name, tuple(int(v) for v in by_name[s.name]["shape"]), by_name[s.name]["index"])
                       for s in self.input_specs]
        self._fetches = [d["index"] for d in self._out]
        self._single = self._feeds[0] if len(self._feeds) == 1 and len(self._fetches) == 1 else None

    @staticmethod
    def _spec(d: dict, perm: tuple[int, ...] | None = None) -> TensorSpec:
        dtype = np.dtype(d["dtype"])
        scale, zp = d.get("quantization", (0.0, 0))
        sig = d.get("shape_signature")
        shape = tuple(None if s < 0 else int(s) for s in (sig if sig is not None and len(sig) else d["shape"]))
        if np.issubdtype(dtype, np.integer) and scale:
            return TensorSpec(d["name"], shape, dtype, float(scale), int(zp), perm)
        return TensorSpec(d["name"], shape, dtype, perm=perm)

    def invoker(self) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`Model.invoker` on the interpreter's public calls: copy in, invoke, copy the first output out.

        Valid for the input shape the interpreter has now (resizing through ``run`` keeps the
        tensor indices, so the call stays valid; a wrong shape or dtype raises ValueError).
        """
        if len(self._in) != 1:
            return super().invoker()       # raises the one-input error
        interp = self.interpreter
        i, o = self._in[0]["index"], self._out[0]["index"]
        set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor

        def call(x: np.ndarray) -> np.ndarray:
            set_tensor(i, x)
            invoke()
            return get_tensor(o)
        return call

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        interp = self.interpreter
        if self._single is not None:                     # one input, one output, at the planned shape
            name, shape, index = self._single
            value = feeds[name]
            if value.shape == shape:
                interp.set_tensor(index, value)
                interp.invoke()
                return [interp.get_tensor(self._fetches[0])]
        for name, shape, index in self._feeds:
            value = feeds[name]
            if value.shape != shape:
                self._resize(name, index, value.shape)
                break
            # set_tensor/get_tensor copy, but cost less than writing/reading through interp.tensor()
            # views (which build a numpy wrapper per call): 3 us less per call on gesture_crnn (measured)
            interp.set_tensor(index, value)
        else:
            interp.invoke()
            return [interp.get_tensor(index) for index in self._fetches]
        return self._invoke(feeds)  # planned again for the new shapes

    def _resize(self, name: str, index: int, shape: tuple[int, ...]) -> None:
        interp = self.interpreter
        built = next(s for n, s, _ in self._feeds if n == name)
        if any(n.startswith("state") for n, _, _ in self._feeds):
            # a streaming graph's state slices are fixed at export for its block: resized, it would run and
            # return wrong states, so refuse (re-export the ONNX with another block via input_shapes instead)
            raise ModelError(f"{self.path.name}: streaming model with state inputs is built for input {name!r} "
                             f"of shape {list(built)}; cannot run it with {list(shape)} (export another block length)")
        try:
            interp.resize_tensor_input(index, list(shape))
            interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path.name}: cannot run input {name!r} with shape "
                             f"{list(shape)} (built for {list(built)}): {first}") from None
        self._in = interp.get_input_details()
        self._out = interp.get_output_details()
        self._plan()
