/**
 * Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", §4.2, empirical form):
 * quantization shifts the mean of a layer's output, and the shift adds up through the network.
 * Per output channel, E[y] − E[ŷ] over calibration samples (y from the float model, ŷ from the
 * quantized one, each layer reading its own model's inputs) is added to the layer's bias.
 *
 * The calibration samples are split: three quarters estimate the shift, the rest (held out) says
 * whether the correction brought the outputs closer to the float model's. 'auto' checks every
 * round of layers there and undoes a round that lowers the held-out SQNR; 'on' keeps everything
 * and reports the same figures.
 */
import * as ort from 'onnxruntime-node';
import { DataError } from '../../errors.ts';
import { OnnxModel } from '../../onnx/model.ts';
import { create, type AttributeMsg, type NodeMsg, type TensorProtoMsg } from '../../onnx/proto.ts';
import { DataType } from '../../onnx/dtypes.ts';
import { bytesOf, makeTensor, tensorDims } from '../../onnx/tensor.ts';
import { intAttr, numberAttr } from '../../onnx/attributes.ts';
import { shiftBias } from '../../onnx/bias.ts';
import { openDataset, seededSample, type Dataset } from '../../data/dataset.ts';
import { modelInput } from '../../calibrate/calibrate.ts';
import { bytesWithExtras, floatOutput, sessionFromBytes } from '../../eval/session.ts';
import { evaluateModels, type OutputAgreement } from '../../eval/evaluate.ts';
import type { CalibrationSource } from '../pass.ts';
import { layerWaves } from '../layer-rows.ts';

export type BiasCorrectionMode = 'on' | 'auto';

export interface BiasCorrectionOptions {
  calibration: CalibrationSource;
  mode: BiasCorrectionMode;
  /** Correct layer by layer (waves), each measured after the upstream corrections (default true); false: all from one measurement. */
  sequential?: boolean;
  /** Most measuring rounds for sequential correction (default 16; deeper models merge waves). */
  maxRounds?: number;
  /** Whether a MatMul without bias may get an Add after it (not in static W8A8: it breaks fusion). */
  allowAdd: boolean;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface BiasCorrectionLayer {
  node: string;
  channels: number;
  /** Largest |shift| added to a channel. */
  maxAbsShift: number;
}

export interface HeldOutAgreement {
  samples: number;
  /** Pooled over the model's outputs. */
  sqnrDb: number;
  cosine: number;
}

export interface BiasCorrectionReport {
  mode: BiasCorrectionMode;
  /** Whether the corrected model was kept. */
  kept: boolean;
  fitSamples: number;
  /** Output agreement with the float model on the held-out samples, without and with correction. */
  heldOut: { before: HeldOutAgreement; after: HeldOutAgreement } | null;
  layers: BiasCorrectionLayer[];
  skipped: Array<{ node: string; reason: string }>;
}

/** Output axis that holds the channels, and the reduction that averages the rest. */
interface LayerRead {
  node: string;
  channels: number;
  /** Rank of the output when known (Conv: 2 + spatial dims); null: flatten to [rows, channels]. */
  rank: number | null;
}

function channelsOf(model: OnnxModel, node: NodeMsg): LayerRead | string {
  const w = model.graph.weights.get(node.input[1]);
  if (!w) return 'weight is not a constant';
  const d = tensorDims(w.tensor);
  switch (node.opType) {
    case 'Conv': return { node: node.name!, channels: d[0], rank: d.length };
    case 'ConvTranspose': return { node: node.name!, channels: d[1] * numberAttr(node, 'group', 1), rank: d.length };
    case 'Gemm': return { node: node.name!, channels: numberAttr(node, 'transB', 0) ? d[0] : d[1], rank: 2 };
    case 'MatMul': return d.length === 2 ? { node: node.name!, channels: d[1], rank: null } : 'weight is not 2-D';
    default: return `${node.opType} is not corrected`;
  }
}

/**
 * A session computing, for each layer, the mean of its output over every axis but the channel
 * axis (output `<node>::mean`, shape [C]). The model itself is left as it was.
 */
async function meanSession(model: OnnxModel, layers: readonly LayerRead[]): Promise<ort.InferenceSession> {
  const g = model.msg.graph!;
  const axesAsInput = model.opset('') >= 18;
  const nodes: NodeMsg[] = [];
  const inits: TensorProtoMsg[] = [];
  const byName = new Map(g.node.map((n) => [n.name ?? '', n]));
  const reduce = (input: string, output: string, axes: number[]) => {
    const axesName = `modelpress_bias_axes_${nodes.length}`;
    if (axesAsInput) inits.push(makeTensor(axesName, DataType.INT64, [axes.length], bytesOf(BigInt64Array.from(axes, BigInt))));
    nodes.push(create<NodeMsg>('NodeProto', {
      name: `modelpress_bias_mean_${nodes.length}`, opType: 'ReduceMean', input: axesAsInput ? [input, axesName] : [input], output: [output],
      attribute: axesAsInput ? [intAttr('keepdims', 0)] : [intAttr('keepdims', 0), create<AttributeMsg>('AttributeProto', { name: 'axes', type: 7, ints: axes })],
    }));
  };
  for (const l of layers) {
    const y = byName.get(l.node)!.output[0];
    const out = `${l.node}::mean`;
    if (l.rank !== null) {
      reduce(y, out, [0, ...Array.from({ length: l.rank - 2 }, (_, i) => i + 2)]);
    } else {
      // Rank unknown (MatMul): rows of C channels, then their mean.
      const flat = `${l.node}::rows`;
      const shape = `modelpress_bias_rows_shape_${nodes.length}`;
      inits.push(makeTensor(shape, DataType.INT64, [2], bytesOf(BigInt64Array.from([-1n, BigInt(l.channels)]))));
      nodes.push(create<NodeMsg>('NodeProto', { name: `modelpress_bias_rows_${nodes.length}`, opType: 'Reshape', input: [y, shape], output: [flat] }));
      reduce(flat, out, [0]);
    }
  }
  g.initializer.push(...inits);
  try {
    return await sessionFromBytes(model, bytesWithExtras(model, nodes, layers.map((l) => floatOutput(`${l.node}::mean`))), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  } finally {
    g.initializer.splice(g.initializer.length - inits.length, inits.length);
  }
}

/** Per-channel output means of each layer over the samples (weighted by batch size). */
async function layerMeans(model: OnnxModel, layers: readonly LayerRead[], ds: Dataset, indices: readonly number[], batch: number, progress: (done: number) => void): Promise<Map<string, Float64Array>> {
  const session = await meanSession(model, layers);
  const input = modelInput(model);
  const sums = new Map(layers.map((l) => [l.node, new Float64Array(l.channels)]));
  let seen = 0;
  try {
    for (let i = 0; i < indices.length; i += batch) {
      const idx = indices.slice(i, i + batch);
      if (input.batch !== null && idx.length !== input.batch) break;
      const out = await session.run({ [input.name]: new ort.Tensor('float32', await ds.load(idx), [idx.length, ...ds.sampleDims]) });
      for (const l of layers) {
        const m = out[`${l.node}::mean`].data as Float32Array;
        const s = sums.get(l.node)!;
        for (let c = 0; c < l.channels; c++) s[c] += m[c] * idx.length;
      }
      seen += idx.length;
      progress(seen);
    }
  } finally {
    await session.release();
  }
  if (!seen) throw new DataError('bias correction read no calibration sample (the model takes a fixed batch larger than the samples given)');
  for (const s of sums.values()) for (let c = 0; c < s.length; c++) s[c] /= seen;
  return sums;
}

function pooled(outputs: OutputAgreement[], samples: number): HeldOutAgreement {
  // Pooled over outputs: the mean of per-output SQNRs in the power domain, the lowest cosine.
  const noise = outputs.reduce((s, o) => s + 10 ** (-o.sqnrDb / 10), 0) / outputs.length;
  return { samples, sqnrDb: noise === 0 ? Infinity : -10 * Math.log10(noise), cosine: Math.min(...outputs.map((o) => o.cosine)) };
}

/**
 * Corrects the biases of `nodes` in a copy of `quantized` against `reference` (the float model the
 * quantize pass started from; node names shared). Returns the model to keep and the report.
 */
export async function correctBiases(reference: OnnxModel, quantized: OnnxModel, nodes: readonly string[], o: BiasCorrectionOptions): Promise<{ model: OnnxModel; report: BiasCorrectionReport }> {
  const c = o.calibration;
  const input = modelInput(reference);
  const ds = await openDataset(c.data, input, c.preprocess);
  const all = seededSample(ds.count, c.samples ?? 256, c.seed ?? 1);
  const held = all.length >= 8 ? all.filter((_, i) => i % 4 === 3) : [];
  const fit = held.length ? all.filter((_, i) => i % 4 !== 3) : all;
  if (o.mode === 'auto' && !held.length) throw new DataError(`bias correction needs at least 8 calibration samples to check itself on held-out ones; ${ds.description} gives ${all.length}`);
  const refNodes = new Map(reference.msg.graph!.node.map((n) => [n.name ?? '', n]));
  const layers: LayerRead[] = [];
  const skipped: Array<{ node: string; reason: string }> = [];
  for (const name of new Set(nodes)) {
    const r = refNodes.get(name);
    const q = quantized.msg.graph!.node.find((n) => n.name === name);
    const read = r ? channelsOf(reference, r) : 'not in the float model';
    if (typeof read === 'string' || !q) skipped.push({ node: name, reason: typeof read === 'string' ? read : 'not in the quantized model' });
    else layers.push(read);
  }
  const batch = input.batch ?? 16;
  const start = OnnxModel.fromBytes(quantized.toBytes(), quantized.baseDir, quantized.sourcePath ?? '<bias-corrected model>');
  // Layers in waves (graph order): a wave is measured on the model whose earlier waves are already
  // corrected, so a correction never counts a shift that an upstream correction has removed.
  const order = new Map(start.msg.graph!.node.map((n, i) => [n.name ?? '', i]));
  const items = layers.map((l) => ({ layer: l, node: start.msg.graph!.node[order.get(l.node)!] })).sort((a, b) => order.get(a.layer.node)! - order.get(b.layer.node)!);
  // Deep models: consecutive waves are merged into at most `maxRounds` rounds (one ONNX Runtime
  // pass over the samples each), bounding the cost between one-shot and fully sequential.
  const byWave = o.sequential === false ? [items] : layerWaves(start, items);
  const rounds = Math.max(1, Math.min(byWave.length, o.maxRounds ?? 16));
  const waves = Array.from({ length: rounds }, (_, r) => byWave.slice(Math.floor((r * byWave.length) / rounds), Math.floor(((r + 1) * byWave.length) / rounds)).flat());
  const total = fit.length * (waves.length + 1);
  const refMeans = await layerMeans(reference, layers, ds, fit, batch, (d) => o.onProgress?.('bias correction: layer means', d, total));
  const shifts = new Map<string, Float32Array>();
  // 'auto': every round is checked on the held-out samples and undone when it lowers their output
  // SQNR (a collapsed model's activations can be far off: the "shift" it measures is no mean shift).
  const cache = { batches: new Map() };
  const ev = async (m: OnnxModel) => pooled((await evaluateModels(m, reference, { data: c.data, preprocess: c.preprocess, indices: held, latencyRuns: 0, baselineCache: cache })).outputs, held.length);
  const checked = o.mode === 'auto' && held.length > 0;
  const before = held.length ? await ev(quantized) : null;
  let best = before;
  let corrected = start;
  for (const [w, wave] of waves.entries()) {
    const snapshot = checked ? corrected.toBytes() : null;
    const qMeans = await layerMeans(corrected, wave.map((x) => x.layer), ds, fit, batch, (d) => o.onProgress?.('bias correction: layer means', fit.length * (w + 1) + d, total));
    const round = new Map<string, Float32Array>();
    for (const { layer: l } of wave) {
      const ref = refMeans.get(l.node)!;
      const got = qMeans.get(l.node)!;
      const delta = Float32Array.from(ref, (v, k) => v - got[k]);
      const node = corrected.msg.graph!.node.find((n) => n.name === l.node)!;
      const why = shiftBias(corrected, node, delta, { allowAdd: o.allowAdd });
      if (why) skipped.push({ node: l.node, reason: why });
      else round.set(l.node, delta);
    }
    if (checked && round.size) {
      const now = await ev(corrected);
      if (!(now.sqnrDb > best!.sqnrDb)) {
        corrected = OnnxModel.fromBytes(snapshot!, quantized.baseDir, quantized.sourcePath ?? '<bias-corrected model>');
        for (const node of round.keys()) skipped.push({ node, reason: `its round lowered the held-out output SQNR (${best!.sqnrDb.toFixed(1)} -> ${now.sqnrDb.toFixed(1)} dB): undone` });
        continue;
      }
      best = now;
    }
    for (const [node, delta] of round) shifts.set(node, delta);
  }
  const applied = layers.filter((l) => shifts.has(l.node));
  const after = held.length && applied.length ? (checked ? best! : await ev(corrected)) : null;
  const report: BiasCorrectionReport = {
    mode: o.mode, kept: applied.length > 0 && (!checked || after!.sqnrDb > before!.sqnrDb), fitSamples: fit.length,
    heldOut: before && after ? { before, after } : null,
    layers: applied.map((l) => ({ node: l.node, channels: l.channels, maxAbsShift: Math.max(0, ...Array.from(shifts.get(l.node)!, Math.abs)) })),
    skipped,
  };
  return { model: report.kept ? corrected : quantized, report };
}
