// The WebAssembly engine on worker threads (src/cpu/wasm-pool.ts): tensors large enough to be cut
// into several units, with channels that straddle unit boundaries, span several units, sit on the
// last axis, or repeat (outer > 1). Every result must be the same with one thread and with two —
// error sums to the last bit, since units add their partials in unit order — and agree with the
// TypeScript reference (integers exactly, sums within tolerances.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeKernel, type QuantizeJob } from '../src/kernels/quantize.ts';
import { rangeKernel } from '../src/kernels/range.ts';
import { dequantizeKernel, type DequantizeJob, type DequantizeResult } from '../src/kernels/dequantize.ts';
import { computeQuantParams } from '../src/kernels/qparams.ts';
import type { Granularity } from '../src/kernels/layout.ts';
import { setCpuEngine, wasmEngine } from '../src/cpu/wasm-kernels.ts';
import { OP, UNIT } from '../src/cpu/wasm-units.ts';
import { WorkerFailureError } from '../src/errors.ts';
import { comparators } from './cases/compare.ts';
import { makeData, type DataKind } from './cases/random.ts';

const shapes: Array<[number[], Granularity, string]> = [
  [[1200, 333], { kind: 'channel', axis: 0 }, 'channels straddle unit boundaries'],
  [[3, 300_007], { kind: 'channel', axis: 0 }, 'each channel spans several units'],
  [[700, 1001], { kind: 'channel', axis: 1 }, 'channels on the last axis (per-lane parameters)'],
  [[4, 50, 3001], { kind: 'channel', axis: 1 }, 'channels repeat (outer > 1)'],
  [[350_001], { kind: 'tensor' }, 'per tensor'],
];

interface Case { name: string; job: QuantizeJob }

function cases(): Case[] {
  const out: Case[] = [];
  let seed = 4100;
  for (const [shape, granularity, what] of shapes) {
    for (const kind of ['random', 'special', 'wide'] as DataKind[]) {
      const data = makeData(shape.reduce((a, b) => a * b, 1), kind, seed++);
      const signed = kind !== 'wide';
      const r = rangeKernel.cpu({ data, shape, granularity });
      const params = computeQuantParams(r.min, r.max, { bits: 8, signed, symmetric: signed, granularity });
      out.push({ name: `${kind} [${shape}] ${what}`, job: { data, shape, granularity, bits: 8, signed, params } });
    }
  }
  return out;
}

interface Results {
  codes: Uint8Array;
  fused: ReturnType<typeof quantizeKernel.cpu>;
  range: ReturnType<typeof rangeKernel.cpu>;
  perTensor: DequantizeResult;
  perChannel: DequantizeResult;
}

/** Every threaded entry point on one job, its input resident in the engine's memory (as the passes run). */
async function runAll(job: QuantizeJob): Promise<Results> {
  const engine = wasmEngine()!;
  return engine.pin(job.data.length * 4, async () => {
    const data = engine.residentF32(job.data.length);
    data.set(job.data);
    const j = { ...job, data };
    const codes = quantizeKernel.cpu(j).codes;
    const dj: DequantizeJob = { codes, shape: job.shape, granularity: job.granularity, bits: 8, signed: job.signed, params: job.params, original: data, values: false };
    return {
      codes,
      fused: quantizeKernel.cpu({ ...j, errorStats: true }),
      range: rangeKernel.cpu({ data, shape: job.shape, granularity: job.granularity, moments: false }),
      perTensor: dequantizeKernel.cpu({ ...dj, statsAxis: null }),
      perChannel: dequantizeKernel.cpu(dj),
    };
  });
}

const all = cases();
/** Results by run: one thread; two with the units split between them by a fixed rule; two with every unit on the worker. */
const runs = new Map<'one' | 'split' | 'worker', Results[]>();

beforeAll(async () => {
  setCpuEngine('wasm', { minElements: 0, threads: 1 });
  expect(wasmEngine()!.threads).toBe(1);
  const one: Results[] = [];
  for (const { job } of all) one.push(await runAll(job));
  runs.set('one', one);
  setCpuEngine('wasm', { minElements: 0, threads: 2 });
  const engine = wasmEngine()!;
  const pool = engine.startThreads();
  expect(engine.threads, 'engine threads (the worker script comes from `npm run build`)').toBe(2);
  expect(pool!.waitReady(), 'workers listening').toBe(1);
  // Thread t takes the units k ≡ t (mod 2): both threads work on every call (their partial tables merge).
  pool!.staticSplit = true;
  const split: Results[] = [];
  for (const { job } of all) split.push(await runAll(job));
  runs.set('split', split);
  // The calling thread takes no unit: everything is computed by the worker.
  pool!.staticSplit = false;
  pool!.callerWorks = false;
  const worker: Results[] = [];
  for (const { job } of all) worker.push(await runAll(job));
  runs.set('worker', worker);
});

afterAll(() => setCpuEngine('wasm', { minElements: 256, threads: null }));

describe('WebAssembly kernels on worker threads', () => {
  it(`${all.length} cases cut into several units each`, () => {
    for (const { job } of all) expect(job.data.length).toBeGreaterThan(2 * UNIT);
  });

  for (const mode of ['split', 'worker'] as const) {
    it(`the same codes, ranges and error sums (bit for bit) with one thread and with two (${mode === 'split' ? 'units split between the threads' : 'every unit on the worker'})`, () => {
      const one = runs.get('one')!;
      const two = runs.get(mode)!;
      all.forEach(({ name }, i) => {
        expect(comparators.quantize(two[i].fused, one[i].fused), name).toBeNull();
        expect(Buffer.compare(two[i].codes, one[i].codes), name).toBe(0);
        expect(comparators.range(two[i].range, one[i].range), name).toBeNull();
        // Exact equality of every f64 sum, not a tolerance.
        expect(two[i].fused.error, name).toEqual(one[i].fused.error);
        expect(two[i].perTensor.tensor, name).toEqual(one[i].perTensor.tensor);
        expect(two[i].perChannel.channels, name).toEqual(one[i].perChannel.channels);
        expect(two[i].perChannel.tensor, name).toEqual(one[i].perChannel.tensor);
      });
    });
  }

  it('agrees with the TypeScript reference (codes and ranges exactly, error sums within tolerance)', () => {
    const two = runs.get('split')!;
    setCpuEngine('js');
    try {
      all.forEach(({ name, job }, i) => {
        const want = quantizeKernel.cpu(job);
        expect(comparators.quantize({ codes: two[i].codes }, want), name).toBeNull();
        expect(comparators.range(two[i].range, rangeKernel.cpu({ data: job.data, shape: job.shape, granularity: job.granularity, moments: false })), name).toBeNull();
        const dj: DequantizeJob = { codes: want.codes, shape: job.shape, granularity: job.granularity, bits: 8, signed: job.signed, params: job.params, original: job.data, values: false };
        const perTensor = dequantizeKernel.cpu({ ...dj, statsAxis: null });
        expect(comparators.dequantize({ ...two[i].perTensor, values: null }, { ...perTensor, values: null }), name).toBeNull();
        expect(comparators.dequantize({ values: null, tensor: two[i].fused.error!, channels: [] }, { values: null, tensor: perTensor.tensor, channels: [] }), name).toBeNull();
        expect(comparators.dequantize({ ...two[i].perChannel, values: null }, { ...dequantizeKernel.cpu(dj), values: null }), name).toBeNull();
      });
    } finally {
      setCpuEngine('wasm');
    }
  });

  it('when pinned memory holds one range table but not one per thread, the range runs on this thread with the same result', async () => {
    setCpuEngine('wasm', { minElements: 0, threads: 2 });
    const engine = wasmEngine()!;
    expect(engine.startThreads()!.waitReady()).toBe(1);
    for (const i of [0, 6]) {
      const { name, job } = all[i];
      const groups = job.granularity.kind === 'channel' ? job.shape[job.granularity.axis] : 1;
      const tableBytes = job.granularity.kind === 'channel' && job.granularity.axis === job.shape.length - 1 ? 24 * groups : 48 * groups;
      await engine.pin(job.data.length * 4, async () => {
        const data = engine.residentF32(job.data.length);
        data.set(job.data);
        // Leave room for 1.5 tables: the largest allocation that fits, less that.
        let lo = 0;
        let hi = 1 << 30;
        while (hi - lo > 16) {
          const mid = (lo + hi) >>> 1;
          const m = engine.mark();
          const ok = engine.alloc(mid) >= 0;
          engine.release(m);
          if (ok) lo = mid;
          else hi = mid;
        }
        expect(engine.alloc(lo - Math.ceil(1.5 * tableBytes))).toBeGreaterThanOrEqual(0);
        const before = engine.calls.range;
        const got = rangeKernel.cpu({ data, shape: job.shape, granularity: job.granularity, moments: false });
        expect(engine.calls.range - before, `${name}: the WebAssembly range ran`).toBe(1);
        expect(comparators.range(got, runs.get('one')![i].range), name).toBeNull();
      });
    }
  });

  it('a worker that fails makes the call throw WorkerFailureError; later calls run on this thread with the same results', async () => {
    setCpuEngine('wasm', { minElements: 0, threads: 2 });
    const engine = wasmEngine()!;
    const pool = engine.startThreads()!;
    expect(pool.waitReady()).toBe(1);
    expect(pool.callerWorks).toBe(false);
    expect(() => pool.run(OP.TEST_THROW, 0, 4 * UNIT, [])).toThrow(WorkerFailureError);
    expect(pool.broken).toBe(true);
    const { job } = all[0];
    const again = await runAll(job);
    expect(engine.threads).toBe(1);
    // Not restarted by later large work either.
    expect(engine.startThreads()).toBeNull();
    expect(engine.maxThreads).toBe(1);
    expect(Buffer.compare(again.codes, runs.get('one')![0].codes)).toBe(0);
    expect(again.fused.error).toEqual(runs.get('one')![0].fused.error);
  });
});

// Last: it replaces the engine the tests above share.
describe('when the workers start', () => {
  it('a pass with 64 MB of weights starts them (Scheduler.prepareCpuThreads); less does not', async () => {
    setCpuEngine('wasm', { threads: 1 });
    setCpuEngine('wasm', { threads: 2 });
    const engine = wasmEngine()!;
    const { Scheduler } = await import('../src/scheduler/scheduler.ts');
    const cpu = await Scheduler.create({ backend: 'cpu' });
    expect(engine.maxThreads).toBe(2);
    cpu.prepareCpuThreads(47 << 20);
    expect(engine.threads).toBe(1);
    cpu.prepareCpuThreads(64 << 20);
    expect(engine.threads).toBe(2);
    cpu.dispose();
  });
});
