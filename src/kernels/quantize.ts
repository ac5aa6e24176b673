/**
 * quantize: f32 -> 8-bit or packed 4-bit codes (two per byte, low nibble first, as ONNX stores
 * INT4/UINT4), per tensor / channel / block, saturating, round half to even.
 * NaN maps to the zero point, ±Inf (and products that overflow) to the code range's ends.
 */
import { InvalidArgumentError } from '../errors.ts';
import { flushDenormalBits, bitsToF32, f32Bits, isFiniteBits, roundHalfEven } from './numerics.ts';
import { groupOf, groupView, elementCount, MODE_CHANNEL, type Granularity } from './layout.ts';
import { schemeRange, type Bits, type QuantParams } from './qparams.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';
import { wasmFor } from '../cpu/wasm-kernels.ts';
import { dequantizeKernel, errorStatsFromSums, type ErrorStats } from './dequantize.ts';

export interface QuantizeJob {
  data: Float32Array;
  shape: readonly number[];
  granularity: Granularity;
  bits: Bits;
  signed: boolean;
  narrow?: boolean;
  /** Codes clamped to a grid of this many bits (3-bit weights stored as 4-bit codes). */
  gridBits?: number;
  params: QuantParams;
  /**
   * Also return the round-trip error of the codes against `data`, per tensor (what the dequantize
   * kernel reports with statsAxis null). The CPU engine computes it in the same pass.
   */
  errorStats?: boolean;
}

export interface QuantizeResult {
  /** 8-bit: one byte per element (two's complement when signed); 4-bit: ceil(n / 2) packed bytes. */
  codes: Uint8Array;
  /** With errorStats: the round-trip error per tensor. */
  error?: ErrorStats;
}

/** The round-trip error of codes against the job's data, by the dequantize kernel's reference. */
function roundTripError(job: QuantizeJob, codes: Uint8Array): ErrorStats {
  return dequantizeKernel.cpu({
    codes, shape: job.shape, granularity: job.granularity, bits: job.bits, signed: job.signed, params: job.params, original: job.data, values: false, statsAxis: null,
  }).tensor!;
}

export function codeBytes(elements: number, bits: Bits): number {
  return bits === 8 ? elements : Math.ceil(elements / 2);
}

/** The exact per-element operation, shared by the CPU reference and tests. */
export function quantizeValue(x: number, inv: number, zp: number, qmin: number, qmax: number): number {
  const xb = flushDenormalBits(f32Bits(x));
  if (!isFiniteBits(xb)) {
    if ((xb & 0x007fffff) !== 0) return Math.min(qmax, Math.max(qmin, zp));
    return xb & 0x80000000 ? qmin : qmax;
  }
  const v = Math.fround(bitsToF32(xb) * inv);
  if (!Number.isFinite(v)) return v < 0 ? qmin : qmax;
  const c = Math.min(qmax - zp, Math.max(qmin - zp, v));
  return roundHalfEven(c) + zp;
}

function validate(job: QuantizeJob): void {
  const n = elementCount(job.shape);
  if (job.data.length !== n) {
    throw new InvalidArgumentError(`data has ${job.data.length} elements but shape [${job.shape.join(', ')}] needs ${n}`);
  }
  const view = groupView(job.shape, job.granularity);
  const { scale, inverse, zeroPoint } = job.params;
  if (scale.length !== view.groups || inverse.length !== view.groups || zeroPoint.length !== view.groups) {
    throw new InvalidArgumentError(
      `quantization parameters have ${scale.length} scales, ${inverse.length} inverses and ${zeroPoint.length} zero points; ` +
        `${job.granularity.kind} granularity on shape [${job.shape.join(', ')}] needs ${view.groups}`,
    );
  }
  const { qmin, qmax } = schemeRange(job);
  for (let g = 0; g < zeroPoint.length; g++) {
    if (zeroPoint[g] < qmin || zeroPoint[g] > qmax) {
      throw new InvalidArgumentError(`zero point ${zeroPoint[g]} of group ${g} is outside the code range [${qmin}, ${qmax}]`, { group: g });
    }
  }
}

function cpu(job: QuantizeJob): QuantizeResult {
  const view = groupView(job.shape, job.granularity);
  const { qmin, qmax } = schemeRange(job);
  const { inverse, zeroPoint } = job.params;
  const n = job.data.length;
  const codes = new Uint8Array(codeBytes(n, job.bits));
  if (job.bits === 8 && view.mode === MODE_CHANNEL) {
    const wasm = wasmFor(n);
    if (job.errorStats && wasm) {
      const sums = wasm.quantize8Stats(job.data, view, job.params.scale, inverse, zeroPoint, qmin, qmax, job.signed, codes);
      if (sums) return { codes, error: errorStatsFromSums(sums) };
    }
    if (!wasm?.quantize8(job.data, view, inverse, zeroPoint, qmin, qmax, codes)) {
      quantizeChannels8(job.data, view.outer, view.dim, view.inner, inverse, zeroPoint, qmin, qmax, codes);
    }
    return job.errorStats ? { codes, error: roundTripError(job, codes) } : { codes };
  }
  // 4-bit codes and blocks: the engine quantizes to bytes by the same operations and packs them.
  const wasm = wasmFor(n);
  const done = wasm?.quantizeGroups(job.data, view, inverse, zeroPoint, job.errorStats ? job.params.scale : null, qmin, qmax, job.bits, job.signed, codes);
  if (done) return done === true ? { codes } : { codes, error: errorStatsFromSums(done) };
  const perTensor = view.groups === 1;
  for (let i = 0; i < n; i++) {
    const g = perTensor ? 0 : groupOf(view, i);
    const q = quantizeValue(job.data[i], inverse[g], zeroPoint[g], qmin, qmax);
    if (job.bits === 8) codes[i] = q & 0xff;
    else codes[i >> 1] |= (q & 0xf) << ((i & 1) * 4);
  }
  return job.errorStats ? { codes, error: roundTripError(job, codes) } : { codes };
}

const ROUND_MAGIC = 6755399441055744;

/**
 * The hot CPU loop for 8-bit per-tensor / per-channel codes: the same operations as
 * quantizeValue, with the group's parameters hoisted out of the inner loop.
 */
function quantizeChannels8(
  data: Float32Array, outer: number, dim: number, inner: number,
  inverse: Float32Array, zeroPoint: Int32Array, qmin: number, qmax: number, codes: Uint8Array,
): void {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let i = 0;
  for (let o = 0; o < outer; o++) {
    for (let d = 0; d < dim; d++) {
      const inv = inverse[d];
      const zp = zeroPoint[d];
      const lo = qmin - zp;
      const hi = qmax - zp;
      const nanCode = Math.min(qmax, Math.max(qmin, zp)) & 0xff;
      for (const end = i + inner; i < end; i++) {
        const b = bits[i];
        const e = b & 0x7f800000;
        if (e === 0x7f800000) {
          codes[i] = (b & 0x007fffff ? nanCode : b & 0x80000000 ? qmin : qmax) & 0xff;
          continue;
        }
        // Denormals flush to zero, as in WGSL.
        let v = e === 0 ? 0 : Math.fround(data[i] * inv);
        if (v === Infinity) v = hi;
        else if (v === -Infinity) v = lo;
        v = v < lo ? lo : v > hi ? hi : v;
        codes[i] = (v + ROUND_MAGIC - ROUND_MAGIC + zp) & 0xff;
      }
    }
  }
}

function pieces(job: QuantizeJob, maxWords: number): Piece[] {
  const view = groupView(job.shape, job.granularity);
  const { qmin, qmax } = schemeRange(job);
  const per = 32 / job.bits;
  const params = new Uint32Array(2 * view.groups);
  const zp = new Uint32Array(job.params.zeroPoint.buffer, job.params.zeroPoint.byteOffset, view.groups);
  const inv = new Uint32Array(job.params.inverse.buffer, job.params.inverse.byteOffset, view.groups);
  for (let g = 0; g < view.groups; g++) {
    params[2 * g] = inv[g];
    params[2 * g + 1] = zp[g];
  }
  // Slices start on whole output words so packed 4-bit codes concatenate exactly.
  const chunk = Math.max(per, Math.floor(maxWords / per) * per);
  const out: Piece[] = [];
  for (let start = 0; start < view.elements; start += chunk) {
    const count = Math.min(chunk, view.elements - start);
    const words = Math.ceil(count / per);
    out.push({
      entryPoint: 'quantize',
      workgroups: Math.ceil(words / WORKGROUP_SIZE),
      words: { src: count, qparams: params.length, codes: words },
      uploads: [
        { stream: 'src', at: 0, data: job.data.subarray(start, start + count) },
        { stream: 'qparams', at: 0, data: params },
      ],
      record: (o) => [o.src, count, start, o.codes, o.qparams, view.mode, view.dim, view.inner, view.block, job.bits, qmin >>> 0, qmax >>> 0],
    });
  }
  return out;
}

function finish(job: QuantizeJob, regions: PieceRegions[]): QuantizeResult {
  const length = codeBytes(job.data.length, job.bits);
  // One piece: its read-back array (a fresh copy, owned here) already holds the codes; a second
  // copy into a new array would double the page faults of a large result.
  const only = regions.length === 1 ? regions[0].codes : null;
  if (only && only.byteLength >= length) {
    const codes = new Uint8Array(only.buffer, only.byteOffset, length);
    return job.errorStats ? { codes, error: roundTripError(job, codes) } : { codes };
  }
  const codes = new Uint8Array(length);
  let at = 0;
  for (const r of regions) {
    const bytes = new Uint8Array(r.codes.buffer, r.codes.byteOffset, Math.min(r.codes.byteLength, codes.length - at));
    codes.set(bytes, at);
    at += bytes.length;
  }
  // The GPU returns codes; the error, when asked for, is taken here (a GPU caller that wants it on
  // the device runs the dequantize kernel instead).
  return job.errorStats ? { codes, error: roundTripError(job, codes) } : { codes };
}

export const quantizeKernel: KernelDescriptor<QuantizeJob, QuantizeResult> = {
  name: 'quantize',
  shader: 'quantize',
  entryPoints: ['quantize'],
  streams: [
    { name: 'src', role: 'in' },
    { name: 'qparams', role: 'in' },
    { name: 'codes', role: 'out' },
  ],
  recordWords: 13,
  validate,
  work: (job) => job.data.length,
  cpu,
  pieces,
  finish,
};
