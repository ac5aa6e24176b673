/**
 * Recovery after pruning, without training (He et al. 2017; AIMET's channel pruning): every layer
 * whose input channels were removed is re-fitted so that its output, fed by the *pruned* model's
 * activations, matches the *original* model's output on calibration data.
 *  - lsq: least squares over the kept inputs (conv: im2col rows at sampled positions per image),
 *         weights and bias together, ridge toward the kept weights; Gram matrices on the scheduler
 *         (gram kernel), Cholesky in f64.
 *  - bn:  the bias alone absorbs the mean shift of every output channel (statistics correction).
 * Depthwise layers whose channels were removed get a per-channel scale and bias. Layers are
 * processed in waves: a layer's inputs are read from the pruned model after every layer upstream of
 * it is recovered. A fit that makes the error on held-out samples worse is rejected and reported.
 */
import * as ort from 'onnxruntime-node';
import { DataError } from '../../errors.ts';
import { OnnxModel } from '../../onnx/model.ts';
import type { NodeMsg } from '../../onnx/proto.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import { create, type AttributeMsg } from '../../onnx/proto.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import type { GramJob } from '../../kernels/gram.ts';
import { solveSpd } from '../../linalg/cholesky.ts';
import { releaseOrtGram } from '../../cpu/ort-gram.ts';
import { grams } from '../grams.ts';
import { openDataset, seededSample } from '../../data/dataset.ts';
import { modelInput } from '../../calibrate/calibrate.ts';
import { sessionWithOutputs } from '../../eval/session.ts';
import { attrInt } from '../../analysis/shapes.ts';
import type { CalibrationSource } from '../pass.ts';
import type { RecoveryTarget } from './surgery.ts';
import { numberAttr, setAttr } from '../../onnx/attributes.ts';
import { replaceFloatWeight } from '../../onnx/model-edits.ts';
import { inputRows, layerGeometry, layerWaves, positionsFor, type Geometry } from '../layer-rows.ts';

export type RecoverMethod = 'none' | 'bn' | 'lsq';

export interface RecoverOptions {
  method: 'bn' | 'lsq';
  calibration: CalibrationSource;
  scheduler: Scheduler;
  /** Output positions sampled per image for convolutions (default 10). */
  positions?: number;
  /** Least squares above this many input features falls back to bias correction (CPU f64 Cholesky). */
  maxFeatures?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface RecoveredLayer {
  node: string;
  op: string;
  solve: 'lsq' | 'bias' | 'scale-bias' | 'none';
  features: number;
  rows: number;
  /** Held-out relative output error ‖ŷ − y‖² / ‖y‖², before and after (after = before when rejected). */
  errorBefore: number;
  errorAfter: number;
  accepted: boolean;
  note?: string;
}

export interface RecoveryReport {
  method: 'bn' | 'lsq';
  samples: number;
  positionsPerImage: number;
  layers: RecoveredLayer[];
  timeMs: number;
}

const DEFAULT_MAX_FEATURES = 2304;
/** Every fifth calibration sample is held out to judge each fit. */
const HELD_OUT_EVERY = 5;

interface Accumulator {
  fit: { h: Float64Array; c: Float64Array; yy: number; rows: number };
  held: { h: Float64Array; c: Float64Array; yy: number; rows: number };
}

/** Y rows: the original output at the kept channels, same positions. */
function outputRows(g: Geometry, y: ort.Tensor, n: number, positions: number[] | null, kept: number[], into: Float32Array, at: number): number {
  const data = y.data as Float32Array;
  const M = kept.length;
  if (g.op === 'Conv' || g.op === 'depthwise') {
    const [, C, OH, OW] = y.dims as number[];
    const plane = OH * OW;
    for (const p of positions!) {
      for (let o = 0; o < M; o++) into[at * M + o] = data[(n * C + kept[o]) * plane + p];
      at++;
    }
    return at;
  }
  const C = Number(y.dims[y.dims.length - 1]);
  const perImage = data.length / Number(y.dims[0]) / C;
  const rows = positions ?? Array.from({ length: perImage }, (_, i) => i);
  for (const r of rows) {
    const src = (n * perImage + r) * C;
    for (let o = 0; o < M; o++) into[at * M + o] = data[src + kept[o]];
    at++;
  }
  return at;
}

/** Current weights of a target as a [F, M] matrix (bias as the last row). */
export function currentSolution(model: OnnxModel, node: NodeMsg, g: Geometry): Float64Array {
  const F = g.k + (g.bias ? 1 : 0);
  const x = new Float64Array(F * g.m);
  const W = model.tensorFloat32(model.graph.weights.get(node.input[1])!.tensor);
  const alpha = node.opType === 'Gemm' ? numberAttr(node, 'alpha', 1) : 1;
  if (g.op === 'Conv' || (g.op === 'Gemm' && attrInt(node, 'transB', 0) === 1)) {
    for (let o = 0; o < g.m; o++) for (let f = 0; f < g.k; f++) x[f * g.m + o] = alpha * W[o * g.k + f];
  } else {
    for (let f = 0; f < g.k; f++) for (let o = 0; o < g.m; o++) x[f * g.m + o] = alpha * W[f * g.m + o];
  }
  if (g.bias) {
    const b = biasValues(model, node, g.m);
    for (let o = 0; o < g.m; o++) x[g.k * g.m + o] = b[o];
  }
  return x;
}

/** The effective bias per output channel (Gemm: beta · C broadcast), zeros when absent. */
function biasValues(model: OnnxModel, node: NodeMsg, m: number): Float64Array {
  const name = node.input[2];
  const out = new Float64Array(m);
  if (!name) return out;
  const w = model.graph.weights.get(name);
  if (!w) return out;
  const v = model.tensorFloat32(w.tensor);
  const beta = node.opType === 'Gemm' ? numberAttr(node, 'beta', 1) : 1;
  for (let o = 0; o < m; o++) out[o] = beta * (v.length === 1 ? v[0] : v[o]);
  return out;
}

/** f32 denormals (|x| < 2^-126) slow x86 arithmetic many times over unless the runtime flushes them: never write one. */
const F32_MIN_NORMAL = 1.1754943508222875e-38;

function replaceConstant(model: OnnxModel, name: string, dims: number[], data: Float32Array): void {
  for (let i = 0; i < data.length; i++) if (Math.abs(data[i]) < F32_MIN_NORMAL) data[i] = 0;
  replaceFloatWeight(model, name, dims, data);
}

/** Writes a [F, M] solution back into the node's weight (and bias, created when missing). */
function writeSolution(model: OnnxModel, node: NodeMsg, g: Geometry, x: Float64Array): void {
  const wName = node.input[1];
  const dims = tensorDims(model.graph.weights.get(wName)!.tensor);
  const W = new Float32Array(g.k * g.m);
  const alpha = node.opType === 'Gemm' ? numberAttr(node, 'alpha', 1) : 1;
  if (g.op === 'Conv' || (g.op === 'Gemm' && attrInt(node, 'transB', 0) === 1)) {
    for (let o = 0; o < g.m; o++) for (let f = 0; f < g.k; f++) W[o * g.k + f] = x[f * g.m + o] / alpha;
  } else {
    for (let f = 0; f < g.k; f++) for (let o = 0; o < g.m; o++) W[f * g.m + o] = x[f * g.m + o] / alpha;
  }
  replaceConstant(model, wName, dims, W);
  if (!g.bias) return;
  const b = Float32Array.from({ length: g.m }, (_, o) => x[g.k * g.m + o]);
  writeBias(model, node, b);
}

function writeBias(model: OnnxModel, node: NodeMsg, b: Float32Array): void {
  if (node.opType === 'Gemm') setAttr(node, create<AttributeMsg>('AttributeProto', { name: 'beta', type: 1, f: 1 }));
  let name = node.input[2];
  const shared = name && model.graph.uses(name).length > 1;
  if (!name || shared || !model.graph.weights.has(name)) {
    name = model.graph.uniqueName(`${node.name || node.output[0]}_bias_recovered`);
    while (node.input.length < 3) node.input.push('');
    node.input[2] = name;
  }
  replaceConstant(model, name, [b.length], b);
}

/** ‖X W − Y‖² from Gram sums: Σ_o (w_oᵀ H w_o − 2 w_oᵀ c_o) + Σ y². */
function gramError(h: Float64Array, c: Float64Array, yy: number, x: Float64Array, F: number, M: number): number {
  let e = yy;
  const hw = new Float64Array(F);
  for (let o = 0; o < M; o++) {
    hw.fill(0);
    for (let i = 0; i < F; i++) {
      const xi = x[i * M + o];
      if (xi === 0) continue;
      const row = i * F;
      for (let j = 0; j < F; j++) hw[j] += h[row + j] * xi;
    }
    for (let j = 0; j < F; j++) e += x[j * M + o] * hw[j] - 2 * x[j * M + o] * c[j * M + o];
  }
  return Math.max(0, e);
}

/**
 * Masked fits: Σ over outputs of (kept inputs + 1)³ above this leaves the layer as it is (a 2:4
 * ResNet-18 layer of 1153 inputs and 128 outputs is 2.5e10: its Grams alone took minutes).
 */
const MAX_MASKED_WORK = 2e10;

/** Why a masked layer is not re-fitted (too many inputs, or per-output fits too costly), or null. */
function maskedFitRefusal(node: NodeMsg, g: Geometry, keep: Uint8Array, maxFeatures: number): string | null {
  const F = g.k + (g.bias ? 1 : 0);
  if (F > maxFeatures) return `${F} input features exceed the least-squares limit of ${maxFeatures}: left as sparsified (--recover bias corrects its output means)`;
  const work = keptPerOutput(node, g, keep).reduce((s, f) => s + (f.length + 1) ** 3, 0);
  if (work > MAX_MASKED_WORK) return `a fit per output over its kept inputs (~${work.toExponential(1)} operations) exceeds the limit: left as sparsified (--recover bias corrects its output means)`;
  return null;
}

/** The features (input rows of the [F, M] solution) each output may use under a weight mask. */
function keptPerOutput(node: NodeMsg, g: Geometry, keep: Uint8Array): number[][] {
  const rowMajor = g.op === 'Conv' || (g.op === 'Gemm' && attrInt(node, 'transB', 0) === 1);
  return Array.from({ length: g.m }, (_, o) => {
    const kept: number[] = [];
    for (let f = 0; f < g.k; f++) if (keep[rowMajor ? o * g.k + f : f * g.m + o]) kept.push(f);
    return kept;
  });
}

/**
 * Least squares per output over its kept inputs (and the bias row, when there is one): the
 * sub-system of H and the column of C the output may use, ridge toward the current weights. Masked
 * weights stay exactly zero.
 */
function solveMasked(h: Float64Array, c: Float64Array, F: number, M: number, w0: Float64Array, kept: number[][], bias: boolean): Float64Array {
  const x = new Float64Array(F * M);
  for (let o = 0; o < M; o++) {
    const S = bias ? [...kept[o], F - 1] : kept[o];
    const n = S.length;
    if (!n) continue;
    const hs = new Float64Array(n * n);
    const cs = new Float64Array(n);
    const prior = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const row = S[i] * F;
      for (let j = 0; j < n; j++) hs[i * n + j] = h[row + S[j]];
      cs[i] = c[S[i] * M + o];
      prior[i] = w0[S[i] * M + o];
    }
    const sol = solveSpd(hs, cs, n, 1, { damping: 1e-3, prior }).x;
    for (let i = 0; i < n; i++) x[S[i] * M + o] = sol[i];
  }
  return x;
}

export async function recoverPruned(originalBytes: Uint8Array, pruned: OnnxModel, targets: RecoveryTarget[], o: RecoverOptions): Promise<RecoveryReport> {
  const t0 = performance.now();
  const original = OnnxModel.fromBytes(originalBytes, pruned.baseDir, pruned.sourcePath ?? '<original>');
  const cal = o.calibration;
  const input = modelInput(pruned);
  const ds = await openDataset(cal.data, input, cal.preprocess);
  const indices = seededSample(ds.count, cal.samples ?? 256, cal.seed ?? 1);
  if (indices.length < 2) throw new DataError(`recovery needs at least 2 calibration samples; ${ds.description} gives ${indices.length}`);
  const positions = o.positions ?? 10;
  const maxFeatures = o.maxFeatures ?? DEFAULT_MAX_FEATURES;
  const seed = cal.seed ?? 1;
  const batch = input.batch ?? 16;
  const feeds = async (idx: number[]) => ({ [input.name]: new ort.Tensor('float32', await ds.load(idx), [idx.length, ...ds.sampleDims]) });
  const heldOut = new Set(indices.filter((_, i) => i % HELD_OUT_EVERY === HELD_OUT_EVERY - 1));
  const layers: RecoveredLayer[] = [];
  const plans: Array<{ t: RecoveryTarget; g: Geometry; index: number; kept: number[] }> = [];
  targets.forEach((t, index) => {
    // inputRows reads every input channel; a grouped filter sees only its group's (GPTQ has its own grouped rows).
    const group = t.kind === 'consumer' && t.node.opType === 'Conv' ? numberAttr(t.node, 'group', 1) : 1;
    const geometry = group > 1 ? `grouped convolution (group ${group}): least squares re-fits group-1 convolutions only` : layerGeometry(t.node, pruned, t.kind === 'depthwise');
    // A masked layer too large for its per-output fits is left out before any Gram is accumulated.
    const g = typeof geometry !== 'string' && t.keep ? (maskedFitRefusal(t.node, geometry, t.keep, maxFeatures) ?? geometry) : geometry;
    const name = t.node.name || t.node.output[0];
    if (typeof g === 'string') {
      layers.push({ node: name, op: t.node.opType ?? '', solve: 'none', features: 0, rows: 0, errorBefore: NaN, errorAfter: NaN, accepted: false, note: g });
      return;
    }
    plans.push({ t, g, index, kept: t.keptOut ?? Array.from({ length: g.m }, (_, i) => i) });
  });

  // The original outputs at the sampled positions, once for every target.
  const targetRows = new Map<number, Map<number, Float32Array>>();
  const outPositions = new Map<string, number[] | null>();
  const outDims = new Map<number, number[]>();
  const posKey = (pi: number, s: number) => `${pi}:${s}`;
  {
    const session = await sessionWithOutputs(original, plans.map((p) => p.t.node.output[0]));
    try {
      for (let i = 0; i < indices.length; i += batch) {
        const idx = indices.slice(i, i + batch);
        if (input.batch !== null && idx.length !== input.batch) break;
        const out = await session.run(await feeds(idx));
        plans.forEach((p, pi) => {
          const y = out[p.t.node.output[0]];
          outDims.set(pi, y.dims as number[]);
          const rowsOf = targetRows.get(pi) ?? new Map<number, Float32Array>();
          targetRows.set(pi, rowsOf);
          idx.forEach((s, n) => {
            let pos: number[] | null = null;
            if (p.g.op === 'Conv' || p.g.op === 'depthwise') pos = positionsFor(p.index, s, positions, Number(y.dims[2]) * Number(y.dims[3]), seed);
            else {
              const perImage = (y.data as Float32Array).length / Number(y.dims[0]) / Number(y.dims[y.dims.length - 1]);
              pos = perImage > positions ? positionsFor(p.index, s, positions, perImage, seed) : null;
            }
            outPositions.set(posKey(pi, s), pos);
            const count = pos ? pos.length : (y.data as Float32Array).length / Number(y.dims[0]) / Number(y.dims[y.dims.length - 1]);
            const rows = new Float32Array(count * p.kept.length);
            outputRows(p.g, y, n, pos, p.kept, rows, 0);
            rowsOf.set(s, rows);
          });
        });
        o.onProgress?.('recovery: original outputs', Math.min(i + batch, indices.length), indices.length);
      }
    } finally {
      await session.release();
    }
  }

  const groups = layerWaves(pruned, plans.map((p) => p.t));
  for (const wave of groups) {
    const inWave = plans.map((p, pi) => ({ p, pi })).filter(({ p }) => wave.includes(p.t));
    const acc = new Map<number, Accumulator>();
    for (const { p, pi } of inWave) {
      const F = p.g.op === 'depthwise' ? 2 : p.g.k + (p.g.bias ? 1 : 0);
      const M = p.g.op === 'depthwise' ? p.g.m : p.g.m;
      // Depthwise: per channel [Σz², Σz; Σz, n] and [Σzy; Σy], stored as M blocks of 2x2 / 2.
      const hSize = p.g.op === 'depthwise' ? 4 * M : F * F;
      const cSize = p.g.op === 'depthwise' ? 2 * M : F * M;
      acc.set(pi, {
        fit: { h: new Float64Array(hSize), c: new Float64Array(cSize), yy: 0, rows: 0 },
        held: { h: new Float64Array(hSize), c: new Float64Array(cSize), yy: 0, rows: 0 },
      });
    }
    const reads = inWave.map(({ p }) => (p.g.op === 'depthwise' ? p.t.node.output[0] : p.t.node.input[0]));
    const session = await sessionWithOutputs(pruned, reads);
    try {
      for (let i = 0; i < indices.length; i += batch) {
        const idx = indices.slice(i, i + batch);
        if (input.batch !== null && idx.length !== input.batch) break;
        const out = await session.run(await feeds(idx));
        const jobs: GramJob[] = [];
        const sinks: Array<{ target: Float64Array }> = [];
        for (const [k, { p, pi }] of inWave.entries()) {
          const a = acc.get(pi)!;
          const xT = out[reads[k]];
          for (const part of ['fit', 'held'] as const) {
            const samples = idx.map((s, n) => ({ s, n })).filter(({ s }) => heldOut.has(s) === (part === 'held'));
            if (!samples.length) continue;
            const yRows = samples.map(({ s }) => targetRows.get(pi)!.get(s)!);
            const rows = yRows.reduce((t, r) => t + r.length / p.kept.length, 0);
            const M = p.kept.length;
            const Y = new Float32Array(rows * M);
            let at = 0;
            for (const r of yRows) { Y.set(r, at); at += r.length; }
            const sink = a[part];
            sink.rows += rows;
            for (const v of Y) sink.yy += v * v;
            if (p.g.op === 'depthwise') {
              // z at the same positions, per kept channel (the pruned output has only kept channels).
              const Z = new Float32Array(rows * M);
              let r0 = 0;
              for (const { s, n } of samples) r0 = outputRows(p.g, xT, n, outPositions.get(posKey(pi, s))!, Array.from({ length: M }, (_, c) => c), Z, r0);
              for (let r = 0; r < rows; r++) {
                for (let c = 0; c < M; c++) {
                  const z = Z[r * M + c];
                  const y = Y[r * M + c];
                  sink.h[4 * c] += z * z; sink.h[4 * c + 1] += z; sink.h[4 * c + 2] += z; sink.h[4 * c + 3] += 1;
                  sink.c[2 * c] += z * y; sink.c[2 * c + 1] += y;
                }
              }
              continue;
            }
            const F = p.g.k + (p.g.bias ? 1 : 0);
            const X = new Float32Array(rows * F);
            let r0 = 0;
            for (const { s, n } of samples) r0 = inputRows(p.g, xT, n, outPositions.get(posKey(pi, s))!, outDims.get(pi)!, X, r0);
            if (r0 !== rows) throw new DataError(`recovery of ${p.t.node.name}: ${r0} input rows for ${rows} output rows (shapes disagree between the models)`);
            jobs.push({ a: X, rows, fa: F });
            sinks.push({ target: sink.h });
            jobs.push({ a: X, rows, fa: F, b: Y, fb: M });
            sinks.push({ target: sink.c });
          }
        }
        // GPU: the gram kernel; CPU path: ONNX Runtime's GEMM (the JS reference is far slower).
        const results = await grams(o.scheduler, jobs);
        results.forEach((r, j) => {
          const t = sinks[j].target;
          for (let q = 0; q < t.length; q++) t[q] += r.gram[q];
        });
        o.onProgress?.(`recovery: wave ${groups.indexOf(wave) + 1}/${groups.length}`, Math.min(i + batch, indices.length), indices.length);
      }
    } finally {
      await session.release();
    }
    for (const { p, pi } of inWave) {
      layers.push(solveLayer(pruned, p.t, p.g, acc.get(pi)!, o.method, maxFeatures));
    }
  }
  await releaseOrtGram();
  return { method: o.method, samples: indices.length, positionsPerImage: positions, layers, timeMs: performance.now() - t0 };
}

function solveLayer(model: OnnxModel, t: RecoveryTarget, g: Geometry, a: Accumulator, method: 'bn' | 'lsq', maxFeatures: number): RecoveredLayer {
  const node = t.node;
  const name = node.name || node.output[0];
  const base = { node: name, op: g.op === 'depthwise' ? 'Conv (depthwise)' : g.op, rows: a.fit.rows };
  const M = g.m;
  if (g.op === 'depthwise') {
    const scale = new Float64Array(M);
    const shift = new Float64Array(M);
    let before = 0;
    let after = 0;
    for (let c = 0; c < M; c++) {
      const [zz, z, , n] = a.fit.h.subarray(4 * c, 4 * c + 4);
      const [zy, y] = a.fit.c.subarray(2 * c, 2 * c + 2);
      const det = zz * n - z * z;
      const s = method === 'lsq' && det > 1e-12 * Math.max(1, zz * n) ? (zy * n - z * y) / det : 1;
      scale[c] = s;
      shift[c] = n > 0 ? (y - s * z) / n : 0;
      // Held-out error of y ≈ s z + b: Σ(s z + b − y)² expanded from the sums.
      const [hzz, hz, , hn] = a.held.h.subarray(4 * c, 4 * c + 4);
      const [hzy, hy] = a.held.c.subarray(2 * c, 2 * c + 2);
      const err = (s2: number, b2: number) => s2 * s2 * hzz + 2 * s2 * b2 * hz + b2 * b2 * hn - 2 * s2 * hzy - 2 * b2 * hy;
      before += err(1, 0);
      after += err(s, shift[c]);
    }
    const eb = (before + a.held.yy) / (a.held.yy || 1);
    const ea = (after + a.held.yy) / (a.held.yy || 1);
    const accepted = ea <= eb;
    if (accepted) {
      const wName = node.input[1];
      const wt = model.graph.weights.get(wName)!.tensor;
      const W = Float32Array.from(model.tensorFloat32(wt));
      const per = W.length / M;
      for (let c = 0; c < M; c++) for (let k = 0; k < per; k++) W[c * per + k] *= scale[c];
      replaceConstant(model, wName, tensorDims(wt), W);
      const b0 = biasValues(model, node, M);
      writeBias(model, node, Float32Array.from({ length: M }, (_, c) => scale[c] * b0[c] + shift[c]));
    }
    return { ...base, solve: 'scale-bias', features: 2, errorBefore: eb, errorAfter: accepted ? ea : eb, accepted, ...(accepted ? {} : { note: 'held-out error got worse' }) };
  }
  const F = g.k + (g.bias ? 1 : 0);
  const w0 = currentSolution(model, node, g);
  const before = gramError(a.held.h, a.held.c, a.held.yy, w0, F, M) / (a.held.yy || 1);
  let x: Float64Array;
  let solve: RecoveredLayer['solve'] = method === 'lsq' ? 'lsq' : 'bias';
  let note: string | undefined;
  if (method === 'lsq' && F > maxFeatures) {
    solve = 'bias';
    note = `${F} input features exceed the least-squares limit of ${maxFeatures}: bias correction instead`;
  }
  if (solve === 'lsq') {
    x = t.keep ? solveMasked(a.fit.h, a.fit.c, F, M, w0, keptPerOutput(node, g, t.keep), g.bias) : solveSpd(a.fit.h, a.fit.c, F, M, { damping: 1e-3, prior: w0 }).x;
  } else if (g.bias) {
    // Bias absorbs the mean shift: b += (Σy − Σx·W) / n, sums read from the Gram's ones row.
    x = Float64Array.from(w0);
    const n = a.fit.h[F * F - 1];
    for (let o = 0; o < M; o++) {
      let pred = 0;
      for (let f = 0; f < F; f++) pred += a.fit.h[(F - 1) * F + f] * w0[f * M + o];
      x[g.k * M + o] += n > 0 ? (a.fit.c[(F - 1) * M + o] - pred) / n : 0;
    }
  } else {
    return { ...base, solve: 'none', features: F, errorBefore: before, errorAfter: before, accepted: false, note: 'MatMul has no bias to correct' };
  }
  const after = gramError(a.held.h, a.held.c, a.held.yy, x, F, M) / (a.held.yy || 1);
  const accepted = after <= before;
  if (accepted) writeSolution(model, node, g, x);
  return { ...base, solve, features: F, errorBefore: before, errorAfter: accepted ? after : before, accepted, ...(accepted ? (note ? { note } : {}) : { note: 'held-out error got worse' }) };
}

