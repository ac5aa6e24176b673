// Property tests (fast-check, seeded): quantize -> dequantize error is at most scale / 2 for every
// value inside the representable range, for every bit width, signedness, symmetry and granularity.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeKernel } from '../src/kernels/quantize.ts';
import { dequantizeKernel } from '../src/kernels/dequantize.ts';
import { rangeKernel } from '../src/kernels/range.ts';
import { computeQuantParams, codeRange, type Bits } from '../src/kernels/qparams.ts';
import { groupOf, groupView, type Granularity } from '../src/kernels/layout.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { gpuScheduler } from './helpers/gpu.ts';

const gpu = await gpuScheduler();
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => gpu.scheduler?.dispose());

const caseArb = fc
  .record({
    rows: fc.integer({ min: 1, max: 9 }),
    cols: fc.integer({ min: 1, max: 70 }),
    bits: fc.constantFrom<Bits>(4, 8),
    signed: fc.boolean(),
    symmetric: fc.boolean(),
    gran: fc.constantFrom('tensor', 'channel0', 'channel1', 'block'),
    blockSize: fc.constantFrom(16, 32),
    magnitude: fc.double({ min: 1e-6, max: 1e6, noNaN: true }),
  })
  .chain((c) =>
    fc.record({
      c: fc.constant(c),
      values: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: c.rows * c.cols, maxLength: c.rows * c.cols }),
    }),
  );

function granularityOf(name: string, blockSize: number): Granularity {
  if (name === 'tensor') return { kind: 'tensor' };
  if (name === 'channel0') return { kind: 'channel', axis: 0 };
  if (name === 'channel1') return { kind: 'channel', axis: 1 };
  return { kind: 'block', axis: 1, blockSize };
}

async function roundTripViolations(s: Scheduler, sample: { c: any; values: number[] }): Promise<string[]> {
  const { c, values } = sample;
  const shape = [c.rows, c.cols];
  const data = Float32Array.from(values, (v) => v * c.magnitude);
  const granularity = granularityOf(c.gran, c.blockSize);
  const scheme = { bits: c.bits as Bits, signed: c.signed, symmetric: c.symmetric, granularity };
  const [range] = await s.run(rangeKernel, [{ data, shape, granularity }]);
  const params = computeQuantParams(range.min, range.max, scheme);
  const [q] = await s.run(quantizeKernel, [{ data, shape, granularity, ...scheme, params }]);
  const [d] = await s.run(dequantizeKernel, [{ codes: q.codes, shape, granularity, bits: c.bits, signed: c.signed, params }]);
  const { qmin, qmax } = codeRange(c.bits, c.signed);
  const view = groupView(shape, granularity);
  const bad: string[] = [];
  data.forEach((x, i) => {
    const g = groupOf(view, i);
    const sc = params.scale[g];
    const zp = params.zeroPoint[g];
    // Inside the representable range [(qmin - zp) * s, (qmax - zp) * s] the error is at most s / 2
    // (plus the f32 rounding of x * inv and of the product, a few ULP of x).
    if (x < (qmin - zp) * sc || x > (qmax - zp) * sc) return;
    const err = Math.abs(x - d.values![i]);
    const bound = sc / 2 + 4 * Math.abs(x) * 2 ** -23 + 1e-45;
    if (err > bound) bad.push(`x=${x} xhat=${d.values![i]} scale=${sc} zp=${zp}`);
  });
  return bad;
}

describe('quantize -> dequantize error bound', () => {
  it('|x - xhat| <= scale / 2 inside the range (CPU path, 300 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (sample) => {
        expect(await roundTripViolations(cpu, sample)).toEqual([]);
      }),
      { seed: 20261127, numRuns: 300 },
    );
  });

  it('|x - xhat| <= scale / 2 inside the range (GPU path, 40 cases)', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    await fc.assert(
      fc.asyncProperty(caseArb, async (sample) => {
        expect(await roundTripViolations(gpu.scheduler!, sample)).toEqual([]);
      }),
      { seed: 7, numRuns: 40 },
    );
  });
});

describe('the CPU reference fast path', () => {
  it('8-bit per-channel codes from the hoisted loop equal the per-element definition (quantizeValue)', async () => {
    const { quantizeValue } = await import('../src/kernels/quantize.ts');
    const { makeData } = await import('./cases/random.ts');
    for (const kind of ['random', 'special', 'denormal', 'wide'] as const) {
      const shape = [6, 5, 7];
      const data = makeData(210, kind, 3);
      const granularity: Granularity = { kind: 'channel', axis: 1 };
      const r = rangeKernel.cpu({ data, shape, granularity });
      const params = computeQuantParams(r.min, r.max, { bits: 8, signed: false, symmetric: false, granularity });
      const fast = quantizeKernel.cpu({ data, shape, granularity, bits: 8, signed: false, params }).codes;
      const view = groupView(shape, granularity);
      const slow = Uint8Array.from(data, (x, i) => quantizeValue(x, params.inverse[groupOf(view, i)], params.zeroPoint[groupOf(view, i)], 0, 255));
      expect(Array.from(fast)).toEqual(Array.from(slow));
    }
  });
});
