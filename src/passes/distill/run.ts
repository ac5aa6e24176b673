/**
 * The distill pass's work (loaded on demand: fitting runs ONNX Runtime): the head re-fitted to the
 * input model's logits, and written back encoded the way the quantize pass encoded it.
 */
import { DataError } from '../../errors.ts';
import { OnnxModel } from '../../onnx/model.ts';
import type { NodeMsg } from '../../onnx/proto.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import { replaceDecodedWeight, replaceFloatWeight } from '../../onnx/model-edits.ts';
import { shiftBias } from '../../onnx/bias.ts';
import type { Recipe } from '../../recipe/recipe.ts';
import { compressWeights } from '../quantize/weight-only.ts';
import { requantizeStaticLayer } from '../quantize/static.ts';
import type { PassContext, PassOutcome } from '../pass.ts';
import { findHead, findHeadDecoded, type Head } from './head.ts';
import { distillHead, headToRows, rowsToHead, type DistillReport, type FittedHead } from './fit.ts';
import { evaluateConstant } from '../../eval/constant.ts';
import { decodeMatMulNBits } from '../quantize/weight-encodings.ts';
import { attrInt } from '../../analysis/shapes.ts';
import { bytesOf, makeTensor } from '../../onnx/tensor.ts';
import { DataType } from '../../onnx/dtypes.ts';
import type { DistillPassOptions } from './pass.ts';

/** Why a head cannot be fitted and written back, or null. */
function unsupported(model: OnnxModel, head: Head, requantize: Recipe | undefined, staticW8A8?: DistillPassOptions['staticW8A8']): string | null {
  const g = model.graph;
  const features = g.producers.get(head.features);
  // A head the accuracy gate kept in float (its weight a float initializer) is fitted as a float one.
  if (features?.opType === 'DequantizeLinear' && !g.weights.has(features.input[0]) && !g.weights.has(head.weight)) {
    if (!staticW8A8) return `the head '${head.node.name}' reads quantized activations (static W8A8) and no static W8A8 pass says how to encode it again`;
    if (head.node.opType !== 'Gemm' && head.node.opType !== 'Conv') return `the head '${head.node.name}' is a static W8A8 ${head.node.opType}; only Gemm and 1x1 Conv heads are encoded again`;
    if (head.bias.kind === 'add') return `the head '${head.node.name}' has its bias in an Add; static W8A8 heads keep it in the layer`;
    return null;
  }
  if (head.node.opType === 'MatMulNBits') {
    if (!decodeMatMulNBits(model, head.node)) return `the head '${head.node.name}' is a MatMulNBits whose weight cannot be decoded (not 4-bit, g_idx, or computed inputs)`;
    if (!requantize) return `the head '${head.node.name}' is a MatMulNBits (4-bit) and no quantize pass says how to encode it again`;
    if (head.bias.kind === 'input' && !g.weights.has(head.bias.name)) return `the head's bias '${head.bias.name}' is not a float constant`;
    return null;
  }
  if (head.bias.kind === 'input' && !g.weights.has(head.bias.name)) return `the head's bias '${head.bias.name}' is not a float constant`;
  if (!g.weights.has(head.weight) && !requantize) return `the head weight '${head.weight}' is quantized and no quantize pass says how to encode it again`;
  return null;
}

async function currentBias(model: OnnxModel, head: Head): Promise<Float32Array> {
  if (head.bias.kind === 'none') return new Float32Array(head.classes);
  const stored = model.graph.weights.get(head.bias.name);
  if (stored) return Float32Array.from(model.tensorFloat32(stored.tensor));
  // Static W8A8: an int32 bias behind a DequantizeLinear.
  const decoded = await evaluateConstant(model, head.bias.name);
  if (!decoded) throw new DataError(`distillation: the head's bias '${head.bias.name}' is neither stored nor computed from constants`);
  return decoded.data;
}

/** Writes the fitted head into `model` (re-encoding a quantized weight); returns whether it was re-encoded. */
export async function writeHead(ctx: Pick<PassContext, 'scheduler'>, model: OnnxModel, head: Head, weight: Float32Array, bias: Float32Array, requantize?: Recipe, staticW8A8?: DistillPassOptions['staticW8A8']): Promise<boolean> {
  const node = model.msg.graph!.node.find((n) => n === head.node || (n.name && n.name === head.node.name)) as NodeMsg | undefined;
  if (!node) throw new DataError(`distillation: the head node${head.node.name ? ` '${head.node.name}'` : ''} is not in the model it is written to (nodes without names cannot be matched)`);
  const dims = head.layout === 'conv' ? [head.classes, head.features_, 1, 1] : head.layout === 'fc' ? [head.features_, head.classes] : [head.classes, head.features_];
  const w = rowsToHead(head, weight);
  // A MatMulNBits head becomes its float layer again; the requantize recipe encodes it anew.
  const packed = node.opType === 'MatMulNBits';
  if (packed) {
    matMulNBitsToFloat(model, node, w);
    head = { ...head, node, weight: node.input[1] };
  }
  const encoded = packed || !model.graph.weights.has(head.weight);
  if (!replaceDecodedWeight(model, head.weight, dims, w)) throw new DataError(`distillation: the head weight '${head.weight}' is computed in a way that cannot be replaced`);
  const producer = model.graph.producers.get(head.features);
  if (staticW8A8 && producer?.opType === 'DequantizeLinear' && !model.graph.weights.has(producer.input[0]) && encoded) {
    // Static W8A8: float weight and bias in place of their DequantizeLinear chains, then encoded again.
    if (head.bias.kind === 'input' && !replaceDecodedWeight(model, head.bias.name, [head.classes], bias)) throw new DataError(`distillation: the head's bias '${head.bias.name}' is computed in a way that cannot be replaced`);
    if (head.bias.kind === 'none') {
      const why = shiftBias(model, node, bias, { allowAdd: false });
      if (why) throw new DataError(`distillation: the head's bias cannot be written: ${why}`);
    }
    model.reindex();
    await requantizeStaticLayer(model, node, { scheduler: ctx.scheduler, reduceRange: staticW8A8.reduceRange });
    return true;
  }
  if (head.bias.kind === 'add') {
    replaceFloatWeight(model, head.bias.name, tensorDims(model.graph.weights.get(head.bias.name)!.tensor), bias);
  } else {
    const old = await currentBias(model, head);
    const why = shiftBias(model, node, Float32Array.from(bias, (v, c) => v - old[c]), { allowAdd: true });
    if (why) throw new DataError(`distillation: the head's bias cannot be written: ${why}`);
  }
  model.reindex();
  if (encoded && requantize) {
    const others = Object.fromEntries(model.msg.graph!.node.filter((n) => n !== node && n.name).map((n) => [n.name!, null]));
    await compressWeights(model, { recipe: { ...requantize, nodes: { ...others, ...(node.name && requantize.nodes[node.name] !== undefined ? { [node.name]: requantize.nodes[node.name] } : {}) } }, scheduler: ctx.scheduler });
  }
  return encoded;
}

/**
 * A MatMulNBits node back to the float layer it was encoded from, holding `w` [K, N]: a Gemm when
 * it has a bias input (encodeMatMulNBits moves a Gemm's C there; its A is 2-D), a MatMul
 * otherwise. Its packed weight, scales and zero points are dropped when nothing else reads them.
 */
function matMulNBitsToFloat(model: OnnxModel, node: NodeMsg, w: Float32Array): void {
  const g = model.msg.graph!;
  const K = attrInt(node, 'K', 0);
  const N = attrInt(node, 'N', 0);
  const old = node.input.slice(1, 4).filter(Boolean);
  const name = model.graph.uniqueName(`${node.name || 'head'}_weight`);
  g.initializer.push(makeTensor(name, DataType.FLOAT, [K, N], bytesOf(w)));
  const bias = node.input[5];
  node.input = bias ? [node.input[0], name, bias] : [node.input[0], name];
  node.opType = bias ? 'Gemm' : 'MatMul';
  node.domain = '';
  node.attribute = [];
  model.reindex();
  const unused = new Set(old.filter((i) => model.graph.uses(i).length === 0));
  g.initializer.splice(0, g.initializer.length, ...g.initializer.filter((t) => !unused.has(t.name ?? '')));
  model.reindex();
}

/** The float weight a head really holds, decoded (a MatMulNBits' B, a decode chain) or stored. */
async function heldWeight(model: OnnxModel, head: Head): Promise<Float32Array | null> {
  const node = model.msg.graph!.node.find((n) => n.name && n.name === head.node.name);
  if (!node) return null;
  if (node.opType === 'MatMulNBits') return decodeMatMulNBits(model, node);
  return (await evaluateConstant(model, node.input[1]))?.data ?? null;
}

export async function runDistill(ctx: PassContext, o: DistillPassOptions): Promise<PassOutcome<DistillReport & { requantized: boolean }>> {
  if (!ctx.calibration) throw new DataError('--recover kd needs --calibration data (the inputs the teacher\'s logits are read on)');
  const { head, decoded } = await findHeadDecoded(ctx.model, o.output);
  if (typeof head === 'string') throw new DataError(`--recover kd: no head to distill: ${head}`);
  const why = unsupported(ctx.model, head, o.requantize, o.staticW8A8);
  if (why) throw new DataError(`--recover kd: ${why}`);
  const teacher = OnnxModel.read(ctx.inputPath);
  const th = findHead(teacher, head.output);
  if (typeof th === 'string') throw new DataError(`--recover kd: the input model has no head behind '${head.output}': ${th}`);
  if (th.classes !== head.classes) throw new DataError(`--recover kd: the teacher's head has ${th.classes} classes, the student's ${head.classes}`);
  const stored = head.node.opType === 'MatMulNBits' ? undefined : ctx.model.graph.weights.get(head.weight);
  const start = { weight: headToRows(head, stored ? ctx.model.tensorFloat32(stored.tensor) : decoded!), bias: await currentBias(ctx.model, head) };
  const c = ctx.calibration;
  // A quantized head is judged as it will be stored: encoded again and decoded.
  const effective = stored ? undefined : async (f: FittedHead): Promise<FittedHead> => {
    const copy = OnnxModel.fromBytes(ctx.model.toBytes(), ctx.model.baseDir, '<distilled head>');
    await writeHead(ctx, copy, head, f.weight, f.bias, o.requantize, o.staticW8A8);
    const decodedNow = await heldWeight(copy, head);
    return { weight: decodedNow ? headToRows(head, decodedNow) : f.weight, bias: f.bias };
  };
  const { fitted, report } = await distillHead(ctx.model, teacher, head, th.logits, start, {
    ...o, data: c.data, preprocess: c.preprocess, samples: o.samples ?? c.samples ?? 1024, seed: c.seed, scheduler: ctx.scheduler, onProgress: ctx.onProgress, effective,
  });
  const requantized = report.kept ? await writeHead(ctx, ctx.model, head, fitted.weight, fitted.bias, o.requantize, o.staticW8A8) : false;
  return { report: { ...report, requantized }, usedCalibration: true };
}

