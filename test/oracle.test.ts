// External oracles: PyTorch's quantize_per_tensor / quantize_per_channel codes and a float64
// autograd computation of the distillation loss and gradient (test/fixtures/make_torch_fixtures.py).
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeKernel, type QuantizeJob } from '../src/kernels/quantize.ts';
import { distillLossKernel, type DistillLossJob } from '../src/kernels/distill-loss.ts';
import { paramsFromScales } from '../src/kernels/qparams.ts';
import { gpuScheduler } from './helpers/gpu.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';

interface TorchCase {
  name: string;
  shape: number[];
  axis: number | null;
  signed: boolean;
  data: number[];
  scales: number[];
  zeroPoints: number[];
  codes: number[];
}
interface DistillCase {
  rows: number;
  classes: number;
  temperature: number;
  alpha: number;
  student: number[];
  teacher: number[];
  labels: number[];
  loss: number;
  kl: number;
  ce: number;
  grad: number[];
}

const load = <T>(f: string): { torch: string; cases: T[] } => JSON.parse(readFileSync(new URL(`./fixtures/${f}`, import.meta.url), 'utf8'));
const quant = load<TorchCase>('torch-quantize.json');
const distill = load<DistillCase>('distill-f64.json');

const gpu = await gpuScheduler();
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => gpu.scheduler?.dispose());

function quantJob(c: TorchCase): QuantizeJob {
  return {
    data: Float32Array.from(c.data),
    shape: c.shape,
    granularity: c.axis === null ? { kind: 'tensor' } : { kind: 'channel', axis: c.axis },
    bits: 8,
    signed: c.signed,
    params: paramsFromScales(c.scales, c.zeroPoints),
  };
}

function asCodes(c: TorchCase, bytes: Uint8Array): number[] {
  return Array.from(c.signed ? new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length) : bytes);
}

describe(`int8/uint8 codes agree with PyTorch ${quant.torch}`, () => {
  it.each(quant.cases.map((c) => [c.name, c] as const))('%s (CPU path)', async (_n, c) => {
    const [r] = await cpu.run(quantizeKernel, [quantJob(c)]);
    expect(asCodes(c, r.codes)).toEqual(c.codes);
  });
  it('every case on the GPU path', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const results = await gpu.scheduler.run(quantizeKernel, quant.cases.map(quantJob));
    quant.cases.forEach((c, i) => expect(asCodes(c, results[i].codes), c.name).toEqual(c.codes));
  });
});

function distillJob(c: DistillCase): DistillLossJob {
  return {
    student: Float32Array.from(c.student), teacher: Float32Array.from(c.teacher), labels: Int32Array.from(c.labels),
    rows: c.rows, classes: c.classes, temperature: c.temperature, alpha: c.alpha,
  };
}

describe('distillation loss and gradient agree with float64 PyTorch autograd', () => {
  const check = (got: { loss: number; kl: number; ce: number; grad: Float32Array }, c: DistillCase) => {
    expect(got.loss).toBeCloseTo(c.loss, 4);
    expect(got.kl).toBeCloseTo(c.kl, 4);
    expect(got.ce).toBeCloseTo(c.ce, 4);
    const worst = c.grad.reduce((m, g, i) => Math.max(m, Math.abs(g - got.grad[i])), 0);
    expect(worst).toBeLessThan(1e-5);
  };
  it.each(distill.cases.map((c) => [`[${c.rows}, ${c.classes}] T=${c.temperature}`, c] as const))('%s (CPU path)', async (_n, c) => {
    const [r] = await cpu.run(distillLossKernel, [distillJob(c)]);
    check(r, c);
  });
  it('every case on the GPU path', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const results = await gpu.scheduler.run(distillLossKernel, distill.cases.map(distillJob));
    distill.cases.forEach((c, i) => check(results[i], c));
  });
});
