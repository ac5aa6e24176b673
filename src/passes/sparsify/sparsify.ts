/**
 * Sparsity numerics: which weights to zero and what the kept ones become.
 *
 * magnitude: keep-masks from the sparsity kernel — |w| above a threshold chosen from the sorted
 *   magnitudes (per layer, or one threshold over all layers), or N:M along the input-channel axis.
 * sparsegpt: the masks chosen inside SparseGPT's column sweep from each layer's input Gram matrix,
 *   the kept weights updated to compensate (linalg/sparsegpt.ts); global scope gives each layer the
 *   sparsity the global magnitude threshold would.
 */
import { InvalidArgumentError } from '../../errors.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { sparsityKernel, type SparsityJob } from '../../kernels/sparsity.ts';
import { sparsegpt } from '../../linalg/sparsegpt.ts';
import { obsSweep, prepareLayer } from '../../linalg/obs.ts';
import { layerObjective } from '../../linalg/gptq.ts';

export interface SparseWeight {
  name: string;
  data: Float32Array;
  shape: number[];
  /** The input-channel axis (N:M groups run along it). */
  inputAxis: number;
}

export interface SparsitySpec {
  /** Unstructured: fraction pruned. */
  sparsity?: number;
  nm?: { n: number; m: number };
  scope: 'layer' | 'global';
}

export function view(shape: readonly number[], axis: number): { outer: number; dim: number; inner: number } {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  return { outer, dim: shape[axis], inner };
}

/** The magnitude below or at which `fraction` of the weights fall (a kept weight is strictly above it); null when none is pruned. */
function thresholdOf(data: readonly Float32Array[], fraction: number): number | null {
  const n = data.reduce((a, d) => a + d.length, 0);
  const k = Math.round(fraction * n);
  if (k <= 0) return null;
  return kthSmallestMagnitude(data, Math.min(k, n));
}

/**
 * The k-th smallest |x| (1-based) over several arrays, as sorting every |x| would give it (NaN
 * last), without sorting or copying: |x|'s bits order like its value (NaN bits above +Inf), so two
 * counting passes over the top and bottom 16 bits of |x|'s bits find the k-th key exactly.
 */
export function kthSmallestMagnitude(data: readonly Float32Array[], k: number): number {
  const counts = new Float64Array(65536);
  for (const d of data) {
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < bits.length; i++) counts[(bits[i] & 0x7fffffff) >>> 16]++;
  }
  let hi = 0;
  let before = 0;
  while (before + counts[hi] < k) before += counts[hi++];
  counts.fill(0);
  for (const d of data) {
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < bits.length; i++) {
      const key = bits[i] & 0x7fffffff;
      if (key >>> 16 === hi) counts[key & 0xffff]++;
    }
  }
  let lo = 0;
  while (before + counts[lo] < k) before += counts[lo++];
  return new Float32Array(Uint32Array.of(((hi << 16) | lo) >>> 0).buffer)[0];
}

/** Per-layer fractions: the spec's, or those one global magnitude threshold gives. */
export function layerFractions(weights: readonly SparseWeight[], spec: SparsitySpec): number[] {
  if (spec.sparsity === undefined || spec.scope === 'layer') return weights.map(() => spec.sparsity ?? 0);
  const t = thresholdOf(weights.map((w) => w.data), spec.sparsity);
  if (t === null) return weights.map(() => 0);
  return weights.map((w) => {
    let pruned = 0;
    const d = w.data;
    for (let i = 0; i < d.length; i++) if (Math.abs(d[i]) <= t) pruned++;
    return d.length ? pruned / d.length : 0;
  });
}

/** Magnitude keep-masks for every weight (`fractions` from layerFractions), one pass on the scheduler. */
export async function magnitudeMasks(weights: readonly SparseWeight[], spec: SparsitySpec, fractions: readonly number[], scheduler: Scheduler): Promise<Uint8Array[]> {
  const masks: Array<Uint8Array | null> = weights.map(() => null);
  const jobs: SparsityJob[] = [];
  const owner: number[] = [];
  weights.forEach((w, i) => {
    if (spec.nm) {
      jobs.push({ kind: 'nm', data: w.data, ...view(w.shape, w.inputAxis), n: spec.nm.n, m: spec.nm.m });
      owner.push(i);
      return;
    }
    const t = thresholdOf([w.data], fractions[i]);
    if (t === null) masks[i] = new Uint8Array(w.data.length).fill(1);
    else {
      jobs.push({ kind: 'threshold', data: w.data, threshold: t });
      owner.push(i);
    }
  });
  const results = jobs.length ? await scheduler.run(sparsityKernel, jobs) : [];
  results.forEach((r, j) => (masks[owner[j]] = r.keep));
  return masks as Uint8Array[];
}

export interface LayerMatrix {
  h: Float64Array;
  rows: number;
  cols: number;
  flat: (r: number, c: number) => number;
}

export interface SparseGptOutcome {
  data: Float32Array;
  keep: Uint8Array;
  /** Layer objective ‖(W − Ŵ)X‖² with the magnitude mask (no update) and with SparseGPT. */
  objectiveMagnitude: number;
  objectiveSparseGpt: number;
}

/**
 * SparseGPT on one layer. N:M groups: `groupCols` lists the input columns of the layer in the order
 * the groups run (for a convolution, input channels at a fixed kernel position), `m` columns each.
 */
export function sparseGptLayer(w: SparseWeight, m: LayerMatrix, spec: SparsitySpec, fraction: number, magnitudeKeep: Uint8Array, convPositions: number): SparseGptOutcome {
  const W = new Float64Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) W[r * m.cols + c] = w.data[m.flat(r, c)];
  let order: number[] | undefined;
  let nm: { n: number; groups: number[][] } | undefined;
  if (spec.nm) {
    // Columns are (input channel, kernel position) for convolutions: walk channels at each position.
    const channels = m.cols / convPositions;
    if (!Number.isInteger(channels)) throw new InvalidArgumentError(`sparsegpt: ${w.name}: ${m.cols} columns are not channels x ${convPositions} positions`);
    order = [];
    const groups: number[][] = [];
    for (let p = 0; p < convPositions; p++) {
      for (let c0 = 0; c0 < channels; c0 += spec.nm.m) {
        const g: number[] = [];
        for (let c = c0; c < Math.min(channels, c0 + spec.nm.m); c++) g.push(c * convPositions + p);
        groups.push(g);
        order.push(...g);
      }
    }
    nm = { n: spec.nm.n, groups };
  }
  const res = sparsegpt({ w: W, rows: m.rows, cols: m.cols, h: m.h, ...(nm ? { nm, order } : { sparsity: fraction }) });
  const data = new Float32Array(w.data.length);
  const keep = new Uint8Array(w.data.length);
  const mag = new Float64Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) {
      const f = m.flat(r, c);
      data[f] = res.w[r * m.cols + c];
      keep[f] = res.keep[r * m.cols + c];
      mag[r * m.cols + c] = magnitudeKeep[f] ? w.data[f] : 0;
    }
  }
  return { data, keep, objectiveMagnitude: layerObjective(W, mag, m.h, m.rows, m.cols), objectiveSparseGpt: layerObjective(W, res.w, m.h, m.rows, m.cols) };
}

/**
 * SparseGPT on a depthwise convolution: each channel's filter sees only its own input channel, so
 * each has its own kh·kw Gram block (GptqRounder's depthwise layout). The mask is chosen over the
 * whole layer at once — the lowest OBS saliencies w² / [H_c⁻¹]ᵢᵢ, so the layer gets exactly its
 * fraction while a sensitive channel keeps more than an insensitive one — then each channel's kept
 * weights are updated by its own OBS sweep.
 */
export function sparseGptDepthwise(w: SparseWeight, m: LayerMatrix, fraction: number, magnitudeKeep: Uint8Array): SparseGptOutcome {
  const { rows, cols } = m;
  const identity = Array.from({ length: cols }, (_, i) => i);
  const layers = Array.from({ length: rows }, (_, r) => prepareLayer('sparsegpt', Float64Array.from(w.data.subarray(r * cols, (r + 1) * cols)), m.h.subarray(r * cols * cols, (r + 1) * cols * cols), 1, cols, identity));
  const order = Array.from({ length: rows * cols }, (_, k) => k);
  const saliency = new Float64Array(rows * cols);
  layers.forEach((l, r) => { for (let i = 0; i < cols; i++) saliency[r * cols + i] = l.w[i] ** 2 / l.u[i * cols + i] ** 2; });
  order.sort((a, b) => saliency[a] - saliency[b] || a - b);
  const keep = new Uint8Array(rows * cols).fill(1);
  for (let q = 0; q < Math.round(rows * cols * fraction); q++) keep[order[q]] = 0;
  const data = new Float32Array(w.data.length);
  let objectiveMagnitude = 0;
  let objectiveSparseGpt = 0;
  layers.forEach((l, r) => {
    const q = obsSweep(l, 1, cols, (x, _r, i) => (keep[r * cols + i] ? x : 0));
    const W = Float64Array.from(w.data.subarray(r * cols, (r + 1) * cols));
    const hc = m.h.subarray(r * cols * cols, (r + 1) * cols * cols);
    for (let i = 0; i < cols; i++) data[r * cols + i] = keep[r * cols + i] ? q[i] : 0;
    objectiveSparseGpt += layerObjective(W, Float64Array.from(data.subarray(r * cols, (r + 1) * cols)), hc, 1, cols);
    objectiveMagnitude += layerObjective(W, Float64Array.from(W, (x, i) => (magnitudeKeep[r * cols + i] ? x : 0)), hc, 1, cols);
  });
  return { data, keep, objectiveMagnitude, objectiveSparseGpt };
}
