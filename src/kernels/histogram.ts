/**
 * histogram: fixed-bin histogram over [lo, hi] with exact u32 counts, accumulated onto given
 * counts so histograms merge across calibration batches. Values outside the range, ±Inf and NaN
 * are counted apart (below / above / nan), never dropped silently.
 */
import { InvalidArgumentError } from '../errors.ts';
import { bitsToF32, f32Bits, flushDenormal, flushDenormalBits, isFiniteBits, keyToF32, sortableKey, KEY_EMPTY_MIN } from './numerics.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';
import { wasmFor } from '../cpu/wasm-kernels.ts';

export interface HistogramJob {
  data: Float32Array;
  lo: number;
  hi: number;
  bins: number;
  /** Counts to add onto (a previous batch's result); not modified. */
  initial?: HistogramResult;
}

export interface HistogramResult {
  counts: Uint32Array;
  below: number;
  above: number;
  nan: number;
  /** Exact min / max of the finite values seen (NaN when there were none). */
  min: number;
  max: number;
}

/** Words per histogram region: the bins, then below, above, nan, min key, max key. */
const EXTRA = 5;

export const MAX_BINS = 1 << 20;
const PER_THREAD = 16;
const ELEMENTS_PER_WORKGROUP = WORKGROUP_SIZE * PER_THREAD;

/** The f32 range and multiplier every backend uses (computed here only). */
export function histogramParams(job: Pick<HistogramJob, 'lo' | 'hi' | 'bins'>): { lo: number; hi: number; scale: number } {
  const lo = flushDenormal(Math.fround(job.lo));
  const hi = flushDenormal(Math.fround(job.hi));
  const scale = hi > lo ? Math.fround(job.bins / (hi - lo)) : 0;
  return { lo, hi, scale: Number.isFinite(scale) ? scale : 0 };
}

/** Slot of one value: 0..bins-1, bins (below), bins+1 (above), bins+2 (NaN). Mirrors slot_of in WGSL. */
export function histogramSlot(x: number, bins: number, lo: number, hi: number, scale: number): number {
  const b = flushDenormalBits(f32Bits(x));
  if (!isFiniteBits(b)) {
    if ((b & 0x007fffff) !== 0) return bins + 2;
    return b & 0x80000000 ? bins : bins + 1;
  }
  const v = bitsToF32(b);
  if (v < lo) return bins;
  if (v > hi) return bins + 1;
  const d = flushDenormal(Math.fround(v - lo));
  const t = Math.fround(d * scale);
  return Math.min(Math.floor(t), bins - 1);
}

function validate(job: HistogramJob): void {
  if (!Number.isInteger(job.bins) || job.bins < 1 || job.bins > MAX_BINS) {
    throw new InvalidArgumentError(`bins must be an integer in [1, ${MAX_BINS}], got ${job.bins}`, { bins: job.bins });
  }
  if (!Number.isFinite(job.lo) || !Number.isFinite(job.hi) || job.hi < job.lo) {
    throw new InvalidArgumentError(`histogram range [${job.lo}, ${job.hi}] must be finite with lo <= hi`);
  }
  if (job.initial && job.initial.counts.length !== job.bins) {
    throw new InvalidArgumentError(`initial counts have ${job.initial.counts.length} bins, the job has ${job.bins}`);
  }
}

function cpu(job: HistogramJob): HistogramResult {
  const { lo, hi, scale } = histogramParams(job);
  const bins = job.bins;
  const slots = new Uint32Array(bins + EXTRA);
  writeSlots(slots, job.initial ?? emptyHistogram(bins));
  if (wasmFor(job.data.length)?.histogram({ data: job.data, lo, hi, scale, bins, slots })) return readSlots(slots, bins);
  let kmin = slots[bins + 3];
  let kmax = slots[bins + 4];
  const data = job.data;
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const last = bins - 1;
  for (let i = 0; i < data.length; i++) {
    const e = bits[i] & 0x7f800000;
    // Finite normal values inside the range take the fast path; the rest go through histogramSlot.
    if (e !== 0x7f800000) {
      // Finite: min / max on order-preserving keys (denormals flush to signed zero first).
      const b = e === 0 ? bits[i] & 0x80000000 : bits[i];
      const key = (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
      if (key < kmin) kmin = key;
      if (key > kmax) kmax = key;
    }
    if (e !== 0 && e !== 0x7f800000) {
      const x = data[i];
      if (x >= lo && x <= hi) {
        let d = Math.fround(x - lo);
        if (d !== 0 && Math.abs(d) < 1.1754943508222875e-38) d = 0;
        const b = Math.floor(Math.fround(d * scale));
        slots[b < last ? b : last]++;
        continue;
      }
    }
    slots[histogramSlot(data[i], bins, lo, hi, scale)]++;
  }
  slots[bins + 3] = kmin;
  slots[bins + 4] = kmax;
  return readSlots(slots, bins);
}

export function emptyHistogram(bins: number): HistogramResult {
  return { counts: new Uint32Array(bins), below: 0, above: 0, nan: 0, min: NaN, max: NaN };
}

function writeSlots(slots: Uint32Array, h: HistogramResult): void {
  slots.set(h.counts);
  const bins = h.counts.length;
  slots[bins] = h.below;
  slots[bins + 1] = h.above;
  slots[bins + 2] = h.nan;
  slots[bins + 3] = Number.isNaN(h.min) ? KEY_EMPTY_MIN : sortableKey(f32Bits(h.min));
  slots[bins + 4] = Number.isNaN(h.max) ? 0 : sortableKey(f32Bits(h.max));
}

function readSlots(slots: Uint32Array, bins: number): HistogramResult {
  const empty = slots[bins + 3] === KEY_EMPTY_MIN && slots[bins + 4] === 0;
  return {
    counts: slots.slice(0, bins), below: slots[bins], above: slots[bins + 1], nan: slots[bins + 2],
    min: empty ? NaN : keyToF32(slots[bins + 3]), max: empty ? NaN : keyToF32(slots[bins + 4]),
  };
}

function pieces(job: HistogramJob, maxWords: number): Piece[] {
  const { lo, hi, scale } = histogramParams(job);
  const slots = job.bins + EXTRA;
  const out: Piece[] = [];
  const chunk = Math.max(ELEMENTS_PER_WORKGROUP, Math.floor((maxWords - slots) / ELEMENTS_PER_WORKGROUP) * ELEMENTS_PER_WORKGROUP);
  const n = Math.max(job.data.length, 1);
  for (let start = 0; start < n; start += chunk) {
    const count = Math.min(chunk, job.data.length - start);
    // Each piece counts into its own zeroed region (the first also carries the initial counts).
    const init = new Uint32Array(slots);
    writeSlots(init, start === 0 && job.initial ? job.initial : emptyHistogram(job.bins));
    out.push({
      entryPoint: 'histogram',
      workgroups: Math.max(1, Math.ceil(count / ELEMENTS_PER_WORKGROUP)),
      words: { src: count, counts: slots },
      uploads: [
        { stream: 'src', at: 0, data: job.data.subarray(start, start + count) },
        { stream: 'counts', at: 0, data: init },
      ],
      record: (o) => [o.src, count, o.counts, job.bins, f32Bits(lo), f32Bits(hi), f32Bits(scale)],
    });
  }
  return out;
}

function finish(job: HistogramJob, regions: PieceRegions[]): HistogramResult {
  const b = job.bins;
  const slots = new Uint32Array(b + EXTRA);
  writeSlots(slots, job.initial && regions.length === 0 ? job.initial : emptyHistogram(b));
  for (const r of regions) {
    for (let i = 0; i < b + 3; i++) slots[i] += r.counts[i];
    slots[b + 3] = Math.min(slots[b + 3], r.counts[b + 3]);
    slots[b + 4] = Math.max(slots[b + 4], r.counts[b + 4]);
  }
  return readSlots(slots, b);
}

/** Adds two histograms over the same range and bins. */
export function mergeHistograms(a: HistogramResult, b: HistogramResult): HistogramResult {
  if (a.counts.length !== b.counts.length) throw new InvalidArgumentError(`cannot merge histograms of ${a.counts.length} and ${b.counts.length} bins`);
  const counts = new Uint32Array(a.counts.length);
  for (let i = 0; i < counts.length; i++) counts[i] = a.counts[i] + b.counts[i];
  const pick = (x: number, y: number, f: (p: number, q: number) => number) => (Number.isNaN(x) ? y : Number.isNaN(y) ? x : f(x, y));
  return { counts, below: a.below + b.below, above: a.above + b.above, nan: a.nan + b.nan, min: pick(a.min, b.min, Math.min), max: pick(a.max, b.max, Math.max) };
}

export const histogramKernel: KernelDescriptor<HistogramJob, HistogramResult> = {
  name: 'histogram',
  shader: 'histogram',
  entryPoints: ['histogram'],
  streams: [
    { name: 'src', role: 'in' },
    { name: 'counts', role: 'inout' },
  ],
  recordWords: 8,
  // 4094 slots + the min / max words fill exactly the 16 KiB of workgroup memory WebGPU guarantees.
  constants: { LOCAL_BINS: 4094 },
  validate,
  work: (job) => job.data.length,
  cpu,
  pieces,
  finish,
};
