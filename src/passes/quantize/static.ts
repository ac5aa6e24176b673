/**
 * Static W8A8 quantization in QDQ form: QuantizeLinear/DequantizeLinear pairs on the activations
 * around Conv, ConvTranspose, Gemm, MatMul, Add, Mul, Concat and pooling (what ONNX Runtime's CPU
 * provider fuses into integer kernels), int8 per-channel weights, and int32 biases with
 * scale = input scale x weight scale. Ranges come from calibration (stats.ts / methods.ts).
 */
import { DataError } from '../../errors.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { DataType } from '../../onnx/dtypes.ts';
import { elemTypes } from '../../onnx/types.ts';
import { upgradeToOpset10 } from '../../onnx/opset.ts';
import { create, type NodeMsg } from '../../onnx/proto.ts';
import { intAttr } from '../../onnx/attributes.ts';
import { foldConstantIdentities, unshareConstants } from '../../onnx/model-edits.ts';
import { bytesOf, makeTensor, tensorDims } from '../../onnx/tensor.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { computeQuantParams } from '../../kernels/qparams.ts';
import { roundHalfEven } from '../../kernels/numerics.ts';
import { parseRecipe } from '../../recipe/recipe.ts';
import type { Dataset } from '../../data/dataset.ts';
import { collectActivationStats, type CollectResult } from '../../calibrate/calibrate.ts';
import { clipRanges, DEFAULT_PERCENTILE, type CalibMethod, type ClipRange } from '../../calibrate/methods.ts';
import type { TensorStats } from '../../calibrate/stats.ts';
import { compressWeights, type TensorReport, type WeightOnlyOptions } from './weight-only.ts';
import type { Skip } from './targets.ts';

export const QDQ_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Add', 'Mul', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool']);
/** Activations that fold into the op before them (the range after them is the one quantized). */
const FUSED_ACTIVATIONS = new Set(['Relu', 'Clip']);
const BIASED = new Set(['Conv', 'ConvTranspose', 'Gemm']);

export interface StaticOptions {
  dataset: Dataset;
  samples?: number;
  seed?: number;
  method?: CalibMethod;
  percentile?: number;
  activations?: 'int8' | 'uint8';
  /** Symmetric activation ranges (default: asymmetric). */
  symmetricActivations?: boolean;
  /** Weights from a 7-bit range, for x86 CPUs without VNNI (ORT's reduce_range). */
  reduceRange?: boolean;
  /** Nodes left in float (the accuracy gate's choice). */
  floatNodes?: ReadonlySet<string>;
  /** Quantize only these nodes (sensitivity analysis). */
  onlyNodes?: ReadonlySet<string>;
  scheduler: Scheduler;
  /** Statistics from an earlier calibration of the same model (sensitivity runs reuse them). */
  calibration?: CollectResult;
  /** GPTQ rounding of the int8 weights (collected once per pipeline; candidates reuse its results). */
  rounder?: WeightOnlyOptions['rounder'];
  onProgress?: (done: number, total: number) => void;
}

export interface ActivationReport {
  name: string;
  min: number;
  max: number;
  threshold: number | null;
  scale: number;
  zeroPoint: number;
}

export interface StaticResult {
  activations: ActivationReport[];
  weights: TensorReport[];
  skipped: Skip[];
  biases: number;
  quantizedNodes: string[];
  calibration: { samples: number; method: CalibMethod; ortMs: number; statsMs: number };
  /** The ai.onnx opset the model had when it was upgraded to 10, else null. */
  opsetUpgradedFrom: number | null;
}

function isQuantizable(node: NodeMsg, opts: StaticOptions): boolean {
  if ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx') return false;
  if (!QDQ_OPS.has(node.opType ?? '')) return false;
  const name = node.name ?? '';
  if (opts.floatNodes?.has(name)) return false;
  return !opts.onlyNodes || opts.onlyNodes.has(name);
}

/** The nodes that static quantization can touch (the sensitivity analysis ranks these). */
export function quantizableNodes(model: OnnxModel): NodeMsg[] {
  return model.msg.graph!.node.filter((n) => ((n.domain ?? '') === '' || n.domain === 'ai.onnx') && QDQ_OPS.has(n.opType ?? '') && n.name);
}

/** Activation tensors to quantize: float inputs and outputs of the quantizable nodes. */
export function activationTensors(model: OnnxModel, opts: Pick<StaticOptions, 'floatNodes' | 'onlyNodes'>): string[] {
  const g = model.graph;
  const types = elemTypes(model.msg.graph!);
  const out = new Set<string>();
  for (const node of model.msg.graph!.node) {
    if (!isQuantizable(node, opts as StaticOptions)) continue;
    for (const i of node.input) if (i && !g.weights.has(i)) out.add(i);
    let o = node.output[0];
    const uses = g.uses(o);
    if (uses.length === 1 && FUSED_ACTIVATIONS.has(uses[0].node.opType ?? '') && !g.isGraphOutput(o)) o = uses[0].node.output[0];
    out.add(o);
  }
  // Only float values are quantized (Concat / Mul also do shape arithmetic on integers).
  return [...out].filter((n) => types.get(n) === DataType.FLOAT);
}


/**
 * Inserts Q -> DQ on activation `name`: one QuantizeLinear, and one DequantizeLinear per consumer
 * (ONNX Runtime fuses a node with its DQ inputs only when each DQ feeds that node alone). A graph
 * output keeps its name, produced by a DequantizeLinear of its own.
 */
function insertQdq(model: OnnxModel, name: string, scale: number, zp: number, signed: boolean, domain: string): void {
  const g = model.graph;
  const type = signed ? DataType.INT8 : DataType.UINT8;
  const s = makeTensor(g.uniqueName(`${name}_scale`), DataType.FLOAT, [], bytesOf(new Float32Array([scale])));
  const z = makeTensor(g.uniqueName(`${name}_zero_point`), type, [], new Uint8Array([zp & 0xff]));
  const quantized = g.uniqueName(`${name}_quantized`);
  const producer = g.producers.get(name);
  const uses = g.uses(name);
  const isOutput = g.isGraphOutput(name);
  let source = name;
  if (producer && isOutput) {
    source = g.uniqueName(`${name}_float`);
    producer.output[producer.output.indexOf(name)] = source;
  }
  const dq = (output: string) =>
    create<NodeMsg>('NodeProto', { name: g.uniqueName(`${output}_DequantizeLinear`), opType: 'DequantizeLinear', domain, input: [quantized, s.name!, z.name!], output: [output] });
  const added: NodeMsg[] = [create<NodeMsg>('NodeProto', { name: g.uniqueName(`${name}_QuantizeLinear`), opType: 'QuantizeLinear', domain, input: [source, s.name!, z.name!], output: [quantized] })];
  uses.forEach((u, k) => {
    const out = g.uniqueName(`${name}_dequantized${uses.length > 1 ? `_${k}` : ''}`);
    u.node.input[u.index] = out;
    added.push(dq(out));
  });
  if (producer && isOutput) added.push(dq(name));
  const nodes = model.msg.graph!.node;
  nodes.splice(producer ? nodes.indexOf(producer) + 1 : 0, 0, ...added);
  model.msg.graph!.initializer.push(s, z);
}

/** The f32 scales of a weight rewritten by compressWeights (its DequantizeLinear's scale input). */
function weightScales(model: OnnxModel, weight: string): Float32Array | null {
  const dq = model.msg.graph!.node.find((n) => n.opType === 'DequantizeLinear' && n.output[0] === weight);
  if (!dq) return null;
  const t = model.msg.graph!.initializer.find((x) => x.name === dq.input[1]);
  return t ? model.tensorFloat32(t) : null;
}

/** Rewrites the bias of a Conv / Gemm as int32 with scale = input scale x weight scale. */
function quantizeBias(model: OnnxModel, node: NodeMsg, inputScale: number, domain: string): boolean {
  const biasName = node.input[2];
  const w = biasName ? model.graph.weights.get(biasName) : undefined;
  if (!w || w.tensor.dataType !== DataType.FLOAT || tensorDims(w.tensor).length !== 1) return false;
  if (model.graph.uses(biasName).length !== 1) return false;
  const ws = weightScales(model, node.input[1]);
  if (!ws) return false;
  const b = model.tensorFloat32(w.tensor);
  const scale = new Float32Array(b.length);
  const q = new Int32Array(b.length);
  for (let c = 0; c < b.length; c++) {
    const s = Math.fround(inputScale * ws[ws.length === 1 ? 0 : c]);
    scale[c] = s > 0 ? s : 1;
    q[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfEven(b[c] / scale[c])));
  }
  const g = model.graph;
  const perChannel = ws.length > 1;
  const qt = makeTensor(g.uniqueName(`${biasName}_quantized`), DataType.INT32, [b.length], bytesOf(q));
  const st = makeTensor(g.uniqueName(`${biasName}_scale`), DataType.FLOAT, perChannel ? [b.length] : [], bytesOf(perChannel ? scale : scale.subarray(0, 1)));
  const dq = create<NodeMsg>('NodeProto', {
    name: g.uniqueName(`${biasName}_DequantizeLinear`), opType: 'DequantizeLinear', domain,
    input: [qt.name!, st.name!], output: [biasName], attribute: perChannel ? [intAttr('axis', 0)] : [],
  });
  g.replaceWeight(biasName, [qt, st], [dq]);
  return true;
}


/**
 * Encodes one layer again the way static W8A8 left it, once its weight and bias are float again
 * (a re-fitted head): int8 per-channel symmetric QDQ weight (`reduceRange`: 7-bit codes), int32
 * bias at input scale × weight scale. Its input must be the DequantizeLinear of a quantized
 * activation (whose scale the bias uses).
 */
export async function requantizeStaticLayer(model: OnnxModel, node: NodeMsg, o: { scheduler: Scheduler; reduceRange?: boolean }): Promise<void> {
  const dq = model.graph.producers.get(node.input[0]);
  const scaleRef = dq?.opType === 'DequantizeLinear' ? model.graph.weights.get(dq.input[1]) : undefined;
  if (!dq || !scaleRef) throw new DataError(`static W8A8: '${node.name}' does not read a dequantized activation; it cannot be encoded again`);
  const inputScale = model.tensorFloat32(scaleRef.tensor)[0];
  const others: Record<string, null> = {};
  for (const n of model.msg.graph!.node) if (n.name && n !== node) others[n.name] = null;
  await compressWeights(model, {
    recipe: parseRecipe({ weights: 'int8', granularity: 'channel', symmetric: true, format: 'qdq', minElements: 0, nodes: others }),
    scheduler: o.scheduler, reduceRange: o.reduceRange,
  });
  model.reindex();
  if (BIASED.has(node.opType ?? '') && node.input[2]) quantizeBias(model, node, inputScale, dq.domain ?? '');
  model.reindex();
}

export async function quantizeStatic(model: OnnxModel, opts: StaticOptions): Promise<StaticResult> {
  const method = opts.method ?? 'percentile';
  foldConstantIdentities(model);
  // Int32 biases depend on each node's scales: every Conv / Gemm gets its own copy of a shared bias.
  unshareConstants(model, (op) => (BIASED.has(op) ? [2] : []));
  const signed = (opts.activations ?? 'uint8') === 'int8';
  const tensors = activationTensors(model, opts);
  if (tensors.length === 0) throw new DataError('no activation to quantize: the model has no Conv, Gemm, MatMul, Add, Concat or pooling node left to quantize');
  const calib = opts.calibration ?? (await collectActivationStats(model, activationTensors(model, {}), {
    dataset: opts.dataset, samples: opts.samples ?? 256, seed: opts.seed, scheduler: opts.scheduler, onProgress: opts.onProgress, rangesOnly: method === 'minmax',
    percentile: method === 'percentile' ? (opts.percentile ?? DEFAULT_PERCENTILE) : undefined,
  }));
  const chosen = tensors.filter((t) => calib.stats.has(t));
  const stats: TensorStats[] = chosen.map((t) => calib.stats.get(t)!);
  const ranges: ClipRange[] = await clipRanges(opts.scheduler, stats, { method, percentile: opts.percentile, signed });
  // QuantizeLinear and ONNX Runtime's QLinear kernels need opset 10: older models are upgraded.
  const upgraded = upgradeToOpset10(model);
  const domain = '';

  // Weights: int8 per-channel symmetric, every size (integer kernels need integer weights).
  const quantized = model.msg.graph!.node.filter((n) => isQuantizable(n, opts));
  const qset = new Set(quantized.map((n) => n.name ?? ''));
  const nodesOverride: Record<string, null> = {};
  for (const n of model.msg.graph!.node) if (n.name && !qset.has(n.name)) nodesOverride[n.name] = null;
  const weightResult = await compressWeights(model, {
    // QDQ weights: ORT fuses DQ -> Conv/Gemm with the activation Q/DQ into integer kernels.
    recipe: parseRecipe({ weights: 'int8', granularity: 'channel', symmetric: true, format: 'qdq', minElements: 0, nodes: nodesOverride }),
    scheduler: opts.scheduler,
    reduceRange: opts.reduceRange,
    rounder: opts.rounder,
  });

  const activations: ActivationReport[] = [];
  const scaleOf = new Map<string, number>();
  chosen.forEach((name, i) => {
    const r = ranges[i];
    const p = computeQuantParams([r.min], [r.max], { bits: 8, signed, symmetric: Boolean(opts.symmetricActivations), granularity: { kind: 'tensor' } });
    scaleOf.set(name, p.scale[0]);
    activations.push({ name, min: r.min, max: r.max, threshold: r.threshold, scale: p.scale[0], zeroPoint: p.zeroPoint[0] });
  });
  // Pooling that only selects values keeps its input's parameters, so ONNX Runtime can drop the
  // DQ -> MaxPool -> Q around it and pool in int8.
  const byName = new Map(activations.map((a) => [a.name, a]));
  for (const node of model.msg.graph!.node) {
    if (node.opType !== 'MaxPool') continue;
    const a = byName.get(node.input[0]);
    const b = byName.get(node.output[0]);
    if (a && b) {
      b.scale = a.scale;
      b.zeroPoint = a.zeroPoint;
      scaleOf.set(b.name, a.scale);
    }
  }
  model.reindex();
  let biases = 0;
  for (const node of quantized) {
    if (!BIASED.has(node.opType ?? '')) continue;
    const s = scaleOf.get(node.input[0]);
    if (s !== undefined && quantizeBias(model, node, s, model.opset('') >= 13 ? '' : 'com.microsoft')) {
      biases++;
      model.reindex();
    }
  }
  for (const a of activations) {
    insertQdq(model, a.name, a.scale, a.zeroPoint, signed, domain);
    model.reindex();
  }
  return {
    activations, weights: weightResult.tensors, skipped: weightResult.skipped, biases,
    quantizedNodes: quantized.map((n) => n.name ?? ''),
    calibration: { samples: calib.samples, method, ortMs: calib.ortMs, statsMs: calib.statsMs },
    opsetUpgradedFrom: upgraded.from < 10 ? upgraded.from : null,
  };
}
