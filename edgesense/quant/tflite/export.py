"""``export_tflite``: write a full-integer ``.tflite`` file from a QDQ INT8 ONNX model."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from edgesense.errors import ModelError
from edgesense.quant.tflite.convert import convert_qdq_model

__all__ = ["export_tflite"]


def _load(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelError(f"{path} is not a valid ONNX model: {exc}") from exc


def export_tflite(
    qdq_onnx: str | os.PathLike | onnx.ModelProto,
    out_path: str | os.PathLike,
    *,
    io_dtype: str = "int8",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    pair_rows: bool = True,
    channel_last: bool = False,
    input_layout: str = "onnx",
    pack_channels: int | None = None,
) -> Path:
    """Convert a QDQ INT8 ONNX model to a full-integer LiteRT/TFLite model at ``out_path``.

    The quantization parameters are taken from the QDQ nodes as they are. Inputs and outputs keep
    the ONNX shapes; with ``io_dtype="int8"`` (default) they are int8 on the grids of the model's
    first ``QuantizeLinear`` and last ``DequantizeLinear``; ``"float32"`` adds QUANTIZE/DEQUANTIZE
    at the boundary. TFLite tensors are static: symbolic input dimensions are fixed to 1 (batch 1)
    unless ``input_shapes`` gives them (e.g. ``{"x": (1, 8, 12)}`` for a 12-step streaming block).
    ``pair_rows`` packs pairs of input rows into the channels of a first convolution on at most 4 input
    channels (same outputs bit for bit, faster on XNNPACK; ``docs/tflite-export.md``).
    ``channel_last`` (streaming models) gives the inputs and outputs the graph's own (1, 1, L, C) layout and
    drops their RESHAPE/TRANSPOSE operators (same numbers; :mod:`edgesense.quant.tflite.state_layout`).
    ``input_layout="nwhc"`` takes a rank-4 ONNX input ``(N, C, H, W)`` as ``(N, W, H, C)`` instead (the
    ONNX array ``.transpose(0, 3, 2, 1)``, recorded in the model's metadata, which ``edgesense.runtime``
    reads): no input TRANSPOSE, and convolutions along H only run column by column without one (same
    outputs for the transposed input; ``docs/tflite-export.md`` §6).
    ``pack_channels=64`` (opt-in) computes blocks of output pixels of every int8 convolution with few output
    channels in up to 64 output channels (:mod:`edgesense.quant.tflite.pack_channels`): exactly the same
    outputs, faster where XNNPACK's int8 convolution tile is 64 channels wide (x86 AMX), possibly slower
    elsewhere (AVX2, ARM). ``None`` (default) leaves the convolutions as they are.
    Raises :class:`~edgesense.errors.ModelError` for unsupported graphs.
    """
    data = convert_qdq_model(_load(qdq_onnx), io_dtype=io_dtype, input_shapes=input_shapes, pair_rows=pair_rows,
                             input_layout=input_layout)
    if channel_last:
        from edgesense.quant.tflite.state_layout import channel_last_states

        data = channel_last_states(data, which="all")[0]
    if pack_channels is not None:
        from edgesense.quant.tflite.pack_channels import pack_channels as pack

        data = pack(data, pack_channels)[0]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out
