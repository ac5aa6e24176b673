/**
 * dequantize: codes -> f32 as ONNX DequantizeLinear computes it ((q - zero_point) * scale), and,
 * when the original values are given, the round-trip error in the same pass: MSE, SQNR (dB),
 * max abs error and cosine similarity, per tensor and per channel of a statistics axis.
 */
import { InvalidArgumentError } from '../errors.ts';
import { bitsToF32, flushDenormalBits, isFiniteBits } from './numerics.ts';
import { elementCount, groupElement, groupLength, groupOf, groupView, normalizeAxis, MODE_CHANNEL, type Granularity, type GroupView } from './layout.ts';
import { wasmFor, type ErrorSums, type ErrorSumsTable } from '../cpu/wasm-kernels.ts';
import { codeRange, type Bits, type QuantParams } from './qparams.ts';
import { codeBytes } from './quantize.ts';
import { forEachPartial, reductionHead, reductionSlices, REDUCE_CHUNK, type ReductionSlice } from './reduction.ts';
import { paddedWords, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export interface DequantizeJob {
  codes: Uint8Array;
  shape: readonly number[];
  granularity: Granularity;
  bits: Bits;
  signed: boolean;
  params: Pick<QuantParams, 'scale' | 'zeroPoint'>;
  /** The values before quantization; when given, round-trip errors are computed. */
  original?: Float32Array;
  /** Axis of the per-channel statistics; null for per-tensor only. Default: see `defaultStatsAxis`. */
  statsAxis?: number | null;
  /** Return the dequantized values (default true). */
  values?: boolean;
}

export interface ErrorStats {
  mse: number;
  sqnrDb: number;
  maxAbsError: number;
  cosine: number;
  /** Finite original values compared. */
  count: number;
  /** Originals that were NaN or ±Inf (left out of the statistics). */
  nonFinite: number;
}

export interface DequantizeResult {
  values: Float32Array | null;
  tensor: ErrorStats | null;
  /** Per channel of the statistics axis (empty without originals or without an axis). */
  channels: ErrorStats[];
}

/** Per-channel statistics follow the quantization axis; for blocks, the first other axis. */
export function defaultStatsAxis(shape: readonly number[], g: Granularity): number | null {
  if (g.kind === 'tensor') return null;
  const rank = shape.length;
  const axis = normalizeAxis(g.axis, rank);
  if (g.kind === 'channel') return axis;
  if (rank < 2) return null;
  return axis === 0 ? 1 : 0;
}

type Sums = ErrorSums;

const zeroSums = (): Sums => ({ e2: 0, x2: 0, h2: 0, xh: 0, emax: 0, n: 0, bad: 0 });

function addSums(a: Sums, b: Sums): void {
  a.e2 += b.e2;
  a.x2 += b.x2;
  a.h2 += b.h2;
  a.xh += b.xh;
  a.emax = Math.max(a.emax, b.emax);
  a.n += b.n;
  a.bad += b.bad;
}

/** Error statistics from round-trip sums (MSE, SQNR, max error, cosine). */
export function errorStatsFromSums(s: Sums): ErrorStats {
  const mse = s.n ? s.e2 / s.n : 0;
  const sqnrDb = s.e2 === 0 ? Infinity : s.x2 === 0 ? -Infinity : 10 * Math.log10(s.x2 / s.e2);
  const denom = Math.sqrt(s.x2 * s.h2);
  const cosine = denom === 0 ? (s.x2 === 0 && s.h2 === 0 ? 1 : 0) : s.xh / denom;
  return { mse, sqnrDb, maxAbsError: s.emax, cosine, count: s.n, nonFinite: s.bad };
}

function statsView(job: DequantizeJob): GroupView {
  const axis = job.statsAxis === undefined ? defaultStatsAxis(job.shape, job.granularity) : job.statsAxis;
  return groupView(job.shape, axis === null ? { kind: 'tensor' } : { kind: 'channel', axis });
}

function validate(job: DequantizeJob): void {
  const n = elementCount(job.shape);
  const v = groupView(job.shape, job.granularity);
  const need = codeBytes(n, job.bits);
  if (job.codes.length !== need) {
    throw new InvalidArgumentError(`codes have ${job.codes.length} bytes; ${n} ${job.bits}-bit codes need ${need}`);
  }
  if (job.params.scale.length !== v.groups || job.params.zeroPoint.length !== v.groups) {
    throw new InvalidArgumentError(`got ${job.params.scale.length} scales and ${job.params.zeroPoint.length} zero points; ${v.groups} groups need as many`);
  }
  codeRange(job.bits, job.signed);
  if (job.original && job.original.length !== n) {
    throw new InvalidArgumentError(`original has ${job.original.length} elements but shape [${job.shape.join(', ')}] needs ${n}`);
  }
  statsView(job);
}

function readCode(codes: Uint8Array, i: number, bits: Bits, signed: boolean): number {
  if (bits === 8) return signed ? (codes[i] << 24) >> 24 : codes[i];
  const nib = (codes[i >> 1] >> ((i & 1) * 4)) & 0xf;
  return signed ? (nib << 28) >> 28 : nib;
}

function cpu(job: DequantizeJob): DequantizeResult {
  const qv = groupView(job.shape, job.granularity);
  const sv = statsView(job);
  const n = qv.elements;
  const wantValues = job.values !== false;
  // Fast engine: error sums of 8-bit channel-mode codes, per tensor or per quantization channel.
  const sameRuns = sv.groups === 1 || (sv.mode === MODE_CHANNEL && sv.inner === qv.inner && sv.dim === qv.dim);
  const wasm = !wantValues && job.original && job.bits === 8 && qv.mode === MODE_CHANNEL && sameRuns ? wasmFor(n) : null;
  if (wasm) {
    const channels = wasm.dequantStats8(job.codes, job.original!, qv, job.params.scale as Float32Array, Int32Array.from(job.params.zeroPoint), job.signed, { groups: sv.groups, inner: sv.inner, dim: sv.dim });
    if (channels) return assembleTable(channels, sv);
  }
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = qv.groups === 1 ? 0 : groupOf(qv, i);
    const q = readCode(job.codes, i, job.bits, job.signed);
    values[i] = Math.fround((q - job.params.zeroPoint[g]) * job.params.scale[g]);
  }
  if (!job.original) return { values: wantValues ? values : null, tensor: null, channels: [] };
  const orig = new Uint32Array(job.original.buffer, job.original.byteOffset, n);
  const channels: Sums[] = [];
  for (let g = 0; g < sv.groups; g++) {
    const s = zeroSums();
    const len = groupLength(sv, g);
    for (let k = 0; k < len; k++) {
      const idx = groupElement(sv, g, k);
      const xb = flushDenormalBits(orig[idx]);
      if (!isFiniteBits(xb)) {
        s.bad++;
        continue;
      }
      const x = bitsToF32(xb);
      const xh = values[idx];
      const e = Math.fround(x - xh);
      s.e2 += e * e;
      s.x2 += x * x;
      s.h2 += xh * xh;
      s.xh += x * xh;
      s.emax = Math.max(s.emax, Math.abs(e));
      s.n++;
    }
    channels.push(s);
  }
  return assemble(channels, wantValues ? values : null, sv);
}

/** assemble() over the fast engine's table: the same totals (same order of additions), no object per group but the results. */
function assembleTable(t: ErrorSumsTable, sv: GroupView): DequantizeResult {
  const total = zeroSums();
  const per = sv.groups > 1 || sv.dim > 1;
  const channels: ErrorStats[] = per ? new Array(t.groups) : [];
  const s = zeroSums();
  for (let g = 0; g < t.groups; g++) {
    s.e2 = t.f64[6 * g];
    s.x2 = t.f64[6 * g + 1];
    s.h2 = t.f64[6 * g + 2];
    s.xh = t.f64[6 * g + 3];
    s.emax = t.f32[12 * g + 8];
    s.n = t.u32[12 * g + 9];
    s.bad = t.u32[12 * g + 10];
    addSums(total, s);
    if (per) channels[g] = errorStatsFromSums(s);
  }
  return { values: null, tensor: errorStatsFromSums(total), channels };
}

function assemble(channels: Sums[], values: Float32Array | null, sv: GroupView): DequantizeResult {
  const total = zeroSums();
  for (const c of channels) addSums(total, c);
  return { values, tensor: errorStatsFromSums(total), channels: sv.groups > 1 || sv.dim > 1 ? channels.map(errorStatsFromSums) : [] };
}

const PART_WORDS = 7;

interface Plan {
  qv: GroupView;
  sv: GroupView;
  slices: ReductionSlice[];
}
const plans = new WeakMap<DequantizeJob, Plan>();

function pieces(job: DequantizeJob, maxWords: number): Piece[] {
  const qv = groupView(job.shape, job.granularity);
  const sv = statsView(job);
  const per = 32 / job.bits;
  // Code words are read from a per-piece copy starting on a whole word; budget the f32 streams.
  const slices = reductionSlices(sv, maxWords - per, per, { lanes: true });
  plans.set(job, { qv, sv, slices });
  const params = new Uint32Array(2 * qv.groups);
  const scaleBits = new Uint32Array(job.params.scale.buffer, job.params.scale.byteOffset, qv.groups);
  for (let g = 0; g < qv.groups; g++) {
    params[2 * g] = scaleBits[g];
    params[2 * g + 1] = job.params.zeroPoint[g] >>> 0;
  }
  const wantValues = job.values !== false;
  const hasOrig = job.original !== undefined;
  return slices.map((s) => {
    const codeElemBase = Math.floor(s.elemStart / per) * per;
    const codeByte0 = job.bits === 8 ? codeElemBase : codeElemBase / 2;
    const codeByte1 = Math.min(job.codes.length, codeBytes(s.elemStart + s.elemCount, job.bits));
    const codeWords = paddedWords(job.codes.subarray(codeByte0, codeByte1));
    const uploads = [
      { stream: 'codes', at: 0, data: codeWords },
      { stream: 'qparams', at: 0, data: params },
    ];
    if (hasOrig) uploads.push({ stream: 'orig', at: 0, data: job.original!.subarray(s.elemStart, s.elemStart + s.elemCount) as unknown as Uint32Array });
    return {
      entryPoint: s.threadVariant ? 'dequantize_small_groups' : s.lanes ? 'dequantize_lane_groups' : 'dequantize_groups',
      workgroups: s.workgroups,
      words: {
        orig: hasOrig ? s.elemCount : 0,
        codes: codeWords.length,
        qparams: params.length,
        values: wantValues ? s.elemCount : 0,
        partials: s.partials * PART_WORDS,
      },
      uploads,
      record: (o) => [
        ...reductionHead(sv, s, o.orig), o.partials, o.codes, codeElemBase, o.values, hasOrig ? 1 : 0, wantValues ? 1 : 0,
        qv.mode, qv.dim, qv.inner, qv.block, job.bits, job.signed ? 1 : 0, o.qparams,
      ],
    };
  });
}

function finish(job: DequantizeJob, regions: PieceRegions[]): DequantizeResult {
  const { sv, slices } = plans.get(job)!;
  const wantValues = job.values !== false;
  // One slice covering the tensor: its read-back array (a fresh copy, owned here) is the result.
  const whole = wantValues && slices.length === 1 && regions[0] && slices[0].elemStart === 0 && slices[0].elemCount === sv.elements;
  const values = whole ? new Float32Array(regions[0].values.buffer, regions[0].values.byteOffset, sv.elements) : wantValues ? new Float32Array(sv.elements) : null;
  const channels = Array.from({ length: sv.groups }, zeroSums);
  slices.forEach((s, i) => {
    const r = regions[i];
    if (!r) return;
    if (values && !whole) values.set(new Float32Array(r.values.buffer, r.values.byteOffset, s.elemCount), s.elemStart);
    if (!job.original) return;
    forEachPartial(sv, s, (g, elements, part) => {
      const o = part * PART_WORDS;
      const p = r.partials;
      const unnorm = 1 / bitsToF32(p[o + 6]) ** 2;
      addSums(channels[g], {
        e2: bitsToF32(p[o]) * unnorm, x2: bitsToF32(p[o + 1]) * unnorm, h2: bitsToF32(p[o + 2]) * unnorm, xh: bitsToF32(p[o + 3]) * unnorm,
        emax: bitsToF32(p[o + 4]), n: elements - p[o + 5], bad: p[o + 5],
      });
    });
  });
  if (!job.original) return { values, tensor: null, channels: [] };
  return assemble(channels, values, sv);
}

export const dequantizeKernel: KernelDescriptor<DequantizeJob, DequantizeResult> = {
  name: 'dequantize',
  shader: 'dequantize',
  entryPoints: ['dequantize_groups', 'dequantize_lane_groups', 'dequantize_small_groups'],
  streams: [
    { name: 'orig', role: 'in' },
    { name: 'codes', role: 'in' },
    { name: 'qparams', role: 'in' },
    { name: 'values', role: 'out' },
    { name: 'partials', role: 'out' },
  ],
  recordWords: 26,
  constants: { REDUCE_CHUNK },
  validate,
  work: (job) => elementCount(job.shape),
  cpu,
  pieces,
  finish,
};

