#!/usr/bin/python3
"""The NumPy/onnx peer for bench/e2e.ts: per-channel symmetric int8 weight-only conversion of the
Conv/Gemm/MatMul weights (>= 1024 elements) of an ONNX model, written in modelpress's default
(folded) form: int8 initializer -> Cast -> Mul(scale). No error metrics: the plain conversion.
Usage: /usr/bin/python3 bench/peer_int8.py IN.onnx OUT.onnx   (prints wall seconds as JSON)"""
import json
import resource
import sys
import time

t0 = time.perf_counter()
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

src, dst = sys.argv[1], sys.argv[2]
model = onnx.load(src)
g = model.graph
inits = {t.name: t for t in g.initializer}
axis_of = {}
for n in g.node:
    if n.op_type == 'Conv' and len(n.input) > 1 and n.input[1] in inits:
        axis_of[n.input[1]] = 0
    elif n.op_type == 'Gemm' and len(n.input) > 1 and n.input[1] in inits:
        trans_b = next((a.i for a in n.attribute if a.name == 'transB'), 0)
        axis_of[n.input[1]] = 0 if trans_b else 1
    elif n.op_type == 'MatMul' and len(n.input) > 1 and n.input[1] in inits:
        axis_of[n.input[1]] = -1
new_nodes = []
for name, axis in axis_of.items():
    t = inits[name]
    w = numpy_helper.to_array(t).astype(np.float32)
    if w.size < 1024:
        continue
    axis = axis % w.ndim
    red = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.max(np.abs(w), axis=red, keepdims=True)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w * (1.0 / scale).astype(np.float32)), -127, 127).astype(np.int8)
    g.initializer.remove(t)
    g.initializer.extend([numpy_helper.from_array(q, name + '_quantized'), numpy_helper.from_array(scale, name + '_scale')])
    new_nodes += [
        helper.make_node('Cast', [name + '_quantized'], [name + '_f32'], to=TensorProto.FLOAT),
        helper.make_node('Mul', [name + '_f32', name + '_scale'], [name]),
    ]
nodes = list(g.node)
del g.node[:]
g.node.extend(new_nodes + nodes)
onnx.save(model, dst)
print(json.dumps({'wallMs': (time.perf_counter() - t0) * 1000, 'tensors': len(new_nodes) // 2, 'maxRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
