"""ONNX Runtime backend: CPU execution provider, a fixed intra-op thread count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgesense.errors import ModelError
from edgesense.runtime.cpu import ort_needs_precise_u8s8
from edgesense.runtime.model import Model, TensorSpec

__all__ = ["OnnxModel", "IO_QUANT_METADATA_KEY"]

#: Model metadata key holding ``{"tensor name": [scale, zero_point]}`` for integer model I/O.
IO_QUANT_METADATA_KEY = "edgesense.io_quant"

_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}


class OnnxModel(Model):
    """An ``.onnx`` file run by onnxruntime."""

    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        # x86 without VNNI: MLAS's default u8 x s8 kernels add pairs of products in saturating int16, so 8-bit
        # weights are not computed exactly (docs/quantization.md §4). ORT's precise mode runs u8 x u8 kernels
        # instead (bit-exact, no slower on our models there); with VNNI the default kernels are exact and faster
        if ort_needs_precise_u8s8():
            opts.add_session_config_entry("session.x64quantprecision", "1")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: not a loadable ONNX model ({first[:200]})") from None
        io_quant = {}
        meta = self.session.get_modelmeta().custom_metadata_map
        if IO_QUANT_METADATA_KEY in meta:
            try:
                io_quant = {k: (float(v[0]), int(v[1])) for k, v in json.loads(meta[IO_QUANT_METADATA_KEY]).items()}
            except (ValueError, TypeError, IndexError, AttributeError):
                raise ModelError(f"{path}: malformed {IO_QUANT_METADATA_KEY} metadata") from None
        super().__init__(path, [self._spec(a, io_quant) for a in self.session.get_inputs()],
                         [self._spec(a, io_quant) for a in self.session.get_outputs()])
        self._output_names = [s.name for s in self.output_specs]

    def _spec(self, arg, io_quant: dict) -> TensorSpec:
        if arg.type not in _ORT_DTYPES:
            raise ModelError(f"{self.path if hasattr(self, 'path') else ''}: unsupported tensor type {arg.type} "
                             f"for {arg.name!r}")
        shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
        dtype = np.dtype(_ORT_DTYPES[arg.type])
        scale, zp = io_quant.get(arg.name, (None, None))
        return TensorSpec(arg.name, shape, dtype, scale, zp)

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self._output_names, feeds)
