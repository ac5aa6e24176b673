// The CPU path's WebAssembly SIMD engine against the TypeScript reference (the oracle), on the
// kernel contract's generated cases plus larger tensors: integer outputs bit-identical, float
// statistics within tolerances.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeKernel, type QuantizeJob } from '../src/kernels/quantize.ts';
import { rangeKernel, type RangeJob } from '../src/kernels/range.ts';
import { dequantizeKernel, type DequantizeJob } from '../src/kernels/dequantize.ts';
import { computeQuantParams } from '../src/kernels/qparams.ts';
import type { Granularity } from '../src/kernels/layout.ts';
import { cpuEngine, setCpuEngine, wasmFor } from '../src/cpu/wasm-kernels.ts';
import { comparators } from './cases/compare.ts';
import { dequantizeCases, histogramCases, paletteCases, quantizeCases, rangeCases, type NamedJob } from './cases/kernel-cases.ts';
import { histogramKernel } from '../src/kernels/histogram.ts';
import { makeData, type DataKind } from './cases/random.ts';
import { paletteKernel, paletteReference, type PaletteJob } from '../src/kernels/palette.ts';

const initial = cpuEngine();
afterAll(() => setCpuEngine(initial, { minElements: 256 }));

function both<J, R>(cpu: (j: J) => R, job: J): [R, R] {
  setCpuEngine('js');
  const want = cpu(job);
  setCpuEngine('wasm', { minElements: 0 });
  const got = cpu(job);
  return [got, want];
}

/** Larger tensors: long runs, channels on the last axis (per-lane parameters), ragged tails. */
function bigQuantizeCases(): NamedJob<QuantizeJob>[] {
  const out: NamedJob<QuantizeJob>[] = [];
  const shapes: Array<[number[], Granularity]> = [
    [[64, 3, 3, 3], { kind: 'channel', axis: 0 }],
    [[1568, 128], { kind: 'channel', axis: 1 }],
    [[37, 1001], { kind: 'channel', axis: 1 }],
    [[5, 7, 11, 13], { kind: 'channel', axis: 2 }],
    [[100003], { kind: 'tensor' }],
  ];
  let seed = 900;
  for (const [shape, granularity] of shapes) {
    for (const kind of ['random', 'special', 'denormal', 'wide', 'ties'] as DataKind[]) {
      const data = makeData(shape.reduce((a, b) => a * b, 1), kind, seed++);
      for (const signed of [true, false]) {
        const r = rangeKernel.cpu({ data, shape, granularity });
        const params = computeQuantParams(r.min, r.max, { bits: 8, signed, symmetric: signed, granularity });
        out.push({ name: `${kind} [${shape}] ${granularity.kind} ${signed ? 'int8' : 'uint8'}`, job: { data, shape, granularity, bits: 8, signed, params } });
      }
    }
  }
  return out;
}

describe('WebAssembly SIMD engine vs the TypeScript reference', () => {
  it('the module loads here (Node has WebAssembly SIMD)', () => {
    setCpuEngine('wasm', { minElements: 0 });
    expect(wasmFor(16)).not.toBeNull();
  });

  const quantize = [...quantizeCases(), ...bigQuantizeCases()];
  it(`quantize: ${quantize.length} cases, codes bit-identical`, () => {
    const before = wasmFor(16)!.calls.quantize8;
    for (const { name, job } of quantize) {
      const [got, want] = both(quantizeKernel.cpu, job);
      expect(comparators.quantize(got, want), name).toBeNull();
    }
    // Every 8-bit channel-mode case went through WebAssembly (4-bit and blocks use the JS loop).
    expect(wasmFor(16)!.calls.quantize8 - before).toBe(quantize.filter(({ job }) => job.bits === 8 && job.granularity.kind !== 'block' && job.data.length > 0).length);
  });

  /** 4-bit codes and blocks beyond the generated cases: chunk boundaries (1 Mi elements) inside rows, ragged blocks, odd counts. */
  function bigGroupCases(): NamedJob<QuantizeJob>[] {
    const out: NamedJob<QuantizeJob>[] = [];
    const shapes: Array<[number[], Granularity, 4 | 8]> = [
      [[1100, 1001], { kind: 'block', axis: 0, blockSize: 32 }, 4],
      [[1100, 1001], { kind: 'block', axis: 1, blockSize: 32 }, 4],
      [[1100, 1001], { kind: 'channel', axis: 1 }, 4],
      [[333, 3, 3, 3], { kind: 'channel', axis: 0 }, 4],
      [[100003], { kind: 'tensor' }, 4],
      [[257, 96], { kind: 'block', axis: 1, blockSize: 16 }, 8],
      [[64, 7, 5], { kind: 'block', axis: 1, blockSize: 4 }, 8],
    ];
    let seed = 1900;
    for (const [shape, granularity, bits] of shapes) {
      for (const kind of ['random', 'special', 'denormal', 'ties'] as DataKind[]) {
        const data = makeData(shape.reduce((a, b) => a * b, 1), kind, seed++);
        for (const signed of [true, false]) {
          const r = rangeKernel.cpu({ data, shape, granularity });
          const params = computeQuantParams(r.min, r.max, { bits, signed, symmetric: signed, granularity });
          out.push({ name: `${kind} [${shape}] ${granularity.kind} int${bits} ${signed ? 'signed' : 'unsigned'}`, job: { data, shape, granularity, bits, signed, params } });
        }
      }
    }
    return out;
  }

  const grouped = [...quantize.filter(({ job }) => job.bits === 4 || job.granularity.kind === 'block'), ...bigGroupCases()];
  it(`quantize 4-bit codes and blocks: ${grouped.length} cases, codes bit-identical, error sums within tolerance`, () => {
    setCpuEngine('wasm', { minElements: 0 });
    const before = wasmFor(16)!.calls.quantizeGroups;
    for (const { name, job } of grouped) {
      const [got, want] = both(quantizeKernel.cpu, job);
      expect(comparators.quantize(got, want), name).toBeNull();
      const [fused, reference] = both(quantizeKernel.cpu, { ...job, errorStats: true });
      expect(comparators.quantize(fused, want), name).toBeNull();
      expect(comparators.dequantize({ values: null, tensor: fused.error!, channels: [] }, { values: null, tensor: reference.error!, channels: [] }), name).toBeNull();
    }
    // Each case twice (codes alone, then with the error sums), every one on the engine.
    expect(wasmFor(16)!.calls.quantizeGroups - before).toBe(2 * grouped.filter(({ job }) => job.data.length > 0).length);
  });

  it('quantize with errorStats: the fused pass gives the codes and the dequantize kernel\'s per-tensor error', () => {
    setCpuEngine('wasm', { minElements: 0 });
    const before = wasmFor(16)!.calls.quantize8Stats;
    const cases = quantize.filter(({ job }) => job.bits === 8 && job.granularity.kind !== 'block' && job.data.length > 0);
    for (const { name, job } of cases) {
      const fused = quantizeKernel.cpu({ ...job, errorStats: true });
      setCpuEngine('js');
      const codes = quantizeKernel.cpu(job).codes;
      const want = dequantizeKernel.cpu({ codes, shape: job.shape, granularity: job.granularity, bits: 8, signed: job.signed, params: job.params, original: job.data, values: false, statsAxis: null });
      setCpuEngine('wasm', { minElements: 0 });
      expect(comparators.quantize(fused, { codes }), name).toBeNull();
      expect(comparators.dequantize({ values: null, tensor: fused.error!, channels: [] }, { values: null, tensor: want.tensor, channels: [] }), name).toBeNull();
    }
    // Every case takes the fused pass, channels on the last axis (per-lane parameters) included.
    expect(wasmFor(16)!.calls.quantize8Stats - before).toBe(cases.length);
  });

  const rangeWithMoments: NamedJob<RangeJob>[] = [...rangeCases(), ...[...bigQuantizeCases(), ...bigGroupCases().filter(({ job }) => job.granularity.kind === 'block' && job.signed)]
    .map(({ name, job }) => ({ name, job: { data: job.data, shape: job.shape, granularity: job.granularity } }))];
  // Without moments (as the passes ask for ranges) the engine takes its fast path over normal values.
  const range = [...rangeWithMoments, ...rangeWithMoments.map(({ name, job }) => ({ name: `${name} no moments`, job: { ...job, moments: false } }))];
  it(`range: ${range.length} cases, min/max/absmax/counts bit-identical, moments within tolerance`, () => {
    const before = wasmFor(16)!.calls.range;
    for (const { name, job } of range) {
      const [got, want] = both(rangeKernel.cpu, job);
      expect(comparators.range(got, want), name).toBeNull();
    }
    // Blocks go through the engine without moments (as the passes ask for them).
    expect(wasmFor(16)!.calls.range - before).toBe(range.filter(({ job }) => (job.granularity.kind !== 'block' || job.moments === false) && job.data.length > 0).length);
    expect(range.filter(({ job }) => job.granularity.kind === 'block' && job.moments === false && job.shape.length > 1 && job.granularity.axis === 0).length).toBeGreaterThan(0);
  });

  const hist = [...histogramCases(), ...bigQuantizeCases().flatMap(({ name, job }, i) => [
    { name: `${name} hist`, job: { data: job.data, lo: -1.5, hi: 2, bins: 2048 } },
    { name: `${name} hist onto`, job: { data: job.data, lo: -(i + 1), hi: i + 1, bins: 100, initial: histogramKernel.cpu({ data: job.data.subarray(0, 50), lo: -(i + 1), hi: i + 1, bins: 100 }) } },
  ])];
  it(`histogram: ${hist.length} cases, counts and min/max bit-identical`, () => {
    const before = wasmFor(16)!.calls.histogram;
    for (const { name, job } of hist) {
      const [got, want] = both(histogramKernel.cpu, job);
      expect(comparators.histogram(got, want), name).toBeNull();
    }
    expect(wasmFor(16)!.calls.histogram - before).toBe(hist.filter(({ job }) => job.data.length > 0).length);
  });

  const dequant: NamedJob<DequantizeJob>[] = [
    ...dequantizeCases().map(({ name, job }) => ({ name, job: { ...job, values: false } })),
    ...bigQuantizeCases().flatMap(({ name, job }) => [null, undefined].map((statsAxis) => ({
      name: `${name} stats ${statsAxis === null ? 'tensor' : 'channel'}`,
      job: { codes: quantizeKernel.cpu(job).codes, shape: job.shape, granularity: job.granularity, bits: 8 as const, signed: job.signed, params: job.params, original: job.data, values: false, statsAxis },
    }))),
  ];
  it(`dequantize error statistics: ${dequant.length} cases within tolerance, counts exact`, () => {
    const before = wasmFor(16)!.calls.dequantStats8;
    for (const { name, job } of dequant) {
      const [got, want] = both(dequantizeKernel.cpu, job);
      expect(comparators.dequantize(got, want), name).toBeNull();
    }
    // Eligible: 8-bit channel-mode codes with originals, statistics per tensor or along the
    // quantization channels (channels on the last axis included).
    const eligible = dequant.filter(({ job }) => {
      if (job.bits !== 8 || !job.original || job.granularity.kind === 'block' || job.original.length === 0) return false;
      return job.statsAxis === undefined || job.statsAxis === null || job.granularity.kind === 'tensor' || job.statsAxis === job.granularity.axis;
    }).length;
    expect(dequant.some(({ job }) => job.granularity.kind === 'channel' && job.statsAxis === undefined && job.granularity.axis === job.shape.length - 1 && job.shape[job.shape.length - 1] > 1)).toBe(true);
    expect(wasmFor(16)!.calls.dequantStats8 - before).toBe(eligible);
  });
});

describe('inputs resident in the engine memory (read there by the passes) are processed in place', () => {
  it('quantize, range, histogram and error sums give the same results in place as copied in', async () => {
    const { wasmEngine } = await import('../src/cpu/wasm-kernels.ts');
    setCpuEngine('wasm', { minElements: 0 });
    const engine = wasmEngine()!;
    for (const { name, job } of bigQuantizeCases().slice(0, 12)) {
      await engine.pin(job.data.length * 4, async () => {
        const resident = engine.residentF32(job.data.length);
        resident.set(job.data);
        const before = engine.resident;
        const inPlace = { ...job, data: resident };
        expect(comparators.quantize(quantizeKernel.cpu(inPlace), quantizeKernel.cpu(job)), name).toBeNull();
        expect(comparators.range(rangeKernel.cpu({ data: resident, shape: job.shape, granularity: job.granularity }), rangeKernel.cpu({ data: job.data, shape: job.shape, granularity: job.granularity })), name).toBeNull();
        expect(comparators.histogram(histogramKernel.cpu({ data: resident, lo: -2, hi: 2, bins: 512 }), histogramKernel.cpu({ data: job.data, lo: -2, hi: 2, bins: 512 })), name).toBeNull();
        const codes = quantizeKernel.cpu(job).codes;
        const dj = { codes, shape: job.shape, granularity: job.granularity, bits: 8 as const, signed: job.signed, params: job.params, values: false, statsAxis: null };
        expect(comparators.dequantize(dequantizeKernel.cpu({ ...dj, original: resident }), dequantizeKernel.cpu({ ...dj, original: job.data })), name).toBeNull();
        expect(engine.resident - before).toBe(4);
      });
    }
  });

  it('a kernel whose scratch does not fit pinned memory falls back to TypeScript with the same result', async () => {
    const { wasmEngine } = await import('../src/cpu/wasm-kernels.ts');
    setCpuEngine('wasm', { minElements: 0 });
    const engine = wasmEngine()!;
    const { job } = bigQuantizeCases()[0];
    const want = quantizeKernel.cpu(job);
    await engine.pin(0, async () => {
      // Fill the pinned memory: nothing is left for the kernel's scratch.
      for (const size of [1 << 20, 1 << 16, 1 << 12, 16]) while (engine.alloc(size) >= 0);
      const before = engine.calls.quantize8;
      expect(comparators.quantize(quantizeKernel.cpu(job), want)).toBeNull();
      expect(engine.calls.quantize8).toBe(before);
    });
  });
});

describe('palette keys in WebAssembly', () => {
  // Keys bit-identical to the per-weight definition (paletteKey; boundary search for the
  // assignment): generated cases, and gaussian weights scaled into the half-subnormal range, the
  // normal range and overflow, with specials, denormals and exact ties mixed in.
  it('histogram and assignment equal the per-weight definition, groups and ragged tails included', () => {
    const jobs: PaletteJob[] = paletteCases().map((c) => c.job);
    let seed = 40;
    for (const n of [1, 7, 4099, 30_011]) {
      for (const kind of ['random', 'special', 'denormal', 'wide', 'ties'] as DataKind[]) {
        const data = makeData(n, kind, seed++);
        for (const mult of [2 ** -20, 1, 8, 2 ** 14, 2 ** 40]) {
          const groupLength = Math.max(1, Math.ceil(n / 3));
          jobs.push({ kind: 'histogram', data, groupLength, mult });
          const groups = Math.ceil(n / groupLength);
          const boundaries = new Uint32Array(groups * 15);
          for (let g = 0; g < groups; g++) for (let b = 0; b < 15; b++) boundaries[g * 15 + b] = 4096 * (b + 1) + ((g * 977 + b * 131) % 2000);
          jobs.push({ kind: 'assign', data, groupLength, mult, boundaries, perGroup: 15 });
        }
      }
    }
    setCpuEngine('wasm', { minElements: 0 });
    const before = wasmFor(16)!.calls.palette;
    for (const job of jobs) {
      const got = paletteKernel.cpu(job);
      const want = paletteReference(job);
      expect(Array.from(got.counts ?? got.indices!), `${job.kind} n=${job.data.length} mult=${job.mult}`).toEqual(Array.from(want.counts ?? want.indices!));
    }
    expect(wasmFor(16)!.calls.palette - before).toBe(jobs.filter((j) => j.data.length > 0).length);
  });
});

describe('the committed WebAssembly binaries', () => {
  it('are what the AssemblyScript source compiles to (npm run build:wasm: one-thread and shared-memory builds)', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'modelpress-wasm-'));
    try {
      const r = spawnSync(process.execPath, ['scripts/build-wasm.mjs', dir], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      for (const file of ['cpu-kernels.wasm', 'cpu-kernels-threads.wasm']) {
        expect(Buffer.compare(readFileSync(join(dir, file)), readFileSync(join('wasm', file))), file).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
