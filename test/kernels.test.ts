import { afterAll, describe, expect, it } from 'vitest';
import { kernelSuites, runSuite } from './cases/kernel-cases.ts';
import { gpuScheduler } from './helpers/gpu.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';

const gpu = await gpuScheduler();
const windowed = await gpuScheduler({ bindingWindowBytes: 64 * 1024 });
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => {
  gpu.scheduler?.dispose();
  windowed.scheduler?.dispose();
});

describe.each(kernelSuites().map((s) => [s.name, s] as const))('%s kernel', (_name, suite) => {
  it(`has degenerate and odd-size cases (${suite.cases.length})`, () => {
    expect(suite.cases.length).toBeGreaterThan(10);
  });

  it('GPU (Dawn) matches the CPU reference on every case, all cases in one pass', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    expect(await runSuite(suite, gpu.scheduler)).toEqual([]);
  });

  it('GPU with a 64 KiB binding window (tensors split into windows) matches the CPU reference', async (ctx) => {
    if (!windowed.scheduler) return ctx.skip(windowed.reason);
    expect(await runSuite(suite, windowed.scheduler)).toEqual([]);
  });

  it('the scheduler CPU path gives the reference results', async () => {
    expect(await runSuite(suite, cpu)).toEqual([]);
  });
});
