// Calibration methods on small hand-checked histograms, histogram growth/merging, GPU = CPU picks.
import { describe, expect, it, afterAll } from 'vitest';
import { percentileThreshold, clipRanges } from '../src/calibrate/methods.ts';
import { TensorStats, addBatch, HALF_BINS } from '../src/calibrate/stats.ts';
import { HistogramHelper } from '../src/calibrate/histogram-helper.ts';
import { seededRandom } from '../src/random.ts';
import { pickThreshold, scoreCandidate, thresholdSearchKernel, type ThresholdSearchJob } from '../src/kernels/threshold-search.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { thresholdCases } from './cases/kernel-cases.ts';
import { gpuScheduler } from './helpers/gpu.ts';

const cpu = await Scheduler.create({ backend: 'cpu' });
const gpu = await gpuScheduler();
afterAll(() => gpu.scheduler?.dispose());

describe('percentile', () => {
  // |x| histogram [50, 30, 15, 5] with bins of 0.5: cumulative 50, 80, 95, 100.
  const h = Uint32Array.from([50, 30, 15, 5]);
  it.each([[99, 2.0], [95, 1.5], [90, 1.5], [50, 0.5], [100, 2.0]])('percentile %d gives threshold %d', (p, t) => {
    expect(percentileThreshold(h, 0.5, p)).toBe(t);
  });
  it('an empty histogram gives 0', () => expect(percentileThreshold(new Uint32Array(4), 1, 99)).toBe(0));
});

describe('entropy (KL) scores, checked by hand', () => {
  // hist [8, 0, 0, 1], 2 levels. Worked out in the comments of this test:
  //  i=2: P=[8,1] (outlier folded in), Q=[8,0] -> smoothed Q=[7.9999, 0.0001]; KL = 8/9 ln((8/9)/(7.9999/8)) + 1/9 ln((1/9)/(0.0001/8)) = 0.90570
  //  i=3: P=[8,0,1], Q=[8,0,0] -> after smoothing KL = 0.90557
  //  i=4: P=[8,0,0,1], Q=[8,0,0,1] -> KL = 0 (no clipping needed)
  const job: ThresholdSearchJob = { counts: Uint32Array.from([8, 0, 0, 1]), binWidth: 1, method: 'entropy', levels: 2 };
  it('scores', () => {
    expect(scoreCandidate(job, 2)).toBeCloseTo(0.9057, 3);
    expect(scoreCandidate(job, 3)).toBeCloseTo(0.90557, 3);
    expect(scoreCandidate(job, 4)).toBeCloseTo(0, 9);
  });
  it('picks the edge with the smallest KL (4), and the first of equal ones', () => {
    expect(pickThreshold(job, thresholdSearchKernel.cpu(job))).toBe(4);
    const flat: ThresholdSearchJob = { counts: Uint32Array.from([4, 4, 0, 0]), binWidth: 1, method: 'entropy', levels: 2 };
    expect(pickThreshold(flat, thresholdSearchKernel.cpu(flat))).toBe(2);
  });
  it('clips a far outlier that carries little mass', () => {
    const counts = new Uint32Array(2048);
    for (let b = 0; b < 300; b++) counts[b] = Math.round(10000 * Math.exp(-b / 60));
    counts[2047] = 1;
    const j: ThresholdSearchJob = { counts, binWidth: 1, method: 'entropy', levels: 128 };
    const t = pickThreshold(j, thresholdSearchKernel.cpu(j));
    expect(t).toBeLessThan(1000);
    expect(t).toBeGreaterThanOrEqual(128);
  });
});

describe('mse scores, checked by hand', () => {
  // hist [100, 0, 0, 1], width 1, 127 levels: err(i) = (101 in range: count * (i/127)^2/12, clipped: (b + 0.5 - i)^2)
  //  i=1: (100 * (1/127)^2 / 12 + 1 * 2.5^2) / 101 = (0.0005167 + 6.25) / 101 = 0.061886
  //  i=4: 101 * (4/127)^2 / 12 / 101 = 0.00008267
  const job: ThresholdSearchJob = { counts: Uint32Array.from([100, 0, 0, 1]), binWidth: 1, method: 'mse', levels: 127 };
  it('scores', () => {
    expect(scoreCandidate(job, 1)).toBeCloseTo(0.061886, 5);
    expect(scoreCandidate(job, 4)).toBeCloseTo(0.00008267, 7);
  });
  it('keeps an outlier when clipping it costs more than coarser steps', () => {
    expect(pickThreshold(job, thresholdSearchKernel.cpu(job))).toBe(4);
  });
});

describe('streaming statistics', () => {
  it('a histogram that doubles its range merges bins exactly (values at bin centres)', async () => {
    const s = new TensorStats();
    // First batch within [-1, 1]; then values up to 3.5 force two doublings (limit 4).
    const w1 = 1 / HALF_BINS;
    const a = Float32Array.from([0.5 * w1, 10.5 * w1, -7.5 * w1, 0.75, -0.999]);
    const b = Float32Array.from([3.5, -2.25, 1.25]);
    await addBatch(cpu, [s], [a]);
    expect(s.limit).toBe(1);
    await addBatch(cpu, [s], [b]);
    expect(s.limit).toBe(4);
    expect([s.min, s.max]).toEqual([Math.fround(-2.25), 3.5]);
    const direct = new TensorStats();
    direct.cover(4);
    await addBatch(cpu, [direct], [Float32Array.from([...a, ...b])]);
    expect(Array.from(s.hist!.counts)).toEqual(Array.from(direct.hist!.counts));
    expect(s.hist!.counts.reduce((x, y) => x + y, 0)).toBe(8);
    expect(s.count).toBe(8);
  });

  it('NaN and Inf are counted apart and left out of ranges', async () => {
    const s = new TensorStats();
    await addBatch(cpu, [s], [Float32Array.from([1, NaN, -Infinity, -2])]);
    expect([s.min, s.max, s.nonFinite, s.count]).toEqual([-2, 1, 2, 2]);
  });

  it('methods on collected stats: ranges contain 0 and stay within [min, max]', async () => {
    const s = new TensorStats();
    const data = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 2 + (i === 7 ? 40 : 0));
    await addBatch(cpu, [s], [data]);
    for (const method of ['minmax', 'percentile', 'entropy', 'mse'] as const) {
      const [r] = await clipRanges(cpu, [s], { method, signed: true, percentile: 99.9 });
      expect(r.min).toBeLessThanOrEqual(0);
      expect(r.max).toBeGreaterThan(0);
      expect(r.min).toBeGreaterThanOrEqual(s.min);
      expect(r.max).toBeLessThanOrEqual(s.max);
      // One far outlier: percentile and entropy clip it; for MSE, keeping it costs less (0.009 vs 0.31).
      if (method === 'percentile' || method === 'entropy') expect(r.max, method).toBeLessThan(40);
      if (method === 'mse') expect(r.max).toBeGreaterThan(40);
    }
  });
});

describe('statistics on two cores (a helper thread counts half of each batch)', () => {
  it('the same stats as one thread, growth and re-counts included; the activations come back intact', async (ctx) => {
    const helper = HistogramHelper.start(2);
    if (!helper) return ctx.skip('dist/src/calibrate/histogram-worker.js is not built (npm test builds it first)');
    try {
      const r = seededRandom(21);
      // Six tensors, 1.5 M elements a batch (the helper takes batches from 1 M); the second batch outgrows the ranges.
      const batches = [1, 3].map((scale) => Array.from({ length: 6 }, (_, t) => Float32Array.from({ length: 100_000 + 60_000 * t }, () => (r() - 0.5) * scale * (t + 1) + (r() < 1e-4 ? NaN : 0))));
      const one = batches[0].map(() => new TensorStats());
      const two = batches[0].map(() => new TensorStats());
      for (const b of batches) {
        const given = b.map((a) => Float32Array.from(a));
        await addBatch(cpu, one, b);
        await countUsedHelper(() => addBatch(cpu, two, given, helper), given, b);
      }
      one.forEach((s, t) => {
        expect([two[t].min, two[t].max, two[t].limit, two[t].count, two[t].nonFinite], `tensor ${t}`).toEqual([s.min, s.max, s.limit, s.count, s.nonFinite]);
        expect(Array.from(two[t].hist!.counts), `tensor ${t}`).toEqual(Array.from(s.hist!.counts));
      });
    } finally {
      await helper.close();
    }
  });
});

/** Runs `add`, then checks that some arrays went to the helper (new views) and all came back equal. */
async function countUsedHelper(add: () => Promise<void>, given: Float32Array[], originals: Float32Array[]): Promise<void> {
  const before = given.slice();
  await add();
  expect(given.some((a, i) => a !== before[i])).toBe(true);
  given.forEach((a, i) => expect(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(originals[i].buffer))).toBe(0));
}

describe('threshold search: GPU and CPU choose the same thresholds', () => {
  it('on every generated histogram', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const cases = thresholdCases();
    const g = await gpu.scheduler.run(thresholdSearchKernel, cases.map((c) => c.job));
    expect(gpu.scheduler.stats.kernels.threshold_search.gpuPasses).toBeGreaterThan(0);
    cases.forEach((c, i) => {
      expect(pickThreshold(c.job, g[i]), c.name).toBe(pickThreshold(c.job, thresholdSearchKernel.cpu(c.job)));
    });
  });
});

describe('calibration runs: batch from the activation budget, ranges reduced inside ONNX Runtime', async () => {
  const { collectActivationStats, batchForBudget, modelInput } = await import('../src/calibrate/calibrate.ts');
  const { OnnxModel } = await import('../src/onnx/model.ts');
  const { openDataset } = await import('../src/data/dataset.ts');
  const { activationTensors } = await import('../src/passes/quantize/static.ts');
  const { MNIST, MNIST_DATA } = await import('./helpers/models.ts');
  const model = OnnxModel.read(MNIST);
  const tensors = activationTensors(model, {});
  const dataset = await openDataset(`${MNIST_DATA}/train-images-idx3-ubyte`, modelInput(model));

  it('sizes the batch from the bytes one sample produces', async () => {
    const r = await collectActivationStats(model, tensors, { dataset, samples: 20, scheduler: cpu, activationBudgetBytes: 200_000 });
    // MNIST CNN activations (f32): input 1x28x28, conv1 16x28x28, pool 16x14x14, conv2 32x14x14,
    // pool 32x7x7 and its flattened copy (the Gemm input), fc1 128, logits 10.
    expect(r.activationBytesPerSample).toBe(4 * (784 + 16 * 28 * 28 + 16 * 14 * 14 + 32 * 14 * 14 + 2 * 32 * 7 * 7 + 128 + 10));
    expect(r.batch).toBe(Math.floor(200_000 / r.activationBytesPerSample));
    expect(r.samples).toBe(20);
    expect(batchForBudget(r.activationBytesPerSample, 2 ** 30)).toBe(32);
    expect(batchForBudget(10 * 2 ** 30, 2 ** 30)).toBe(1);
  });

  it('minmax ranges from ReduceMin/ReduceMax equal the ranges of the copied-out activations', async () => {
    const full = await collectActivationStats(model, tensors, { dataset, samples: 64, scheduler: cpu });
    const reduced = await collectActivationStats(model, tensors, { dataset, samples: 64, scheduler: cpu, rangesOnly: true });
    expect(full.mode).toBe('outputs');
    expect(reduced.mode).toBe('ort-reduce');
    expect([...reduced.stats.keys()]).toEqual([...full.stats.keys()]);
    for (const [name, s] of full.stats) {
      expect([reduced.stats.get(name)!.min, reduced.stats.get(name)!.max], name).toEqual([s.min, s.max]);
      expect(reduced.stats.get(name)!.count, name).toBe(s.count);
    }
  });

  it.each([99.99, 99, 90])('percentile %d from TopK in ONNX Runtime: the exact order statistic (every |x| sorted), within one bin below the histogram\'s answer', async (p) => {
    const { percentileFromLargest, percentileThreshold } = await import('../src/calibrate/methods.ts');
    const ort = await import('onnxruntime-node');
    const { sessionWithOutputs } = await import('../src/eval/session.ts');
    const { seededSample } = await import('../src/data/dataset.ts');
    // Three batches of unequal size (budget: 24 samples per batch after the one-sample probe).
    const o = { dataset, samples: 50, seed: 3, scheduler: cpu, activationBudgetBytes: 24 * 4 * (784 + 16 * 28 * 28 + 16 * 14 * 14 + 32 * 14 * 14 + 2 * 32 * 7 * 7 + 128 + 10) };
    const top = await collectActivationStats(model, tensors, { ...o, percentile: p });
    const hist = await collectActivationStats(model, tensors, o);
    expect(top.mode).toBe('ort-topk');
    expect(top.batch).toBe(24);
    // The oracle: every activation of the same samples copied out and sorted.
    const session = await sessionWithOutputs(model, [...top.stats.keys()]);
    const all = new Map<string, number[]>([...top.stats.keys()].map((k) => [k, []]));
    for (const i of seededSample(dataset.count, 50, 3)) {
      const out = await session.run({ [modelInput(model).name]: new ort.Tensor('float32', await dataset.load([i]), [1, ...dataset.sampleDims]) });
      for (const [k, v] of all) for (const x of out[k].data as Float32Array) v.push(Math.abs(x));
    }
    await session.release();
    for (const [name, s] of top.stats) {
      const sorted = all.get(name)!.sort((a, b) => a - b);
      const want = sorted[Math.ceil((p / 100) * sorted.length) - 1];
      const got = percentileFromLargest(s, p);
      expect(s.count, name).toBe(sorted.length);
      expect(got, name).toBe(want);
      const h = hist.stats.get(name)!;
      const edge = percentileThreshold(h.magnitudes(), h.binWidth(), p);
      expect(edge, name).toBeGreaterThanOrEqual(got);
      expect(edge - got, name).toBeLessThanOrEqual(h.binWidth());
      expect([s.min, s.max], name).toEqual([h.min, h.max]);
    }
    // Kept for 99.99: asking a lower percentile of the same stats is refused, naming both.
    if (p === 99.99) expect(() => percentileFromLargest(top.stats.values().next().value!, 99)).toThrow(/above the 99.99 percentile; the 99 percentile needs more/);
  });
});
