/**
 * Evaluation in ONNX Runtime (onnxruntime-node, CPU): a model against its baseline on the same
 * inputs — given IDX data or seeded random inputs that respect the declared shapes and types —
 * with per-output agreement, accuracy for labelled data, and median latency.
 */
import * as ort from 'onnxruntime-node';
import { DataError } from '../errors.ts';
import { OnnxModel } from '../onnx/model.ts';
import { openDataset, type Dataset, type Preprocess } from '../data/dataset.ts';
import { slowdownCause, summarizeEncodings } from '../analysis/encodings.ts';
import { sessionFromBytes } from './session.ts';
import { batches, inputSpecs, type ModelRef } from './inputs.ts';

export interface EvalOptions {
  /** IDX images, .npy/.npz, or an image folder (labels beside IDX images, labels.txt in image folders). Without it, seeded random inputs. */
  data?: string;
  preprocess?: Preprocess;
  /** Samples to evaluate (default: all of the data, or 32 random samples). */
  samples?: number;
  /** With `data`: evaluate exactly these sample indices (a held-out split) instead of the first `samples`. */
  indices?: readonly number[];
  seed?: number;
  batchSize?: number;
  /** Concrete values for symbolic dims, by input name: { x: [1, 3, 48, 192] }. */
  shapes?: Record<string, number[]>;
  latencyRuns?: number;
  /**
   * ONNX Runtime graph optimization (default 'all'). 'disabled' runs a QDQ model without integer
   * fusion: the quantized values in exact float arithmetic, independent of the host's integer
   * kernels (AVX2 hosts without VNNI saturate u8 x s8 products in fused QLinearConv).
   */
  optimization?: 'all' | 'disabled';
  /**
   * The baseline's outputs, kept across calls that compare many models with one baseline on the
   * same inputs (sensitivity, gates): filled by the first call, read by the next ones, which then
   * run only the model. Valid for one baseline, one input set and latencyRuns 0.
   */
  baselineCache?: BaselineCache;
  onProgress?: (done: number, total: number) => void;
}

export interface BaselineCache {
  names?: string[];
  bytes?: number;
  batches: Map<number, Record<string, ort.Tensor>>;
}

export interface OutputAgreement {
  name: string;
  maxAbsDiff: number;
  cosine: number;
  sqnrDb: number;
  /** Share of rows whose argmax agrees, for classifier-like outputs [.., C > 1]; else null. */
  top1Agreement: number | null;
}

export interface EvalReport {
  model: string;
  baseline: string;
  inputs: string;
  samples: number;
  outputs: OutputAgreement[];
  accuracy: { model: number; baseline: number; dropPoints: number; top5Model: number; top5Baseline: number } | null;
  latencyMs: { model: number; baseline: number; batch: number };
  /** File sizes, external data included. */
  bytes: { model: number; baseline: number };
  /** Set when the model runs slower than its baseline (beyond timing noise): why, and the flag that fixes it. */
  slowdown: string | null;
}

/** Latency ratios within this margin are timing noise, not a slowdown. */
export const SLOWDOWN_MARGIN = 1.05;

/** A one-line warning when the model is slower than its baseline, naming the cause found in its graph. */
export function slowdownWarning(model: ModelRef, latModel: number, latBase: number): string | null {
  if (!(latModel > latBase * SLOWDOWN_MARGIN) || latBase <= 0) return null;
  const cause = slowdownCause(summarizeEncodings(typeof model === 'string' ? OnnxModel.read(model) : model));
  const modelPath = refLabel(model);
  const speed = `runs at ${(latBase / latModel).toFixed(2)}x the speed of its baseline (${latModel.toFixed(2)} ms vs ${latBase.toFixed(2)} ms per batch)`;
  return `${modelPath} ${speed}: ${cause ?? 'no compressed encoding in its graph explains it; measure again with more runs'}`;
}

export type { ModelRef } from './inputs.ts';

function refLabel(ref: ModelRef): string {
  return typeof ref === 'string' ? ref : ref.sourcePath ?? '<in-memory model>';
}


function asNumbers(t: ort.Tensor): Float64Array {
  const d = t.data as ArrayLike<number | bigint>;
  return Float64Array.from({ length: d.length }, (_, i) => Number(d[i]));
}

function argmaxRows(v: Float64Array, c: number): Int32Array {
  const rows = v.length / c;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (v[r * c + j] > v[r * c + best]) best = j;
    out[r] = best;
  }
  return out;
}

/** Whether `label` is among the 5 largest scores of row r (ties counted against the label). */
function inTop5(v: Float64Array, c: number, r: number, label: number): boolean {
  const x = v[r * c + label];
  let above = 0;
  for (let j = 0; j < c; j++) if (v[r * c + j] > x) above++;
  return above < 5;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}

export async function evaluateModels(modelRef: ModelRef, baselineRef: ModelRef, opts: EvalOptions = {}): Promise<EvalReport> {
  const specs = inputSpecs(baselineRef);
  const sessOpts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: opts.optimization ?? 'all' };
  const open = async (ref: ModelRef): Promise<{ session: ort.InferenceSession; bytes: number }> => {
    if (typeof ref === 'string') return { session: await ort.InferenceSession.create(ref, sessOpts), bytes: OnnxModel.read(ref).filesBytes() };
    const bytes = ref.toBytes();
    return { session: await sessionFromBytes(ref, bytes, sessOpts), bytes: bytes.length };
  };
  const cache = opts.baselineCache && !(opts.latencyRuns ?? 20) ? opts.baselineCache : undefined;
  const opened = await open(modelRef);
  const model = opened.session;
  // The baseline opens only when its outputs are not cached (or latency is measured).
  const baseline: { opened: { session: ort.InferenceSession; bytes: number } | null } = { opened: null };
  const baseSession = async () => (baseline.opened ??= await open(baselineRef)).session;
  const baseNames = cache?.names ?? (await baseSession()).outputNames.slice();
  let batchIndex = 0;
  const acc = new Map<string, { e2: number; b2: number; m2: number; bm: number; maxAbs: number; agree: number; rows: number; classes: number }>();
  let samples = 0;
  let correctModel = 0;
  let correctBase = 0;
  let top5Model = 0;
  let top5Base = 0;
  let labelled = 0;
  let firstFeeds: Record<string, ort.Tensor> | null = null;
  let dataset: Dataset | null = null;
  if (opts.data) {
    const spec = specs[0];
    dataset = await openDataset(opts.data, { name: spec?.name ?? '', dims: (spec?.dims ?? []).slice(1).map((d) => (typeof d === 'number' ? d : null)) }, opts.preprocess);
  }
  for await (const batch of batches(specs, opts, dataset)) {
    firstFeeds ??= batch.feeds;
    const mo = await model.run(batch.feeds);
    const bo = cache?.batches.get(batchIndex) ?? (await (await baseSession()).run(batch.feeds));
    if (cache && !cache.batches.has(batchIndex)) cache.batches.set(batchIndex, bo);
    batchIndex++;
    const n = Number(Object.values(batch.feeds)[0]?.dims[0] ?? 1);
    samples += n;
    for (const name of baseNames) {
      const b = asNumbers(bo[name]);
      const m = asNumbers(mo[name]);
      const dims = bo[name].dims;
      const classes = dims.length >= 2 ? Number(dims[dims.length - 1]) : 1;
      const a = acc.get(name) ?? { e2: 0, b2: 0, m2: 0, bm: 0, maxAbs: 0, agree: 0, rows: 0, classes };
      for (let i = 0; i < b.length; i++) {
        const e = m[i] - b[i];
        a.e2 += e * e;
        a.b2 += b[i] * b[i];
        a.m2 += m[i] * m[i];
        a.bm += b[i] * m[i];
        a.maxAbs = Math.max(a.maxAbs, Math.abs(e));
      }
      if (classes > 1) {
        const ab = argmaxRows(b, classes);
        const am = argmaxRows(m, classes);
        for (let r = 0; r < ab.length; r++) if (ab[r] === am[r]) a.agree++;
        a.rows += ab.length;
        if (batch.labels && name === baseNames[0] && ab.length === batch.labels.length) {
          for (let r = 0; r < ab.length; r++) {
            if (am[r] === batch.labels[r]) correctModel++;
            if (ab[r] === batch.labels[r]) correctBase++;
            if (inTop5(m, classes, r, batch.labels[r])) top5Model++;
            if (inTop5(b, classes, r, batch.labels[r])) top5Base++;
          }
          labelled += ab.length;
        }
      }
      acc.set(name, a);
    }
    opts.onProgress?.(samples, opts.samples ?? samples);
  }
  if (!firstFeeds) throw new DataError('no samples to evaluate');
  // Latency: one batch, warm-up left out, runs of the two models interleaved (so drifting machine
  // load hits both alike), median of each.
  const runs = opts.latencyRuns ?? 20;
  const timesModel: number[] = [];
  const timesBase: number[] = [];
  if (runs > 0) {
    await model.run(firstFeeds);
    await (await baseSession()).run(firstFeeds);
  }
  const base = runs > 0 ? await baseSession() : null;
  for (let i = 0; i < runs; i++) {
    for (const [s, t] of [[model, timesModel], [base!, timesBase]] as const) {
      const t0 = performance.now();
      await s.run(firstFeeds);
      t.push(performance.now() - t0);
    }
  }
  const latModel = median(timesModel);
  const latBase = median(timesBase);
  const outputs: OutputAgreement[] = baseNames.map((name) => {
    const a = acc.get(name)!;
    const denom = Math.sqrt(a.b2 * a.m2);
    return {
      name,
      maxAbsDiff: a.maxAbs,
      cosine: denom === 0 ? (a.b2 === a.m2 ? 1 : 0) : a.bm / denom,
      sqnrDb: a.e2 === 0 ? Infinity : 10 * Math.log10(a.b2 / a.e2),
      top1Agreement: a.classes > 1 && a.rows > 0 ? a.agree / a.rows : null,
    };
  });
  await model.release();
  if (cache) {
    cache.names = baseNames;
    cache.bytes ??= baseline.opened?.bytes;
  }
  await baseline.opened?.session.release();
  return {
    model: refLabel(modelRef),
    baseline: refLabel(baselineRef),
    inputs: dataset ? dataset.description : `seeded random (seed ${opts.seed ?? 1})`,
    samples,
    outputs,
    accuracy: labelled ? {
      model: (100 * correctModel) / labelled, baseline: (100 * correctBase) / labelled, dropPoints: (100 * (correctBase - correctModel)) / labelled,
      top5Model: (100 * top5Model) / labelled, top5Baseline: (100 * top5Base) / labelled,
    } : null,
    latencyMs: { model: latModel, baseline: latBase, batch: Number(Object.values(firstFeeds)[0]?.dims[0] ?? 1) },
    bytes: { model: opened.bytes, baseline: baseline.opened?.bytes ?? cache?.bytes ?? 0 },
    slowdown: runs > 0 ? slowdownWarning(modelRef, latModel, latBase) : null,
  };
}
