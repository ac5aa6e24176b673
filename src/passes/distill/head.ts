/**
 * A model's head for distillation: the last Gemm, MatMul or 1x1 Conv feeding a graph output
 * through ops that do not mix its channels (Softmax, Sigmoid, Reshape, Transpose, ...), with its
 * bias (its own input, or an Add of a constant right after a MatMul). Its input is the fixed
 * feature the head is re-fitted on.
 */
import type { OnnxModel } from '../../onnx/model.ts';
import type { NodeMsg } from '../../onnx/proto.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import { DataType } from '../../onnx/dtypes.ts';
import { attrInt, ints } from '../../analysis/shapes.ts';
import { evaluateConstant } from '../../eval/constant.ts';
import { decodeMatMulNBits } from '../quantize/weight-encodings.ts';

/** Ops between the head and the output that keep each output channel separate. */
// A QuantizeLinear → DequantizeLinear pair on the logits (static W8A8) is per tensor: passed too.
const PASS_THROUGH = new Set(['Softmax', 'LogSoftmax', 'Sigmoid', 'Reshape', 'Transpose', 'Flatten', 'Identity', 'Squeeze', 'Unsqueeze', 'Relu', 'HardSigmoid', 'QuantizeLinear', 'DequantizeLinear']);

export interface Head {
  node: NodeMsg;
  /** The graph output it feeds. */
  output: string;
  /** The head's input (the features) and its raw result (the logits). */
  features: string;
  logits: string;
  /** Weight name (a value: an initializer, the output of a decode chain when quantized, or MatMulNBits' packed B). */
  weight: string;
  /** [classes, features] rows per class, or [features, classes] (MatMul, Gemm without transB). */
  layout: 'cf' | 'fc' | 'conv';
  classes: number;
  features_: number;
  /** Where the bias lives: the node's own input, an Add's constant after a MatMul, or none yet. */
  bias: { kind: 'input'; name: string } | { kind: 'add'; node: NodeMsg; name: string } | { kind: 'none' };
  /** The ops between the head and the output. */
  path: string[];
}

/** The constant weight dims of `name`, decoded or not (a decode chain keeps the weight's name and shape). */
function weightDims(model: OnnxModel, name: string, node: NodeMsg): number[] | null {
  if (node.opType === 'MatMulNBits') return [attrInt(node, 'K', 0), attrInt(node, 'N', 0)];
  const w = model.graph.weights.get(name);
  if (w) return tensorDims(w.tensor);
  // A quantized weight: the decode chain's value keeps its name; its shape comes from the node.
  const vi = model.msg.graph!.valueInfo.find((v) => v.name === name);
  const d = vi?.type?.tensorType?.shape?.dim?.map((x) => Number(x.dimValue ?? 0));
  if (d?.length && d.every((x) => x > 0)) return d;
  return null;
}

/**
 * findHead, with the dims of a quantized head weight read by evaluating its decode chain; also
 * returns the decoded weight (null when the weight is a plain constant).
 */
export async function findHeadDecoded(model: OnnxModel, output?: string): Promise<{ head: Head | string; decoded: Float32Array | null }> {
  const first = findHead(model, output);
  if (typeof first !== 'string') return { head: first, decoded: first.node.opType === 'MatMulNBits' ? decodeMatMulNBits(model, first.node) : null };
  // Candidates: the weight input of every layer node whose weight is computed, not stored.
  const known = new Map<string, number[]>();
  const values = new Map<string, Float32Array>();
  for (const n of model.msg.graph!.node) {
    if (!['Gemm', 'MatMul', 'Conv'].includes(n.opType ?? '') || !n.input[1] || model.graph.weights.has(n.input[1]) || !model.graph.producers.has(n.input[1])) continue;
    const c = await evaluateConstant(model, n.input[1]);
    if (c) {
      known.set(n.input[1], c.dims);
      values.set(n.input[1], c.data);
    }
  }
  const head = findHead(model, output, known);
  return { head, decoded: typeof head === 'string' ? null : values.get(head.weight) ?? null };
}

/** The head behind graph output `output` (default: the first float output that has one), or why there is none. */
export function findHead(model: OnnxModel, output?: string, known?: ReadonlyMap<string, number[]>): Head | string {
  const g = model.graph;
  const outs = model.msg.graph!.output.filter((o) => !output || o.name === output);
  if (output && !outs.length) return `the model has no output named '${output}' (outputs: ${model.msg.graph!.output.map((o) => o.name).join(', ')})`;
  const reasons: string[] = [];
  for (const o of outs) {
    if ((o.type?.tensorType?.elemType ?? DataType.FLOAT) !== DataType.FLOAT) continue;
    const path: string[] = [];
    let value = o.name ?? '';
    let addBias: { node: NodeMsg; name: string } | null = null;
    for (let steps = 0; steps < 16; steps++) {
      const p = g.producers.get(value);
      if (!p) { reasons.push(`${o.name}: reaches a graph input without a layer`); break; }
      const op = p.opType ?? '';
      if (op === 'Add' && !addBias) {
        // MatMul + Add(constant [C]): the Add holds the bias.
        const k = p.input.findIndex((i) => g.weights.has(i));
        const prod = k >= 0 ? g.producers.get(p.input[1 - k]) : undefined;
        if (k >= 0 && prod && (prod.opType === 'MatMul' || prod.opType === 'MatMulNBits') && g.uses(p.input[1 - k]).length === 1) {
          addBias = { node: p, name: p.input[k] };
          path.push(op);
          value = p.input[1 - k];
          continue;
        }
      }
      if (PASS_THROUGH.has(op)) { path.push(op); value = p.input[0]; continue; }
      const isConv1x1 = op === 'Conv' && attrInt(p, 'group', 1) === 1 && (ints(p, 'kernel_shape') ?? []).every((k) => k === 1);
      if (op !== 'Gemm' && op !== 'MatMul' && op !== 'MatMulNBits' && !isConv1x1) {
        reasons.push(`${o.name}: produced through ${op} (${p.name ?? ''}), not a Gemm, MatMul, MatMulNBits or 1x1 Conv head`);
        break;
      }
      if (op === 'Gemm' && attrInt(p, 'transA', 0) !== 0) { reasons.push(`${o.name}: Gemm with transA`); break; }
      if (g.uses(p.output[0]).length !== 1 && !g.isGraphOutput(p.output[0])) { reasons.push(`${o.name}: the head's result is read elsewhere too`); break; }
      const dims = weightDims(model, p.input[1], p) ?? known?.get(p.input[1]) ?? null;
      if (!dims || (op !== 'Conv' && dims.length !== 2)) { reasons.push(`${o.name}: the head's weight has no known 2-D shape`); break; }
      const layout = op === 'Conv' ? 'conv' : op === 'Gemm' && attrInt(p, 'transB', 0) === 1 ? 'cf' : 'fc';
      const classes = layout === 'fc' ? dims[1] : dims[0];
      const features = layout === 'fc' ? dims[0] : dims[1];
      // MatMulNBits (A, B, scales, zero_points, g_idx, bias): its bias is input 5.
      const biasInput = op === 'MatMulNBits' ? p.input[5] : op !== 'MatMul' ? p.input[2] : undefined;
      const bias: Head['bias'] = addBias ? { kind: 'add', ...addBias } : biasInput ? { kind: 'input', name: biasInput } : { kind: 'none' };
      if (op !== 'Gemm' && op !== 'Conv' && addBias && tensorDims(g.weights.get(addBias.name)!.tensor).reduce((a, b) => a * b, 1) !== classes) { reasons.push(`${o.name}: the Add after the MatMul is not a per-class bias`); break; }
      return { node: p, output: o.name ?? '', features: p.input[0], logits: addBias ? addBias.node.output[0] : p.output[0], weight: p.input[1], layout, classes, features_: features, bias, path: path.reverse() };
    }
  }
  return reasons.length ? reasons.join('; ') : 'the model has no float output';
}
