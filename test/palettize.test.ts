// Palettization: the exact 1-D k-means (against brute force), the numerics (palette sizes, zeros
// kept exact, unique storage, int8 LUTs), and the ONNX encoding: ONNX Runtime computes the same
// outputs with and without graph optimization, folds every decode node away at session creation,
// and the folded weights are exactly the palettized values the report measured.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { encodeModel, type ModelMsg } from '../src/onnx/proto.ts';
import { seededRandom } from '../src/random.ts';
import { kmeans1d, kmeans1dTable, kmeans1dWithZero, partitionCost, solvePartition } from '../src/passes/palettize/kmeans1d.ts';
import { DpPool, solvePartitions, workerScript } from '../src/passes/palettize/dp-pool.ts';
import { newPaletteTiming, palettizeWeights, type PaletteConfig } from '../src/passes/palettize/palettize.ts';
import { packPlane } from '../src/passes/palettize/encode.ts';
import type { PalettizeReport } from '../src/passes/palettize/pass.ts';
import { RecipeError } from '../src/errors.ts';
import { summarizeEncodings } from '../src/analysis/encodings.ts';
import { replaceFloatWeight } from '../src/onnx/model-edits.ts';
import { gpuScheduler } from './helpers/gpu.ts';
import { paletteCases } from './cases/kernel-cases.ts';
import { cpuTypeScript, paletteKernel, paletteReference } from '../src/kernels/palette.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-pal-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
const gpu = await gpuScheduler();
afterAll(() => {
  cpu.dispose();
  gpu.scheduler?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function gaussian(n: number, seed: number, sd = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * sd);
}

/** Every partition of n sorted points into at most k contiguous clusters. */
function bruteForce(values: Float64Array, weights: Float64Array, k: number, mustStartAt: number | null = null): number {
  const n = values.length;
  let best = Infinity;
  const rec = (starts: number[]) => {
    if (mustStartAt === null || (starts.includes(mustStartAt) && (mustStartAt + 1 >= n || starts.includes(mustStartAt + 1)))) best = Math.min(best, partitionCost({ values, weights }, starts));
    if (starts.length === k) return;
    for (let s = starts[starts.length - 1] + 1; s < n; s++) rec([...starts, s]);
  };
  rec([0]);
  return best;
}

describe('exact 1-D k-means', () => {
  it('matches brute force over every contiguous partition (random weighted points)', () => {
    const r = seededRandom(5);
    for (let trial = 0; trial < 60; trial++) {
      const n = 1 + Math.floor(r() * 9);
      const k = 1 + Math.floor(r() * 4);
      const values = Float64Array.from(new Set(Array.from({ length: n }, () => Math.round((r() - 0.5) * 40) / 4))).sort();
      const weights = Float64Array.from(values, () => 0.1 + r() * 5);
      const p = kmeans1d({ values, weights }, k);
      expect(p.starts.length).toBe(Math.min(k, values.length));
      expect(p.cost).toBeCloseTo(bruteForce(values, weights, k), 9);
      expect(partitionCost({ values, weights }, p.starts)).toBeCloseTo(p.cost, 9);
    }
  });

  it('matches brute force where optimal splits tie (equally spaced, equally weighted points: the Knuth bound must not skip a tied optimum)', () => {
    const r = seededRandom(6);
    for (let trial = 0; trial < 40; trial++) {
      const n = 2 + Math.floor(r() * 9);
      const k = 2 + Math.floor(r() * 4);
      const values = Float64Array.from({ length: n }, (_, i) => i);
      const weights = Float64Array.from(values, () => (trial % 2 ? 1 : 1 + Math.floor(r() * 3)));
      const p = kmeans1d({ values, weights }, k);
      expect(p.cost).toBeCloseTo(bruteForce(values, weights, k), 9);
      expect(partitionCost({ values, weights }, p.starts)).toBeCloseTo(p.cost, 9);
    }
  });

  it('the WebAssembly rows give the same table as the TypeScript loop: identical starts, centroids and cost', async () => {
    const { setCpuEngine, cpuEngine, wasmFor } = await import('../src/cpu/wasm-kernels.ts');
    const engine = wasmFor(1 << 20);
    expect(engine, 'the WebAssembly engine must load here').not.toBeNull();
    const initial = cpuEngine();
    const r = seededRandom(12);
    try {
      const sets: Array<{ values: Float64Array; weights: Float64Array }> = [];
      for (const n of [300, 2500, 20000]) {
        // Random gaps and weights; and equally spaced, equally weighted points (ties everywhere).
        let v = -1;
        sets.push({ values: Float64Array.from({ length: n }, () => (v += 1e-6 + r() * 1e-3)), weights: Float64Array.from({ length: n }, () => 1 + Math.floor(r() * 40)) });
        sets.push({ values: Float64Array.from({ length: n }, (_, i) => i - n / 2), weights: new Float64Array(n).fill(1) });
      }
      for (const pts of sets) {
        for (const k of [2, 16, 64, 256]) {
          setCpuEngine('js');
          const want = kmeans1d(pts, k);
          setCpuEngine('wasm');
          const before = engine!.calls.kmeans;
          const got = kmeans1d(pts, k);
          expect(engine!.calls.kmeans, `n ${pts.values.length} k ${k}: the WebAssembly rows ran`).toBeGreaterThan(before);
          expect(got.starts).toEqual(want.starts);
          expect(got.centroids).toEqual(want.centroids);
          expect(got.cost).toBe(want.cost);
        }
      }
    } finally {
      setCpuEngine(initial);
    }
  });

  it('the split from both ends, pruned by the coarse bound, finds the single full table\'s optimum (same partition where it is unique)', () => {
    const r = seededRandom(21);
    const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    const cases: Array<{ label: string; values: Float64Array; weights: Float64Array; unique: boolean }> = [];
    for (const n of [2048, 5000, 30000]) {
      // Random gaps and weights (a unique optimum), a two-mode mixture (dense and sparse regions:
      // the bound prunes unevenly), and equally spaced equal weights (ties everywhere).
      let v = 0;
      cases.push({ label: `gaps ${n}`, values: Float64Array.from({ length: n }, () => (v += 1e-6 + r() * 1e-3)), weights: Float64Array.from({ length: n }, () => 1 + Math.floor(r() * 40)), unique: true });
      const mix = Float64Array.from(new Set(Array.from({ length: 2 * n }, (_, i) => Math.round((i % 3 ? gauss() * 0.01 : 0.5 + gauss() * 0.2) * 1e6) / 1e6))).sort();
      cases.push({ label: `mixture ${mix.length}`, values: mix, weights: Float64Array.from(mix, () => 1 + Math.floor(r() * 5)), unique: true });
      cases.push({ label: `ties ${n}`, values: Float64Array.from({ length: n }, (_, i) => i), weights: new Float64Array(n).fill(1), unique: false });
    }
    for (const c of cases) {
      for (const k of [4, 16, 64, 256]) {
        const want = kmeans1dTable(c, k);
        const got = kmeans1d(c, k);
        expect(got.starts.length, `${c.label} k ${k}`).toBe(k);
        expect(Math.abs(partitionCost(c, got.starts) - got.cost)).toBeLessThanOrEqual(1e-9 * got.cost);
        expect(Math.abs(got.cost - want.cost), `${c.label} k ${k}: ${got.cost} vs ${want.cost}`).toBeLessThanOrEqual(1e-9 * want.cost);
        if (c.unique) expect(got.starts, `${c.label} k ${k}`).toEqual(want.starts);
      }
    }
  });

  it('worker threads solve the same programs as this thread (the compiled worker from dist/)', async (ctx) => {
    if (!workerScript()) return ctx.skip('dist/src/passes/palettize/dp-worker.js is not built (npm test builds it first)');
    const r = seededRandom(9);
    const problems = Array.from({ length: 7 }, (_, t) => {
      const values = Float64Array.from(new Set(Array.from({ length: 300 + 100 * t }, () => Math.round((r() - 0.5) * 4000) / 1000))).sort();
      const zero = values.indexOf(0);
      return { values, weights: Float64Array.from(values, () => 1 + Math.floor(r() * 9)), k: 4 + t, zero: t % 2 && zero >= 0 ? zero : null };
    });
    const pooled = await solvePartitions(problems, { threads: 3, minWork: 0 });
    expect(pooled.threads).toBe(3);
    expect(pooled.solved).toEqual(problems.map(solvePartition));
    // The process's pool: one instance; its warm worker takes problems from the shared counter
    // (retried: on a loaded machine this thread may take a whole round before the worker starts).
    const process = DpPool.shared()!;
    expect(DpPool.shared()).toBe(process);
    const many = Array.from({ length: 40 }, (_, t) => {
      const values = Float64Array.from({ length: 3000 }, (_, i) => Math.sinh((i - 1500 + t) / 400));
      return { values, weights: Float64Array.from(values, (_, i) => 1 + ((i * (t + 3)) % 7)), k: 16, zero: null };
    });
    const want = many.map(solvePartition);
    let byWorkers = 0;
    for (let round = 0; round < 6 && byWorkers === 0; round++) {
      const got = await process.solve(many, 0);
      expect(got.solved).toEqual(want);
      byWorkers = got.byWorkers;
    }
    expect(byWorkers, 'the worker solved some of the problems').toBeGreaterThan(0);
    await DpPool.closeShared();
    const again = DpPool.shared()!;
    expect(again).not.toBe(process);
    expect((await again.solve(many.slice(0, 4), 0)).solved).toEqual(want.slice(0, 4));
    // A pool started ahead (as the pass does) and shared by calls: this thread takes a share too.
    const pool = DpPool.start(2, 0)!;
    try {
      const inputs = [0, 1, 2].map((s) => ({ name: `w${s}`, data: gaussian(48 * 90, 30 + s, 0.05), rows: 48, inner: 90 }));
      const alone = await palettizeWeights(inputs, base, cpu);
      const timing = newPaletteTiming();
      const shared = await palettizeWeights(inputs, base, cpu, timing, { pool });
      expect(timing.threads).toBe(2);
      shared.forEach((r, i) => {
        expect(Array.from(r.indices)).toEqual(Array.from(alone[i].indices));
        expect(Array.from(r.lut)).toEqual(Array.from(alone[i].lut));
      });
      expect((await pool.solve(problems, 0)).solved).toEqual(problems.map(solvePartition));
    } finally {
      await pool.close();
    }
  });

  it('with a zero cluster: the best partition in which 0 stands alone', () => {
    const r = seededRandom(6);
    for (let trial = 0; trial < 40; trial++) {
      const raw = new Set(Array.from({ length: 2 + Math.floor(r() * 7) }, () => Math.round((r() - 0.5) * 40) / 4));
      raw.add(0);
      const values = Float64Array.from(raw).sort();
      const weights = Float64Array.from(values, () => 0.1 + r() * 5);
      const zero = values.indexOf(0);
      const k = 2 + Math.floor(r() * 3);
      const p = kmeans1dWithZero({ values, weights }, k, zero);
      const brute = bruteForce(values, weights, k, zero);
      if (brute === Infinity) {
        expect(p).toBeNull(); // 2 clusters cannot isolate 0 between negatives and positives
        continue;
      }
      if (!p) throw new Error('expected a partition');
      expect(p.centroids[p.starts.indexOf(zero)]).toBe(0);
      expect(p.starts.length).toBeLessThanOrEqual(k);
      expect(p.cost).toBeCloseTo(brute, 9);
    }
  });
});

const base: PaletteConfig = { bits: 4, mode: 'kmeans', groupSize: 0, perChannelScale: false, lutDtype: 'float32', keepZeros: 'auto' };

describe('palettization numerics', () => {
  it('at most 2^bits values per group; k-means beats a uniform grid; more bits, less error', async () => {
    const data = gaussian(64 * 72, 1, 0.05);
    const sq: Record<string, number> = {};
    for (const bits of [2, 4, 6] as const) {
      for (const mode of ['kmeans', 'uniform'] as const) {
        const [r] = await palettizeWeights([{ name: 'w', data, rows: 64, inner: 72 }], { ...base, bits, mode }, cpu);
        expect(new Set(r.decoded!).size).toBeLessThanOrEqual(2 ** bits);
        sq[`${mode}${bits}`] = r.sqnrDb;
      }
      expect(sq[`kmeans${bits}`]).toBeGreaterThan(sq[`uniform${bits}`]);
    }
    expect(sq.kmeans4).toBeGreaterThan(sq.kmeans2 + 8);
    expect(sq.kmeans6).toBeGreaterThan(sq.kmeans4 + 8);
  });

  it('grouped channels: one LUT per group, the last group smaller when the count does not divide', async () => {
    const data = gaussian(10 * 50, 2);
    const [r] = await palettizeWeights([{ name: 'w', data, rows: 10, inner: 50 }], { ...base, bits: 2, groupSize: 4 }, cpu);
    expect([r.groups, r.rowsPerGroup, r.lastGroupRows]).toEqual([3, 4, 2]);
    for (let g = 0; g < 3; g++) expect(new Set(r.decoded!.subarray(g * 200, Math.min(500, (g + 1) * 200))).size).toBeLessThanOrEqual(4);
    const [t] = await palettizeWeights([{ name: 'w', data, rows: 10, inner: 50 }], { ...base, bits: 2 }, cpu);
    expect(r.sqnrDb).toBeGreaterThan(t.sqnrDb);
  });

  it('a group with no more distinct values than the palette is stored exactly (unique)', async () => {
    const data = Float32Array.from({ length: 3000 }, (_, i) => [0.125, -0.3, 7.1e-3, 0][i % 4]);
    const [r] = await palettizeWeights([{ name: 'w', data, rows: 30, inner: 100 }], { ...base, bits: 2 }, cpu);
    expect(r.mode).toBe('unique');
    expect(Array.from(r.decoded!)).toEqual(Array.from(data));
    await expect(palettizeWeights([{ name: 'w', data: gaussian(3000, 3), rows: 30, inner: 100 }], { ...base, bits: 2, mode: 'unique' }, cpu)).rejects.toThrow(/mode 'unique' needs at most 4 distinct values per group, but w \(group 0\) has more/);
  });

  it('sparse weights: exact zeros decode to exactly 0 (a cluster of their own)', async () => {
    const data = gaussian(4096, 4);
    for (let i = 0; i < data.length; i += 2) data[i] = 0;
    for (const mode of ['kmeans', 'uniform'] as const) {
      const [r] = await palettizeWeights([{ name: 'w', data, rows: 64, inner: 64 }], { ...base, bits: 3, mode }, cpu);
      expect(r.zeroCluster).toBe(true);
      for (let i = 0; i < data.length; i += 2) expect(r.decoded![i]).toBe(0);
    }
  });

  it('sensitivity weights: the weighted palette has the lower weighted error (the weights that matter are placed better)', async () => {
    const data = gaussian(4096, 10, 0.1);
    // The tails matter (as weights on loud inputs would): unweighted k-means spends its levels on the bulk.
    const sensitivity = Float64Array.from(data, (x) => (Math.abs(x) > 0.15 ? 100 : 0.01));
    const weightedError = (h: Float32Array) => data.reduce((a, x, i) => a + sensitivity[i] * (x - h[i]) ** 2, 0);
    const [plain] = await palettizeWeights([{ name: 'w', data, rows: 64, inner: 64 }], { ...base, bits: 2 }, cpu);
    const [weighted] = await palettizeWeights([{ name: 'w', data, rows: 64, inner: 64, sensitivity }], { ...base, bits: 2 }, cpu);
    expect(weightedError(weighted.decoded!)).toBeLessThan(0.9 * weightedError(plain.decoded!));
    expect(weighted.sqnrDb).toBeLessThan(plain.sqnrDb); // unweighted SQNR pays for it
  });

  it('per-channel scale and int8 LUT decode as stored (row scale x LUT code)', async () => {
    const data = gaussian(16 * 40, 7);
    for (let i = 0; i < 40; i++) data[i] *= 30; // one channel far larger than the rest
    const [plain] = await palettizeWeights([{ name: 'w', data, rows: 16, inner: 40 }], { ...base, bits: 3 }, cpu);
    const [scaled] = await palettizeWeights([{ name: 'w', data, rows: 16, inner: 40 }], { ...base, bits: 3, perChannelScale: true }, cpu);
    expect(scaled.sqnrDb).toBeGreaterThan(plain.sqnrDb);
    const [i8] = await palettizeWeights([{ name: 'w', data, rows: 16, inner: 40 }], { ...base, bits: 3, perChannelScale: true, lutDtype: 'int8' }, cpu);
    expect(i8.lutInt8).toBeDefined();
    expect(i8.decoded![5]).toBe(Math.fround(i8.lutInt8![i8.indices[5]] * i8.rowScale![0]));
    expect(i8.sqnrDb).toBeGreaterThan(scaled.sqnrDb - 1);
  });

  it('the GPU histogram and assignment give the CPU path\'s indices and LUT exactly', async (ctx) => {
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const inputs = [{ name: 'a', data: gaussian(70000, 8), rows: 100, inner: 700 }, { name: 'b', data: gaussian(33 * 65, 9), rows: 33, inner: 65 }];
    for (const cfg of [{ ...base, bits: 4 as const }, { ...base, bits: 3 as const, groupSize: 8 }, { ...base, bits: 8 as const, mode: 'uniform' as const }]) {
      const [c, g] = [await palettizeWeights(inputs, cfg, cpu), await palettizeWeights(inputs, cfg, gpu.scheduler)];
      for (let i = 0; i < inputs.length; i++) {
        expect(Array.from(g[i].indices)).toEqual(Array.from(c[i].indices));
        expect(Array.from(g[i].lut)).toEqual(Array.from(c[i].lut));
      }
    }
  });

  it('an assignment job with boundaries out of order within a group is refused, naming the group', async () => {
    const data = gaussian(20, 4);
    const job = { kind: 'assign' as const, data, groupLength: 10, mult: 1, boundaries: Uint32Array.of(10, 20, 30, 40000, 3000, 50000), perGroup: 3 };
    await expect(cpu.run(paletteKernel, [job])).rejects.toThrow('palette: boundaries must ascend within a group; group 1 has 40000 before 3000');
    // Equal boundaries (empty clusters) and a drop between groups are fine.
    await expect(cpu.run(paletteKernel, [{ ...job, boundaries: Uint32Array.of(10, 10, 65536, 5, 6, 7) }])).resolves.toHaveLength(1);
  });

  it('the fast CPU paths (TypeScript integer keys; WebAssembly) equal the per-weight definition on every kernel case', () => {
    for (const c of paletteCases()) {
      const slow = paletteReference(c.job);
      for (const fast of [cpuTypeScript(c.job), paletteKernel.cpu(c.job)]) expect(Array.from(fast.counts ?? fast.indices!), c.name).toEqual(Array.from(slow.counts ?? slow.indices!));
    }
  });

  it('the WebAssembly finish (cluster sums, decode with error metrics) gives the TypeScript loops\' LUTs, weights and metrics exactly', async () => {
    const { setCpuEngine, cpuEngine, wasmFor } = await import('../src/cpu/wasm-kernels.ts');
    const engine = wasmFor(1 << 20);
    expect(engine, 'the WebAssembly engine must load here').not.toBeNull();
    const initial = cpuEngine();
    const data = gaussian(37 * 61, 21, 0.07);
    for (let i = 0; i < 61; i++) data[i] *= 12; // one loud channel
    try {
      for (const cfg of [{ ...base }, { ...base, bits: 3 as const, groupSize: 8 }, { ...base, bits: 4 as const, perChannelScale: true, lutDtype: 'int8' as const }, { ...base, bits: 6 as const, mode: 'uniform' as const }]) {
        const inputs = [{ name: 'w', data, rows: 37, inner: 61 }];
        setCpuEngine('js');
        const [want] = await palettizeWeights(inputs, cfg, cpu);
        setCpuEngine('wasm', { minElements: 0 });
        const before = engine!.calls.paletteFinish;
        const [got] = await palettizeWeights(inputs, cfg, cpu);
        // kmeans: sums and decode; uniform: decode only.
        expect(engine!.calls.paletteFinish - before, JSON.stringify(cfg)).toBe(cfg.mode === 'uniform' ? 1 : 2);
        expect(Array.from(got.lut)).toEqual(Array.from(want.lut));
        expect(Array.from(got.decoded!)).toEqual(Array.from(want.decoded!));
        expect([got.sqnrDb, got.cosine, got.mse, got.maxAbsError]).toEqual([want.sqnrDb, want.cosine, want.mse, want.maxAbsError]);
        // Without the decoded copy (what the pass asks for): the metrics come from cluster
        // statistics where no per-row scale applies — the same LUT, the same metrics to rounding,
        // identical in both engines.
        const lean: Array<Awaited<ReturnType<typeof palettizeWeights>>[number]> = [];
        for (const e of ['js', 'wasm'] as const) {
          setCpuEngine(e, { minElements: 0 });
          const [r] = await palettizeWeights(inputs, cfg, cpu, undefined, { decoded: false });
          expect(r.decoded).toBeNull();
          expect(Array.from(r.lut), e).toEqual(Array.from(want.lut));
          expect(r.maxAbsError, e).toBe(want.maxAbsError);
          for (const [a, b] of [[r.sqnrDb, want.sqnrDb], [r.cosine, want.cosine], [r.mse, want.mse]]) expect(Math.abs(a - b), `${e} ${a} vs ${b}`).toBeLessThanOrEqual(1e-9 * Math.abs(b));
          lean.push(r);
        }
        expect([lean[1].sqnrDb, lean[1].cosine, lean[1].mse]).toEqual([lean[0].sqnrDb, lean[0].cosine, lean[0].mse]);
      }
    } finally {
      setCpuEngine(initial, { minElements: 256 });
    }
  });

  it('bit planes pack 8 / p fields per byte, low field first', () => {
    expect(Array.from(packPlane(Uint8Array.of(1, 2, 3, 0, 1), 0, 2))).toEqual([0b00111001, 0b01]);
    expect(Array.from(packPlane(Uint8Array.of(5, 6), 2, 1))).toEqual([0b11]);
    expect(Array.from(packPlane(Uint8Array.of(0x1f, 0x2e, 0x3d), 0, 4))).toEqual([0xef, 0x0d]);
    expect(Array.from(packPlane(Uint8Array.of(1, 0, 1, 1, 0, 0, 0, 1, 1), 0, 1))).toEqual([0b10001101, 0b1]);
  });

  it('4-bit planes packed a word at a time equal the field-by-field packing (every length mod 4, shifts 0 and 2, unaligned views)', () => {
    const r = seededRandom(31);
    for (const n of [1, 2, 3, 4, 5, 7, 8, 9, 1001, 4096, 4099]) {
      const backing = Uint8Array.from({ length: n + 1 }, () => Math.floor(r() * 64));
      for (const indices of [backing.subarray(0, n), backing.subarray(1)]) {
        for (const shift of [0, 2]) {
          const want = new Uint8Array(Math.ceil(n / 2));
          for (let i = 0; i < n; i++) want[i >> 1] |= ((indices[i] >> shift) & 15) << ((i & 1) * 4);
          expect(Array.from(packPlane(indices, shift, 4)), `n ${n} shift ${shift} offset ${indices.byteOffset}`).toEqual(Array.from(want));
        }
      }
    }
  });
});

/** x -> Conv(W[5,3,3,3]) -> Reshape -> MatMul(W[180,40]) -> MatMul(W[40,24]) -> Gemm(W[7,24], transB) -> y. */
function testModel(opset: number): ModelMsg {
  const b = new GraphBuilder('pal');
  const x = b.input('x', [2, 3, 6, 6]);
  const c = b.op('Conv', [x, b.init('conv.weight', [5, 3, 3, 3], gaussian(135, 11, 0.3))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv');
  const flat = b.op('Reshape', [c, b.int64s('shape', [2, 5 * 36])]);
  const h = b.op('MatMul', [flat, b.init('proj.weight', [180, 40], gaussian(180 * 40, 12, 0.1))], {}, 'proj');
  const h2 = b.op('MatMul', [h, b.init('mm.weight', [40, 24], gaussian(40 * 24, 13, 0.2))], {}, 'mm');
  b.node('Gemm', [h2, b.init('gemm.weight', [7, 24], gaussian(7 * 24, 14, 0.2)), b.init('gemm.bias', [7], gaussian(7, 16, 0.1))], { transB: 1 }, { outputs: ['y'], name: 'gemm' });
  b.output('y', [2, 7]);
  return b.build(opset, [], opset >= 21 ? 10 : 8);
}

const input = { x: new ort.Tensor('float32', gaussian(2 * 3 * 36, 15), [2, 3, 6, 6]) };

async function run(path: string, level: 'disabled' | 'all'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: level, intraOpNumThreads: 1 });
  const y = (await s.run(input)).y.data as Float32Array;
  await s.release();
  return y;
}

function sqnr(x: Float32Array, h: Float32Array): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    e += (x[i] - h[i]) ** 2;
    s += x[i] ** 2;
  }
  return 10 * Math.log10(s / e);
}

const encodings: Array<[string, number, Partial<PaletteConfig> & { bits: PaletteConfig['bits'] }]> = [
  ['1-bit per tensor', 13, { bits: 1 }],
  ['2-bit grouped (3 channels: the 5-channel conv ends in a group of 2)', 13, { bits: 2, groupSize: 3 }],
  ['3-bit planes 2+1', 13, { bits: 3 }],
  ['3-bit planes, opset 9 (no BitShift: Floor/Sub unpacking, Slice by attributes)', 9, { bits: 3 }],
  ['6-bit grouped, opset 9', 9, { bits: 6, groupSize: 4 }],
  ['4-bit planes, opset 13', 13, { bits: 4 }],
  ['4-bit UINT4, opset 21, grouped, per-channel scale', 21, { bits: 4, groupSize: 2, perChannelScale: true }],
  ['6-bit planes 4+2, int8 LUT', 13, { bits: 6, lutDtype: 'int8' }],
  ['8-bit uniform, int8 LUT', 13, { bits: 8, mode: 'uniform', lutDtype: 'int8' }],
  ['2-bit uniform grouped, keep zeros off', 13, { bits: 2, mode: 'uniform', groupSize: 2, keepZeros: 'off' }],
];

describe.each(encodings)('palettized ONNX: %s', (label, opset, cfg) => {
  const src = join(dir, `${label.replace(/\W+/g, '-')}.onnx`);
  const out = src.replace('.onnx', '-pal.onnx');
  it('decodes at run time to what it folds to at load, folds every decode node, and folds to the measured values', async () => {
    writeFileSync(src, encodeModel(testModel(opset)));
    const report = await compressModel(src, out, { passes: [{ pass: 'palettize', options: { ...cfg, minElements: 0 } }], scheduler: cpu, force: true });
    const pal = report.passes[0].report as PalettizeReport;
    // Per tensor, a weight smaller than its palette stays float (a LUT of all its values would not shrink it).
    const sizes: Record<string, number> = { 'conv.weight': 135, 'gemm.weight': 168, 'mm.weight': 960, 'proj.weight': 7200 };
    const expected = Object.keys(sizes).filter((n) => cfg.groupSize || sizes[n] >= 2 ** cfg.bits);
    expect(pal.tensors.map((t) => t.name).sort()).toEqual(expected);
    expect(report.skipped.filter((x) => x.reason.includes('smaller than its')).map((x) => x.name).sort()).toEqual(Object.keys(sizes).filter((n) => !expected.includes(n)));
    expect(report.totals.modelBytesAfter).toBeLessThan(report.totals.modelBytesBefore);
    // inspect reads the palettes back from the graph (and counts none of their index casts as int8 folding).
    expect(summarizeEncodings(OnnxModel.read(out))).toMatchObject({ palettized: expected.length, folded: 0, dequantizedWeights: 0 });
    const opt = `${out}.opt.onnx`;
    const s = await ort.InferenceSession.create(out, { optimizedModelFilePath: opt, graphOptimizationLevel: 'basic' });
    await s.release();
    const folded = OnnxModel.read(opt);
    expect(folded.msg.graph!.node.map((n) => n.opType).sort()).toEqual(['Conv', 'Gemm', 'MatMul', 'MatMul', 'Reshape']);
    // The float model holding the folded weights computes what the palettized model computes, with
    // the decode chain run at every inference (no optimization) and folded at load (all).
    const original = OnnxModel.read(src);
    const withFolded = OnnxModel.read(src);
    for (const t of pal.tensors) replaceFloatWeight(withFolded, t.name, t.shape, folded.tensorFloat32(folded.graph.weights.get(t.name)!.tensor));
    const ref = join(dir, `${label.replace(/\W+/g, '-')}-ref.onnx`);
    writeFileSync(ref, withFolded.toBytes());
    for (const level of ['disabled', 'all'] as const) expect(Array.from(await run(out, level))).toEqual(Array.from(await run(ref, level)));
    for (const t of pal.tensors) {
      const w = folded.tensorFloat32(folded.graph.weights.get(t.name)!.tensor);
      const x = original.tensorFloat32(original.graph.weights.get(t.name)!.tensor);
      // One palette per group (per channel once each channel has its own scale).
      expect(new Set(w).size).toBeLessThanOrEqual((cfg.perChannelScale ? Math.max(...t.shape) : t.groups) * 2 ** cfg.bits);
      expect(sqnr(x, w)).toBeCloseTo(t.sqnrDb, 6);
    }
  });
});

describe('palettize refuses bad input with the value and the allowed ones', () => {
  const src = join(dir, 'bad.onnx');
  it('bits, mode, group size, LUT dtype, a palette larger than its group, an already quantized model', async () => {
    writeFileSync(src, encodeModel(testModel(13)));
    const go = (options: Record<string, unknown>, file = src) => compressModel(file, join(dir, 'bad-out.onnx'), { passes: [{ pass: 'palettize', options: { minElements: 0, ...options } as never }], scheduler: cpu, force: true });
    await expect(go({ bits: 5 })).rejects.toThrow('palettize: bits 5 is not allowed (allowed: 1, 2, 3, 4, 6, 8)');
    await expect(go({ bits: 4, mode: 'lloyd' })).rejects.toThrow("mode 'lloyd' is not allowed (allowed: kmeans, uniform, unique)");
    await expect(go({ bits: 4, groupSize: -2 })).rejects.toThrow('group size -2 is not allowed');
    await expect(go({ bits: 4, lutDtype: 'int4' })).rejects.toThrow("LUT dtype 'int4' is not allowed (allowed: float32, int8)");
    // A group smaller than the palette keeps the weight float (with the reason); when no weight can hold it, the run is refused.
    await expect(go({ bits: 8, groupSize: 1 })).rejects.toThrow(/palettize: no weight can hold its palette; 'conv.weight': a group of 1 channel\(s\) holds 27 weights, fewer than the 256-entry palette of 8 bits; use fewer bits or a larger group size/);
    // A decoded weight over ONNX Runtime's folding cap gets a warning (the cap lowered to see it).
    const capped = await go({ bits: 4, foldLimitBytes: 4000 });
    expect((capped.passes[0].report as PalettizeReport).warnings).toEqual([
      "proj.weight: decodes to 28800 bytes, over ONNX Runtime's constant-folding cap of 4000 bytes (1 GiB from ORT 1.27): its decode chain would run at every inference",
    ]);
    const partial = await go({ bits: 6, groupSize: 2 });
    expect(partial.skipped.find((x) => x.name === 'conv.weight')?.reason).toBe('a group of 2 channel(s) holds 54 weights, fewer than the 64-entry palette of 6 bits; use fewer bits or a larger group size');
    expect((partial.passes[0].report as PalettizeReport).tensors.map((t) => t.name).sort()).toEqual(['mm.weight', 'proj.weight']);
    await expect(go({ bits: 4 })).resolves.toBeDefined();
    const quantized = join(dir, 'bad-q.onnx');
    await compressModel(src, quantized, { scheduler: cpu, force: true, recipe: (await import('../src/recipe/recipe.ts')).parseRecipe({ minElements: 0, format: 'qdq' }) });
    await expect(go({ bits: 4 }, quantized)).rejects.toThrow(RecipeError);
    await expect(go({ bits: 4 }, quantized)).rejects.toThrow(/no float weight to palettize; '.*' \(.*\) is already compressed \(decoded by DequantizeLinear\)/);
  });
});
