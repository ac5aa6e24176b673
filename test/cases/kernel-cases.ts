/**
 * The generated kernel cases, shared by the Node (vitest, Dawn) and Deno (wgpu) suites: every
 * kernel over degenerate contents, odd sizes, every granularity and bit width. A suite runs all
 * of a kernel's cases as one multi-tensor pass and compares each result with the CPU reference.
 */
import { makeData, rng, type DataKind } from './random.ts';
import { comparators } from './compare.ts';
import type { Granularity } from '../../src/kernels/layout.ts';
import { computeQuantParams, paramsFromScales, type Bits } from '../../src/kernels/qparams.ts';
import { quantizeKernel, type QuantizeJob } from '../../src/kernels/quantize.ts';
import { rangeKernel, type RangeJob } from '../../src/kernels/range.ts';
import { dequantizeKernel, type DequantizeJob } from '../../src/kernels/dequantize.ts';
import { histogramKernel, type HistogramJob } from '../../src/kernels/histogram.ts';
import { channelScoresKernel, type ChannelScoresJob } from '../../src/kernels/channel-scores.ts';
import { distillLossKernel, type DistillLossJob } from '../../src/kernels/distill-loss.ts';
import type { KernelDescriptor } from '../../src/kernels/kernel.ts';
import { gramKernel, GRAM_CHUNK, type GramJob } from '../../src/kernels/gram.ts';
import { thresholdSearchKernel, type ThresholdSearchJob } from '../../src/kernels/threshold-search.ts';
import type { KernelName } from '../../src/kernels/registry.ts';
import { sparsityKernel, type SparsityJob } from '../../src/kernels/sparsity.ts';
import { paletteKernel, paletteKey, type PaletteJob } from '../../src/kernels/palette.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import { gptqSweepKernel, type GptqSweepJob } from '../../src/kernels/gptq-sweep.ts';
import { inverseUpperFactor } from '../../src/linalg/obs.ts';
import { choleskyKernel, type CholeskyJob } from '../../src/kernels/cholesky.ts';

export interface NamedJob<J> {
  name: string;
  job: J;
}

export interface KernelSuite<J = unknown, R = unknown> {
  kernel: KernelDescriptor<J, R>;
  name: KernelName;
  cases: NamedJob<J>[];
}

const KINDS: DataKind[] = ['random', 'zeros', 'constant', 'special', 'denormal', 'wide'];

// [70, 130], [6, 300], [3, 4096]: reduced by lanes of threads (8, 16, 128 per group; 70 groups leave
// the last workgroup part empty); [2, 4097]: one workgroup per group.
const SHAPES: number[][] = [[0], [1], [7], [1027], [16, 3, 3, 3], [33, 65], [5, 7, 9], [70, 130], [6, 300], [3, 4096], [2, 4097]];

function granularities(shape: number[]): Granularity[] {
  const out: Granularity[] = [{ kind: 'tensor' }];
  if (shape.length >= 1) out.push({ kind: 'channel', axis: 0 });
  if (shape.length >= 2) out.push({ kind: 'channel', axis: -1 }, { kind: 'block', axis: 0, blockSize: 16 });
  out.push({ kind: 'block', axis: -1, blockSize: 32 });
  return out;
}

function gName(g: Granularity): string {
  return g.kind === 'tensor' ? 'tensor' : g.kind === 'channel' ? `channel@${g.axis}` : `block${g.blockSize}@${g.axis}`;
}

const SCHEMES: Array<{ bits: Bits; signed: boolean; symmetric: boolean; narrow?: boolean }> = [
  { bits: 8, signed: true, symmetric: true, narrow: true },
  { bits: 8, signed: false, symmetric: false },
  { bits: 4, signed: true, symmetric: false },
  { bits: 4, signed: false, symmetric: true },
];

export function quantizeCases(): NamedJob<QuantizeJob>[] {
  const out: NamedJob<QuantizeJob>[] = [];
  let seed = 1;
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const granularity of granularities(shape)) {
      KINDS.forEach((kind, ki) => {
        const scheme = SCHEMES[(ki + seed) % SCHEMES.length];
        const data = makeData(n, kind, seed++);
        const r = rangeKernel.cpu({ data, shape, granularity });
        const params = computeQuantParams(r.min, r.max, { ...scheme, granularity });
        out.push({ name: `${kind} [${shape}] ${gName(granularity)} ${scheme.signed ? 'int' : 'uint'}${scheme.bits}`, job: { data, shape, granularity, ...scheme, params } });
      });
    }
  }
  // 3-bit grids in 4-bit codes: codes clamp to the grid (asymmetric zero points can round the top
  // value to 7.5), never to the storage type's range.
  for (const [signed, symmetric] of [[false, false], [true, false], [true, true]] as const) {
    for (const shape of [[33, 65], [1027]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const granularity: Granularity = shape.length > 1 ? { kind: 'channel', axis: 0 } : { kind: 'tensor' };
      const data = makeData(n, 'random', seed++);
      const r = rangeKernel.cpu({ data, shape, granularity });
      const scheme = { bits: 4 as const, gridBits: 3, signed, symmetric };
      const params = computeQuantParams(r.min, r.max, { ...scheme, granularity });
      out.push({ name: `random [${shape}] ${gName(granularity)} ${signed ? 'int' : 'uint'}3 in 4 ${symmetric ? 'sym' : 'asym'}`, job: { data, shape, granularity, ...scheme, params } });
    }
  }
  // Exact ties (x * inv lands on k + 0.5): round half to even must hold on every backend.
  for (const bits of [8, 4] as const) {
    const data = makeData(999, 'ties', 77);
    out.push({
      name: `ties int${bits}`,
      job: { data, shape: [999], granularity: { kind: 'tensor' }, bits, signed: true, params: paramsFromScales([0.125], [bits === 8 ? 3 : 1]) },
    });
  }
  return out;
}

export function rangeCases(): NamedJob<RangeJob>[] {
  const out: NamedJob<RangeJob>[] = [];
  let seed = 100;
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const granularity of granularities(shape)) {
      for (const kind of KINDS) out.push({ name: `${kind} [${shape}] ${gName(granularity)}`, job: { data: makeData(n, kind, seed++), shape, granularity } });
    }
  }
  // A group longer than one workgroup chunk (several partials merged).
  out.push({ name: 'random [3, 10000] channel@0', job: { data: makeData(30000, 'random', 5), shape: [3, 10000], granularity: { kind: 'channel', axis: 0 } } });
  return out;
}

export function dequantizeCases(): NamedJob<DequantizeJob>[] {
  return quantizeCases().map(({ name, job }, i) => ({
    name,
    job: {
      codes: quantizeKernel.cpu(job).codes,
      shape: job.shape,
      granularity: job.granularity,
      bits: job.bits,
      signed: job.signed,
      params: job.params,
      original: i % 5 === 4 ? undefined : job.data,
      values: i % 3 !== 2,
      statsAxis: i % 7 === 3 ? null : undefined,
    },
  }));
}

export function histogramCases(): NamedJob<HistogramJob>[] {
  const out: NamedJob<HistogramJob>[] = [];
  let seed = 300;
  for (const n of [0, 1, 7, 1027, 20000]) {
    for (const kind of KINDS) {
      for (const bins of [1, 10, 2048, 5000]) {
        const data = makeData(n, kind, seed++);
        out.push({ name: `${kind} n=${n} bins=${bins}`, job: { data, lo: -2.5, hi: 2.5, bins } });
      }
    }
  }
  out.push({ name: 'degenerate range', job: { data: makeData(100, 'constant', 1), lo: 0.7431, hi: 0.7431, bins: 16 } });
  const first = histogramKernel.cpu({ data: makeData(500, 'random', 9), lo: -3, hi: 3, bins: 64 });
  out.push({ name: 'accumulates onto initial counts', job: { data: makeData(700, 'special', 10), lo: -3, hi: 3, bins: 64, initial: first } });
  return out;
}

export function channelScoreCases(): NamedJob<ChannelScoresJob>[] {
  const shapes = [[16, 3, 3, 3], [8, 1, 3, 3], [33, 65], [300, 20], [1, 5], [4, 2], [3, 5000]];
  const out: NamedJob<ChannelScoresJob>[] = [];
  let seed = 500;
  for (const shape of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const kind of ['random', 'zeros', 'constant', 'denormal'] as DataKind[]) {
      out.push({ name: `${kind} [${shape}]`, job: { weights: makeData(n, kind, seed++), shape } });
    }
  }
  out.push({ name: 'l1 only', job: { weights: makeData(60, 'random', 3), shape: [6, 10], criteria: ['l1'] } });
  out.push({ name: 'fpgm only', job: { weights: makeData(60, 'random', 4), shape: [6, 10], criteria: ['fpgm'] } });
  return out;
}

export function distillCases(): NamedJob<DistillLossJob>[] {
  const out: NamedJob<DistillLossJob>[] = [];
  let seed = 700;
  for (const [rows, classes] of [[4, 10], [3, 1000], [1, 1], [0, 5], [17, 257]]) {
    for (const [temperature, alpha] of [[1, 0.5], [4, 0.9], [2, 0], [3, 1]]) {
      const r = rng(seed++);
      const student = Float32Array.from({ length: rows * classes }, () => (r() - 0.5) * 20);
      const teacher = Float32Array.from({ length: rows * classes }, () => (r() - 0.5) * 20);
      const labels = Int32Array.from({ length: rows }, () => Math.floor(r() * classes));
      out.push({ name: `[${rows}, ${classes}] T=${temperature} a=${alpha}`, job: { student, teacher, labels, rows, classes, temperature, alpha } });
    }
  }
  return out;
}

export function thresholdCases(): NamedJob<ThresholdSearchJob>[] {
  const out: NamedJob<ThresholdSearchJob>[] = [];
  let seed = 900;
  const shapes: Array<[string, (x: number) => number]> = [
    ['gaussian', (x) => Math.exp(-((x * 6) ** 2))],
    ['laplace with a long tail', (x) => Math.exp(-x * 12) + (x > 0.9 ? 0.001 : 0)],
    ['relu-like with a spike at zero', (x) => (x < 0.01 ? 50 : Math.exp(-x * 4))],
    ['sparse', (x) => (Math.floor(x * 2048) % 37 === 0 ? 1 : 0)],
  ];
  for (const [name, f] of shapes) {
    for (const nbins of [256, 2048]) {
      const r = rng(seed++);
      const counts = Uint32Array.from({ length: nbins }, (_, b) => Math.round(f((b + 0.5) / nbins) * 1000 * (0.8 + 0.4 * r())));
      out.push({ name: `${name} entropy ${nbins} bins`, job: { counts, binWidth: 0.01, method: 'entropy', levels: 128 } });
      out.push({ name: `${name} mse ${nbins} bins`, job: { counts, binWidth: 0.01, method: 'mse', levels: 127 } });
    }
  }
  out.push({ name: 'empty histogram, mse', job: { counts: new Uint32Array(300), binWidth: 1, method: 'mse', levels: 255 } });
  out.push({ name: 'empty histogram, entropy', job: { counts: new Uint32Array(300), binWidth: 1, method: 'entropy', levels: 128 } });
  return out;
}

function gramCases(): NamedJob<GramJob>[] {
  const out: NamedJob<GramJob>[] = [];
  let seed = 900;
  const mat = (rows: number, f: number, kind: 'random' | 'relu' | 'zeros' | 'wide') => {
    const r = rng(seed++);
    return Float32Array.from({ length: rows * f }, () => {
      const v = (r() - 0.5) * 2;
      return kind === 'zeros' ? 0 : kind === 'relu' ? Math.max(0, v) : kind === 'wide' ? v * 1e3 : v;
    });
  };
  // Odd feature counts (tile edges), row counts around the chunk size, empty shapes.
  for (const [rows, fa] of [[1, 1], [7, 3], [33, 17], [GRAM_CHUNK + 5, 16], [2 * GRAM_CHUNK + 1, 37], [64, 0], [0, 5]] as const) {
    for (const kind of ['random', 'relu'] as const) out.push({ name: `gram ${rows}x${fa} ${kind}`, job: { a: mat(rows, fa, kind), rows, fa } });
  }
  // Enough tiles that chunks grow past 512 rows (gramChunkRows): 12000 rows in 16 chunks of 750.
  out.push({ name: 'gram 12000x120 relu, long chunks', job: { a: mat(12000, 120, 'relu'), rows: 12000, fa: 120 } });
  out.push({ name: 'gram zeros', job: { a: mat(100, 9, 'zeros'), rows: 100, fa: 9 } });
  out.push({ name: 'gram wide values', job: { a: mat(300, 12, 'wide'), rows: 300, fa: 12 } });
  for (const [rows, fa, fb] of [[5, 3, 4], [600, 19, 33], [17, 1, 40]] as const) {
    out.push({ name: `cross gram ${rows}x${fa} by ${fb}`, job: { a: mat(rows, fa, 'random'), rows, fa, b: mat(rows, fb, 'random'), fb } });
  }
  return out;
}

/**
 * GPTQ sweeps over real factorizations: H = XᵀX of random inputs (+1 % damping), U its inverse's
 * upper factor (f64, rounded to f32). Grids per row (symmetric int4, asymmetric uint8, int3 in
 * int4 codes) or per block of columns; odd sizes, a workgroup's edge, dead columns, zero rows.
 */
export function gptqSweepCases(): NamedJob<GptqSweepJob>[] {
  const out: NamedJob<GptqSweepJob>[] = [];
  let seed = 1700;
  const make = (name: string, rows: number, cols: number, o: { grid: 'int4' | 'uint8' | 'int3'; block?: number; dead?: number; zeroRows?: boolean; magnitude?: number }) => {
    const r = rng(seed++);
    const n = Math.max(2 * cols, 8);
    const x = Array.from({ length: n * cols }, () => r() * 2 - 1);
    // Correlated inputs (each feature leans on the previous one) make the error spread matter.
    for (let k = 0; k < n; k++) for (let c = 1; c < cols; c++) x[k * cols + c] += 0.6 * x[k * cols + c - 1];
    if (o.dead !== undefined) for (let k = 0; k < n; k++) x[k * cols + o.dead] = 0;
    const h = new Float64Array(cols * cols);
    for (let k = 0; k < n; k++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] += x[k * cols + i] * x[k * cols + j];
    let mean = 0;
    for (let i = 0; i < cols; i++) mean += h[i * cols + i] / cols;
    for (let i = 0; i < cols; i++) h[i * cols + i] += 0.01 * mean + (h[i * cols + i] === 0 ? 1 : 0);
    const u = Float32Array.from(inverseUpperFactor(h, cols)!);
    const mag = o.magnitude ?? 1;
    const w = Float32Array.from({ length: rows * cols }, (_, k) => (o.zeroRows && Math.floor(k / cols) % 3 === 1) || k % cols === o.dead ? 0 : (r() * 2 - 1) * mag);
    const blocks = o.block ? Math.ceil(cols / o.block) : 1;
    const groups = rows * blocks;
    const group = Uint32Array.from({ length: rows * cols }, (_, k) => Math.floor(k / cols) * blocks + (o.block ? Math.floor((k % cols) / o.block) : 0));
    const [qmin, qmax] = o.grid === 'int4' ? [-8, 7] : o.grid === 'int3' ? [-4, 3] : [0, 255];
    const scale = new Float32Array(groups);
    const inverse = new Float32Array(groups);
    const zeroPoint = new Int32Array(groups);
    for (let g = 0; g < groups; g++) {
      let lo = 0;
      let hi = 0;
      for (let k = 0; k < rows * cols; k++) if (group[k] === g) { lo = Math.min(lo, w[k]); hi = Math.max(hi, w[k]); }
      if (o.grid === 'uint8') {
        scale[g] = (hi - lo) / 255 || 1;
        zeroPoint[g] = Math.round(-lo / scale[g]);
      } else {
        scale[g] = Math.max(-lo, hi) / qmax || 1;
      }
      inverse[g] = 1 / scale[g];
    }
    out.push({ name: `gptq sweep ${name} [${rows}, ${cols}] ${o.grid}${o.block ? ` block ${o.block}` : ''}`, job: { w, u, rows, cols, group, inverse, scale, zeroPoint, qmin, qmax } });
  };
  make('one column', 5, 1, { grid: 'int4' });
  make('one row', 1, 9, { grid: 'int4' });
  make('small', 3, 2, { grid: 'uint8' });
  make('a workgroup and one', 65, 17, { grid: 'int4' });
  make('conv-like', 64, 72, { grid: 'int4' });
  make('asymmetric', 40, 33, { grid: 'uint8' });
  make('int3 grid', 70, 40, { grid: 'int3' });
  make('blocks', 20, 50, { grid: 'int4', block: 16 });
  make('dead column', 12, 10, { grid: 'int4', dead: 4 });
  make('zero rows', 30, 12, { grid: 'int4', zeroRows: true });
  make('wide values', 9, 20, { grid: 'int4', magnitude: 1e3 });
  make('tiny values', 9, 20, { grid: 'int4', magnitude: 1e-30 });
  // Past a 64 KiB window: W split into row pieces (U fits), then U itself too large (CPU pass).
  make('row pieces', 300, 100, { grid: 'int4' });
  make('U past a small window', 8, 130, { grid: 'int4' });
  out.push({ name: 'gptq sweep empty', job: { w: new Float32Array(0), u: new Float32Array(0), rows: 0, cols: 0, group: new Uint32Array(0), inverse: new Float32Array(0), scale: new Float32Array(0), zeroPoint: new Int32Array(0), qmin: -8, qmax: 7 } });
  return out;
}

/**
 * Cholesky inverses of Gram matrices of correlated inputs (+ damping, as GPTQ factors them): odd
 * sizes around the workgroup's 256 threads, a diagonal matrix, one element, empty, and matrices
 * whose pivots fail (indefinite, a zero pivot, negative first element).
 */
export function choleskyCases(): NamedJob<CholeskyJob>[] {
  const out: NamedJob<CholeskyJob>[] = [];
  let seed = 1900;
  const gram = (n: number, damping = 0.01) => {
    const r = rng(seed++);
    const m = Math.max(2 * n, 8);
    const x = Array.from({ length: m * n }, () => r() * 2 - 1);
    for (let k = 0; k < m; k++) for (let c = 1; c < n; c++) x[k * n + c] += 0.5 * x[k * n + c - 1];
    const a = new Float32Array(n * n);
    const h = new Float64Array(n * n);
    for (let k = 0; k < m; k++) for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) h[i * n + j] += x[k * n + i] * x[k * n + j];
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i] / n;
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = h[i * n + j] + (i === j ? damping * mean : 0);
    return a;
  };
  for (const n of [1, 2, 5, 31, 64, 200, 257, 300]) out.push({ name: `cholesky gram ${n}`, job: { a: gram(n), n } });
  out.push({ name: 'cholesky diagonal', job: { a: Float32Array.from({ length: 49 }, (_, k) => (k % 8 === 0 ? 1 + k : 0)), n: 7 } });
  out.push({ name: 'cholesky empty', job: { a: new Float32Array(0), n: 0 } });
  const indefinite = gram(20);
  indefinite[12 * 20 + 12] = -5;
  out.push({ name: 'cholesky indefinite (pivot 12 fails)', job: { a: indefinite, n: 20 } });
  out.push({ name: 'cholesky negative first element', job: { a: Float32Array.of(-1, 0, 0, 1), n: 2 } });
  const rankDeficient = new Float32Array(9).fill(1);
  out.push({ name: 'cholesky rank-deficient (a zero pivot)', job: { a: rankDeficient, n: 3 } });
  return out;
}

/** Sorted boundary keys for `groups` groups of `k` clusters, drawn from the data's own keys (some repeated). */
function boundariesFor(data: Float32Array, groups: number, k: number, mult: number, seed: number): Uint32Array {
  const r = rng(seed);
  const out = new Uint32Array(groups * (k - 1));
  for (let g = 0; g < groups; g++) {
    const keys = Array.from({ length: k - 1 }, () => (data.length && r() < 0.8 ? paletteKey(data[Math.floor(r() * data.length)], mult) : r() < 0.5 ? 65536 : Math.floor(r() * 65536)));
    keys.sort((a, b) => a - b).forEach((v, i) => (out[g * (k - 1) + i] = v));
  }
  return out;
}

export function paletteCases(): NamedJob<PaletteJob>[] {
  const out: NamedJob<PaletteJob>[] = [];
  let seed = 1200;
  for (const kind of KINDS) {
    for (const [n, groupLength, mult] of [[0, 1, 1], [1, 1, 1], [1027, 1027, 1], [33 * 65, 4 * 65, 8], [5000, 999, 2 ** -10], [70000, 70000, 0.5]] as const) {
      const data = makeData(n, kind, seed++);
      out.push({ name: `histogram ${kind} n=${n} group=${groupLength} mult=${mult}`, job: { kind: 'histogram', data, groupLength, mult } });
    }
  }
  for (const kind of ['random', 'special', 'denormal', 'wide'] as const) {
    for (const [n, groupLength, k, mult] of [[7, 7, 2, 1], [1027, 1027, 16, 1], [33 * 65, 4 * 65, 8, 4], [5001, 1000, 256, 2 ** -3], [3, 1, 1, 1], [0, 4, 4, 1]] as const) {
      const data = makeData(n, kind, seed++);
      const groups = Math.ceil(n / groupLength);
      out.push({ name: `assign ${kind} n=${n} group=${groupLength} k=${k}`, job: { kind: 'assign', data, groupLength, mult, boundaries: boundariesFor(data, groups, k, mult, seed++), perGroup: k - 1 } });
    }
  }
  return out;
}

export function sparsityCases(): NamedJob<SparsityJob>[] {
  const out: NamedJob<SparsityJob>[] = [];
  let seed = 1500;
  for (const kind of ['random', 'zeros', 'constant', 'special', 'denormal', 'wide', 'ties'] as const) {
    for (const n of [0, 1, 33, 1027, 70001]) out.push({ name: `threshold ${kind} n=${n}`, job: { kind: 'threshold', data: makeData(n, kind, seed++), threshold: kind === 'wide' ? 1 : 0.75 } });
    // [outer, dim, inner]: contiguous groups (inner 1), strided groups (conv: inner = kh*kw), a partial last group.
    for (const [outer, dim, inner, n, m] of [[16, 64, 1, 2, 4], [8, 16, 9, 2, 4], [5, 10, 3, 1, 4], [3, 7, 2, 4, 8], [1, 1, 1, 2, 4], [0, 4, 4, 2, 4], [9, 64, 1, 16, 32]] as const) {
      out.push({ name: `nm ${kind} ${n}:${m} [${outer}, ${dim}, ${inner}]`, job: { kind: 'nm', data: makeData(outer * dim * inner, kind, seed++), outer, dim, inner, n, m } });
    }
  }
  return out;
}

export function kernelSuites(): KernelSuite[] {
  return [
    { name: 'quantize', kernel: quantizeKernel, cases: quantizeCases() },
    { name: 'range', kernel: rangeKernel, cases: rangeCases() },
    { name: 'dequantize', kernel: dequantizeKernel, cases: dequantizeCases() },
    { name: 'histogram', kernel: histogramKernel, cases: histogramCases() },
    { name: 'channel_scores', kernel: channelScoresKernel, cases: channelScoreCases() },
    { name: 'distill_loss', kernel: distillLossKernel, cases: distillCases() },
    { name: 'threshold_search', kernel: thresholdSearchKernel, cases: thresholdCases() },
    { name: 'gram', kernel: gramKernel, cases: gramCases() },
    { name: 'palette', kernel: paletteKernel, cases: paletteCases() },
    { name: 'sparsity', kernel: sparsityKernel, cases: sparsityCases() },
    { name: 'gptq_sweep', kernel: gptqSweepKernel, cases: gptqSweepCases() },
    { name: 'cholesky', kernel: choleskyKernel, cases: choleskyCases() },
  ] as KernelSuite[];
}

/** Runs a suite's cases in one pass on `scheduler`; returns one line per case that differs from the CPU reference. */
export async function runSuite(suite: KernelSuite, scheduler: Scheduler): Promise<string[]> {
  scheduler.resetStats();
  const got = await scheduler.run(suite.kernel, suite.cases.map((c) => c.job));
  const problems: string[] = [];
  // A GPU pass that failed (a shader that does not compile, a device error) is redone on the CPU
  // and would match the reference trivially: on a GPU scheduler, any such fallback is a failure.
  if (scheduler.info.active === 'gpu') for (const f of scheduler.stats.fallbacks) problems.push(`${suite.name}: the GPU pass fell back to the CPU: ${f.reason}`);
  suite.cases.forEach((c, i) => {
    const want = suite.kernel.cpu(c.job);
    const diff = comparators[suite.name](got[i], want);
    if (diff) problems.push(`${suite.name} / ${c.name}: ${diff}`);
  });
  return problems;
}
