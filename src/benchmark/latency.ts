/**
 * ONNX Runtime latency of one model, with onnxruntime_perf_test's conventions: session creation
 * and the first inference reported apart, warm-up runs left out, then a fixed number of runs or a
 * duration; percentiles by nearest rank. Concurrency > 1 runs that many inference streams, each a
 * worker thread with its own session (onnxruntime-node runs `run` on the calling thread, so one
 * thread cannot keep two inferences in flight).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { DataError, RecipeError } from '../errors.ts';
import { openDataset } from '../data/dataset.ts';
import { batches, inputSpecs } from '../eval/inputs.ts';
import { OnnxModel } from '../onnx/model.ts';
import { packageRoot } from '../package-root.ts';
import { environmentFingerprint, type Fingerprint } from './environment.ts';
import { latencyStats, type LatencyStats } from './stats.ts';

export { DRIFT_WARNING, latencyStats, nearestRank, type LatencyStats } from './stats.ts';

export const GRAPH_OPTIMIZATIONS = ['disabled', 'basic', 'extended', 'all'] as const;

export interface BenchOptions {
  /** Runs before timing starts (default 10). */
  warmup?: number;
  /** Timed runs, exactly (default: at least DEFAULT_RUNS runs and DEFAULT_MIN_SECONDS of them). */
  runs?: number;
  /** Time the runs for this many seconds instead of a fixed count. */
  durationS?: number;
  /** Value of a symbolic batch dim (default 1); a fixed batch dim wins. */
  batch?: number;
  /** Concurrent inference streams (default 1). */
  concurrency?: number;
  /** ONNX Runtime intra-op threads per session (default: ORT's own, one per physical core). */
  threads?: number;
  /** ONNX Runtime inter-op threads (default: ORT's own). */
  interOpThreads?: number;
  /** Execution provider (default 'cpu'). */
  executionProvider?: string;
  optimization?: (typeof GRAPH_OPTIMIZATIONS)[number];
  /** Inputs from this data (IDX, .npy/.npz, image folder) instead of seeded random tensors. */
  data?: string;
  seed?: number;
  /** Concrete values for symbolic dims, by input name. */
  shapes?: Record<string, number[]>;
}

export interface BenchResult {
  model: string;
  /** File size, external data included. */
  bytes: number;
  inputs: string;
  batch: number;
  warmup: number;
  runs: number;
  concurrency: number;
  sessionCreateMs: number;
  firstRunMs: number;
  /** Per run, in milliseconds (all streams together). */
  latencyMs: LatencyStats;
  throughput: { runsPerS: number; samplesPerS: number };
  /** Resident memory of the measuring process, MiB: before the session was created, and its peak. */
  rssMiB: { before: number; peak: number };
  environment: Fingerprint;
}

/**
 * Without --runs or --duration: at least 100 timed runs and at least 2 s of them, so a sub-millisecond
 * model is timed over thousands of runs instead of 10 ms (measured: 100 runs of the Fashion CNN gave
 * p50s 21 % apart across invocations).
 */
export const DEFAULT_RUNS = 100;
export const DEFAULT_MIN_SECONDS = 2;

/** When a timed loop stops: after `runs` runs (and at least `minMs`), or after `durationMs`. */
export interface RunLimit {
  runs?: number;
  minMs?: number;
  durationMs?: number;
}

export function runLimit(o: BenchOptions): RunLimit {
  if (o.durationS !== undefined) return { durationMs: o.durationS * 1000 };
  return o.runs !== undefined ? { runs: o.runs } : { runs: DEFAULT_RUNS, minMs: DEFAULT_MIN_SECONDS * 1000 };
}

/** Whether a loop that has done `done` runs over `elapsedMs` is finished. */
export function limitReached(l: RunLimit, done: number, elapsedMs: number): boolean {
  if (l.runs !== undefined) return done >= l.runs && elapsedMs >= (l.minMs ?? 0);
  return done >= 1 && elapsedMs >= (l.durationMs ?? 0);
}

/** A model's size on disk, external data files included. */
export function modelFileBytes(path: string): number {
  return OnnxModel.read(path).filesBytes();
}

export function checkBenchOptions(o: BenchOptions): void {
  const positiveInt = (v: number | undefined, flag: string, min = 1) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new RecipeError(`${flag} needs an integer ≥ ${min}, got ${v}`);
  };
  positiveInt(o.warmup, '--warmup', 0);
  positiveInt(o.runs, '--runs');
  positiveInt(o.batch, '--batch');
  positiveInt(o.concurrency, '--concurrency');
  positiveInt(o.threads, '--threads', 0);
  positiveInt(o.interOpThreads, '--inter-op-threads', 0);
  if (o.durationS !== undefined && !(o.durationS > 0)) throw new RecipeError(`--duration needs a number of seconds > 0, got ${o.durationS}`);
  if (o.runs !== undefined && o.durationS !== undefined) throw new RecipeError('give --runs or --duration, not both');
  if (o.optimization !== undefined && !(GRAPH_OPTIMIZATIONS as readonly string[]).includes(o.optimization)) throw new RecipeError(`--optimization ${o.optimization}: allowed ${GRAPH_OPTIMIZATIONS.join(', ')}`);
}

export function sessionOptions(o: BenchOptions): ort.InferenceSession.SessionOptions {
  const s: ort.InferenceSession.SessionOptions = {
    executionProviders: [o.executionProvider ?? 'cpu'],
    graphOptimizationLevel: o.optimization ?? 'all',
  };
  if (o.threads) s.intraOpNumThreads = o.threads;
  if (o.interOpThreads) s.interOpNumThreads = o.interOpThreads;
  return s;
}

/** One batch of inputs: the first samples of `data`, or seeded random tensors of the declared shapes. */
export async function benchInputs(path: string, o: BenchOptions): Promise<{ feeds: Record<string, ort.Tensor>; description: string; batch: number }> {
  const specs = inputSpecs(path);
  const batch = o.batch ?? 1;
  let dataset = null;
  if (o.data) {
    const spec = specs[0];
    dataset = await openDataset(o.data, { name: spec?.name ?? '', dims: (spec?.dims ?? []).slice(1).map((d) => (typeof d === 'number' ? d : null)) });
    if (dataset.count < batch) throw new DataError(`${o.data} holds ${dataset.count} samples; --batch ${batch} needs that many`, { path: o.data });
  }
  for await (const b of batches(specs, { samples: batch, batchSize: batch, seed: o.seed, shapes: o.shapes }, dataset)) {
    const first = Object.values(b.feeds)[0];
    return { feeds: b.feeds, description: dataset ? dataset.description : `seeded random (seed ${o.seed ?? 1})`, batch: Number(first?.dims[0] ?? 1) };
  }
  throw new DataError(`no inputs could be built for ${path}`, { path });
}

async function createSession(path: string, o: BenchOptions): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(path, sessionOptions(o));
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new DataError(`ONNX Runtime cannot load ${path}${o.executionProvider && o.executionProvider !== 'cpu' ? ` with execution provider '${o.executionProvider}'` : ''}: ${msg}`, { path });
  }
}

/** The timed loop of one stream: warm-up, then runs until the limit is reached. */
export async function timedRuns(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, warmup: number, until: RunLimit): Promise<{ times: number[]; startMs: number; endMs: number }> {
  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const times: number[] = [];
  const start = performance.now();
  for (;;) {
    const t0 = performance.now();
    await session.run(feeds);
    const t1 = performance.now();
    times.push(t1 - t0);
    if (limitReached(until, times.length, t1 - start)) break;
  }
  return { times, startMs: start, endMs: performance.now() };
}

const MiB = 1024 * 1024;
const peakRssMiB = () => (process.resourceUsage().maxRSS * 1024) / MiB;

interface OpenedModel {
  path: string;
  bytes: number;
  feeds: Record<string, ort.Tensor>;
  description: string;
  batch: number;
  session: ort.InferenceSession;
  createMs: number;
  firstMs: number;
}

/** Inputs built, the session created and the first inference run, each of the two timed. */
async function openTimed(path: string, o: BenchOptions): Promise<OpenedModel> {
  const bytes = modelFileBytes(path);
  const { feeds, description, batch } = await benchInputs(path, o);
  const t0 = performance.now();
  const session = await createSession(path, o);
  const createMs = performance.now() - t0;
  const t1 = performance.now();
  try {
    await session.run(feeds);
  } catch (err) {
    await session.release();
    throw new DataError(`${path} fails its first inference in ONNX Runtime: ${(err as Error).message.split('\n')[0]}`, { path });
  }
  return { path, bytes, feeds, description, batch, session, createMs, firstMs: performance.now() - t1 };
}

function resultOf(m: OpenedModel, times: number[], wallMs: number, o: BenchOptions, warmup: number, concurrency: number, rssBefore: number, peakMiB = peakRssMiB()): BenchResult {
  return {
    model: m.path, bytes: m.bytes, inputs: m.description, batch: m.batch, warmup, runs: times.length, concurrency,
    sessionCreateMs: m.createMs, firstRunMs: m.firstMs, latencyMs: latencyStats(times),
    throughput: { runsPerS: (1000 * times.length) / wallMs, samplesPerS: (1000 * times.length * m.batch) / wallMs },
    rssMiB: { before: rssBefore / MiB, peak: peakMiB },
    environment: environmentFingerprint(o),
  };
}

/** Benchmarks one model in this process. For a clean peak RSS, run it in a child (isolated.ts). */
export async function benchmarkModel(path: string, o: BenchOptions = {}): Promise<BenchResult> {
  checkBenchOptions(o);
  const rssBefore = process.memoryUsage().rss;
  const m = await openTimed(path, o);
  const { session, feeds } = m;
  const warmup = o.warmup ?? 10;
  const concurrency = o.concurrency ?? 1;
  const until = runLimit(o);
  let times: number[];
  let wallMs: number;
  if (concurrency === 1) {
    const r = await timedRuns(session, feeds, warmup, until);
    times = r.times;
    wallMs = r.endMs - r.startMs;
    await session.release();
  } else {
    await session.release();
    const r = await concurrentRuns(path, o, concurrency, warmup, until);
    times = r.times;
    wallMs = r.wallMs;
  }
  return resultOf(m, times, wallMs, o, warmup, concurrency, rssBefore);
}

export interface StreamRequest {
  path: string;
  options: BenchOptions;
  warmup: number;
  until: RunLimit;
}

/**
 * `concurrency` worker threads, each with its own session and inputs: all warm up, then start
 * together; runs (or the duration) are shared out, and the wall time spans first start to last end.
 */
async function concurrentRuns(path: string, o: BenchOptions, concurrency: number, warmup: number, until: RunLimit): Promise<{ times: number[]; wallMs: number }> {
  const script = join(packageRoot(), 'dist', 'src', 'benchmark', 'stream-worker.js');
  try {
    statSync(script);
  } catch {
    throw new DataError(`--concurrency needs the compiled worker ${script}: run npm run build`);
  }
  const workers = Array.from({ length: concurrency }, () => new Worker(script));
  const gate = new SharedArrayBuffer(4);
  const share = (k: number): RunLimit => (until.runs !== undefined ? { ...until, runs: Math.floor(until.runs / concurrency) + (k < until.runs % concurrency ? 1 : 0) } : until);
  try {
    const ready = workers.map((w, k) => new Promise<void>((resolve, reject) => {
      w.once('message', (m: { ready?: boolean; error?: string }) => (m.error ? reject(new DataError(m.error)) : resolve()));
      w.once('error', reject);
      w.postMessage({ request: { path, options: o, warmup, until: share(k) } satisfies StreamRequest, gate });
    }));
    await Promise.all(ready);
    const done = workers.map((w) => new Promise<{ times: number[]; startMs: number; endMs: number }>((resolve, reject) => {
      w.once('message', (m: { result?: { times: number[]; startMs: number; endMs: number }; error?: string }) => (m.error ? reject(new DataError(m.error)) : resolve(m.result!)));
      w.once('error', reject);
    }));
    // Every stream has warmed up and waits on the gate: open it for all at once.
    const flag = new Int32Array(gate);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    const results = await Promise.all(done);
    // Worker clocks share the process's time origin only approximately: use each stream's own span.
    const wallMs = Math.max(...results.map((r) => r.endMs - r.startMs));
    return { times: results.flatMap((r) => r.times), wallMs };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * Several models in one process with their runs interleaved round-robin (the order rotated every
 * round), so machine load that drifts during the measurement hits every model alike: use it when
 * the ratios between models matter more than each one's absolute figures. Peak RSS is the
 * process's, for all the models together.
 */
export async function benchmarkInterleaved(paths: readonly string[], o: BenchOptions = {}): Promise<BenchResult[]> {
  checkBenchOptions(o);
  if ((o.concurrency ?? 1) > 1) throw new RecipeError('interleaved runs measure one stream: drop --concurrency (or --interleave)');
  const rssBefore = process.memoryUsage().rss;
  const models: Array<OpenedModel & { times: number[] }> = [];
  try {
    for (const path of paths) models.push({ ...(await openTimed(path, o)), times: [] });
    const warmup = o.warmup ?? 10;
    for (const m of models) for (let i = 0; i < warmup; i++) await m.session.run(m.feeds);
    const limit = runLimit(o);
    const start = performance.now();
    for (let r = 0; !limitReached(limit, r, performance.now() - start); r++) {
      for (let k = 0; k < models.length; k++) {
        const m = models[(k + r) % models.length];
        const t0 = performance.now();
        await m.session.run(m.feeds);
        m.times.push(performance.now() - t0);
      }
    }
    // Throughput from each model's own busy time (their runs alternate).
    const peak = peakRssMiB();
    return models.map((m) => resultOf(m, m.times, m.times.reduce((x, y) => x + y, 0), o, warmup, 1, rssBefore, peak));
  } finally {
    await Promise.all(models.map((m) => m.session.release()));
  }
}
