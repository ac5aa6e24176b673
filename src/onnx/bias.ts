/**
 * Adding a per-output-channel shift to a layer's bias, whatever form the bias has after
 * compression: a float constant, an int32 constant behind a DequantizeLinear (static W8A8), a
 * MatMulNBits bias input, or none (one is created; a MatMul gets an Add after it).
 */
import type { OnnxModel } from './model.ts';
import type { NodeMsg } from './proto.ts';
import { create } from './proto.ts';
import { DataType } from './dtypes.ts';
import { bytesOf, makeTensor, tensorBytes, tensorDims } from './tensor.ts';
import { intAttr } from './attributes.ts';
import { replaceFloatWeight } from './model-edits.ts';
import { roundHalfEven } from '../kernels/numerics.ts';

/** The input slot that holds the bias, by op type. */
const BIAS_SLOT: Record<string, number> = { Conv: 2, ConvTranspose: 2, Gemm: 2, MatMulNBits: 5 };

function int32Values(model: OnnxModel, name: string): Int32Array | null {
  const w = model.graph.weights.get(name);
  if (!w || w.tensor.dataType !== DataType.INT32) return null;
  const raw = new Uint8Array(tensorBytes(w.tensor, model.baseDir));
  return new Int32Array(raw.buffer, 0, raw.length / 4);
}

/** The scale of the DequantizeLinear that produces `value`, when it is a constant (per tensor or per channel). */
function dqScale(model: OnnxModel, value: string): Float32Array | null {
  const dq = model.graph.producers.get(value);
  if (!dq || dq.opType !== 'DequantizeLinear') return null;
  const s = model.graph.weights.get(dq.input[1]);
  return s ? Float32Array.from(model.tensorFloat32(s.tensor)) : null;
}

/**
 * Adds `delta[c]` to output channel c of `node`'s result. Returns null when done, else why it
 * could not (the caller reports it). The model is reindexed.
 */
export function shiftBias(model: OnnxModel, node: NodeMsg, delta: Float32Array, opts: { allowAdd: boolean }): string | null {
  const g = model.graph;
  const op = node.opType ?? '';
  const slot = BIAS_SLOT[op];
  if (slot === undefined) {
    if (op !== 'MatMul') return `${op} has no bias`;
    if (!opts.allowAdd) return 'MatMul has no bias input, and an Add after it would stop ONNX Runtime fusing it into an integer MatMul';
    // Bias for a MatMul: an Add right after it, the consumers reading the sum.
    const out = node.output[0];
    const t = makeTensor(g.uniqueName(`${node.name || out}_bias`), DataType.FLOAT, [delta.length], bytesOf(delta));
    const sum = g.uniqueName(`${out}_biased`);
    const isOutput = g.isGraphOutput(out);
    const pre = isOutput ? g.uniqueName(`${out}_unbiased`) : out;
    if (isOutput) node.output[0] = pre;
    const add = create<NodeMsg>('NodeProto', { name: g.uniqueName(`${node.name || out}_bias_add`), opType: 'Add', domain: '', input: [pre, t.name!], output: [isOutput ? out : sum] });
    if (!isOutput) for (const u of g.uses(out)) u.node.input[u.index] = sum;
    const nodes = model.msg.graph!.node;
    nodes.splice(nodes.indexOf(node) + 1, 0, add);
    model.msg.graph!.initializer.push(t);
    model.reindex();
    return null;
  }
  const name = node.input[slot];
  if (name) {
    const w = g.weights.get(name);
    if (w) {
      if (w.tensor.dataType !== DataType.FLOAT || tensorDims(w.tensor).reduce((a, b) => a * b, 1) !== delta.length) return `bias '${name}' is not a float vector of ${delta.length}`;
      const b = Float32Array.from(model.tensorFloat32(w.tensor));
      for (let c = 0; c < b.length; c++) b[c] += delta[c];
      if (g.uses(name).length > 1) {
        // Shared with another node: this node gets its own copy.
        const copy = makeTensor(g.uniqueName(`${name}_${node.name || 'corrected'}`), DataType.FLOAT, tensorDims(w.tensor), bytesOf(b));
        model.msg.graph!.initializer.push(copy);
        node.input[slot] = copy.name!;
      } else {
        replaceFloatWeight(model, name, tensorDims(w.tensor), b);
      }
      model.reindex();
      return null;
    }
    // Static W8A8: int32 codes behind a DequantizeLinear with scale = input scale × weight scale.
    const dq = g.producers.get(name);
    if (dq?.opType === 'DequantizeLinear') {
      const codes = int32Values(model, dq.input[0]);
      const scale = dqScale(model, name);
      if (!codes || !scale || codes.length !== delta.length || g.uses(dq.input[0]).length !== 1) return `bias '${name}' is a DequantizeLinear of something other than its own int32 vector`;
      for (let c = 0; c < codes.length; c++) {
        const s = scale[scale.length === 1 ? 0 : c];
        codes[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, codes[c] + roundHalfEven(delta[c] / s)));
      }
      const t = g.weights.get(dq.input[0])!;
      const fresh = makeTensor(t.name, DataType.INT32, tensorDims(t.tensor), bytesOf(codes));
      const i = model.msg.graph!.initializer.indexOf(t.tensor);
      if (i < 0) return `bias codes '${t.name}' are not an initializer`;
      model.msg.graph!.initializer[i] = fresh;
      model.reindex();
      return null;
    }
    return `bias '${name}' is computed by a ${dq?.opType ?? 'graph input'}, not stored`;
  }
  // No bias: create one. Behind quantized input and weight, as int32 codes with the scale ONNX
  // Runtime's integer kernels expect; otherwise as floats.
  const xs = dqScale(model, node.input[0]);
  const ws = dqScale(model, node.input[1]);
  const base = `${node.name || node.output[0]}_bias`;
  while (node.input.length < slot) node.input.push('');
  if (op !== 'MatMulNBits' && xs && ws && xs.length === 1) {
    const scale = Float32Array.from(delta, (_, c) => Math.fround(xs[0] * ws[ws.length === 1 ? 0 : c]) || 1);
    const codes = Int32Array.from(delta, (d, c) => roundHalfEven(d / scale[c]));
    const q = makeTensor(g.uniqueName(`${base}_quantized`), DataType.INT32, [delta.length], bytesOf(codes));
    const s = makeTensor(g.uniqueName(`${base}_scale`), DataType.FLOAT, [delta.length], bytesOf(scale));
    const out = g.uniqueName(base);
    const dq = create<NodeMsg>('NodeProto', { name: g.uniqueName(`${base}_DequantizeLinear`), opType: 'DequantizeLinear', domain: model.opset('') >= 13 ? '' : 'com.microsoft', input: [q.name!, s.name!], output: [out], attribute: [intAttr('axis', 0)] });
    model.msg.graph!.initializer.push(q, s);
    model.msg.graph!.node.unshift(dq);
    node.input[slot] = out;
  } else {
    const t = makeTensor(g.uniqueName(base), DataType.FLOAT, [delta.length], bytesOf(Float32Array.from(delta)));
    model.msg.graph!.initializer.push(t);
    node.input[slot] = t.name!;
  }
  model.reindex();
  return null;
}
