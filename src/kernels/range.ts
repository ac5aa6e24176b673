/**
 * range: per tensor / channel / block min, max and absmax over finite values (exact: computed on
 * order-preserving integer keys), NaN and Inf counts, and mean / variance of the finite values.
 * These are the inputs of scale computation. A group with no finite value has min = max = NaN.
 */
import { InvalidArgumentError } from '../errors.ts';
import { bitsToF32, flushDenormalBits, isFiniteBits, keyToF32, KEY_EMPTY_MIN } from './numerics.ts';
import { elementCount, groupElement, groupLength, groupView, type Granularity, type GroupView } from './layout.ts';
import { forEachPartial, reductionHead, reductionSlices, REDUCE_CHUNK, type ReductionSlice } from './reduction.ts';
import type { KernelDescriptor, Piece, PieceRegions } from './kernel.ts';
import { wasmFor } from '../cpu/wasm-kernels.ts';

export interface RangeJob {
  data: Float32Array;
  shape: readonly number[];
  granularity: Granularity;
  /** Skip mean / variance (the CPU path is then faster; results report NaN for them). */
  moments?: boolean;
}

export interface RangeResult {
  min: Float32Array;
  max: Float32Array;
  absmax: Float32Array;
  /** Finite values per group. */
  count: Uint32Array;
  nanCount: Uint32Array;
  infCount: Uint32Array;
  mean: Float64Array;
  /** Population variance (divides by the count). */
  variance: Float64Array;
}

const PART_WORDS = 10;

function emptyResult(groups: number): RangeResult {
  return {
    min: new Float32Array(groups), max: new Float32Array(groups), absmax: new Float32Array(groups),
    count: new Uint32Array(groups), nanCount: new Uint32Array(groups), infCount: new Uint32Array(groups),
    mean: new Float64Array(groups), variance: new Float64Array(groups),
  };
}

/** Integer parts of one group, merged exactly whatever the order. */
class GroupAcc {
  kmin = KEY_EMPTY_MIN;
  kmax = 0;
  amax = 0;
  nan = 0;
  inf = 0;
  // Chan et al. parallel mean / M2 in f64.
  n = 0;
  mean = 0;
  m2 = 0;

  addBits(raw: number, moments = true): void {
    const b = flushDenormalBits(raw);
    if (!isFiniteBits(b)) {
      if ((b & 0x007fffff) !== 0) this.nan++;
      else this.inf++;
      return;
    }
    const key = (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
    if (key < this.kmin) this.kmin = key;
    if (key > this.kmax) this.kmax = key;
    const a = b & 0x7fffffff;
    if (a > this.amax) this.amax = a;
    if (!moments) {
      this.n++;
      return;
    }
    const x = bitsToF32(b);
    this.n++;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
  }

  addKeys(kmin: number, kmax: number, amax: number): void {
    if (kmin < this.kmin) this.kmin = kmin;
    if (kmax > this.kmax) this.kmax = kmax;
    if (amax > this.amax) this.amax = amax;
  }

  mergeMoments(n: number, mean: number, m2: number): void {
    if (n === 0) return;
    const total = this.n + n;
    const d = mean - this.mean;
    this.mean += (d * n) / total;
    this.m2 += m2 + (d * d * this.n * n) / total;
    this.n = total;
  }

  store(r: RangeResult, g: number, moments = true): void {
    const empty = this.n === 0;
    r.min[g] = empty ? NaN : keyToF32(this.kmin);
    r.max[g] = empty ? NaN : keyToF32(this.kmax);
    r.absmax[g] = empty ? NaN : bitsToF32(this.amax);
    r.count[g] = this.n;
    r.nanCount[g] = this.nan;
    r.infCount[g] = this.inf;
    r.mean[g] = empty || !moments ? NaN : this.mean;
    r.variance[g] = empty || !moments ? NaN : this.m2 / this.n;
  }
}

function validate(job: RangeJob): void {
  const n = elementCount(job.shape);
  if (job.data.length !== n) {
    throw new InvalidArgumentError(`data has ${job.data.length} elements but shape [${job.shape.join(', ')}] needs ${n}`);
  }
  groupView(job.shape, job.granularity);
}

function cpu(job: RangeJob): RangeResult {
  const v = groupView(job.shape, job.granularity);
  const out = emptyResult(v.groups);
  const bits = new Uint32Array(job.data.buffer, job.data.byteOffset, job.data.length);
  const moments = job.moments !== false;
  const wasm = wasmFor(job.data.length);
  const parts = v.mode === 0 ? wasm?.range(job.data, v, moments) : !moments ? wasm?.rangeBlocks(job.data, v) : null;
  if (parts) {
    // What GroupAcc.addKeys / store would make of each group's parts, without an object per group.
    const { words, sums, pivots } = parts;
    for (let g = 0; g < v.groups; g++) {
      const n = words[12 * g + 5];
      const empty = n === 0;
      out.min[g] = empty ? NaN : keyToF32(words[12 * g]);
      out.max[g] = empty ? NaN : keyToF32(words[12 * g + 1]);
      out.absmax[g] = empty ? NaN : bitsToF32(words[12 * g + 2]);
      out.count[g] = n;
      out.nanCount[g] = words[12 * g + 3];
      out.infCount[g] = words[12 * g + 4];
      // Shifted sums to mean and M2: mean = pivot + S/n, M2 = Q - S^2/n.
      const sum = sums[6 * g + 3];
      out.mean[g] = empty || !moments ? NaN : pivots[g] + sum / n;
      out.variance[g] = empty || !moments ? NaN : Math.max(0, sums[6 * g + 4] - (sum * sum) / n) / n;
    }
    return out;
  }
  if (v.mode === 0 && v.outer === 1) {
    // Contiguous groups (per-tensor, or channels of axis 0): no index arithmetic per element.
    for (let g = 0; g < v.groups; g++) {
      const acc = new GroupAcc();
      for (let i = g * v.inner, end = i + v.inner; i < end; i++) acc.addBits(bits[i], moments);
      acc.store(out, g, moments);
    }
    return out;
  }
  for (let g = 0; g < v.groups; g++) {
    const acc = new GroupAcc();
    const len = groupLength(v, g);
    for (let k = 0; k < len; k++) acc.addBits(bits[groupElement(v, g, k)], moments);
    acc.store(out, g, moments);
  }
  return out;
}

interface RangePlan {
  view: GroupView;
  slices: ReductionSlice[];
}

const plans = new WeakMap<RangeJob, RangePlan>();

function pieces(job: RangeJob, maxWords: number): Piece[] {
  const view = groupView(job.shape, job.granularity);
  const slices = reductionSlices(view, maxWords, 8, { lanes: true });
  plans.set(job, { view, slices });
  return slices.map((s) => ({
    entryPoint: s.threadVariant ? 'range_small_groups' : s.lanes ? 'range_lane_groups' : 'range_groups',
    workgroups: s.workgroups,
    words: { src: s.elemCount, partials: s.partials * PART_WORDS },
    uploads: [{ stream: 'src', at: 0, data: job.data.subarray(s.elemStart, s.elemStart + s.elemCount) }],
    record: (o) => [...reductionHead(view, s, o.src), o.partials, job.moments === false ? 0 : 1],
  }));
}

function finish(job: RangeJob, regions: PieceRegions[]): RangeResult {
  const { view, slices } = plans.get(job)!;
  const accs = Array.from({ length: view.groups }, () => new GroupAcc());
  slices.forEach((s, i) => {
    const p = regions[i]?.partials;
    if (!p) return;
    forEachPartial(view, s, (g, _elements, part) => {
      const o = part * PART_WORDS;
      const acc = accs[g];
      acc.addKeys(p[o], p[o + 1], p[o + 2]);
      acc.nan += p[o + 3];
      acc.inf += p[o + 4];
      const n = p[o + 5];
      if (n > 0) {
        const pivot = bitsToF32(p[o + 6]);
        const norm = bitsToF32(p[o + 9]);
        const sum = bitsToF32(p[o + 7]) / norm;
        const sq = bitsToF32(p[o + 8]) / (norm * norm);
        const mean = pivot + sum / n;
        acc.mergeMoments(n, mean, Math.max(0, sq - (sum * sum) / n));
      }
    });
  });
  const out = emptyResult(view.groups);
  accs.forEach((a, g) => a.store(out, g, job.moments !== false));
  return out;
}

export const rangeKernel: KernelDescriptor<RangeJob, RangeResult> = {
  name: 'range',
  shader: 'range',
  entryPoints: ['range_groups', 'range_lane_groups', 'range_small_groups'],
  streams: [
    { name: 'src', role: 'in' },
    { name: 'partials', role: 'out' },
  ],
  recordWords: 15,
  constants: { REDUCE_CHUNK },
  validate,
  work: (job) => job.data.length,
  cpu,
  pieces,
  finish,
};
