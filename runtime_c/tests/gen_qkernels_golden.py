# SPDX-License-Identifier: MIT
"""Golden cases for test_qkernels.c: int8 layers with their TFLite Micro outputs.

Random one-op models (the cases of tests/test_tflite_kernels.py: tests/support/qkernel_cases.py) and every conv /
depthwise / fully connected layer of the pymicro-wakeword models (random and real
inputs). Record layout, little-endian int32 words, int8 blobs padded to 4 bytes:
    kind (1 conv, 2 depthwise, 3 fc, 4 avgpool)
    conv/dw: 11 params, count, mult[count], shift[count], in dims[4], filter dims[4],
             has_bias, bias[out c] if has_bias, out dims[4], input, filter, expected
    fc:      5 params, count, mult, shift, batches, n_in, n_out, has_bias, bias,
             input, weights, expected
    pool:    8 params, in dims[4], out dims[4], input, expected
Usage, from the repository root (runtime_c/Makefile's `golden` rule does this):
    python -m runtime_c.tests.gen_qkernels_golden OUT_FILE
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pysg.converters.tflite_graph import Conv2D, DepthwiseConv2D, FullyConnected, read_tflite
from pysg.converters.tflite_writer import single_op_model
from tests.support import qkernel_cases as T


def i32(*v) -> bytes:
    return np.asarray(v, dtype="<i4").tobytes()


def blob(a: np.ndarray) -> bytes:
    b = np.ascontiguousarray(a, dtype=np.int8).tobytes()
    return b + b"\0" * (-len(b) % 4)


def conv_record(kind: int, p, x, w, bias, ref) -> bytes:
    rq = p.requant
    out = i32(kind, p.stride[0], p.stride[1], p.dilation[0], p.dilation[1], p.padding[0], p.padding[1],
              p.depth_multiplier, p.input_offset, rq.output_offset, rq.act_min, rq.act_max)
    out += i32(rq.multiplier.size, *rq.multiplier, *rq.shift)
    out += i32(*x.shape, *w.shape, int(bias is not None)) + (i32(*bias) if bias is not None else b"")
    return out + i32(*ref.shape) + blob(x) + blob(w) + blob(ref)


def fc_record(p, x, w, bias, ref) -> bytes:
    rq = p.requant
    out = i32(3, p.input_offset, p.filter_offset, rq.output_offset, rq.act_min, rq.act_max)
    out += i32(rq.multiplier.size, *rq.multiplier, *rq.shift)
    out += i32(x.shape[0], w.shape[1], w.shape[0], int(bias is not None)) + (i32(*bias) if bias is not None else b"")
    return out + blob(x) + blob(w) + blob(ref)


def pool_record(p, x, ref) -> bytes:
    out = i32(4, p.stride[0], p.stride[1], p.filter_hw[0], p.filter_hw[1], p.padding[0], p.padding[1],
              p.act_min, p.act_max)
    return out + i32(*x.shape, *ref.shape) + blob(x) + blob(ref)


def main(path: str) -> None:
    recs: list[bytes] = []
    for case in sorted(T.CONV_CASES):
        cfg = T.CONV_CASES[case]
        for seed in range(6):
            rng = np.random.default_rng([seed, sorted(T.CONV_CASES).index(case)])
            model, x, w, bias = T.conv_case(rng, **cfg)
            op = read_tflite(model).ops[0]
            recs.append(conv_record(2 if cfg["depthwise"] else 1, op.params, x, w, bias, T.run_tflm(model, [x])))
    for k, (pc, act) in enumerate([(False, "NONE"), (True, "RELU"), (False, "RELU6")]):
        for seed in range(6):
            rng = np.random.default_rng([seed, 400 + k])
            model, x, w, bias = T.fc_case(rng, per_channel=pc, act=act)
            op = read_tflite(model).ops[0]
            recs.append(fc_record(op.params, x, w, bias, T.run_tflm(model, [x])))
    for k, (pad, act) in enumerate([("VALID", "NONE"), ("SAME", "RELU6")]):
        for seed in range(6):
            rng = np.random.default_rng([seed, 500 + k])
            model, x = T.pool_case(rng, padding=pad, act=act)
            op = read_tflite(model).ops[0]
            recs.append(pool_record(op.params, x, T.run_tflm(model, [x])))
    import pymicro_wakeword

    rng = np.random.default_rng(11)
    for mpath in sorted((Path(pymicro_wakeword.__file__).parent / "models").glob("*.tflite")):
        graph = read_tflite(mpath, skip_unsupported=True)
        real = T.real_activations(mpath, graph, rng)
        for op in graph.ops:
            if not isinstance(op, (Conv2D, DepthwiseConv2D, FullyConnected)):
                continue
            model = single_op_model(graph, op.index)
            w = graph.tensors[op.inputs[1]].data
            bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            for x in T.layer_inputs(op, graph, real[op.inputs[0]][:2], rng, n_random=2):
                ref = T.run_tflm(model, [x])
                if isinstance(op, FullyConnected):
                    recs.append(fc_record(op.params, x.reshape(-1, w.shape[1]), w, bias, ref.reshape(-1, w.shape[0])))
                else:
                    recs.append(conv_record(2 if isinstance(op, DepthwiseConv2D) else 1, op.params, x, w, bias, ref))
    Path(path).write_bytes(i32(len(recs)) + b"".join(recs))
    print(f"{path}: {len(recs)} cases")


if __name__ == "__main__":
    main(sys.argv[1])
