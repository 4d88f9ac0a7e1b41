# SPDX-License-Identifier: MIT
"""Write small TFLite models without TensorFlow (``tflite`` + ``flatbuffers`` packages).

Used to build one-operator int8 test models and to cut one layer out of a real model
(:func:`single_op_model`) so that a reference interpreter (tflite-micro) runs exactly
that layer. Layout as TFLite's converter writes it: file identifier ``TFL3``, schema
version 3, buffer 0 empty, one buffer per constant tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tflite_graph import (AveragePool2D, Conv2D, DepthwiseConv2D, FullyConnected, TfliteGraph,
                           TfliteGraphError, _load_tflite)

__all__ = ["OpSpec", "TensorSpec", "single_op_model", "write_tflite"]

_TYPES = {"float32": "FLOAT32", "int32": "INT32", "uint8": "UINT8", "int64": "INT64", "int16": "INT16",
          "int8": "INT8", "bool": "BOOL"}
_PADDING = {"SAME": 0, "VALID": 1}
_ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


@dataclass
class TensorSpec:
    """One tensor: ``data`` makes it a constant; ``scale``/``zero_point`` (one entry per
    tensor, or one per channel along ``quantized_dimension``) make it quantised."""
    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: list[float] | np.ndarray | None = None
    zero_point: list[int] | np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None


@dataclass
class OpSpec:
    """One builtin operator: ``op`` is its name (CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED, AVERAGE_POOL_2D, RESHAPE); ``options`` as in the schema, snake_case
    (padding, stride_h, stride_w, dilation_h, dilation_w, depth_multiplier, activation,
    filter_h, filter_w, keep_num_dims, new_shape)."""
    op: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


def _vector(builder, tfl, start, values, kind: str) -> int:
    start(builder, len(values))
    prepend = getattr(builder, {"i32": "PrependInt32", "i64": "PrependInt64", "f32": "PrependFloat32",
                                "off": "PrependUOffsetTRelative"}[kind])
    for v in reversed(list(values)):
        prepend(v)
    return builder.EndVector()


# operators written without options (edges of float models; activations the reader refuses)
_NO_OPTIONS = ("QUANTIZE", "DEQUANTIZE", "TANH", "LOGISTIC")


def _options(builder, tfl, spec: OpSpec) -> tuple[int, int | None]:
    """(BuiltinOptions union type, table offset)."""
    o = spec.options
    act = _ACT[o.get("activation", "NONE")]
    if spec.op == "CONV_2D":
        tfl.Conv2DOptionsStart(builder)
        tfl.Conv2DOptionsAddPadding(builder, _PADDING[o.get("padding", "VALID")])
        tfl.Conv2DOptionsAddStrideW(builder, o.get("stride_w", 1))
        tfl.Conv2DOptionsAddStrideH(builder, o.get("stride_h", 1))
        tfl.Conv2DOptionsAddDilationWFactor(builder, o.get("dilation_w", 1))
        tfl.Conv2DOptionsAddDilationHFactor(builder, o.get("dilation_h", 1))
        tfl.Conv2DOptionsAddFusedActivationFunction(builder, act)
        return tfl.BuiltinOptions.Conv2DOptions, tfl.Conv2DOptionsEnd(builder)
    if spec.op == "DEPTHWISE_CONV_2D":
        tfl.DepthwiseConv2DOptionsStart(builder)
        tfl.DepthwiseConv2DOptionsAddPadding(builder, _PADDING[o.get("padding", "VALID")])
        tfl.DepthwiseConv2DOptionsAddStrideW(builder, o.get("stride_w", 1))
        tfl.DepthwiseConv2DOptionsAddStrideH(builder, o.get("stride_h", 1))
        tfl.DepthwiseConv2DOptionsAddDepthMultiplier(builder, o.get("depth_multiplier", 1))
        tfl.DepthwiseConv2DOptionsAddDilationWFactor(builder, o.get("dilation_w", 1))
        tfl.DepthwiseConv2DOptionsAddDilationHFactor(builder, o.get("dilation_h", 1))
        tfl.DepthwiseConv2DOptionsAddFusedActivationFunction(builder, act)
        return tfl.BuiltinOptions.DepthwiseConv2DOptions, tfl.DepthwiseConv2DOptionsEnd(builder)
    if spec.op == "FULLY_CONNECTED":
        tfl.FullyConnectedOptionsStart(builder)
        tfl.FullyConnectedOptionsAddFusedActivationFunction(builder, act)
        tfl.FullyConnectedOptionsAddKeepNumDims(builder, bool(o.get("keep_num_dims", False)))
        return tfl.BuiltinOptions.FullyConnectedOptions, tfl.FullyConnectedOptionsEnd(builder)
    if spec.op == "AVERAGE_POOL_2D":
        tfl.Pool2DOptionsStart(builder)
        tfl.Pool2DOptionsAddPadding(builder, _PADDING[o.get("padding", "VALID")])
        tfl.Pool2DOptionsAddStrideW(builder, o.get("stride_w", 1))
        tfl.Pool2DOptionsAddStrideH(builder, o.get("stride_h", 1))
        tfl.Pool2DOptionsAddFilterWidth(builder, o.get("filter_w", 1))
        tfl.Pool2DOptionsAddFilterHeight(builder, o.get("filter_h", 1))
        tfl.Pool2DOptionsAddFusedActivationFunction(builder, act)
        return tfl.BuiltinOptions.Pool2DOptions, tfl.Pool2DOptionsEnd(builder)
    if spec.op == "RESHAPE":
        shape = _vector(builder, tfl, tfl.ReshapeOptionsStartNewShapeVector, o["new_shape"], "i32")
        tfl.ReshapeOptionsStart(builder)
        tfl.ReshapeOptionsAddNewShape(builder, shape)
        return tfl.BuiltinOptions.ReshapeOptions, tfl.ReshapeOptionsEnd(builder)
    if spec.op in _NO_OPTIONS:
        return tfl.BuiltinOptions.NONE, None
    raise TfliteGraphError(f"the writer does not know operator {spec.op}")


def write_tflite(tensors: list[TensorSpec], ops: list[OpSpec], inputs: list[int],
                 outputs: list[int]) -> bytes:
    """A one-subgraph .tflite model (bytes)."""
    import flatbuffers

    tfl = _load_tflite()
    b = flatbuffers.Builder(1024)
    # buffers: 0 empty, then one per constant tensor
    buffer_of: dict[int, int] = {}
    blobs: list[bytes] = [b""]
    for i, t in enumerate(tensors):
        if t.data is not None:
            arr = np.ascontiguousarray(t.data, dtype=np.dtype(t.dtype).newbyteorder("<"))
            if tuple(arr.shape) != tuple(t.shape):
                raise ValueError(f"tensor {i} ({t.name}): data shape {arr.shape} != {t.shape}")
            buffer_of[i] = len(blobs)
            blobs.append(arr.tobytes())
    buf_offs = []
    for blob in blobs:
        data_off = None
        if blob:
            b.StartVector(1, len(blob), 16)
            b.head = b.head - len(blob)
            b.Bytes[b.head:b.head + len(blob)] = blob
            data_off = b.EndVector()
        tfl.BufferStart(b)
        if data_off is not None:
            tfl.BufferAddData(b, data_off)
        buf_offs.append(tfl.BufferEnd(b))
    t_offs = []
    for i, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = _vector(b, tfl, tfl.TensorStartShapeVector, [int(v) for v in t.shape], "i32")
        q_off = None
        if t.scale is not None:
            scale = _vector(b, tfl, tfl.QuantizationParametersStartScaleVector,
                            [float(v) for v in np.asarray(t.scale, np.float32).ravel()], "f32")
            zps = np.zeros(len(np.ravel(t.scale)), np.int64) if t.zero_point is None else np.ravel(t.zero_point)
            zp = _vector(b, tfl, tfl.QuantizationParametersStartZeroPointVector, [int(v) for v in zps], "i64")
            tfl.QuantizationParametersStart(b)
            tfl.QuantizationParametersAddScale(b, scale)
            tfl.QuantizationParametersAddZeroPoint(b, zp)
            tfl.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
            q_off = tfl.QuantizationParametersEnd(b)
        tfl.TensorStart(b)
        tfl.TensorAddShape(b, shape)
        tfl.TensorAddType(b, getattr(tfl.TensorType, _TYPES[t.dtype]))
        tfl.TensorAddBuffer(b, buffer_of.get(i, 0))
        tfl.TensorAddName(b, name)
        if q_off is not None:
            tfl.TensorAddQuantization(b, q_off)
        t_offs.append(tfl.TensorEnd(b))
    codes = sorted({s.op for s in ops})
    code_offs = []
    for c in codes:
        val = getattr(tfl.BuiltinOperator, c)
        tfl.OperatorCodeStart(b)
        tfl.OperatorCodeAddDeprecatedBuiltinCode(b, min(val, 127))
        tfl.OperatorCodeAddBuiltinCode(b, val)
        tfl.OperatorCodeAddVersion(b, 1)
        code_offs.append(tfl.OperatorCodeEnd(b))
    op_offs = []
    for s in ops:
        opt_type, opt_off = _options(b, tfl, s)
        ins = _vector(b, tfl, tfl.OperatorStartInputsVector, s.inputs, "i32")
        outs = _vector(b, tfl, tfl.OperatorStartOutputsVector, s.outputs, "i32")
        tfl.OperatorStart(b)
        tfl.OperatorAddOpcodeIndex(b, codes.index(s.op))
        tfl.OperatorAddInputs(b, ins)
        tfl.OperatorAddOutputs(b, outs)
        tfl.OperatorAddBuiltinOptionsType(b, opt_type)
        if opt_off is not None:
            tfl.OperatorAddBuiltinOptions(b, opt_off)
        op_offs.append(tfl.OperatorEnd(b))
    sg_tensors = _vector(b, tfl, tfl.SubGraphStartTensorsVector, t_offs, "off")
    sg_in = _vector(b, tfl, tfl.SubGraphStartInputsVector, inputs, "i32")
    sg_out = _vector(b, tfl, tfl.SubGraphStartOutputsVector, outputs, "i32")
    sg_ops = _vector(b, tfl, tfl.SubGraphStartOperatorsVector, op_offs, "off")
    sg_name = b.CreateString("main")
    tfl.SubGraphStart(b)
    tfl.SubGraphAddTensors(b, sg_tensors)
    tfl.SubGraphAddInputs(b, sg_in)
    tfl.SubGraphAddOutputs(b, sg_out)
    tfl.SubGraphAddOperators(b, sg_ops)
    tfl.SubGraphAddName(b, sg_name)
    sg = tfl.SubGraphEnd(b)
    subgraphs = _vector(b, tfl, tfl.ModelStartSubgraphsVector, [sg], "off")
    opcodes = _vector(b, tfl, tfl.ModelStartOperatorCodesVector, code_offs, "off")
    buffers = _vector(b, tfl, tfl.ModelStartBuffersVector, buf_offs, "off")
    desc = b.CreateString("pysg converters.tflite_writer")
    tfl.ModelStart(b)
    tfl.ModelAddVersion(b, 3)
    tfl.ModelAddOperatorCodes(b, opcodes)
    tfl.ModelAddSubgraphs(b, subgraphs)
    tfl.ModelAddDescription(b, desc)
    tfl.ModelAddBuffers(b, buffers)
    b.Finish(tfl.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _spec(graph: TfliteGraph, index: int) -> TensorSpec:
    t = graph.tensors[index]
    q = t.quantization
    return TensorSpec(t.name or f"t{index}", t.shape, t.dtype, None if q is None else q.scale,
                      None if q is None else q.zero_point, 0 if q is None else q.quantized_dimension,
                      t.data)


def single_op_model(graph: TfliteGraph, op_index: int) -> bytes:
    """A model running only operator ``op_index`` of ``graph``: the same tensors (shapes,
    quantisation, constant data) and options; its non-constant inputs become the model's
    inputs, its outputs the model's outputs."""
    op = graph.op(op_index)
    if isinstance(op, Conv2D):
        name = "CONV_2D"
        opts = dict(padding=op.padding, stride_h=op.stride[0], stride_w=op.stride[1],
                    dilation_h=op.dilation[0], dilation_w=op.dilation[1], activation=op.activation)
    elif isinstance(op, DepthwiseConv2D):
        name = "DEPTHWISE_CONV_2D"
        opts = dict(padding=op.padding, stride_h=op.stride[0], stride_w=op.stride[1],
                    dilation_h=op.dilation[0], dilation_w=op.dilation[1],
                    depth_multiplier=op.depth_multiplier, activation=op.activation)
    elif isinstance(op, FullyConnected):
        name = "FULLY_CONNECTED"
        opts = dict(activation=op.activation, keep_num_dims=op.keep_num_dims)
    elif isinstance(op, AveragePool2D):
        name = "AVERAGE_POOL_2D"
        opts = dict(padding=op.padding, stride_h=op.stride[0], stride_w=op.stride[1],
                    filter_h=op.filter_hw[0], filter_w=op.filter_hw[1], activation=op.activation)
    else:
        raise TfliteGraphError(f"single_op_model: operator {op_index} ({type(op).__name__}) is not a layer")
    used = [i for i in op.inputs + op.outputs if i >= 0]
    order = list(dict.fromkeys(used))
    local = {g: k for k, g in enumerate(order)}
    specs = [_spec(graph, g) for g in order]
    inputs = [local[i] for i in op.inputs if i >= 0 and graph.tensors[i].data is None]
    return write_tflite(specs, [OpSpec(name, [local[i] if i >= 0 else -1 for i in op.inputs],
                                       [local[i] for i in op.outputs], opts)],
                        inputs, [local[i] for i in op.outputs])
