import { afterAll, describe, expect, it } from 'vitest';
import { Scheduler, type ProgressEvent } from '../src/scheduler/scheduler.ts';
import { quantizeKernel, type QuantizeJob } from '../src/kernels/quantize.ts';
import { rangeKernel } from '../src/kernels/range.ts';
import { computeQuantParams } from '../src/kernels/qparams.ts';
import { packDispatches } from '../src/scheduler/packing.ts';
import { quantizeCases } from './cases/kernel-cases.ts';
import { makeData } from './cases/random.ts';
import { gpuScheduler } from './helpers/gpu.ts';
import { createLogger } from '../src/log.ts';
import { GpuUnavailableError, InvalidArgumentError } from '../src/errors.ts';

const gpu = await gpuScheduler();
afterAll(() => gpu.scheduler?.dispose());

function smallJobs(count: number, size: number): QuantizeJob[] {
  return Array.from({ length: count }, (_, i) => {
    const data = makeData(size, 'random', i + 1);
    const shape = [size / 64, 64];
    const granularity = { kind: 'channel' as const, axis: 0 };
    const r = rangeKernel.cpu({ data, shape, granularity });
    return { data, shape, granularity, bits: 8, signed: true, params: computeQuantParams(r.min, r.max, { bits: 8, signed: true, symmetric: true, granularity }) };
  });
}

describe('multi-tensor apply on the GPU', () => {
  it('1000 tensors of 4 K elements run in at most 5 submits and match the CPU', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const jobs = smallJobs(1000, 4096);
    gpu.scheduler.resetStats();
    const out = await gpu.scheduler.run(quantizeKernel, jobs);
    const st = gpu.scheduler.stats;
    expect(st.submits).toBeLessThanOrEqual(5);
    expect(st.dispatches).toBeLessThanOrEqual(5);
    expect(st.kernels.quantize.segments).toBe(1000);
    jobs.forEach((j, i) => expect(Buffer.from(out[i].codes).equals(Buffer.from(quantizeKernel.cpu(j).codes))).toBe(true));
  });

  it('batched and unbatched submission (one dispatch and one submit per tensor) give identical results', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const unbatched = await Scheduler.create({ backend: 'gpu', batchSize: 1, maxSegmentsPerDispatch: 1 });
    try {
      const jobs = quantizeCases().slice(0, 60).map((c) => c.job);
      gpu.scheduler.resetStats();
      const a = await gpu.scheduler.run(quantizeKernel, jobs);
      const b = await unbatched.run(quantizeKernel, jobs);
      const nonEmpty = jobs.filter((j) => j.data.length > 0).length;
      expect(unbatched.stats.submits).toBe(nonEmpty);
      expect(gpu.scheduler.stats.submits).toBe(1);
      a.forEach((r, i) => expect(Array.from(r.codes)).toEqual(Array.from(b[i].codes)));
    } finally {
      unbatched.dispose();
    }
  });

  it('timingRepeats records each dispatch that many times: quantize (idempotent) gives the same codes', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const repeated = await Scheduler.create({ backend: 'gpu', timingRepeats: 3 });
    try {
      const jobs = smallJobs(4, 4096);
      const out = await repeated.run(quantizeKernel, jobs);
      jobs.forEach((j, i) => expect(Buffer.from(out[i].codes).equals(Buffer.from(quantizeKernel.cpu(j).codes))).toBe(true));
      // Three dispatches recorded per planned one; the stats still count the planned dispatches.
      expect(repeated.stats.dispatches).toBe(1);
      if (repeated.info.timestamps) expect(repeated.stats.kernels.quantize.gpuKernelMs).toBeGreaterThan(0);
    } finally {
      repeated.dispose();
    }
  });

  it('an injected GPU failure mid-plan is redone on the CPU with identical output, and reported', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const lines: string[] = [];
    const s = await Scheduler.create({ backend: 'gpu', batchSize: 1, maxSegmentsPerDispatch: 10, injectFailureAtDispatch: 3, logger: createLogger('warn', (l) => lines.push(l)) });
    try {
      const jobs = smallJobs(50, 1024);
      const out = await s.run(quantizeKernel, jobs);
      expect(s.stats.fallbacks).toHaveLength(1);
      expect(s.stats.fallbacks[0].reason).toMatch(/kernel 'quantize': GPU validation error/);
      expect(s.stats.kernels.quantize.cpuPasses).toBe(1);
      expect(lines.join('\n')).toMatch(/redoing the pass on the CPU/);
      jobs.forEach((j, i) => expect(Array.from(out[i].codes)).toEqual(Array.from(quantizeKernel.cpu(j).codes)));
      // The device is still usable afterwards: the next pass runs on the GPU again.
      await s.run(quantizeKernel, jobs.slice(0, 5));
      expect(s.stats.kernels.quantize.gpuPasses).toBe(1);
    } finally {
      s.dispose();
    }
  });

  it('sends passes below the CPU threshold to the CPU and records why', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const s = await Scheduler.create({ backend: 'auto', allowSoftwareAdapter: true, cpuThreshold: 100_000, logger: createLogger('silent') });
    try {
      await s.run(quantizeKernel, smallJobs(2, 1024));
      expect(s.stats.cpuPasses[0]).toEqual({ kernel: 'quantize', reason: 'small pass (2048 elements < cpuThreshold 100000)' });
      expect(s.stats.submits).toBe(0);
    } finally {
      s.dispose();
    }
  });

  it('reports progress per batch of dispatches', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const events: ProgressEvent[] = [];
    const s = await Scheduler.create({ backend: 'gpu', batchSize: 2, maxSegmentsPerDispatch: 10, onProgress: (e) => events.push(e) });
    try {
      await s.run(quantizeKernel, smallJobs(50, 1024));
      expect(events.map((e) => e.done)).toEqual([2, 4, 5]);
      expect(events.every((e) => e.total === 5 && e.unit === 'dispatches')).toBe(true);
    } finally {
      s.dispose();
    }
  });

  it('records timestamps-based kernel time where the adapter has timestamp queries', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    gpu.scheduler.resetStats();
    await gpu.scheduler.run(quantizeKernel, smallJobs(4, 4096));
    const k = gpu.scheduler.stats.kernels.quantize;
    if (gpu.scheduler.info.timestamps) expect(k.gpuKernelMs).toBeGreaterThan(0);
    else expect(k.gpuKernelMs).toBeNull();
    expect(k.bytesUploaded).toBeGreaterThan(4 * 4 * 4096);
    expect(k.bytesReadBack).toBeGreaterThanOrEqual(4 * 4096);
  });
});

describe('scheduler without a GPU', () => {
  it('the CPU backend runs every pass on the CPU and says why', async () => {
    const s = await Scheduler.create({ backend: 'cpu' });
    expect(s.info.active).toBe('cpu');
    expect(s.info.reason).toBe('the CPU backend was requested');
    const out = await s.run(quantizeKernel, smallJobs(3, 1024));
    expect(out).toHaveLength(3);
    expect(s.stats.submits).toBe(0);
    expect(s.stats.kernels.quantize.cpuPasses).toBe(1);
  });

  it('validates every job before running anything, with a typed error', async () => {
    const s = await Scheduler.create({ backend: 'cpu' });
    const [job] = smallJobs(1, 1024);
    await expect(s.run(quantizeKernel, [{ ...job, shape: [3, 3] }])).rejects.toThrow(InvalidArgumentError);
    await expect(s.run(quantizeKernel, [{ ...job, shape: [3, 3] }])).rejects.toThrow('data has 1024 elements but shape [3, 3] needs 9');
  });

  it('GpuUnavailableError is the type for a demanded but missing GPU', () => {
    const e = new GpuUnavailableError('the GPU backend was requested but no WebGPU adapter found');
    expect(e.code).toBe('GPU_UNAVAILABLE');
  });
});

describe('packing', () => {
  const piece = (words: number, wg = 1) => ({ entryPoint: 'e', workgroups: wg, words: { a: words }, uploads: [], record: () => [] });
  it('fills dispatches up to the binding window and starts regions 16-byte aligned', () => {
    const d = packDispatches([[piece(5), piece(5)], [piece(7)]], ['a'], { maxWords: 16, maxWorkgroups: 100, maxSegments: 100 });
    expect(d.map((x) => x.pieces.map((p) => p.offsets.a))).toEqual([[0, 8], [0]]);
  });
  it('honours the segment and workgroup limits', () => {
    expect(packDispatches([[piece(1), piece(1), piece(1)]], ['a'], { maxWords: 100, maxWorkgroups: 100, maxSegments: 1 })).toHaveLength(3);
    expect(packDispatches([[piece(1, 60), piece(1, 60)]], ['a'], { maxWords: 100, maxWorkgroups: 100, maxSegments: 9 })).toHaveLength(2);
  });
});
