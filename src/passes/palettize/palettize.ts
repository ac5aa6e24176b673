/**
 * Palettization numerics (no ONNX here): each weight, laid out as rows of output channels, is split
 * into groups of channels (or is one group), every group gets a look-up table of at most 2^bits
 * values and every weight an index into it.
 *
 * kmeans: fp16-key histogram (palette kernel, GPU or CPU) -> optimal 1-D k-means over the distinct
 *   keys (kmeans1d.ts, f64 on the host) -> boundary assignment (palette kernel) -> each centroid
 *   refined to the exact weighted mean of the f32 weights assigned to it.
 * uniform: 2^bits evenly spaced levels over the group's range (zero on the grid), nearest level.
 * unique: the distinct values themselves; any mode falls back to it when a group has no more
 *   distinct values than the palette (stored exactly).
 */
import { InvalidArgumentError, ModelError, RecipeError } from '../../errors.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { paletteKernel, paletteKey, keyValues, PALETTE_KEYS, type PaletteJob } from '../../kernels/palette.ts';
import { roundHalfEven } from '../../kernels/numerics.ts';
import type { PartitionProblem, Solved } from './kmeans1d.ts';
import { solvePartitions, type DpPool } from './dp-pool.ts';
import { wasmFor } from '../../cpu/wasm-kernels.ts';
import { rangeKernel } from '../../kernels/range.ts';

import { PALETTE_BITS, PALETTE_MODES, LUT_DTYPES } from '../../recipe/recipe.ts';

export { PALETTE_BITS, PALETTE_MODES, LUT_DTYPES };
export type PaletteBits = (typeof PALETTE_BITS)[number];
export type PaletteMode = (typeof PALETTE_MODES)[number];
export type LutDtype = (typeof LUT_DTYPES)[number];

export interface PaletteConfig {
  bits: PaletteBits;
  mode: PaletteMode;
  /** Output channels per group (one LUT each); 0 = one LUT for the whole tensor. */
  groupSize: number;
  /** Divide each output channel by its absolute maximum first (one f32 scale per channel). */
  perChannelScale: boolean;
  lutDtype: LutDtype;
  /** Keep exact zeros exact (a cluster of their own): auto = when ≥ 1 % of a group is zero. */
  keepZeros: 'auto' | 'on' | 'off';
}

/** A weight as rows of output channels: row r holds the `inner` weights of output channel r. */
export interface PaletteInput {
  name: string;
  data: Float32Array;
  rows: number;
  inner: number;
  /** Per-weight importance (same layout), e.g. diag of the layer's input Gram matrix. */
  sensitivity?: Float64Array;
}

export interface PaletteResult {
  name: string;
  /** One index per weight, row layout. */
  indices: Uint8Array;
  /** Palette size k (2^bits, or fewer distinct values when every group is stored exactly). */
  k: number;
  groups: number;
  /** Rows per group (the last group may have fewer: `lastGroupRows`). */
  rowsPerGroup: number;
  lastGroupRows: number;
  /** groups x k float LUT (unused entries 0). */
  lut: Float32Array;
  /** int8 LUT: groups x k codes and one scale per group. */
  lutInt8?: Int8Array;
  lutScale?: Float32Array;
  /** Per-channel scale (perChannelScale). */
  channelScale?: Float32Array;
  /** The per-row multiplier the decode applies (channel scale, int8 LUT scale, or their product). */
  rowScale?: Float32Array;
  /** What the graph decodes to, row layout (null when not asked for: the pass needs only the metrics). */
  decoded: Float32Array | null;
  mode: PaletteMode;
  /** Distinct fp16 values (kmeans / uniform) or f32 values (unique), summed over groups. */
  distinct: number;
  zeroCluster: boolean;
  sqnrDb: number;
  cosine: number;
  mse: number;
  maxAbsError: number;
}

/** A normal power of two bringing |x| <= amax into [1, 2) (fp16 then keeps 11 significant bits). */
function multFor(amax: number): number {
  if (!(amax > 0)) return 1;
  const e = Math.floor(Math.log2(amax));
  return 2 ** Math.max(-126, Math.min(127, -e));
}

function distinctAtMost(data: Float32Array, from: number, to: number, limit: number): number[] | null {
  const seen = new Set<number>();
  for (let i = from; i < to; i++) {
    const v = data[i] === 0 ? 0 : data[i]; // -0 and +0 are one value
    if (!seen.has(v)) {
      seen.add(v);
      if (seen.size > limit) return null;
    }
  }
  return [...seen].sort((a, b) => a - b);
}

interface GroupPlan {
  /** Boundary keys (k - 1, padded with 65536) and provisional centroids. */
  bounds: Uint32Array;
  centroids: number[];
  zeroCluster: number;
  distinct: number;
}

/** A group's distinct keys as weighted points (±0 merged into one point), and whether 0 keeps its own cluster. */
interface GroupPoints {
  keyOf: Uint16Array;
  values: Float64Array;
  weights: Float64Array;
  zeroAt: number;
  keepZero: boolean;
  distinct: number;
}

/** The keys of -0 and +0 (adjacent in key order; both decode to 0). */
const NEG_ZERO_KEY = 0x7fff;
const POS_ZERO_KEY = 0x8000;

function groupPoints(hist: Uint32Array | Float64Array, cfg: PaletteConfig): GroupPoints {
  let distinct = 0;
  for (let key = 0; key < PALETTE_KEYS; key++) if (hist[key] > 0) distinct++;
  // -0 and +0 are one point (the first key, -0's, stands for both).
  const merged = hist[NEG_ZERO_KEY] > 0 && hist[POS_ZERO_KEY] > 0 ? 1 : 0;
  const n = distinct - merged;
  const keyOf = new Uint16Array(n);
  // Shared memory: posting the problem to a worker thread then copies nothing.
  const values = new Float64Array(new SharedArrayBuffer(8 * n));
  const weights = new Float64Array(new SharedArrayBuffer(8 * n));
  const table = keyValues();
  let zeroAt = -1;
  let total = 0;
  for (let key = 0, at = 0; key < PALETTE_KEYS; key++) {
    const w = hist[key];
    if (!(w > 0)) continue;
    total += w;
    if (key === POS_ZERO_KEY && merged) {
      weights[at - 1] += w;
      continue;
    }
    if (key === NEG_ZERO_KEY || key === POS_ZERO_KEY) zeroAt = at;
    keyOf[at] = key;
    values[at] = table[key];
    weights[at++] = w;
  }
  const zeroWeight = zeroAt >= 0 ? weights[zeroAt] : 0;
  const keepZero = zeroAt >= 0 && cfg.mode === 'kmeans' && (cfg.keepZeros === 'on' || (cfg.keepZeros === 'auto' && zeroWeight >= 0.01 * total));
  return { keyOf, values, weights, zeroAt, keepZero, distinct };
}

/** Boundaries and provisional centroids of a group from its k-means partition, or its uniform grid. */
function planGroup(g: GroupPoints, part: Solved | null, k: number, mult: number): GroupPlan {
  const bounds = new Uint32Array(k - 1).fill(PALETTE_KEYS);
  let centroids: number[];
  let zeroCluster = -1;
  if (part) {
    part.starts.slice(1).forEach((s, i) => (bounds[i] = g.keyOf[s]));
    centroids = part.centroids.map((c) => c / mult);
    if (part.zeroKept) zeroCluster = part.starts.indexOf(g.zeroAt);
  } else {
    // uniform: levels (i - zp) * step over [min, max], zero on the grid when the range spans it.
    const lo = Math.min(0, g.values[0] ?? 0);
    const hi = Math.max(0, g.values[g.values.length - 1] ?? 0);
    const step = hi > lo ? (hi - lo) / (k - 1) : 1;
    const zp = Math.round(-lo / step);
    centroids = Array.from({ length: k }, (_, i) => ((i - zp) * step) / mult);
    let c = 0;
    for (let j = 0; j < g.keyOf.length; j++) {
      // The first point nearer to level c + 1 than to level c starts cluster c + 1.
      while (c < k - 1 && g.values[j] >= (i2l(c, zp, step) + i2l(c + 1, zp, step)) / 2) bounds[c++] = g.keyOf[j];
    }
    zeroCluster = zp;
  }
  return { bounds, centroids, zeroCluster, distinct: g.distinct };
}

const i2l = (i: number, zp: number, step: number) => (i - zp) * step;

/**
 * Per group and cluster, the (weighted) count and sum of the weights assigned to it. A function of
 * its own: its arrays stay plain locals (in the caller, closures capture them and V8 then reads
 * them from a context object on every access — measured 3x slower on ResNet-18).
 */
export function clusterSums(data: Float32Array, indices: Uint8Array, sens: Float64Array | undefined, groupLength: number, groups: number, k: number): { sw: Float64Array; sx: Float64Array } {
  // The WebAssembly loop adds in the same order: the same sums, ~4x faster.
  const fast = sens ? null : wasmFor(data.length)?.paletteSums(data, indices, groupLength, groups, k);
  if (fast) return fast;
  const sw = new Float64Array(groups * k);
  const sx = new Float64Array(groups * k);
  for (let g = 0, j0 = 0; j0 < data.length; g++, j0 += groupLength) {
    const base = g * k;
    const j1 = Math.min(data.length, j0 + groupLength);
    if (sens) {
      for (let j = j0; j < j1; j++) {
        const c = base + indices[j];
        sw[c] += sens[j];
        sx[c] += sens[j] * data[j];
      }
    } else {
      for (let j = j0; j < j1; j++) {
        const c = base + indices[j];
        sw[c] += 1;
        sx[c] += data[j];
      }
    }
  }
  return { sw, sx };
}

/**
 * Per group and cluster, five f64: the count, sum, sum of squares, minimum and maximum of the weights
 * assigned to it, in element order (the WebAssembly loop adds in the same order: identical).
 * Without per-row scales these give the centroid refinement and every error metric
 * (metricsFromStats), so the pass needs no decode pass over the weights.
 */
export function clusterStats(data: Float32Array, indices: Uint8Array, groupLength: number, groups: number, k: number): Float64Array {
  const fast = wasmFor(data.length)?.paletteStats(data, indices, groupLength, groups, k);
  if (fast) return fast;
  const out = new Float64Array(5 * groups * k);
  for (let c = 0; c < groups * k; c++) {
    out[5 * c + 3] = Infinity;
    out[5 * c + 4] = -Infinity;
  }
  for (let g = 0, j0 = 0; j0 < data.length; g++, j0 += groupLength) {
    const base = g * k;
    const j1 = Math.min(data.length, j0 + groupLength);
    for (let j = j0; j < j1; j++) {
      const r = 5 * (base + indices[j]);
      const x = data[j];
      out[r] += 1;
      out[r + 1] += x;
      out[r + 2] += x * x;
      out[r + 3] = Math.min(out[r + 3], x);
      out[r + 4] = Math.max(out[r + 4], x);
    }
  }
  return out;
}

/**
 * The error metrics of decoding every weight of cluster c to table[c] (no per-row scale), from the
 * cluster statistics: Σ (x − h)² = Σx² − 2 h Σx + n h² per cluster, the largest error at the
 * cluster's minimum or maximum. The same quantities as decodeWithMetrics, summed per cluster
 * instead of per weight (they agree to rounding).
 */
export function metricsFromStats(stats: Float64Array, table: Float32Array, n: number): { sqnrDb: number; cosine: number; mse: number; maxAbsError: number } {
  let e2 = 0;
  let emax = 0;
  let x2 = 0;
  let h2 = 0;
  let xh = 0;
  for (let c = 0; c < table.length; c++) {
    const w = stats[5 * c];
    if (!(w > 0)) continue;
    const sx = stats[5 * c + 1];
    const sq = stats[5 * c + 2];
    const h = table[c];
    e2 += Math.max(0, sq - 2 * h * sx + w * h * h);
    emax = Math.max(emax, Math.abs(stats[5 * c + 3] - h), Math.abs(stats[5 * c + 4] - h));
    x2 += sq;
    h2 += w * h * h;
    xh += h * sx;
  }
  return metricsFrom(e2, emax, x2, h2, xh, n);
}

/**
 * Decodes row by row (table[group][index] × the row's scale, in f32) and measures it against `x`,
 * in one pass; the decoded values are kept in `decoded` when given.
 */
export function decodeWithMetrics(x: Float32Array, indices: Uint8Array, table: Float32Array | Int8Array, k: number, rows: number, inner: number, rowsPerGroup: number,
  rowScale: Float32Array | undefined, decoded: Float32Array | null): { sqnrDb: number; cosine: number; mse: number; maxAbsError: number } {
  // The WebAssembly loop does the same f32 / f64 operations in the same order: identical results.
  const fast = wasmFor(x.length)?.paletteDecode(x, indices, table instanceof Float32Array ? table : Float32Array.from(table), k, inner, rowsPerGroup, rowScale, decoded);
  if (fast) return metricsFrom(fast.e2, fast.emax, fast.x2, fast.h2, fast.xh, x.length);
  let emax = 0;
  let e2 = 0;
  let x2 = 0;
  let h2 = 0;
  let xh = 0;
  for (let r = 0; r < rows; r++) {
    const base = Math.floor(r / rowsPerGroup) * k;
    const scale = rowScale ? rowScale[r] : 1;
    const j1 = (r + 1) * inner;
    for (let j = r * inner; j < j1; j++) {
      const h = rowScale ? Math.fround(table[base + indices[j]] * scale) : table[base + indices[j]];
      if (decoded) decoded[j] = h;
      const v = x[j];
      const d = v - h;
      e2 += d * d;
      // Math.max, not a branch: measured 2-3x faster here in V8.
      emax = Math.max(emax, Math.abs(d));
      x2 += v * v;
      h2 += h * h;
      xh += v * h;
    }
  }
  return metricsFrom(e2, emax, x2, h2, xh, x.length);
}

function metricsFrom(e2: number, emax: number, x2: number, h2: number, xh: number, n: number): { sqnrDb: number; cosine: number; mse: number; maxAbsError: number } {
  const denom = Math.sqrt(x2 * h2);
  return {
    sqnrDb: e2 === 0 ? Infinity : x2 === 0 ? -Infinity : 10 * Math.log10(x2 / e2), cosine: denom === 0 ? (x2 === 0 && h2 === 0 ? 1 : 0) : xh / denom,
    mse: n ? e2 / n : 0, maxAbsError: emax,
  };
}

export function weightMetrics(x: Float32Array, h: Float32Array): { sqnrDb: number; cosine: number; mse: number; maxAbsError: number } {
  let emax = 0;
  let e2 = 0;
  let x2 = 0;
  let h2 = 0;
  let xh = 0;
  for (let i = 0; i < x.length; i++) {
    const d = x[i] - h[i];
    e2 += d * d;
    emax = Math.max(emax, Math.abs(d));
    x2 += x[i] * x[i];
    h2 += h[i] * h[i];
    xh += x[i] * h[i];
  }
  return metricsFrom(e2, emax, x2, h2, xh, x.length);
}

export function validateConfig(cfg: PaletteConfig, where = 'palettize'): void {
  if (!(PALETTE_BITS as readonly number[]).includes(cfg.bits)) throw new RecipeError(`${where}: bits ${cfg.bits} is not allowed (allowed: ${PALETTE_BITS.join(', ')})`, { bits: cfg.bits });
  if (!(PALETTE_MODES as readonly string[]).includes(cfg.mode)) throw new RecipeError(`${where}: mode '${cfg.mode}' is not allowed (allowed: ${PALETTE_MODES.join(', ')})`, { mode: cfg.mode });
  if (!Number.isInteger(cfg.groupSize) || cfg.groupSize < 0) throw new RecipeError(`${where}: group size ${cfg.groupSize} is not allowed (a positive number of output channels per LUT, or 0 for one LUT per tensor)`, { groupSize: cfg.groupSize });
  if (!(LUT_DTYPES as readonly string[]).includes(cfg.lutDtype)) throw new RecipeError(`${where}: LUT dtype '${cfg.lutDtype}' is not allowed (allowed: ${LUT_DTYPES.join(', ')})`, { lutDtype: cfg.lutDtype });
}

/** Where palettization's time goes, ms (added to across calls). */
export interface PaletteTiming {
  /** Copies, scales, exact-value checks. */
  prepareMs: number;
  histogramMs: number;
  /** The k-means dynamic programs (or uniform grids) over distinct keys. */
  dpMs: number;
  assignMs: number;
  /** Centroid refinement, LUT encoding, decoded values and error metrics. */
  finishMs: number;
  /** The most distinct keys one group had (the DP's size). */
  maxDistinct: number;
  /** Threads the dynamic programs ran on. */
  threads: number;
}

export const newPaletteTiming = (): PaletteTiming => ({ prepareMs: 0, histogramMs: 0, dpMs: 0, assignMs: 0, finishMs: 0, maxDistinct: 0, threads: 1 });

/**
 * Palettizes a batch of weights: one histogram pass and one assignment pass on the scheduler for
 * all of them, the dynamic programs in between.
 */
export async function palettizeWeights(inputs: readonly PaletteInput[], cfg: PaletteConfig, scheduler: Scheduler, timing: PaletteTiming = newPaletteTiming(), opts: { threads?: number; pool?: DpPool | null; decoded?: boolean } = {}): Promise<PaletteResult[]> {
  validateConfig(cfg);
  let t0 = performance.now();
  const lap = (key: Exclude<keyof PaletteTiming, 'maxDistinct' | 'threads'>) => {
    const t = performance.now();
    timing[key] += t - t0;
    t0 = t;
  };
  const k = 2 ** cfg.bits;
  // Non-finite counts and absolute maxima of every tensor in one range pass (the kernel layer).
  const ranges = inputs.length ? await scheduler.run(rangeKernel, inputs.map((t) => ({ data: t.data, shape: [t.data.length], granularity: { kind: 'tensor' as const }, moments: false }))) : [];
  const prepared = inputs.map((t, ti) => {
    if (t.data.length !== t.rows * t.inner) throw new InvalidArgumentError(`palettize: ${t.name} has ${t.data.length} values, [${t.rows}, ${t.inner}] needs ${t.rows * t.inner}`);
    const rowsPerGroup = cfg.groupSize > 0 ? Math.min(cfg.groupSize, t.rows) : t.rows;
    const groupLength = Math.max(1, rowsPerGroup * t.inner);
    if (cfg.groupSize > 0 && groupLength < k) {
      throw new RecipeError(`palettize: ${t.name}: a group of ${rowsPerGroup} channel(s) holds ${groupLength} weights, fewer than the ${k}-entry palette of ${cfg.bits} bits; use fewer bits or a larger group size`, { tensor: t.name, groupSize: cfg.groupSize, bits: cfg.bits });
    }
    let data = t.data;
    let channelScale: Float32Array | undefined;
    if (ranges[ti].nanCount[0] + ranges[ti].infCount[0] > 0) {
      const i = data.findIndex((v) => !Number.isFinite(v));
      throw new ModelError('NON_FINITE_WEIGHT', `palettize: weight '${t.name}' holds a non-finite value (${data[i]}) at flat index ${i}`, { tensor: t.name, index: i });
    }
    let amax = ranges[ti].absmax[0];
    if (cfg.perChannelScale) {
      channelScale = new Float32Array(t.rows);
      data = new Float32Array(t.data.length);
      for (let r = 0; r < t.rows; r++) {
        let m = 0;
        for (let i = r * t.inner; i < (r + 1) * t.inner; i++) m = Math.max(m, Math.abs(t.data[i]));
        const s = m > 0 ? Math.fround(m) : 1;
        channelScale[r] = s;
        for (let i = r * t.inner; i < (r + 1) * t.inner; i++) data[i] = Math.fround(t.data[i] / s);
      }
      amax = 0;
      for (let i = 0; i < data.length; i++) amax = Math.max(amax, Math.abs(data[i]));
    }
    return { t, data, channelScale, rowsPerGroup, groupLength, mult: multFor(amax), groups: Math.ceil(data.length / groupLength) };
  });

  // unique: groups with no more distinct values than the palette are stored exactly.
  const exact = prepared.map((p) => {
    const per: Array<number[] | null> = [];
    for (let g = 0; g < p.groups; g++) per.push(distinctAtMost(p.data, g * p.groupLength, Math.min(p.data.length, (g + 1) * p.groupLength), k));
    if (cfg.mode === 'unique' && per.some((e) => e === null)) {
      const g = per.findIndex((e) => e === null);
      throw new RecipeError(`palettize: mode 'unique' needs at most ${k} distinct values per group, but ${p.t.name} (group ${g}) has more; use mode kmeans or uniform, or more bits`, { tensor: p.t.name, bits: cfg.bits });
    }
    return per.every((e) => e !== null) ? (per as number[][]) : null;
  });

  lap('prepareMs');
  const histJobs: PaletteJob[] = prepared.filter((p, i) => !exact[i] && !p.t.sensitivity).map((p) => ({ kind: 'histogram', data: p.data, groupLength: p.groupLength, mult: p.mult }));
  const histResults = histJobs.length ? await scheduler.run(paletteKernel, histJobs) : [];
  lap('histogramMs');
  let hi = 0;
  // Every group's points first, then all k-means programs at once (worker threads when worth it).
  const points: Array<GroupPoints[] | null> = prepared.map((p, i) => {
    if (exact[i]) return null;
    let hist: Uint32Array | Float64Array;
    if (p.t.sensitivity) {
      // Weighted histogram (sums of f64 importances per key): on the host.
      const h = new Float64Array(p.groups * PALETTE_KEYS);
      for (let j = 0; j < p.data.length; j++) h[Math.floor(j / p.groupLength) * PALETTE_KEYS + paletteKey(p.data[j], p.mult)] += p.t.sensitivity[j];
      hist = h;
    } else hist = histResults[hi++].counts!;
    return Array.from({ length: p.groups }, (_, g) => groupPoints(hist.subarray(g * PALETTE_KEYS, (g + 1) * PALETTE_KEYS), cfg));
  });
  const problems: PartitionProblem[] = [];
  if (cfg.mode === 'kmeans') for (const groups of points) for (const g of groups ?? []) problems.push({ values: g.values, weights: g.weights, k, zero: g.keepZero ? g.zeroAt : null });
  const { solved, threads } = await solvePartitions(problems, { threads: opts.threads, pool: opts.pool });
  timing.threads = Math.max(timing.threads, threads);
  let si = 0;
  const plans: GroupPlan[][] = prepared.map((p, i) => {
    if (exact[i]) return exact[i]!.map((values) => ({ bounds: new Uint32Array(0), centroids: values, zeroCluster: values.indexOf(0), distinct: values.length }));
    return points[i]!.map((g) => planGroup(g, cfg.mode === 'kmeans' ? solved[si++] : null, k, p.mult));
  });

  for (const groups of plans) for (const g of groups) timing.maxDistinct = Math.max(timing.maxDistinct, g.distinct);
  lap('dpMs');
  const assignJobs: PaletteJob[] = [];
  prepared.forEach((p, i) => {
    if (exact[i]) return;
    const boundaries = new Uint32Array(p.groups * (k - 1));
    plans[i].forEach((g, j) => boundaries.set(g.bounds, j * (k - 1)));
    assignJobs.push({ kind: 'assign', data: p.data, groupLength: p.groupLength, mult: p.mult, boundaries, perGroup: k - 1 });
  });
  const assigned = assignJobs.length ? await scheduler.run(paletteKernel, assignJobs) : [];
  lap('assignMs');
  let ai = 0;
  const results = prepared.map((p, i) => {
    const t = p.t;
    const exactGroups = exact[i];
    const kk = exactGroups ? Math.max(1, ...exactGroups.map((e) => e.length)) : k;
    let indices: Uint8Array;
    if (exactGroups) {
      indices = new Uint8Array(p.data.length);
      exactGroups.forEach((values, g) => {
        const at = new Map(values.map((v, j) => [v, j]));
        for (let j = g * p.groupLength; j < Math.min(p.data.length, (g + 1) * p.groupLength); j++) indices[j] = at.get(p.data[j] === 0 ? 0 : p.data[j])!;
      });
    } else indices = assigned[ai++].indices!;
    const lut = new Float32Array(p.groups * kk);
    plans[i].forEach((g, gi) => g.centroids.forEach((c, j) => (lut[gi * kk + j] = Math.fround(c))));
    // Without a decoded copy, per-row scales or sensitivity weights, one statistics pass gives both
    // the refinement's sums and the error metrics (no decode pass).
    const stats = opts.decoded === false && !exactGroups && !t.sensitivity && !p.channelScale && cfg.lutDtype !== 'int8'
      ? clusterStats(p.data, indices, p.groupLength, p.groups, kk) : null;
    if (!exactGroups && cfg.mode === 'kmeans') {
      // Refinement: each centroid becomes the exact (weighted) mean of the f32 weights assigned to it.
      const sums = stats ? null : clusterSums(p.data, indices, t.sensitivity, p.groupLength, p.groups, kk);
      const sw = (c: number) => (stats ? stats[5 * c] : sums!.sw[c]);
      const sx = (c: number) => (stats ? stats[5 * c + 1] : sums!.sx[c]);
      plans[i].forEach((g, gi) => {
        for (let j = 0; j < kk; j++) if (sw(gi * kk + j) > 0 && j !== g.zeroCluster) lut[gi * kk + j] = Math.fround(sx(gi * kk + j) / sw(gi * kk + j));
        if (g.zeroCluster >= 0) lut[gi * kk + g.zeroCluster] = 0;
      });
    }
    let lutInt8: Int8Array | undefined;
    let lutScale: Float32Array | undefined;
    if (cfg.lutDtype === 'int8') {
      lutInt8 = new Int8Array(lut.length);
      lutScale = new Float32Array(p.groups);
      for (let g = 0; g < p.groups; g++) {
        let m = 0;
        for (let j = 0; j < kk; j++) m = Math.max(m, Math.abs(lut[g * kk + j]));
        const s = m > 0 ? Math.fround(m / 127) : 1;
        lutScale[g] = s;
        for (let j = 0; j < kk; j++) lutInt8[g * kk + j] = Math.max(-127, Math.min(127, roundHalfEven(lut[g * kk + j] / s)));
      }
    }
    let rowScale: Float32Array | undefined;
    if (p.channelScale || lutScale) {
      rowScale = new Float32Array(t.rows);
      for (let r = 0; r < t.rows; r++) {
        const a = lutScale ? lutScale[Math.floor(r / p.rowsPerGroup)] : 1;
        rowScale[r] = Math.fround(a * (p.channelScale ? p.channelScale[r] : 1));
      }
    }
    const result: PaletteResult = {
      name: t.name, indices, k: kk, groups: p.groups, rowsPerGroup: p.rowsPerGroup,
      lastGroupRows: t.rows - (p.groups - 1) * p.rowsPerGroup,
      lut, lutInt8, lutScale, channelScale: p.channelScale, rowScale,
      decoded: opts.decoded === false ? null : new Float32Array(p.data.length),
      mode: exactGroups ? 'unique' : cfg.mode,
      distinct: plans[i].reduce((s, g) => s + g.distinct, 0),
      zeroCluster: plans[i].some((g, gi) => g.zeroCluster >= 0 && lut[gi * kk + g.zeroCluster] === 0),
      sqnrDb: 0, cosine: 0, mse: 0, maxAbsError: 0,
    };
    // What the graph decodes to, row by row: table[group][index], times the row's scale in f32;
    // the error metrics against the original in the same pass (or from the cluster statistics).
    if (stats) Object.assign(result, metricsFromStats(stats, lut, t.data.length));
    else Object.assign(result, decodeWithMetrics(t.data, indices, lutInt8 ?? lut, kk, t.rows, t.inner, p.rowsPerGroup, rowScale, result.decoded));
    return result;
  });
  lap('finishMs');
  return results;
}
