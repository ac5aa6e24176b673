/**
 * The palettize pass: every eligible float weight (Conv, ConvTranspose, Gemm, MatMul; the same
 * eligibility as weight-only quantization) becomes indices into a look-up table, written as a chain
 * ONNX Runtime folds at load (encode.ts). With calibration data, k-means weighs each weight by the
 * diagonal of its layer's input Gram matrix (the recovery kernels): weights that meet large inputs
 * pull their centroid harder — a forward-only stand-in for Fisher-weighted k-means.
 */
import { RecipeError } from '../../errors.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { floatWeightTargets, type Skip, type Target } from '../quantize/targets.ts';
import type { TensorReport } from '../quantize/weight-only.ts';
import type { PassContext, PassDescriptor, PassOutcome } from '../pass.ts';
import { FOLD_LIMIT_BYTES } from '../quantize/weight-encodings.ts';
import { newPaletteTiming, palettizeWeights, validateConfig, type PaletteConfig, type PaletteInput, type PaletteTiming } from './palettize.ts';
import { encodePalette, storedIndexBits, type PaletteLayout } from './encode.ts';
import { DpPool } from './dp-pool.ts';
import { correctAfter, referenceFor, type BiasAfter } from '../bias-after.ts';
import { groupsByBytes } from '../weight-groups.ts';
import type { BiasCorrectionReport } from '../quantize/bias-correction.ts';

export interface PalettizePassOptions extends Partial<PaletteConfig> {
  bits: PaletteConfig['bits'];
  /** Weights with fewer elements stay float (default 1024). */
  minElements?: number;
  /** Node names or op types whose weights stay float. */
  exclude?: Set<string>;
  /** With calibration data: weigh k-means by the layer input Gram diagonal, or not (default: measured no better, README). */
  weighting?: 'sensitivity' | 'none';
  /** Restore the palettized layers' per-channel output means on calibration data. */
  biasCorrection?: BiasAfter;
  /** Warn for a decoded weight larger than this (default: ONNX Runtime's 1 GiB folding cap). */
  foldLimitBytes?: number;
}

export interface PaletteTensorReport {
  name: string;
  op: string;
  shape: number[];
  bits: number;
  mode: string;
  groups: number;
  /** Channels in the last group when the channel count does not divide by the group size. */
  lastGroupChannels: number;
  lutSize: number;
  lutDtype: string;
  distinct: number;
  zeroCluster: boolean;
  sqnrDb: number;
  cosine: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface PalettizeReport {
  options: PaletteConfig & { minElements: number; weighting: 'sensitivity' | 'none' };
  /** How indices are stored and decoded in this model. */
  indexStorage: string;
  tensors: PaletteTensorReport[];
  bytesBefore: number;
  bytesAfter: number;
  warnings: string[];
  biasCorrection: BiasCorrectionReport | null;
  /** Where the time went (histograms, dynamic programs, assignment: the numerics; encoding apart). */
  timing: PaletteTiming & { sensitivityMs: number; encodeMs: number };
}

export const DEFAULT_PALETTE: Omit<PaletteConfig, 'bits'> = { mode: 'kmeans', groupSize: 0, perChannelScale: false, lutDtype: 'float32', keepZeros: 'auto' };

/** The pass options' palette settings over the defaults, validated (`where` names the source in errors). */
export function paletteConfig(o: PalettizePassOptions, where = 'palettize'): PaletteConfig {
  const pick = <K extends keyof PaletteConfig>(k: K): PaletteConfig[K] => (o[k] ?? DEFAULT_PALETTE[k as Exclude<K, 'bits'>]) as PaletteConfig[K];
  const cfg: PaletteConfig = { bits: o.bits, mode: pick('mode'), groupSize: pick('groupSize'), perChannelScale: pick('perChannelScale'), lutDtype: pick('lutDtype'), keepZeros: pick('keepZeros') };
  validateConfig(cfg, where);
  return cfg;
}

/** Weights already stored compressed (behind DequantizeLinear, a decode chain, MatMulNBits): refused. */
function compressedWeights(model: OnnxModel): Skip[] {
  const producers = new Map<string, string>();
  for (const n of model.msg.graph!.node) for (const o of n.output) producers.set(o, n.opType ?? '');
  const out: Skip[] = [];
  for (const n of model.msg.graph!.node) {
    const op = n.opType ?? '';
    if (op === 'MatMulNBits') out.push({ name: n.input[1], opType: op, shape: [], reason: 'already quantized (MatMulNBits): palettize the float model' });
    if (!['Conv', 'ConvTranspose', 'Gemm', 'MatMul'].includes(op) || !n.input[1]) continue;
    const p = producers.get(n.input[1]);
    if (p === 'DequantizeLinear' || p === 'Gather' || p === 'Mul' || p === 'Cast') out.push({ name: n.input[1], opType: op, shape: [], reason: `already compressed (decoded by ${p}): palettize the float model` });
  }
  return out;
}

/** Why a weight's channel groups cannot hold a 2^bits palette, or null. */
function groupTooSmall(t: Target, cfg: PaletteConfig): string | null {
  const rows = t.shape[t.axis];
  const per = Math.min(cfg.groupSize, rows) * (t.shape.reduce((a, b) => a * b, 1) / rows);
  return per < 2 ** cfg.bits ? `a group of ${Math.min(cfg.groupSize, rows)} channel(s) holds ${per} weights, fewer than the ${2 ** cfg.bits}-entry palette of ${cfg.bits} bits; use fewer bits or a larger group size` : null;
}

function layoutOf(t: Target, cfg: PaletteConfig): PaletteLayout {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (cfg.groupSize === 0 && !cfg.perChannelScale) return { shape: t.shape, transposedFrom: null, rows: 1, inner: n };
  const rows = t.shape[t.axis];
  return { shape: t.shape, transposedFrom: t.axis, rows, inner: n / rows };
}

/** The weight in row layout: output channels (axis a) moved to the front. */
function toRows<T extends Float32Array | Float64Array>(data: T, shape: number[], a: number | null, into?: T): T {
  if (a === null || a === 0) {
    if (!into) return data;
    into.set(data);
    return into;
  }
  const outer = shape.slice(0, a).reduce((x, y) => x * y, 1);
  const dim = shape[a];
  const inner = shape.slice(a + 1).reduce((x, y) => x * y, 1);
  const out = into ?? new (data.constructor as new (n: number) => T)(data.length);
  let o = 0;
  for (let d = 0; d < dim; d++) for (let b = 0; b < outer; b++) for (let i = 0; i < inner; i++) out[o++] = data[(b * dim + d) * inner + i];
  return out;
}

async function sensitivities(ctx: PassContext, targets: Target[], layouts: PaletteLayout[]): Promise<Map<string, Float64Array>> {
  const { GptqRounder } = await import('../quantize/gptq.ts');
  const rounder = await GptqRounder.collect(ctx.model, targets.map((t) => t.weight.name), { calibration: ctx.calibration!, scheduler: ctx.scheduler, onProgress: ctx.onProgress });
  const out = new Map<string, Float64Array>();
  targets.forEach((t, i) => {
    const m = rounder.layerMatrix(t.weight.name);
    if (!m) return;
    const flat = new Float64Array(m.rows * m.cols);
    for (let r = 0; r < m.rows; r++) {
      // Grouped convolutions: the diagonal of the row's group block.
      const block = Math.floor(r / (m.rows / m.groups)) * m.cols * m.cols;
      for (let c = 0; c < m.cols; c++) flat[m.flat(r, c)] = m.h[block + c * m.cols + c];
    }
    rounder.release(t.weight.name);
    // A tiny floor: weights on dead inputs (diagonal 0) still count a little in the palette.
    out.set(t.weight.name, toRows(flat, t.shape, layouts[i].transposedFrom).map((v) => v + 1e-12));
  });
  return out;
}

/** Weights in all from which the pass starts worker threads for its k-means programs (ResNet-18: 11.7 M). */
const POOL_MIN_ELEMENTS = 1 << 20;

async function runPalettize(ctx: PassContext, o: PalettizePassOptions): Promise<PassOutcome<PalettizeReport>> {
  const cfg = paletteConfig(o);
  const minElements = o.minElements ?? 1024;
  const weighting = o.weighting ?? 'none';
  if (weighting === 'sensitivity' && !ctx.calibration) throw new RecipeError('palettize: weighting sensitivity needs --calibration data (unlabelled samples are enough)');
  const model = ctx.model;
  const reference = referenceFor(ctx, o.biasCorrection, 'palettize');
  const { targets: eligible, skipped } = floatWeightTargets(model.graph, 'palettize', minElements, o.exclude);
  skipped.push(...compressedWeights(model));
  const targets: Target[] = [];
  for (const t of eligible) {
    const tooSmall = cfg.groupSize > 0 ? groupTooSmall(t, cfg) : null;
    const skip = (reason: string) => skipped.push({ name: t.weight.name, opType: t.opType, shape: t.shape, reason });
    if (t.axis < 0 && (cfg.groupSize > 0 || cfg.perChannelScale)) skip('shared by nodes with different output-channel axes: per-channel groups are undefined');
    else if (cfg.groupSize === 0 && t.shape.reduce((a, b) => a * b, 1) < 2 ** cfg.bits) skip(`smaller than its ${2 ** cfg.bits}-entry palette (a LUT of all its values would not shrink it)`);
    else if (tooSmall) skip(tooSmall);
    else targets.push(t);
  }
  if (!targets.length && skipped.some((s) => s.reason.startsWith('a group of'))) {
    const s = skipped.find((x) => x.reason.startsWith('a group of'))!;
    throw new RecipeError(`palettize: no weight can hold its palette; '${s.name}': ${s.reason}`, { tensor: s.name, groupSize: cfg.groupSize, bits: cfg.bits });
  }
  if (!targets.length && skipped.some((s) => s.reason.startsWith('already'))) {
    const s = skipped.find((x) => x.reason.startsWith('already'))!;
    throw new RecipeError(`palettize: no float weight to palettize; '${s.name}' (${s.opType}) is ${s.reason}`, { tensor: s.name });
  }
  const layouts = targets.map((t) => layoutOf(t, cfg));
  const tSens = performance.now();
  const weights = weighting === 'sensitivity' && targets.length ? await sensitivities(ctx, targets, layouts) : new Map<string, Float64Array>();
  const timing = { ...newPaletteTiming(), sensitivityMs: performance.now() - tSens, encodeMs: 0 };
  const warnings: string[] = [];
  const reports: PaletteTensorReport[] = [];
  const tensors: TensorReport[] = [];
  // Batches of ≤ 64 MiB of weights: one histogram and one assignment pass each.
  const batches = groupsByBytes(targets.map((_, i) => i), (i) => 4 * targets[i].shape.reduce((x, y) => x * y, 1), 64 * 2 ** 20);
  let done = 0;
  ctx.onProgress?.('palettizing', 0, targets.length);
  // Worker threads for the k-means programs: the process's pool, started now if this is its first
  // use so that the workers load while the weights are read and counted (only for models large
  // enough to give them work).
  const elements = layouts.reduce((s, l) => s + l.rows * l.inner, 0);
  const pool = cfg.mode === 'kmeans' && elements >= POOL_MIN_ELEMENTS ? DpPool.shared() : null;
  for (const batch of batches) {
    const batchBytes = batch.reduce((s, i) => s + 4 * layouts[i].rows * layouts[i].inner, 0);
    // On the CPU path the weights are copied once into the engine's memory, where every kernel
    // reads them in place (ResNet-18: five 47 MB copies into it saved).
    const results = await ctx.scheduler.withHostArrays(batchBytes, async (alloc) => {
      const inputs: PaletteInput[] = batch.map((i) => {
        const t = targets[i];
        const l = layouts[i];
        const into = alloc(l.rows * l.inner);
        // Rows already in output-channel order are read from the file straight into the engine's
        // memory (no fresh buffer, no copy: ResNet-18's read 60 -> ~15 ms).
        const data = l.transposedFrom === null || l.transposedFrom === 0
          ? model.tensorFloat32(t.weight.tensor, into)
          : toRows(model.tensorFloat32(t.weight.tensor), t.shape, l.transposedFrom, into);
        return { name: t.weight.name, data, rows: l.rows, inner: l.inner, sensitivity: weights.get(t.weight.name) };
      });
      return palettizeWeights(inputs, cfg, ctx.scheduler, timing, { pool, decoded: false });
    });
    const tEncode = performance.now();
    results.forEach((r, j) => {
      const t = targets[batch[j]];
      const l = layouts[batch[j]];
      const before = 4 * r.indices.length;
      const cap = o.foldLimitBytes ?? FOLD_LIMIT_BYTES;
      if (before > cap) warnings.push(`${t.weight.name}: decodes to ${before} bytes, over ONNX Runtime's constant-folding cap of ${cap} bytes (1 GiB from ORT 1.27): its decode chain would run at every inference`);
      const enc = encodePalette(model, t.weight.name, r, cfg.bits, l);
      reports.push({
        name: t.weight.name, op: t.opType, shape: t.shape, bits: cfg.bits, mode: r.mode, groups: r.groups,
        lastGroupChannels: l.transposedFrom === null ? 0 : r.lastGroupRows, lutSize: r.k, lutDtype: r.lutInt8 ? 'int8' : 'float32',
        distinct: r.distinct, zeroCluster: r.zeroCluster, sqnrDb: r.sqnrDb, cosine: r.cosine, bytesBefore: before, bytesAfter: enc.bytes,
      });
      tensors.push({
        name: t.weight.name, op: t.opType, nodes: t.nodes.map((n) => n.name ?? ''), shape: t.shape,
        scheme: `palette ${cfg.bits}-bit ${r.mode}${r.groups > 1 ? `, ${r.groups} groups of ${r.rowsPerGroup} channels` : ', per tensor'}${r.lutInt8 ? ', int8 LUT' : ''}${r.channelScale ? ', per-channel scale' : ''}`,
        encoding: 'palette', encodingReason: `${enc.decode} -> Gather(LUT): folded by ONNX Runtime at load`,
        bytesBefore: before, bytesAfter: enc.bytes, mse: r.mse, sqnrDb: r.sqnrDb, maxAbsError: r.maxAbsError, cosine: r.cosine,
      });
      ctx.onProgress?.('palettizing', ++done, targets.length);
    });
    timing.encodeMs += performance.now() - tEncode;
  }
  model.reindex();
  const corrected = reference && targets.length ? await correctAfter(ctx, reference, model, targets.map((t) => t.weight.name), o.biasCorrection as 'on' | 'auto') : null;
  return {
    ...(corrected ? { model: corrected.model } : {}),
    report: {
      biasCorrection: corrected?.report ?? null,
      options: { ...cfg, minElements, weighting }, indexStorage: storedIndexBits(cfg.bits, model), tensors: reports,
      bytesBefore: reports.reduce((s, r) => s + r.bytesBefore, 0), bytesAfter: reports.reduce((s, r) => s + r.bytesAfter, 0), warnings, timing,
    },
    tensors,
    skipped,
    usedCalibration: weighting === 'sensitivity' || Boolean(corrected),
  };
}

export const palettizePassDescriptor: PassDescriptor<PalettizePassOptions, PalettizeReport> = {
  name: 'palettize',
  rank: 20,
  summary: 'weight sharing: each weight an index into a look-up table of 2^bits values (exact k-means), folded by ONNX Runtime at load',
  calibrationUse: 'sensitivity-weighted k-means (diagonal of each layer\'s input Gram matrix); bias correction (--recover bias)',
  run: runPalettize,
};
