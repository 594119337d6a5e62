"""Serialise a TFLite model (one subgraph) into the flatbuffer bytes of the published schema.

This module knows nothing about ONNX: it collects tensors (with their int8 quantization
parameters and constant data), operators (builtin code, inputs, outputs, builtin options) and
the subgraph's inputs and outputs, and writes them with the builder functions that the ``tflite``
package generates from TensorFlow's ``schema.fbs``. Constant data goes into 16-byte aligned
buffers; buffer 0 is the empty buffer that every non-constant tensor points at (schema rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import tflite
from tflite import BuiltinOptions, TensorType

__all__ = ["QuantParams", "ModelBuilder", "TFLITE_SCHEMA_VERSION", "compact", "read_model"]

TFLITE_SCHEMA_VERSION = 3
_BUFFER_ALIGNMENT = 16

_NP_TO_TFLITE = {
    np.dtype(np.float32): TensorType.FLOAT32,
    np.dtype(np.int32): TensorType.INT32,
    np.dtype(np.int64): TensorType.INT64,
    np.dtype(np.int8): TensorType.INT8,
    np.dtype(np.uint8): TensorType.UINT8,
    np.dtype(np.int16): TensorType.INT16,
}
_TFLITE_TO_NP = {v: k for k, v in _NP_TO_TFLITE.items()}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization ``real = (q - zero_point) * scale``, per tensor or along ``axis``."""

    scale: np.ndarray  # float32, shape (1,) per tensor or (channels,)
    zero_point: np.ndarray  # int64, same shape as scale
    axis: int = 0

    @staticmethod
    def make(scale: Any, zero_point: Any, axis: int = 0) -> "QuantParams":
        s = np.atleast_1d(np.asarray(scale, dtype=np.float32)).ravel()
        z = np.atleast_1d(np.asarray(zero_point, dtype=np.int64)).ravel()
        if z.size == 1 and s.size > 1:
            z = np.full(s.shape, int(z[0]), dtype=np.int64)
        return QuantParams(s, z, int(axis))

    def __post_init__(self) -> None:
        # per tensor: quantized_dimension must be 0 -- XNNPACK declines int8 tensors that say otherwise
        if self.scale.size == 1 and self.axis != 0:
            object.__setattr__(self, "axis", 0)

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    def same_as(self, other: "QuantParams") -> bool:
        """Exactly the same grid (float32 scales bit-identical, same zero points)."""
        return (
            self.scale.shape == other.scale.shape
            and bool(np.all(self.scale == other.scale))
            and bool(np.all(self.zero_point == other.zero_point))
            and (self.per_tensor or self.axis == other.axis)
        )


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quant: QuantParams | None
    buffer: int
    signature: tuple[int, ...] | None = None  # shape_signature: -1 marks a resizable dimension


@dataclass
class _Operator:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    options_name: str | None
    options: dict[str, Any]


@dataclass
class ModelBuilder:
    """Accumulates one subgraph and writes it as a ``.tflite`` flatbuffer."""

    description: str = "edgesense"
    tensors: list[_Tensor] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])
    operators: list[_Operator] = field(default_factory=list)
    opcodes: dict[int, int] = field(default_factory=dict)  # builtin code -> version
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    signature_key: str = "serving_default"
    #: model metadata (name -> bytes), written as the schema's ``Model.metadata`` entries
    metadata: dict[str, bytes] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def add_tensor(
        self,
        name: str,
        shape: tuple[int, ...] | list[int],
        dtype: Any,
        quant: QuantParams | None = None,
        data: np.ndarray | None = None,
    ) -> int:
        """Add a tensor (a constant when ``data`` is given); returns its index."""
        dtype = np.dtype(dtype)
        if dtype not in _NP_TO_TFLITE:
            raise TypeError(f"unsupported tensor dtype {dtype}")
        shape = tuple(int(d) for d in shape)
        buffer = 0
        if data is not None:
            data = np.ascontiguousarray(data, dtype=dtype)
            if tuple(data.shape) != shape:
                raise ValueError(f"tensor {name!r}: data shape {data.shape} != shape {shape}")
            self.buffers.append(data.tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append(_Tensor(self._unique(name), shape, dtype, quant, buffer))
        return len(self.tensors) - 1

    def add_operator(
        self,
        opcode: int,
        inputs: list[int],
        outputs: list[int],
        options_name: str | None = None,
        version: int = 1,
        **options: Any,
    ) -> None:
        """Add a builtin operator; ``options_name`` is the schema table (e.g. ``"Conv2DOptions"``)."""
        self.opcodes[opcode] = max(version, self.opcodes.get(opcode, 1))
        self.operators.append(_Operator(opcode, list(inputs), list(outputs), options_name, options))

    def shape(self, index: int) -> tuple[int, ...]:
        return self.tensors[index].shape

    def quant(self, index: int) -> QuantParams | None:
        return self.tensors[index].quant

    def rename(self, index: int, name: str) -> None:
        """Give tensor ``index`` exactly ``name`` (an I/O name); another tensor holding it is renamed."""
        for i, t in enumerate(self.tensors):
            if t.name == name and i != index:
                t.name = self._unique(name + "/internal")
        self.tensors[index].name = name
        self._names.add(name)

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    # ---------------------------------------------------------------- serialisation

    def serialize(self) -> bytes:
        """The complete model as flatbuffer bytes (file identifier ``TFL3``)."""
        b = flatbuffers.Builder(1024 + sum(len(x) for x in self.buffers))
        buffers = list(self.buffers)
        meta_buffers = []
        for value in self.metadata.values():
            buffers.append(bytes(value))
            meta_buffers.append(len(buffers) - 1)
        buffer_offsets = [self._write_buffer(b, data) for data in buffers]
        tensor_offsets = [self._write_tensor(b, t) for t in self.tensors]
        code_list = sorted(self.opcodes)
        code_index = {c: i for i, c in enumerate(code_list)}
        op_offsets = [self._write_operator(b, op, code_index[op.opcode]) for op in self.operators]

        name = b.CreateString("main")
        tensors_vec = self._vector_of_offsets(b, tflite.SubGraphStartTensorsVector, tensor_offsets)
        inputs_vec = self._int_vector(b, tflite.SubGraphStartInputsVector, self.inputs)
        outputs_vec = self._int_vector(b, tflite.SubGraphStartOutputsVector, self.outputs)
        ops_vec = self._vector_of_offsets(b, tflite.SubGraphStartOperatorsVector, op_offsets)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, inputs_vec)
        tflite.SubGraphAddOutputs(b, outputs_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddName(b, name)
        subgraph = tflite.SubGraphEnd(b)

        code_offsets = []
        for code in code_list:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, self.opcodes[code])
            code_offsets.append(tflite.OperatorCodeEnd(b))

        signature = self._write_signature(b)
        meta_offsets = []
        for key, buffer in zip(self.metadata, meta_buffers):
            key_offset = b.CreateString(key)
            tflite.MetadataStart(b)
            tflite.MetadataAddName(b, key_offset)
            tflite.MetadataAddBuffer(b, buffer)
            meta_offsets.append(tflite.MetadataEnd(b))
        meta_vec = self._vector_of_offsets(b, tflite.ModelStartMetadataVector, meta_offsets) if meta_offsets else None

        description = b.CreateString(self.description)
        codes_vec = self._vector_of_offsets(b, tflite.ModelStartOperatorCodesVector, code_offsets)
        subgraphs_vec = self._vector_of_offsets(b, tflite.ModelStartSubgraphsVector, [subgraph])
        buffers_vec = self._vector_of_offsets(b, tflite.ModelStartBuffersVector, buffer_offsets)
        signatures_vec = self._vector_of_offsets(b, tflite.ModelStartSignatureDefsVector, [signature])
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, TFLITE_SCHEMA_VERSION)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, description)
        tflite.ModelAddBuffers(b, buffers_vec)
        tflite.ModelAddSignatureDefs(b, signatures_vec)
        if meta_vec is not None:
            tflite.ModelAddMetadata(b, meta_vec)
        model = tflite.ModelEnd(b)
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _vector_of_offsets(b: flatbuffers.Builder, start, offsets: list[int]) -> int:
        start(b, len(offsets))
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    @staticmethod
    def _int_vector(b: flatbuffers.Builder, start, values: list[int]) -> int:
        start(b, len(values))
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    @staticmethod
    def _write_buffer(b: flatbuffers.Builder, data: bytes) -> int:
        vec = None
        if data:
            n = len(data)
            b.StartVector(1, n, _BUFFER_ALIGNMENT)
            b.head = b.head - n
            b.Bytes[b.head : b.head + n] = data
            b.vectorNumElems = n
            vec = b.EndVector()
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        return tflite.BufferEnd(b)

    @staticmethod
    def _write_tensor(b: flatbuffers.Builder, t: _Tensor) -> int:
        quant = None
        if t.quant is not None:
            scale = b.CreateNumpyVector(t.quant.scale.astype(np.float32))
            zero = b.CreateNumpyVector(t.quant.zero_point.astype(np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.quant.axis)
            quant = tflite.QuantizationParametersEnd(b)
        name = b.CreateString(t.name)
        shape = b.CreateNumpyVector(np.asarray(t.shape, dtype=np.int32))
        signature = None if t.signature is None else b.CreateNumpyVector(np.asarray(t.signature, dtype=np.int32))
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        if signature is not None:
            tflite.TensorAddShapeSignature(b, signature)
        tflite.TensorAddType(b, _NP_TO_TFLITE[t.dtype])
        tflite.TensorAddBuffer(b, t.buffer)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        return tflite.TensorEnd(b)

    @staticmethod
    def _write_operator(b: flatbuffers.Builder, op: _Operator, opcode_index: int) -> int:
        options = None
        if op.options_name is not None:
            getattr(tflite, f"{op.options_name}Start")(b)
            for key, value in op.options.items():
                getattr(tflite, f"{op.options_name}Add{key}")(b, value)
            options = getattr(tflite, f"{op.options_name}End")(b)
        inputs = ModelBuilder._int_vector(b, tflite.OperatorStartInputsVector, op.inputs)
        outputs = ModelBuilder._int_vector(b, tflite.OperatorStartOutputsVector, op.outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, opcode_index)
        tflite.OperatorAddInputs(b, inputs)
        tflite.OperatorAddOutputs(b, outputs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(BuiltinOptions, op.options_name))
            tflite.OperatorAddBuiltinOptions(b, options)
        return tflite.OperatorEnd(b)

    def _write_signature(self, b: flatbuffers.Builder) -> int:
        def tensor_maps(indices: list[int]) -> list[int]:
            maps = []
            for i in indices:
                name = b.CreateString(self.tensors[i].name)
                tflite.TensorMapStart(b)
                tflite.TensorMapAddName(b, name)
                tflite.TensorMapAddTensorIndex(b, i)
                maps.append(tflite.TensorMapEnd(b))
            return maps

        ins = tensor_maps(self.inputs)
        outs = tensor_maps(self.outputs)
        ins_vec = self._vector_of_offsets(b, tflite.SignatureDefStartInputsVector, ins)
        outs_vec = self._vector_of_offsets(b, tflite.SignatureDefStartOutputsVector, outs)
        key = b.CreateString(self.signature_key)
        tflite.SignatureDefStart(b)
        tflite.SignatureDefAddInputs(b, ins_vec)
        tflite.SignatureDefAddOutputs(b, outs_vec)
        tflite.SignatureDefAddSignatureKey(b, key)
        tflite.SignatureDefAddSubgraphIndex(b, 0)
        return tflite.SignatureDefEnd(b)


def read_model(data: bytes) -> ModelBuilder:
    """The first subgraph of a ``.tflite`` flatbuffer (of the tensor types and builtin options this
    module writes) as a :class:`ModelBuilder`, to edit or cut into pieces (e.g. one operator alone,
    for :func:`edgesense.quant.tflite.latency.op_latency`)."""
    model = tflite.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    options_names = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_")}
    fb = ModelBuilder()
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        dtype = _TFLITE_TO_NP[t.Type()]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        quant = None
        if q is not None and q.ScaleLength():
            quant = QuantParams(q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.int64),
                                q.QuantizedDimension())
        buf = model.Buffers(t.Buffer())
        data_ = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype).reshape(shape) if buf.DataLength() else None
        index = fb.add_tensor(t.Name().decode(), shape, dtype, quant, data_)
        if t.ShapeSignatureLength():
            fb.tensors[index].signature = tuple(int(d) for d in t.ShapeSignatureAsNumpy())
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name, options = None, {}
        if op.BuiltinOptionsType():
            name = options_names[op.BuiltinOptionsType()]
            table = getattr(tflite, name)()
            raw = op.BuiltinOptions()
            table.Init(raw.Bytes, raw.Pos)
            for attr in dir(tflite):
                if attr.startswith(name + "Add"):
                    value = getattr(table, attr[len(name) + 3:])()
                    if isinstance(value, (int, float)):
                        options[attr[len(name) + 3:]] = value
        fb.add_operator(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), [int(k) for k in op.InputsAsNumpy()],
                        [int(k) for k in op.OutputsAsNumpy()], name, code.Version(), **options)
    fb.inputs = [int(k) for k in graph.InputsAsNumpy()]
    fb.outputs = [int(k) for k in graph.OutputsAsNumpy()]
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buf = model.Buffers(entry.Buffer())
        fb.metadata[entry.Name().decode()] = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
    return fb


def compact(fb: ModelBuilder) -> ModelBuilder:
    """A copy with only the tensors (and buffers) that operators or the graph's I/O still refer to."""
    io = [*fb.inputs, *fb.outputs]
    inner = sorted({t for op in fb.operators for t in (*op.inputs, *op.outputs) if t >= 0} - set(io))
    # graph inputs first and outputs last, each in I/O order: LiteRT's arena then lays the state outputs out
    # like the state inputs (ExcursionStreamer commits all states in one copy when it does)
    used = [*fb.inputs, *inner, *fb.outputs]
    out = ModelBuilder(description=fb.description, signature_key=fb.signature_key, metadata=dict(fb.metadata))
    remap = {}
    for t in used:
        src = fb.tensors[t]
        data = None
        if src.buffer:
            data = np.frombuffer(fb.buffers[src.buffer], src.dtype).reshape(src.shape)
        remap[t] = out.add_tensor(src.name, src.shape, src.dtype, src.quant, data)
        out.tensors[remap[t]].signature = src.signature
    for op in fb.operators:
        out.operators.append(type(op)(op.opcode, [remap[t] if t >= 0 else t for t in op.inputs],
                                      [remap[t] for t in op.outputs], op.options_name, dict(op.options)))
    out.opcodes = {op.opcode: fb.opcodes[op.opcode] for op in fb.operators}
    out.inputs = [remap[t] for t in fb.inputs]
    out.outputs = [remap[t] for t in fb.outputs]
    return out
