/**
 * `obs` channel scores: the output error that removing a channel leaves in its consumers *after*
 * least-squares recovery refits them — the structured Optimal-Brain-Surgeon cost. For a consumer
 * with input rows X (im2col at sampled positions, plus the bias column) and H = XᵀX / rows, removing
 * the features S of one channel and refitting every other weight optimally costs
 *   ΔE = Σ_o w_{S,o}ᵀ ([H⁻¹]_SS)⁻¹ w_{S,o}
 * per output position (Hassibi & Stork 1993; the group form in Kurtic et al. 2022). A channel the
 * other channels predict well (correlated activations, or a near-constant one the bias absorbs)
 * costs little even when its energy is high — which the `energy` criterion cannot see and `--recover
 * lsq` exploits. Consumers beyond `maxFeatures` (the least-squares limit recovery uses too) or that
 * recovery does not refit are scored by what bias correction leaves: Var(x_c) · ‖W[:, c]‖².
 */
import type { OnnxModel } from '../../onnx/model.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import type { ChannelGraph, WeightSlice } from '../../analysis/channel-groups.ts';
import type { GramJob } from '../../kernels/gram.ts';
import { rangeKernel, type RangeJob } from '../../kernels/range.ts';
import { releaseOrtGram } from '../../cpu/ort-gram.ts';
import { grams } from '../grams.ts';
import { choleskyInPlace } from '../../linalg/cholesky.ts';
import { inverseUpperFactor } from '../../linalg/obs.ts';
import { openDataset, seededSample } from '../../data/dataset.ts';
import { modelInput } from '../../calibrate/calibrate.ts';
import { forEachBatch } from '../../eval/session.ts';
import { inputRows, layerGeometry, positionsFor, type Geometry } from '../layer-rows.ts';
import { currentSolution } from './recover.ts';
import { columnNorms } from './scores.ts';
import type { CalibrationSource } from '../pass.ts';

export interface ObsScoreOptions {
  /** Calibration images (default: the calibration's sample count, as recovery; else 256). */
  samples?: number;
  /** Output positions sampled per image for convolutions (default 10, as recovery). */
  positions?: number;
  /** Consumers with more input features are scored by their centred energy (default 2304, recovery's limit). */
  maxFeatures?: number;
}

/** How each consumer was scored (for the report and tests). */
export interface ObsConsumer {
  node: string;
  features: number;
  method: 'obs' | 'centred-energy';
}

interface Exact {
  slice: WeightSlice;
  g: Geometry;
  F: number;
  /** Consumer columns (along the slice axis) and features per column. */
  columns: number;
  perColumn: number;
  h: Float64Array;
  rows: number;
}

interface Approx {
  slice: WeightSlice;
  sum: Float64Array;
  sumSq: Float64Array;
  n: number;
}

const DEFAULT_MAX_FEATURES = 2304;

function exactPlan(model: OnnxModel, cg: ChannelGraph, s: WeightSlice, maxFeatures: number): Exact | null {
  if (s.input !== 1) return null;
  const g = layerGeometry(s.node, model);
  if (typeof g === 'string' || g.op === 'depthwise') return null;
  const F = g.k + (g.bias ? 1 : 0);
  if (F > maxFeatures) return null;
  const dims = tensorDims(model.graph.weights.get(s.node.input[1])!.tensor);
  const columns = dims[s.axis];
  if (!columns || g.k % columns !== 0 || cg.labels.get(s.value)!.ids.length !== columns) return null;
  return { slice: s, g, F, columns, perColumn: g.k / columns, h: new Float64Array(F * F), rows: 0 };
}

/** ΔE of removing feature set S (with optimal refit) from U, the upper factor of H⁻¹, and W [F, M]. */
function groupCost(u: Float64Array, F: number, S: number[], w: Float64Array, M: number): number {
  const b = S.length;
  // [H⁻¹]_SS = U[:, S]ᵀ U[:, S]; rows of U below min(a, c) are zero.
  const a = new Float64Array(b * b);
  for (let p = 0; p < b; p++) {
    for (let q = p; q < b; q++) {
      const top = Math.min(S[p], S[q]);
      let v = 0;
      for (let i = 0; i <= top; i++) v += u[i * F + S[p]] * u[i * F + S[q]];
      a[p * b + q] = v;
      a[q * b + p] = v;
    }
  }
  if (!choleskyInPlace(a, b)) return Infinity;
  // Σ_o w_oᵀ A⁻¹ w_o = Σ_o ‖L⁻¹ w_o‖².
  let cost = 0;
  const y = new Float64Array(b);
  for (let o = 0; o < M; o++) {
    for (let p = 0; p < b; p++) {
      let v = w[S[p] * M + o];
      for (let q = 0; q < p; q++) v -= a[p * b + q] * y[q];
      y[p] = v / a[p * b + p];
      cost += y[p] * y[p];
    }
  }
  return cost;
}

/** Σ_o w_{S,o}ᵀ (H_SS − μ_S μ_Sᵀ) w_{S,o}: the removed features' output variance (μ from the bias row of H). */
function centredBlockCost(h: Float64Array, F: number, bias: boolean, S: number[], w: Float64Array, M: number): number {
  let cost = 0;
  for (let o = 0; o < M; o++) {
    let quad = 0;
    let mu = 0;
    for (const p of S) {
      const wp = w[p * M + o];
      for (const q of S) quad += wp * h[p * F + q] * w[q * M + o];
      if (bias) mu += wp * h[(F - 1) * F + p];
    }
    cost += Math.max(0, quad - mu * mu);
  }
  return cost;
}

export async function obsScores(model: OnnxModel, cg: ChannelGraph, scheduler: Scheduler, calibration: CalibrationSource, o: ObsScoreOptions = {}): Promise<{ scores: Float64Array; consumers: ObsConsumer[] }> {
  const maxFeatures = o.maxFeatures ?? DEFAULT_MAX_FEATURES;
  const positions = o.positions ?? 10;
  const seed = calibration.seed ?? 1;
  const exact: Exact[] = [];
  const approx: Approx[] = [];
  for (const s of cg.slices) {
    if (s.role !== 'consumer') continue;
    const e = exactPlan(model, cg, s, maxFeatures);
    if (e) exact.push(e);
    else approx.push({ slice: s, sum: new Float64Array(0), sumSq: new Float64Array(0), n: 0 });
  }
  const input = modelInput(model);
  const ds = await openDataset(calibration.data, input, calibration.preprocess);
  // As many samples as recovery fits on: fully connected layers get one row per image.
  const indices = seededSample(ds.count, o.samples ?? calibration.samples ?? 256, seed);
  const reads = [...new Set([...exact.flatMap((e) => [e.slice.node.input[0], e.slice.node.output[0]]), ...approx.map((a) => a.slice.value)])];
  try {
    await forEachBatch(model, reads, { ds, input, indices }, async (out, idx) => {
      const jobs: GramJob[] = [];
      const sinks: Exact[] = [];
      exact.forEach((e, t) => {
        const x = out[e.slice.node.input[0]];
        const y = out[e.slice.node.output[0]];
        const yDims = y.dims as number[];
        const conv = e.g.op === 'Conv';
        const perImage = conv ? yDims[2] * yDims[3] : (x.data as Float32Array).length / Number(x.dims[0]) / e.g.k;
        const pos = idx.map((s) => (conv || perImage > positions ? positionsFor(t, s, positions, perImage, seed) : null));
        const rows = pos.reduce((n, p) => n + (p ? p.length : perImage), 0);
        const X = new Float32Array(rows * e.F);
        let at = 0;
        idx.forEach((_, n) => (at = inputRows(e.g, x, n, pos[n], yDims, X, at)));
        jobs.push({ a: X, rows, fa: e.F });
        sinks.push(e);
        e.rows += rows;
      });
      const results = await grams(scheduler, jobs);
      results.forEach((r, j) => {
        const h = sinks[j].h;
        for (let q = 0; q < h.length; q++) h[q] += r.gram[q];
      });
      if (!approx.length) return;
      const rj: RangeJob[] = approx.map((a) => ({ data: out[a.slice.value].data as Float32Array, shape: out[a.slice.value].dims as number[], granularity: { kind: 'channel', axis: cg.labels.get(a.slice.value)!.axis } }));
      const rr = await scheduler.run(rangeKernel, rj);
      approx.forEach((a, k) => {
        const { mean, variance, count } = rr[k];
        if (!a.sum.length) { a.sum = new Float64Array(mean.length); a.sumSq = new Float64Array(mean.length); }
        for (let c = 0; c < mean.length; c++) {
          a.sum[c] += mean[c] * count[c];
          a.sumSq[c] += (variance[c] + mean[c] ** 2) * count[c];
        }
        a.n += count[0] ?? 0;
      });
    });
  } finally {
    if (scheduler.info.active !== 'gpu') await releaseOrtGram();
  }

  const score = new Float64Array(cg.producerOf.length);
  const consumers: ObsConsumer[] = [];
  for (const e of exact) {
    const { slice: s, g, F } = e;
    const M = g.m;
    const ids = cg.labels.get(s.value)!.ids;
    const name = s.node.name || s.node.output[0];
    let u: Float64Array | null = null;
    if (e.rows > 0) {
      const h = e.h;
      let meanDiag = 0;
      for (let f = 0; f < F; f++) { for (let q = 0; q < F; q++) h[f * F + q] /= e.rows; meanDiag += h[f * F + f]; }
      meanDiag = meanDiag / F || 1;
      // Damping as recovery's least squares (1e-3 of the mean diagonal), raised until H factors.
      for (let damping = 1e-3; !u && damping <= 10; damping *= 10) {
        const hd = Float64Array.from(h);
        for (let f = 0; f < F; f++) hd[f * F + f] = (h[f * F + f] || 0) + damping * meanDiag;
        u = inverseUpperFactor(hd, F);
      }
    }
    const w = currentSolution(model, s.node, g);
    const byRoot = new Map<number, number[]>();
    for (let j = 0; j < ids.length; j++) {
      if (ids[j] < 0) continue;
      const r = cg.root(ids[j]);
      let list = byRoot.get(r);
      if (!list) byRoot.set(r, (list = []));
      for (let f = j * e.perColumn; f < (j + 1) * e.perColumn; f++) list.push(f);
    }
    // H that would not factor even damped tenfold: what bias correction leaves, from H's own blocks.
    for (const [r, S] of byRoot) score[r] += u ? groupCost(u, F, S, w, M) : centredBlockCost(e.h, F, g.bias, S, w, M);
    consumers.push({ node: name, features: F, method: u ? 'obs' : 'centred-energy' });
  }
  // Centred energy: what bias correction leaves of a removed channel, Var(x_c)·‖W[:, c]‖².
  const norms = await columnNorms(model, approx.map((a) => a.slice), scheduler);
  approx.forEach((a, k) => {
    const s = a.slice;
    const ids = cg.labels.get(s.value)!.ids;
    const l2 = norms[k];
    for (let c = 0; c < ids.length && c < l2.length; c++) {
      if (ids[c] < 0 || !a.n) continue;
      const mean = a.sum[c] / a.n;
      score[cg.root(ids[c])] += Math.max(0, a.sumSq[c] / a.n - mean * mean) * l2[c] * l2[c];
    }
    consumers.push({ node: s.node.name || s.node.output[0], features: 0, method: 'centred-energy' });
  });
  // Every cost was added at its channel's root already.
  return { scores: score, consumers };
}
