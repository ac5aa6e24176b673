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
const byThreads = new Map<number, Results[]>();

beforeAll(async () => {
  for (const threads of [1, 2]) {
    setCpuEngine('wasm', { minElements: 0, threads });
    const engine = wasmEngine()!;
    expect(engine.threads, 'engine threads (the worker script comes from `npm run build`)').toBe(threads);
    const pool = engine.startThreads();
    if (threads > 1) {
      expect(pool!.waitReady(), 'workers listening').toBe(threads - 1);
      // The calling thread takes no unit: everything below was computed by the worker.
      pool!.callerWorks = false;
    }
    const results: Results[] = [];
    for (const { job } of all) results.push(await runAll(job));
    byThreads.set(threads, results);
  }
});

afterAll(() => setCpuEngine('wasm', { minElements: 256, threads: null }));

describe('WebAssembly kernels on worker threads', () => {
  it(`${all.length} cases cut into several units each`, () => {
    for (const { job } of all) expect(job.data.length).toBeGreaterThan(2 * UNIT);
  });

  it('the same codes, ranges and error sums (bit for bit) with one thread and with two', () => {
    const one = byThreads.get(1)!;
    const two = byThreads.get(2)!;
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

  it('agrees with the TypeScript reference (codes and ranges exactly, error sums within tolerance)', () => {
    const two = byThreads.get(2)!;
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

  it('a worker that fails makes the call throw WorkerFailureError; later calls run on this thread with the same results', async () => {
    setCpuEngine('wasm', { minElements: 0, threads: 2 });
    const engine = wasmEngine()!;
    const pool = engine.startThreads()!;
    expect(pool.waitReady()).toBe(1);
    pool.callerWorks = false;
    expect(() => pool.run(OP.TEST_THROW, 0, 4 * UNIT, [])).toThrow(WorkerFailureError);
    expect(pool.broken).toBe(true);
    const { job } = all[0];
    const again = await runAll(job);
    expect(engine.threads).toBe(1);
    expect(Buffer.compare(again.codes, byThreads.get(1)![0].codes)).toBe(0);
    expect(again.fused.error).toEqual(byThreads.get(1)![0].fused.error);
  });
});
