"""Tiny models built in the tests: ONNX with the onnx helper, TFLite straight from the flatbuffer schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def onnx_affine(path: Path, dim: int = 4, batch: int | str = "N") -> tuple[np.ndarray, np.ndarray]:
    """``y = x @ W + b`` as a float ONNX model with a dynamic (or fixed) batch; returns (W, b)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = rng.standard_normal((dim, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w, b


def onnx_int8_identity(path: Path, scale: float, zero_point: int) -> None:
    """int8 in -> int8 out (y = x + 0 in the integer domain) with I/O quantization in the metadata."""
    import json

    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "id",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"edgesense.io_quant": json.dumps({"x": [scale, zero_point],
                                                                     "y": [scale, zero_point]})})
    onnx.save(model, str(path))


def tflite_add(path: Path, shape: tuple[int, ...], const: np.ndarray, *, int8: bool,
               scale: float = 0.05, zero_point: int = 3) -> None:
    """One ADD op, ``y = x + const``; float32, or int8 with the same (scale, zp) on every tensor."""
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(1024)

    def ivec(start, values):
        start(b, len(values))
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    def quant():
        tflite.QuantizationParametersStartScaleVector(b, 1)
        b.PrependFloat32(scale)
        sv = b.EndVector()
        tflite.QuantizationParametersStartZeroPointVector(b, 1)
        b.PrependInt64(zero_point)
        zv = b.EndVector()
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, sv)
        tflite.QuantizationParametersAddZeroPoint(b, zv)
        return tflite.QuantizationParametersEnd(b)

    if int8:
        raw = np.clip(np.rint(const / scale) + zero_point, -128, 127).astype(np.int8).tobytes()
    else:
        raw = const.astype(np.float32).tobytes()
    data = b.CreateByteVector(raw)
    buffers = []
    for payload in (None, None, data, None):
        tflite.BufferStart(b)
        if payload is not None:
            tflite.BufferAddData(b, payload)
        buffers.append(tflite.BufferEnd(b))
    tensors = []
    for i, name in enumerate(("x", "c", "y")):
        nm = b.CreateString(name)
        shp = ivec(tflite.TensorStartShapeVector, shape)
        q = quant() if int8 else None
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shp)
        tflite.TensorAddType(b, tflite.TensorType.INT8 if int8 else tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, {0: 1, 1: 2, 2: 3}[i])
        tflite.TensorAddName(b, nm)
        if q is not None:
            tflite.TensorAddQuantization(b, q)
        tensors.append(tflite.TensorEnd(b))
    tflite.AddOptionsStart(b)
    opts = tflite.AddOptionsEnd(b)
    ins = ivec(tflite.OperatorStartInputsVector, [0, 1])
    outs = ivec(tflite.OperatorStartOutputsVector, [2])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.AddOptions)
    tflite.OperatorAddBuiltinOptions(b, opts)
    op = tflite.OperatorEnd(b)

    def ovec(start, items):
        start(b, len(items))
        for it in reversed(items):
            b.PrependUOffsetTRelative(it)
        return b.EndVector()

    tvec = ovec(tflite.SubGraphStartTensorsVector, tensors)
    sin = ivec(tflite.SubGraphStartInputsVector, [0])
    sout = ivec(tflite.SubGraphStartOutputsVector, [2])
    opv = ovec(tflite.SubGraphStartOperatorsVector, [op])
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tvec)
    tflite.SubGraphAddInputs(b, sin)
    tflite.SubGraphAddOutputs(b, sout)
    tflite.SubGraphAddOperators(b, opv)
    sg = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.ADD)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.ADD)
    tflite.OperatorCodeAddVersion(b, 2 if int8 else 1)
    code = tflite.OperatorCodeEnd(b)
    codes = ovec(tflite.ModelStartOperatorCodesVector, [code])
    sgs = ovec(tflite.ModelStartSubgraphsVector, [sg])
    bufs = ovec(tflite.ModelStartBuffersVector, buffers)
    desc = b.CreateString("edgesense test")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, sgs)
    tflite.ModelAddBuffers(b, bufs)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    Path(path).write_bytes(b.Output())
