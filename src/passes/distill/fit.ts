/**
 * Knowledge distillation of a student's head on fixed features (Hinton et al. 2015, head only):
 * the student's penultimate features and the teacher's logits are collected once through ONNX
 * Runtime, then the head's weight and bias are fitted with Adam on
 *   α·KL(teacher‖student)·T² + (1−α)·CE(labels)    (the distill_loss kernel; CE only with labels)
 * or the mean squared error for outputs without a class axis. Products run through the gram
 * kernel (GPU) or ONNX Runtime's GEMM (CPU path). A held-out fifth of the samples stops the
 * fit early; the best weights on it are kept, or the student's own when fitting did not help.
 */
import * as ort from 'onnxruntime-node';
import { DataError, RecipeError } from '../../errors.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { distillLossKernel } from '../../kernels/distill-loss.ts';
import { grams } from '../grams.ts';
import { openDataset, seededSample, type Preprocess } from '../../data/dataset.ts';
import { modelInput } from '../../calibrate/calibrate.ts';
import { sessionWithOutputs } from '../../eval/session.ts';
import { seededRandom } from '../../random.ts';
import type { Head } from './head.ts';

export interface DistillOptions {
  data: string;
  /**
   * The weights the model will really hold for fitted ones (a quantized head: encoded and decoded
   * again). The held-out comparison that decides whether the fit is kept uses them.
   */
  effective?: (head: FittedHead) => Promise<FittedHead>;
  preprocess?: Preprocess;
  /** Samples drawn with `seed` (default 1024); a fifth is held out. */
  samples?: number;
  seed?: number;
  temperature?: number;
  /** Weight of the KL term (default 0.5 with labels, 1 without). */
  alpha?: number;
  epochs?: number;
  learningRate?: number;
  /** Rows per Adam step (default 256). */
  batchRows?: number;
  /** Epochs without a held-out improvement before stopping (default 10). */
  patience?: number;
  /** Convolution heads: output positions sampled per image (default 64). */
  positions?: number;
  scheduler: Scheduler;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface HeadMetrics {
  /** KL(teacher‖student) at temperature 1, mean over rows (classification heads). */
  kl: number | null;
  /** Share of rows whose argmax agrees with the teacher's, %. */
  agreement: number | null;
  /** Top-1 against the labels, % (when the data has labels and one row per sample). */
  accuracy: number | null;
  /** Mean squared error against the teacher (heads without a class axis). */
  mse: number | null;
}

export interface DistillReport {
  head: string;
  output: string;
  loss: 'kl' | 'kl+ce' | 'mse';
  temperature: number;
  alpha: number;
  samples: { fit: number; heldOut: number };
  rows: { fit: number; heldOut: number };
  epochs: number;
  bestEpoch: number;
  /** Held-out metrics with the student's own head, and with the fitted one. */
  before: HeadMetrics;
  after: HeadMetrics;
  kept: boolean;
  timeMs: { collect: number; fit: number };
}

export interface FittedHead {
  /** [classes, features], row per class. */
  weight: Float32Array;
  bias: Float32Array;
}

/** AᵀB for row-major A [rows, fa], B [rows, fb]: the gram kernel on the GPU, ORT's GEMM on the CPU path. */
async function product(s: Scheduler, a: Float32Array, rows: number, fa: number, b: Float32Array, fb: number): Promise<Float64Array> {
  const job = { a, rows, fa, b, fb };
  const [r] = await grams(s, [job]);
  return r.gram;
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c];
  return t;
}

interface Rows {
  x: Float32Array;
  t: Float32Array;
  labels: Int32Array | null;
  n: number;
}

/** Features of the student (rows of F) and logits of the teacher (rows of C) at the same places. */
async function collect(student: OnnxModel, teacher: OnnxModel, head: Head, teacherLogits: string, indices: number[], o: DistillOptions, progress: (d: number) => void): Promise<{ rows: Rows; perSample: number }> {
  const input = modelInput(student);
  const ds = await openDataset(o.data, input, o.preprocess);
  const s = await sessionWithOutputs(student, [head.features]);
  const t = await sessionWithOutputs(teacher, [teacherLogits]);
  const F = head.features_;
  const C = head.classes;
  const xs: Float32Array[] = [];
  const ts: Float32Array[] = [];
  const labels: number[] = [];
  let perSample = 0;
  const batch = input.batch ?? 32;
  try {
    for (let i = 0; i < indices.length; i += batch) {
      const idx = indices.slice(i, i + batch);
      if (input.batch !== null && idx.length !== input.batch) break;
      const feeds = { [input.name]: new ort.Tensor('float32', await ds.load(idx), [idx.length, ...ds.sampleDims]) };
      const so = await s.run(feeds);
      const to = await t.run(feeds);
      const fx = so[head.features];
      const ty = to[teacherLogits];
      const xd = fx.data as Float32Array;
      const yd = ty.data as Float32Array;
      if (head.layout === 'conv') {
        const [N, Fc, H, W] = fx.dims.map(Number);
        const [, Cc, H2, W2] = ty.dims.map(Number);
        if (Fc !== F || Cc !== C || H2 !== H || W2 !== W) throw new DataError(`distillation: the head's input [${fx.dims}] and the teacher's logits [${ty.dims}] do not line up position by position (a 1x1 convolution with stride 1 is expected)`);
        const hw = H * W;
        const r = seededRandom((o.seed ?? 1) * 7919 + i);
        const count = Math.min(hw, o.positions ?? 64);
        for (let n = 0; n < N; n++) {
          const pos = count === hw ? Array.from({ length: hw }, (_, k) => k) : Array.from({ length: count }, () => Math.floor(r() * hw));
          const xr = new Float32Array(count * F);
          const tr = new Float32Array(count * C);
          pos.forEach((p, k) => {
            for (let f = 0; f < F; f++) xr[k * F + f] = xd[(n * F + f) * hw + p];
            for (let c = 0; c < C; c++) tr[k * C + c] = yd[(n * C + c) * hw + p];
          });
          xs.push(xr);
          ts.push(tr);
        }
        perSample = count;
      } else {
        const rows = xd.length / F;
        if (yd.length !== (rows * C)) throw new DataError(`distillation: the head's input [${fx.dims}] gives ${rows} rows of ${F} features but the teacher's logits [${ty.dims}] are not ${rows} rows of ${C} classes`);
        xs.push(Float32Array.from(xd));
        ts.push(Float32Array.from(yd));
        perSample = rows / idx.length;
      }
      if (ds.labels && perSample === 1) for (const k of idx) labels.push(ds.labels[k]);
      progress(i + idx.length);
    }
  } finally {
    await s.release();
    await t.release();
  }
  const n = xs.reduce((a, x) => a + x.length / F, 0);
  const x = new Float32Array(n * F);
  const tt = new Float32Array(n * C);
  let at = 0;
  xs.forEach((xr, k) => {
    x.set(xr, at * F);
    tt.set(ts[k], at * C);
    at += xr.length / F;
  });
  const lab = labels.length === n && labels.every((l) => l >= 0 && l < C) ? Int32Array.from(labels) : null;
  return { rows: { x, t: tt, labels: lab, n }, perSample };
}

/** The head weight in its node's layout → [classes, features]. */
export function headToRows(head: Head, w: Float32Array): Float32Array {
  return head.layout === 'fc' ? transpose(w, head.features_, head.classes) : Float32Array.from(w);
}

/** [classes, features] → the head weight in its node's layout. */
export function rowsToHead(head: Head, w: Float32Array): Float32Array {
  return head.layout === 'fc' ? transpose(w, head.classes, head.features_) : Float32Array.from(w);
}

function subset(r: Rows, rows: number[], F: number, C: number): Rows {
  const x = new Float32Array(rows.length * F);
  const t = new Float32Array(rows.length * C);
  rows.forEach((k, i) => {
    x.set(r.x.subarray(k * F, (k + 1) * F), i * F);
    t.set(r.t.subarray(k * C, (k + 1) * C), i * C);
  });
  return { x, t, labels: r.labels ? Int32Array.from(rows, (k) => r.labels![k]) : null, n: rows.length };
}

/** Student logits X Wᵀ + b for rows of X. */
async function logits(s: Scheduler, x: Float32Array, n: number, F: number, C: number, wt: Float32Array, b: Float32Array): Promise<Float32Array> {
  const prod = await product(s, transpose(x, n, F), F, n, wt, C);
  const out = new Float32Array(n * C);
  for (let r = 0; r < n; r++) for (let c = 0; c < C; c++) out[r * C + c] = prod[r * C + c] + b[c];
  return out;
}

async function metrics(s: Scheduler, d: Rows, F: number, C: number, w: Float32Array, b: Float32Array): Promise<HeadMetrics> {
  const chunk = 4096;
  let kl = 0;
  let agree = 0;
  let correct = 0;
  let se = 0;
  const wt = transpose(w, C, F);
  for (let r0 = 0; r0 < d.n; r0 += chunk) {
    const n = Math.min(chunk, d.n - r0);
    const sub = d.x.subarray(r0 * F, (r0 + n) * F);
    const t = d.t.subarray(r0 * C, (r0 + n) * C);
    const y = await logits(s, sub, n, F, C, wt, b);
    if (C === 1) {
      for (let k = 0; k < n; k++) se += (y[k] - t[k]) ** 2;
      continue;
    }
    const [res] = await s.run(distillLossKernel, [{ student: y, teacher: t, labels: new Int32Array(n), rows: n, classes: C, temperature: 1, alpha: 1 }]);
    kl += res.kl * n;
    for (let r = 0; r < n; r++) {
      let bs = 0;
      let bt = 0;
      for (let c = 1; c < C; c++) {
        if (y[r * C + c] > y[r * C + bs]) bs = c;
        if (t[r * C + c] > t[r * C + bt]) bt = c;
      }
      if (bs === bt) agree++;
      if (d.labels && bs === d.labels[r0 + r]) correct++;
    }
  }
  if (C === 1) return { kl: null, agreement: null, accuracy: null, mse: se / d.n };
  return { kl: kl / d.n, agreement: (100 * agree) / d.n, accuracy: d.labels ? (100 * correct) / d.n : null, mse: null };
}

/**
 * Fits the head: `weight` [classes, features] and `bias` [classes] are the student's current
 * values (the starting point). Returns the weights to keep and the report.
 */
export async function distillHead(student: OnnxModel, teacher: OnnxModel, head: Head, teacherLogits: string, start: { weight: Float32Array; bias: Float32Array }, o: DistillOptions): Promise<{ fitted: FittedHead; report: DistillReport }> {
  const t0 = performance.now();
  const bad = ([['epochs', o.epochs, (v: number) => Number.isInteger(v) && v >= 1, 'an integer >= 1'], ['temperature', o.temperature, (v: number) => v > 0 && Number.isFinite(v), 'a positive number'],
    ['alpha', o.alpha, (v: number) => v >= 0 && v <= 1, 'between 0 and 1'], ['learning rate', o.learningRate, (v: number) => v > 0 && Number.isFinite(v), 'a positive number'],
    ['samples', o.samples, (v: number) => Number.isInteger(v) && v >= 10, 'an integer >= 10']] as const).find(([, v, ok]) => v !== undefined && !ok(v));
  if (bad) throw new RecipeError(`distillation ${bad[0]} ${bad[1]}: must be ${bad[3]}`);
  const F = head.features_;
  const C = head.classes;
  const ds = await openDataset(o.data, modelInput(student), o.preprocess);
  const indices = seededSample(ds.count, o.samples ?? 1024, o.seed ?? 1);
  if (indices.length < 10) throw new DataError(`distillation needs at least 10 samples (a fifth is held out); ${ds.description} gives ${indices.length}`);
  const c = await collect(student, teacher, head, teacherLogits, indices, o, (d) => o.onProgress?.('distillation: features and teacher logits', d, indices.length));
  const w0 = start.weight;
  const collectMs = performance.now() - t0;
  // Held out by sample (every fifth), so rows of one image never sit on both sides.
  const per = Math.max(1, c.perSample);
  const fitRows: number[] = [];
  const heldRows: number[] = [];
  for (let k = 0; k < c.rows.n; k++) (Math.floor(k / per) % 5 === 4 ? heldRows : fitRows).push(k);
  const fit = subset(c.rows, fitRows, F, C);
  const held = subset(c.rows, heldRows, F, C);
  const hasLabels = Boolean(c.rows.labels);
  const temperature = o.temperature ?? 2;
  const alpha = C === 1 ? 1 : o.alpha ?? (hasLabels ? 0.5 : 1);
  const lossKind: DistillReport['loss'] = C === 1 ? 'mse' : hasLabels && alpha < 1 ? 'kl+ce' : 'kl';

  const w = Float32Array.from(w0);
  const b = Float32Array.from(start.bias);
  const before = await metrics(o.scheduler, held, F, C, w, b);
  // Early stopping and the choice of weights: fidelity to the teacher on held-out rows.
  const score = (m: HeadMetrics) => m.mse ?? m.kl!;
  let best = { w: Float32Array.from(w), b: Float32Array.from(b), score: score(before), epoch: 0 };
  const lr = o.learningRate ?? 1e-2;
  const epochs = o.epochs ?? 100;
  const patience = o.patience ?? 10;
  const batchRows = o.batchRows ?? 256;
  const mW = new Float64Array(w.length);
  const vW = new Float64Array(w.length);
  const mB = new Float64Array(C);
  const vB = new Float64Array(C);
  const rnd = seededRandom(o.seed ?? 1);
  const order = Array.from({ length: fit.n }, (_, i) => i);
  let step = 0;
  let epoch = 0;
  for (epoch = 1; epoch <= epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let r0 = 0; r0 < fit.n; r0 += batchRows) {
      const rows = order.slice(r0, r0 + batchRows);
      const m = rows.length;
      const bx = new Float32Array(m * F);
      const bt = new Float32Array(m * C);
      const bl = new Int32Array(m);
      rows.forEach((k, i) => {
        bx.set(fit.x.subarray(k * F, (k + 1) * F), i * F);
        bt.set(fit.t.subarray(k * C, (k + 1) * C), i * C);
        if (fit.labels) bl[i] = fit.labels[k];
      });
      const y = await logits(o.scheduler, bx, m, F, C, transpose(w, C, F), b);
      let grad: Float32Array;
      if (C === 1) {
        grad = Float32Array.from(y, (v, k) => (2 * (v - bt[k])) / m);
      } else {
        const [res] = await o.scheduler.run(distillLossKernel, [{ student: y, teacher: bt, labels: bl, rows: m, classes: C, temperature, alpha: hasLabels ? alpha : 1 }]);
        grad = res.grad;
      }
      // dW = Gᵀ X [C, F]; db = column sums of G.
      const gw = await product(o.scheduler, grad, m, C, bx, F);
      const gb = new Float64Array(C);
      for (let r = 0; r < m; r++) for (let k = 0; k < C; k++) gb[k] += grad[r * C + k];
      step++;
      const c1 = 1 - 0.9 ** step;
      const c2 = 1 - 0.999 ** step;
      const adam = (p: Float32Array, g: ArrayLike<number>, mm: Float64Array, vv: Float64Array) => {
        for (let k = 0; k < p.length; k++) {
          mm[k] = 0.9 * mm[k] + 0.1 * g[k];
          vv[k] = 0.999 * vv[k] + 0.001 * g[k] * g[k];
          p[k] -= (lr * (mm[k] / c1)) / (Math.sqrt(vv[k] / c2) + 1e-8);
        }
      };
      adam(w, gw, mW, vW);
      adam(b, gb, mB, vB);
    }
    const m = await metrics(o.scheduler, held, F, C, w, b);
    if (score(m) < best.score) best = { w: Float32Array.from(w), b: Float32Array.from(b), score: score(m), epoch };
    o.onProgress?.('distillation: epochs', epoch, epochs);
    if (epoch - best.epoch >= patience) break;
  }
  // Judged with the weights the model will hold (a quantized head re-encoded), not the float fit.
  const final = best.epoch > 0 && o.effective ? await o.effective({ weight: best.w, bias: best.b }) : { weight: best.w, bias: best.b };
  const afterFinal = best.epoch > 0 ? await metrics(o.scheduler, held, F, C, final.weight, final.bias) : before;
  const kept = best.epoch > 0 && score(afterFinal) < score(before);
  const after = kept ? afterFinal : before;
  return {
    fitted: { weight: best.w, bias: best.b },
    report: {
      head: head.node.name ?? '', output: head.output, loss: lossKind, temperature, alpha,
      samples: { fit: indices.length - Math.ceil(heldRows.length / per), heldOut: Math.ceil(heldRows.length / per) }, rows: { fit: fit.n, heldOut: held.n },
      epochs: Math.min(epoch, epochs), bestEpoch: best.epoch, before, after, kept,
      timeMs: { collect: collectMs, fit: performance.now() - t0 - collectMs },
    },
  };
}
