// Sizes that stress the dispatch limits: grids over 65535 workgroups (laid out in 2-D), more than
// 65535 x 256 elements, and a tensor larger than the 128 MiB storage-binding window (split into windows).
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeKernel } from '../src/kernels/quantize.ts';
import { rangeKernel } from '../src/kernels/range.ts';
import { histogramKernel } from '../src/kernels/histogram.ts';
import { dequantizeKernel } from '../src/kernels/dequantize.ts';
import { computeQuantParams } from '../src/kernels/qparams.ts';
import type { Granularity } from '../src/kernels/layout.ts';
import { comparators } from './cases/compare.ts';
import { makeData } from './cases/random.ts';
import { gpuScheduler } from './helpers/gpu.ts';

const gpu = await gpuScheduler();
afterAll(() => gpu.scheduler?.dispose());

describe('large tensors on the GPU path', () => {
  it('a 134 MB tensor (> 128 MiB binding window): int4 per-channel quantize and range match the CPU', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const shape = [8200, 4096];
    const n = shape[0] * shape[1];
    expect(n * 4).toBeGreaterThan(128 * 1024 * 1024);
    const data = makeData(n, 'random', 42);
    const granularity: Granularity = { kind: 'channel', axis: 0 };
    gpu.scheduler.resetStats();
    const [range] = await gpu.scheduler.run(rangeKernel, [{ data, shape, granularity }]);
    expect(comparators.range(range, rangeKernel.cpu({ data, shape, granularity }))).toBeNull();
    const params = computeQuantParams(range.min, range.max, { bits: 4, signed: true, symmetric: true, granularity });
    const job = { data, shape, granularity, bits: 4 as const, signed: true, params };
    const [q] = await gpu.scheduler.run(quantizeKernel, [job]);
    expect(Buffer.from(q.codes).equals(Buffer.from(quantizeKernel.cpu(job).codes))).toBe(true);
    // The window forced more than one dispatch per pass.
    expect(gpu.scheduler.stats.kernels.quantize.dispatches).toBeGreaterThan(1);
    expect(gpu.scheduler.stats.kernels.range.dispatches).toBeGreaterThan(1);
  });

  it('17 M elements (> 65535 x 256): per-tensor int8 quantize and a histogram match the CPU', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const n = 17_000_000;
    const data = makeData(n, 'special', 7);
    const granularity: Granularity = { kind: 'tensor' };
    const params = computeQuantParams([-4], [4], { bits: 8, signed: false, symmetric: false, granularity });
    const job = { data, shape: [n], granularity, bits: 8 as const, signed: false, params };
    const [q] = await gpu.scheduler.run(quantizeKernel, [job]);
    expect(Buffer.from(q.codes).equals(Buffer.from(quantizeKernel.cpu(job).codes))).toBe(true);
    const hjob = { data, lo: -4, hi: 4, bins: 2048 };
    const [h] = await gpu.scheduler.run(histogramKernel, [hjob]);
    expect(comparators.histogram(h, histogramKernel.cpu(hjob))).toBeNull();
    expect(h.counts.reduce((a, b) => a + b, 0) + h.below + h.above + h.nan).toBe(n);
  });

  it('a grid of 70000 workgroups (2-D dispatch): range and dequantize statistics per channel match the CPU', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const shape = [70000, 65];
    const data = makeData(shape[0] * shape[1], 'random', 3);
    const granularity: Granularity = { kind: 'channel', axis: 0 };
    gpu.scheduler.resetStats();
    const [range] = await gpu.scheduler.run(rangeKernel, [{ data, shape, granularity }]);
    expect(comparators.range(range, rangeKernel.cpu({ data, shape, granularity }))).toBeNull();
    const params = computeQuantParams(range.min, range.max, { bits: 8, signed: true, symmetric: true, granularity });
    const codes = quantizeKernel.cpu({ data, shape, granularity, bits: 8, signed: true, params }).codes;
    const djob = { codes, shape, granularity, bits: 8 as const, signed: true, params, original: data };
    const [d] = await gpu.scheduler.run(dequantizeKernel, [djob]);
    expect(comparators.dequantize(d, dequantizeKernel.cpu(djob))).toBeNull();
    expect(d.channels).toHaveLength(70000);
  });
});
