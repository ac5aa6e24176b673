/**
 * The sparsify pass: magnitude pruning of individual weights — unstructured (per layer or one
 * global threshold) or N:M along the input-channel axis (2:4 is what TensorRT's sparse tensor
 * cores take as they are) — or, with calibration data, SparseGPT: masks chosen from each layer's
 * input Gram matrix and the kept weights updated to compensate. Weights are stored dense (zeros)
 * by default, or compact (encode.ts). Runs before palettize and quantize, which keep zeros zero.
 */
import { RecipeError } from '../../errors.ts';
import { replaceFloatWeight } from '../../onnx/model-edits.ts';
import { numberAttr } from '../../onnx/attributes.ts';
import { floatWeightTargets, type Target } from '../quantize/targets.ts';
import type { TensorReport } from '../quantize/weight-only.ts';
import type { PassContext, PassDescriptor, PassOutcome } from '../pass.ts';
import type { GptqRounder } from '../quantize/gptq.ts';
import { layerFractions, magnitudeMasks, sparseGptDepthwise, sparseGptLayer, type SparseWeight, type SparsitySpec } from './sparsify.ts';
import { compactBytes, encodeBitmask, encodeSparseInitializer, type SparseFormat } from './encode.ts';
import { MAX_M } from '../../kernels/sparsity.ts';
import { weightMetrics } from '../palettize/palettize.ts';
import { correctAfter, referenceFor, type BiasAfter } from '../bias-after.ts';
import type { BiasCorrectionReport } from '../quantize/bias-correction.ts';
import type { RecoveryReport } from '../prune/recover.ts';
import type { RecoveryTarget } from '../prune/surgery.ts';

export interface SparsifyPassOptions {
  /** Unstructured: the fraction of weights set to zero (0.5 = half). */
  sparsity?: number;
  /** N:M: keep N of every M consecutive weights along the input-channel axis. */
  nm?: { n: number; m: number };
  /** Unstructured: one threshold per layer (default) or over all layers. */
  scope?: 'layer' | 'global';
  /** Default: sparsegpt with calibration data, magnitude without. */
  method?: 'magnitude' | 'sparsegpt';
  /** dense (default): zeros in the float tensor; compact: bitmask + values or sparse_initializer, whichever is smaller. */
  format?: 'dense' | 'compact';
  minElements?: number;
  exclude?: Set<string>;
  /** SparseGPT: each layer's inputs read from the model whose earlier layers are already sparse (default false: measured mixed, README). */
  sequential?: boolean;
  /** Restore the sparse layers' per-channel output means on calibration data (auto: kept only when held-out outputs get closer). */
  biasCorrection?: BiasAfter;
  /**
   * lsq: after the masks are chosen, re-fit every sparse layer's kept weights (and bias) by least
   * squares so that its output, fed by the sparse model's activations, matches the float model's
   * (layer by layer, downstream after upstream; a fit that is worse on held-out samples is undone).
   * Default: lsq with calibration data and dense storage (as pruning's recovery), else none.
   */
  reconstruct?: 'none' | 'lsq';
}

export interface SparseTensorReport {
  name: string;
  op: string;
  shape: number[];
  method: 'magnitude' | 'sparsegpt';
  /** Why SparseGPT was not used for this layer, when it was asked for. */
  fallback: string | null;
  sparsity: number;
  sqnrDb: number;
  objectiveMagnitude: number | null;
  objectiveSparseGpt: number | null;
  format: SparseFormat;
  bytesDense: number;
  bytesBitmask: number;
  bytesSparseInitializer: number;
  bytesAfter: number;
}

export interface SparsifyReport {
  options: { sparsity: number | null; nm: string | null; scope: 'layer' | 'global'; method: 'magnitude' | 'sparsegpt'; format: 'dense' | 'compact'; minElements: number; sequential: boolean | null; reconstruct: 'none' | 'lsq' };
  tensors: SparseTensorReport[];
  /** Least-squares reconstruction of the sparse layers (reconstruct: lsq). */
  reconstruction: RecoveryReport | null;
  /** Zeros over all sparsified weights. */
  sparsity: number;
  biasCorrection: BiasCorrectionReport | null;
}

/**
 * Output positions per image the reconstruction samples for a convolution. A sparse layer keeps
 * half its weights in every output row, so it has more unknowns than a pruned layer's refit:
 * measured on the Fashion inverted-residual model at 2:4 + bias correction (mean of four draws of
 * 256 samples), 10 positions gave -1.52 points, 30 gave -1.38, 60 -1.39.
 */
const RECONSTRUCT_POSITIONS = 30;

/** The input-channel axis of a weight for its consumer (N:M groups run along it), or why there is none. */
function inputAxis(t: Target): number | string {
  const rank = t.shape.length;
  const axes = t.nodes.map((x) => {
    if (x.opType === 'Conv') return numberAttr(x, 'group', 1) > 1 && t.shape[1] === 1 ? 'depthwise convolution: one input channel per filter' : 1;
    if (x.opType === 'ConvTranspose') return 0;
    if (x.opType === 'Gemm') return numberAttr(x, 'transB', 0) ? 1 : 0;
    if (x.opType === 'MatMul') return rank - 2;
    return `no input-channel axis for ${x.opType}`;
  });
  if (axes.some((a) => a !== axes[0])) return 'shared by nodes with different input axes';
  return axes[0];
}

export function validateSparsify(o: SparsifyPassOptions): void {
  if ((o.sparsity === undefined) === (o.nm === undefined)) throw new RecipeError('sparsify: give exactly one of sparsity (a fraction, e.g. 0.5) and nm (e.g. 2:4)');
  if (o.sparsity !== undefined && !(o.sparsity >= 0 && o.sparsity < 1)) throw new RecipeError(`sparsify: sparsity ${o.sparsity} is not allowed (a fraction in [0, 1): 0.5 zeroes half the weights)`, { sparsity: o.sparsity });
  if (o.nm && !(Number.isInteger(o.nm.n) && Number.isInteger(o.nm.m) && o.nm.m >= 2 && o.nm.m <= MAX_M && o.nm.n >= 1 && o.nm.n < o.nm.m)) {
    throw new RecipeError(`sparsify: N:M ${o.nm.n}:${o.nm.m} is not allowed (integers with 1 <= N < M <= ${MAX_M}, e.g. 2:4)`, { nm: `${o.nm.n}:${o.nm.m}` });
  }
  if (o.reconstruct === 'lsq' && o.format === 'compact') throw new RecipeError('sparsify: reconstruct lsq re-fits dense weights; use format dense with it (or drop reconstruct)');
  if (o.nm && o.scope === 'global') throw new RecipeError('sparsify: scope global applies to unstructured sparsity; N:M is per group of M weights');
}

/** The weights with the dropped ones (keep 0) set to zero. */
function masked(data: Float32Array, keep: Uint8Array): Float32Array {
  const out = new Float32Array(data.length);
  for (let j = 0; j < data.length; j++) if (keep[j]) out[j] = data[j];
  return out;
}

async function runSparsify(ctx: PassContext, o: SparsifyPassOptions): Promise<PassOutcome<SparsifyReport>> {
  validateSparsify(o);
  const method = o.method ?? (ctx.calibration ? 'sparsegpt' : 'magnitude');
  if (o.reconstruct === 'lsq' && !ctx.calibration) throw new RecipeError('sparsify: reconstruct lsq needs --calibration data (unlabelled samples are enough)');
  // Measured better or equal on every trained model (2:4: up to +5 points), so on whenever it can run.
  const reconstruct = o.reconstruct ?? (ctx.calibration && o.format !== 'compact' ? 'lsq' : 'none');
  if (method === 'sparsegpt' && !ctx.calibration) throw new RecipeError('sparsify: method sparsegpt needs --calibration data (unlabelled samples are enough); or use --sparse-method magnitude');
  const minElements = o.minElements ?? 1024;
  const scope = o.scope ?? 'layer';
  const spec: SparsitySpec = { sparsity: o.sparsity, nm: o.nm, scope };
  const model = ctx.model;
  const reference = referenceFor(ctx, o.biasCorrection, 'sparsify');
  const { targets: eligible, skipped } = floatWeightTargets(model.graph, 'sparsify', minElements, o.exclude);
  const targets: Target[] = [];
  const axes: number[] = [];
  for (const t of eligible) {
    const a = inputAxis(t);
    if (typeof a === 'string' && o.nm) {
      skipped.push({ name: t.weight.name, opType: t.opType, shape: t.shape, reason: `N:M: ${a}` });
      continue;
    }
    targets.push(t);
    axes.push(typeof a === 'number' ? a : 0);
  }
  const weights: SparseWeight[] = targets.map((t, i) => ({ name: t.weight.name, data: model.tensorFloat32(t.weight.tensor).slice(), shape: t.shape, inputAxis: axes[i] }));
  const fractions = layerFractions(weights, spec);
  ctx.onProgress?.('sparsifying: masks', 0, 1);
  const masks = await magnitudeMasks(weights, spec, fractions, ctx.scheduler);
  ctx.onProgress?.('sparsifying: masks', 1, 1);
  interface Outcome { data: Float32Array; keep: Uint8Array; fallback: string | null; objectiveMagnitude: number | null; objectiveSparseGpt: number | null; method: 'magnitude' | 'sparsegpt' }
  const results: Outcome[] = weights.map((w, i) => ({ data: masked(w.data, masks[i]), keep: masks[i], fallback: null, objectiveMagnitude: null, objectiveSparseGpt: null, method: 'magnitude' }));
  if (method === 'sparsegpt' && weights.length) {
    const index = new Map(weights.map((w, i) => [w.name, i]));
    let done = 0;
    const prune = (name: string, rounder: GptqRounder): Float32Array | null => {
      const i = index.get(name)!;
      const w = weights[i];
      const m = rounder.layerMatrix(name);
      const depthwise = m !== null && m.groups > 1 && m.groups === m.rows;
      if (!m || (depthwise && spec.nm) || (m.groups > 1 && !depthwise)) {
        results[i].fallback = !m ? 'no 2-D input view for this layer (magnitude)' : depthwise ? 'depthwise convolution under N:M (magnitude)' : 'grouped convolution (magnitude)';
        return null;
      }
      const t = targets[i];
      const positions = t.opType === 'Conv' || t.opType === 'ConvTranspose' ? t.shape.slice(2).reduce((a, b) => a * b, 1) : 1;
      const r = depthwise ? sparseGptDepthwise(w, m, fractions[i], masks[i]) : sparseGptLayer(w, m, spec, fractions[i], masks[i], positions);
      results[i] = { ...r, fallback: null, method: 'sparsegpt' };
      rounder.release(name);
      ctx.onProgress?.('sparsifying: SparseGPT', ++done, weights.length);
      return r.data;
    };
    const sequential = o.sequential ?? false;
    const { GptqRounder: Rounder } = await import('../quantize/gptq.ts');
    const rounder = await Rounder.collect(model, weights.map((w) => w.name), { calibration: ctx.calibration!, scheduler: ctx.scheduler, onProgress: ctx.onProgress }, sequential ? { transform: prune } : undefined);
    if (!sequential) for (const w of weights) prune(w.name, rounder);
    for (const r of results) if (r.method === 'magnitude' && !r.fallback) r.fallback = 'no 2-D input view for this layer (magnitude)';
  }
  // The model as it entered the pass (nothing is written into it before this): the reconstruction's target.
  const floatBytes = reconstruct === 'lsq' && weights.length ? model.toBytes() : null;
  // Dense weights are written first: the reconstruction reads the sparse model and re-fits them.
  const formats: Array<{ format: SparseFormat; after: number; nnz: number }> = weights.map((w, i) => {
    const r = results[i];
    let nnz = 0;
    for (let j = 0; j < r.keep.length; j++) nnz += r.keep[j];
    const sizes = compactBytes(w.data.length, nnz);
    const dense = 4 * w.data.length;
    if (o.format !== 'compact') {
      replaceFloatWeight(model, w.name, w.shape, r.data);
      return { format: 'dense', after: dense, nnz };
    }
    // The bitmask chain needs CumSum and BitShift (opset 11); older models get sparse_initializer when it is smaller.
    const bitmaskOk = model.opset('') >= 11;
    let format: SparseFormat = !bitmaskOk || sizes.sparse_initializer < sizes.bitmask ? 'sparse_initializer' : 'bitmask';
    if (!bitmaskOk && sizes.sparse_initializer >= dense) format = 'dense';
    if (format === 'dense') {
      replaceFloatWeight(model, w.name, w.shape, r.data);
      return { format, after: dense, nnz };
    }
    return { format, after: format === 'bitmask' ? encodeBitmask(model, w.name, w.shape, r.data, r.keep) : encodeSparseInitializer(model, w.name, w.shape, r.data, r.keep), nnz };
  });
  model.reindex();
  let reconstruction: RecoveryReport | null = null;
  if (floatBytes) {
    const { recoverPruned } = await import('../prune/recover.ts');
    const layers: RecoveryTarget[] = [];
    targets.forEach((t, i) => {
      // A weight several nodes share would need one fit for all of them: left as sparsified.
      if (t.nodes.length !== 1) return;
      const node = t.nodes[0];
      const depthwise = node.opType === 'Conv' && numberAttr(node, 'group', 1) > 1 && t.shape[1] === 1;
      layers.push({ node, kind: depthwise ? 'depthwise' : 'consumer', keptOut: null, ...(depthwise ? {} : { keep: results[i].keep }) });
    });
    reconstruction = await recoverPruned(floatBytes, model, layers, { positions: RECONSTRUCT_POSITIONS, method: 'lsq', calibration: ctx.calibration!, scheduler: ctx.scheduler, onProgress: ctx.onProgress });
    // Masked fits write exact zeros where the mask has them; the reports below read what was written.
    weights.forEach((w, i) => (results[i].data = Float32Array.from(model.tensorFloat32(model.graph.weights.get(w.name)!.tensor))));
  }
  const tensors: TensorReport[] = [];
  const reports: SparseTensorReport[] = [];
  let zeros = 0;
  let total = 0;
  weights.forEach((w, i) => {
    const r = results[i];
    const { format, after, nnz } = formats[i];
    zeros += w.data.length - nnz;
    total += w.data.length;
    const sizes = compactBytes(w.data.length, nnz);
    const dense = 4 * w.data.length;
    const q = weightMetrics(w.data, r.data);
    reports.push({
      name: w.name, op: targets[i].opType, shape: w.shape, method: r.method, fallback: r.fallback, sparsity: 1 - nnz / w.data.length, sqnrDb: q.sqnrDb,
      objectiveMagnitude: r.objectiveMagnitude, objectiveSparseGpt: r.objectiveSparseGpt, format,
      bytesDense: dense, bytesBitmask: sizes.bitmask, bytesSparseInitializer: sizes.sparse_initializer, bytesAfter: after,
    });
    tensors.push({
      name: w.name, op: targets[i].opType, nodes: targets[i].nodes.map((n) => n.name ?? ''), shape: w.shape,
      scheme: `${o.nm ? `${o.nm.n}:${o.nm.m}` : `${((1 - nnz / w.data.length) * 100).toFixed(1)} % unstructured`} sparse, ${r.method}${reconstruction ? ' + lsq' : ''}`,
      encoding: 'sparse', encodingReason: format === 'dense' ? 'dense zeros (any runtime)' : format === 'bitmask' ? 'keep-bits + values, decoded by a chain ONNX Runtime folds at load' : 'ONNX sparse_initializer, densified by ONNX Runtime at load',
      bytesBefore: dense, bytesAfter: after, mse: q.mse, sqnrDb: q.sqnrDb, maxAbsError: q.maxAbsError, cosine: q.cosine,
    });
  });
  const corrected = reference && weights.length ? await correctAfter(ctx, reference, model, weights.map((w) => w.name), o.biasCorrection as 'on' | 'auto') : null;
  return {
    ...(corrected ? { model: corrected.model } : {}),
    report: {
      biasCorrection: corrected?.report ?? null,
      reconstruction,
      options: { sparsity: o.sparsity ?? null, nm: o.nm ? `${o.nm.n}:${o.nm.m}` : null, scope, method, format: o.format ?? 'dense', minElements, sequential: method === 'sparsegpt' ? o.sequential ?? false : null, reconstruct },
      tensors: reports, sparsity: total ? zeros / total : 0,
    },
    tensors,
    skipped,
    usedCalibration: method === 'sparsegpt' || Boolean(corrected) || Boolean(reconstruction),
  };
}

export const sparsifyPassDescriptor: PassDescriptor<SparsifyPassOptions, SparsifyReport> = {
  name: 'sparsify',
  rank: 10,
  summary: 'sparsity: individual weights set to zero (unstructured or N:M), magnitude or SparseGPT',
  calibrationUse: 'SparseGPT: each layer\'s input Gram matrix chooses the mask and updates the kept weights; least-squares re-fit of the kept weights (--recover lsq, the default); bias correction (--recover bias)',
  run: runSparsify,
};
