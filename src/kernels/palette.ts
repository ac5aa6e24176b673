/**
 * palette: the integer halves of exact k-means palettization (passes/palettize). Two job kinds:
 *
 * - `histogram`: per group, the count of every fp16 value of the weights (65,536 keys; the 2,048
 *   Inf/NaN keys stay empty for finite weights). A key is the weight scaled by a power of two
 *   `mult`, rounded to fp16 half-to-even, its bits mapped so that key order is value order.
 * - `assign`: per weight, its cluster index = how many of its group's boundary keys are <= its key
 *   (the clusters of the optimal 1-D partition are contiguous key ranges).
 *
 * Both results are integers, bit-identical on every backend. The dynamic program between them runs
 * in f64 on the host (passes/palettize/kmeans1d.ts): it costs O(k · distinct keys), not O(weights).
 */
import { InvalidArgumentError } from '../errors.ts';
import { f32Bits, flushDenormalBits, isFiniteBits, bitsToF32 } from './numerics.ts';
import { floatToHalf, halfToFloat } from '../onnx/float16.ts';
import { UnsliceableError } from './layout.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';
import { wasmFor } from '../cpu/wasm-kernels.ts';

export const PALETTE_KEYS = 65536;
const PER_THREAD = 16;
const ELEMENTS_PER_WORKGROUP = WORKGROUP_SIZE * PER_THREAD;

interface PaletteBase {
  data: Float32Array;
  /** Elements per group; groups are contiguous, the last may be shorter. */
  groupLength: number;
  /** Power of two every weight is multiplied by before rounding to fp16 (exact). */
  mult: number;
}

export interface PaletteHistogramJob extends PaletteBase {
  kind: 'histogram';
}

export interface PaletteAssignJob extends PaletteBase {
  kind: 'assign';
  /** Per group, `perGroup` sorted keys: cluster c starts at boundary c - 1 (pad with 65536). */
  boundaries: Uint32Array;
  perGroup: number;
}

export type PaletteJob = PaletteHistogramJob | PaletteAssignJob;

export interface PaletteResult {
  /** histogram: groups x 65536 counts. */
  counts?: Uint32Array;
  /** assign: one index per weight. */
  indices?: Uint8Array;
}

export function groupCount(job: Pick<PaletteBase, 'data' | 'groupLength'>): number {
  return Math.ceil(job.data.length / job.groupLength);
}

/** The key of one weight: f32 -> x mult (denormals flushed) -> fp16 bits -> order-preserving 16 bits. */
export function paletteKey(x: number, mult: number): number {
  let b = flushDenormalBits(f32Bits(x));
  if (isFiniteBits(b)) b = flushDenormalBits(f32Bits(Math.fround(bitsToF32(b) * mult)));
  const h = floatToHalf(bitsToF32(b));
  return h & 0x8000 ? ~h & 0xffff : h | 0x8000;
}

/** The value (already multiplied by mult) a key stands for, as the fp16 it is. */
export function keyValue(key: number): number {
  return keyValues()[key];
}

function keyValueOf(key: number): number {
  return halfToFloat(key & 0x8000 ? key & 0x7fff : ~key & 0xffff);
}

let table: Float64Array | null = null;
/** Every key's value, computed on first use (not at import: every command loads the kernel registry). */
export function keyValues(): Float64Array {
  return (table ??= Float64Array.from({ length: PALETTE_KEYS }, (_, k) => keyValueOf(k)));
}

function validate(job: PaletteJob): void {
  if (!Number.isInteger(job.groupLength) || job.groupLength < 1) throw new InvalidArgumentError(`palette: groupLength must be a positive integer, got ${job.groupLength}`);
  const e = Math.log2(job.mult);
  if (!(job.mult > 0) || !Number.isInteger(e) || e < -126 || e > 127) throw new InvalidArgumentError(`palette: mult must be a normal power of two, got ${job.mult}`);
  if (job.kind === 'assign') {
    if (!Number.isInteger(job.perGroup) || job.perGroup < 0 || job.perGroup > 255) throw new InvalidArgumentError(`palette: ${job.perGroup} boundaries per group (at most 255: 256 clusters)`);
    const need = groupCount(job) * job.perGroup;
    if (job.boundaries.length !== need) throw new InvalidArgumentError(`palette: ${job.boundaries.length} boundaries, ${groupCount(job)} groups x ${job.perGroup} need ${need}`);
    // Every backend counts the boundaries at or below a key: they must ascend within each group.
    for (let i = 1; i < need; i++) {
      if (i % job.perGroup !== 0 && job.boundaries[i] < job.boundaries[i - 1]) throw new InvalidArgumentError(`palette: boundaries must ascend within a group; group ${Math.floor(i / job.perGroup)} has ${job.boundaries[i - 1]} before ${job.boundaries[i]}`);
    }
  }
}

function upperBound(b: Uint32Array, base: number, n: number, key: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (b[base + mid] <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Keys of data[from, to) into `out` with integer arithmetic only (the fast CPU path): scaling by
 * 2^e is an exponent add (a subnormal result flushes, an overflow saturates to Inf, as the f32
 * product would), then the half-to-even rounding of floatToHalf. Same keys as paletteKey.
 */
export function paletteKeys(data: Float32Array, from: number, to: number, mult: number, out: Uint16Array): void {
  // Int32 view and small-integer arithmetic throughout: V8 keeps every value an int32.
  const bits = new Int32Array(data.buffer, data.byteOffset, data.length);
  const shift = Math.round(Math.log2(mult));
  for (let i = from; i < to; i++) {
    const b = bits[i];
    const mant = b & 0x7fffff;
    let e = (b >> 23) & 0xff;
    let h: number;
    if (e === 0) h = 0; // zero or a flushed denormal
    else if (e === 0xff) h = mant ? 0x7e00 : 0x7c00;
    else {
      e += shift;
      if (e <= 0) h = 0; // the scaled value is subnormal in f32: flushed
      else if (e >= 0xff) h = 0x7c00;
      else {
        // f32 -> half, round half to even (floatToHalf, inlined).
        const he = e - 112;
        if (he >= 31) h = 0x7c00;
        else if (he <= 0) {
          if (he < -10) h = 0;
          else {
            const m = mant | 0x800000;
            const sh = 14 - he;
            const half = 1 << (sh - 1);
            const rest = m & ((1 << sh) - 1);
            h = m >> sh;
            if (rest > half || (rest === half && (h & 1) === 1)) h++;
          }
        } else {
          // Branch-free half to even: +1 when rest > 0x1000, or rest == 0x1000 and h is odd.
          h = (he << 10) | (mant >> 13);
          h += ((mant & 0x1fff) + (h & 1) + 0xfff) >> 13;
        }
      }
    }
    // Key: 0x8000 + h for a positive value; its 16-bit complement (0x7fff - h) for a negative one.
    out[i - from] = (0x8000 + h) ^ ((b >> 31) & 0xffff);
  }
}

/** Per group, the cluster of every key (the boundary search done once per key, not per weight). */
function keyTable(boundaries: Uint32Array, base: number, nb: number, into: Uint8Array): void {
  // Cluster c holds the keys from boundary c - 1 up to boundary c (ascending): a fill per cluster
  // instead of a search per key (the same table; ResNet-18's 21 tables 9 -> ~1 ms).
  let from = 0;
  for (let c = 0; c < nb; c++) {
    const to = Math.min(PALETTE_KEYS, boundaries[base + c]);
    if (to > from) {
      into.fill(c, from, to);
      from = to;
    }
  }
  into.fill(nb, from, PALETTE_KEYS);
}

const CHUNK = 1 << 16;

function cpu(job: PaletteJob): PaletteResult {
  const { data, groupLength, mult } = job;
  // The WebAssembly engine (four keys at a time, branch-free) when it is loaded; else TypeScript.
  const wasm = wasmFor(data.length);
  const shift = Math.round(Math.log2(mult));
  if (job.kind === 'histogram') {
    const counts = new Uint32Array(groupCount(job) * PALETTE_KEYS);
    if (wasm?.paletteHistogram(data, groupLength, shift, counts)) return { counts };
  } else {
    const indices = new Uint8Array(data.length);
    if (wasm?.paletteAssign(data, groupLength, shift, (g, into) => keyTable(job.boundaries, g * job.perGroup, job.perGroup, into), indices)) return { indices };
  }
  return cpuTypeScript(job);
}

/** The TypeScript CPU path (integer keys, per-key tables): what the WebAssembly one is tested against. */
export function cpuTypeScript(job: PaletteJob): PaletteResult {
  const { data, groupLength, mult } = job;
  const keys = new Uint16Array(Math.min(CHUNK, Math.max(1, groupLength)));
  if (job.kind === 'histogram') {
    const counts = new Uint32Array(groupCount(job) * PALETTE_KEYS);
    for (let g0 = 0, base = 0; g0 < data.length; g0 += groupLength, base += PALETTE_KEYS) {
      const g1 = Math.min(data.length, g0 + groupLength);
      for (let c0 = g0; c0 < g1; c0 += CHUNK) {
        const c1 = Math.min(g1, c0 + CHUNK);
        paletteKeys(data, c0, c1, mult, keys);
        for (let i = 0; i < c1 - c0; i++) counts[base + keys[i]]++;
      }
    }
    return { counts };
  }
  const indices = new Uint8Array(data.length);
  const nb = job.perGroup;
  const table = new Uint8Array(PALETTE_KEYS);
  for (let g0 = 0, g = 0; g0 < data.length; g0 += groupLength, g++) {
    keyTable(job.boundaries, g * nb, nb, table);
    const g1 = Math.min(data.length, g0 + groupLength);
    for (let c0 = g0; c0 < g1; c0 += CHUNK) {
      const c1 = Math.min(g1, c0 + CHUNK);
      paletteKeys(data, c0, c1, mult, keys);
      for (let i = 0; i < c1 - c0; i++) indices[c0 + i] = table[keys[i]];
    }
  }
  return { indices };
}

/** The plain per-weight definitions (paletteKey, binary search): the oracle the fast path is tested against. */
export function paletteReference(job: PaletteJob): PaletteResult {
  const { data, groupLength, mult } = job;
  if (job.kind === 'histogram') {
    const counts = new Uint32Array(groupCount(job) * PALETTE_KEYS);
    for (let i = 0; i < data.length; i++) counts[Math.floor(i / groupLength) * PALETTE_KEYS + paletteKey(data[i], mult)]++;
    return { counts };
  }
  const indices = new Uint8Array(data.length);
  const nb = job.perGroup;
  for (let i = 0; i < data.length; i++) indices[i] = upperBound(job.boundaries, Math.floor(i / groupLength) * nb, nb, paletteKey(data[i], mult));
  return { indices };
}

const zeroRegion = new Uint32Array(PALETTE_KEYS);

function pieces(job: PaletteJob, maxWords: number): Piece[] {
  const out: Piece[] = [];
  const n = job.data.length;
  const multBits = f32Bits(job.mult);
  if (job.kind === 'histogram') {
    if (PALETTE_KEYS + 1 > maxWords) throw new UnsliceableError(`a palette histogram region (${PALETTE_KEYS + 1} words) exceeds the binding window (${maxWords} words)`);
    // A piece is a window of one group's elements, counted into its own zeroed 65,536-word region.
    const chunk = Math.max(ELEMENTS_PER_WORKGROUP, Math.floor(maxWords / ELEMENTS_PER_WORKGROUP) * ELEMENTS_PER_WORKGROUP);
    for (let g0 = 0; g0 < n; g0 += job.groupLength) {
      const g1 = Math.min(n, g0 + job.groupLength);
      for (let start = g0; start < g1; start += chunk) {
        const count = Math.min(chunk, g1 - start);
        out.push({
          entryPoint: 'palette_histogram',
          workgroups: Math.ceil(count / ELEMENTS_PER_WORKGROUP),
          // One word past the counts names the group, so finish() needs no chunking arithmetic.
          words: { src: count, bounds: 0, counts: PALETTE_KEYS + 1, indices: 0 },
          uploads: [
            { stream: 'src', at: 0, data: job.data.subarray(start, start + count) },
            { stream: 'counts', at: 0, data: zeroRegion },
            { stream: 'counts', at: PALETTE_KEYS, data: Uint32Array.of(g0 / job.groupLength) },
          ],
          record: (o) => [o.src, count, o.counts, multBits],
        });
      }
    }
    return out;
  }
  const nb = job.perGroup;
  const bWords = Math.max(nb, 1);
  const chunk = Math.max(4, Math.floor(Math.min(maxWords, (maxWords - bWords) * 4) / 4) * 4);
  for (let start = 0; start < n; start += chunk) {
    const count = Math.min(chunk, n - start);
    const gFirst = Math.floor(start / job.groupLength);
    const gLast = Math.floor((start + count - 1) / job.groupLength);
    const bounds = job.boundaries.subarray(gFirst * nb, (gLast + 1) * nb);
    out.push({
      entryPoint: 'palette_assign',
      workgroups: Math.ceil(count / 4 / WORKGROUP_SIZE),
      words: { src: count, bounds: Math.max(1, bounds.length), counts: 0, indices: Math.ceil(count / 4) },
      uploads: [
        { stream: 'src', at: 0, data: job.data.subarray(start, start + count) },
        ...(bounds.length ? [{ stream: 'bounds', at: 0, data: bounds }] : []),
      ],
      record: (o) => [o.src, count, start, o.indices, o.bounds, gFirst, job.groupLength, nb, multBits],
    });
  }
  return out;
}

function finish(job: PaletteJob, regions: PieceRegions[]): PaletteResult {
  if (job.kind === 'histogram') {
    const counts = new Uint32Array(groupCount(job) * PALETTE_KEYS);
    for (const r of regions) {
      const reg = r.counts;
      const base = reg[PALETTE_KEYS] * PALETTE_KEYS;
      for (let k = 0; k < PALETTE_KEYS; k++) counts[base + k] += reg[k];
    }
    return { counts };
  }
  const indices = new Uint8Array(job.data.length);
  let at = 0;
  for (const r of regions) {
    const bytes = new Uint8Array(r.indices.buffer, r.indices.byteOffset, Math.min(r.indices.byteLength, indices.length - at));
    indices.set(bytes, at);
    at += bytes.length;
  }
  return { indices };
}

export const paletteKernel: KernelDescriptor<PaletteJob, PaletteResult> = {
  name: 'palette',
  shader: 'palette',
  entryPoints: ['palette_histogram', 'palette_assign'],
  streams: [
    { name: 'src', role: 'in' },
    { name: 'bounds', role: 'in' },
    { name: 'counts', role: 'inout' },
    { name: 'indices', role: 'out' },
  ],
  recordWords: 10,
  validate,
  work: (job) => job.data.length,
  cpu,
  pieces,
  finish,
};
