/**
 * quantize: f32 -> 8-bit or packed 4-bit codes (two per byte, low nibble first, as ONNX stores
 * INT4/UINT4), per tensor / channel / block, saturating, round half to even.
 * NaN maps to the zero point, ±Inf (and products that overflow) to the code range's ends.
 */
import { InvalidArgumentError } from '../errors.ts';
import { flushDenormalBits, bitsToF32, f32Bits, isFiniteBits, roundHalfEven } from './numerics.ts';
import { groupOf, groupView, elementCount, type Granularity } from './layout.ts';
import { codeRange, type Bits, type QuantParams } from './qparams.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export interface QuantizeJob {
  data: Float32Array;
  shape: readonly number[];
  granularity: Granularity;
  bits: Bits;
  signed: boolean;
  narrow?: boolean;
  params: QuantParams;
}

export interface QuantizeResult {
  /** 8-bit: one byte per element (two's complement when signed); 4-bit: ceil(n / 2) packed bytes. */
  codes: Uint8Array;
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
  const { qmin, qmax } = codeRange(job.bits, job.signed, job.narrow);
  for (let g = 0; g < zeroPoint.length; g++) {
    if (zeroPoint[g] < qmin || zeroPoint[g] > qmax) {
      throw new InvalidArgumentError(`zero point ${zeroPoint[g]} of group ${g} is outside the code range [${qmin}, ${qmax}]`, { group: g });
    }
  }
}

function cpu(job: QuantizeJob): QuantizeResult {
  const view = groupView(job.shape, job.granularity);
  const { qmin, qmax } = codeRange(job.bits, job.signed, job.narrow);
  const { inverse, zeroPoint } = job.params;
  const n = job.data.length;
  const codes = new Uint8Array(codeBytes(n, job.bits));
  const perTensor = view.groups === 1;
  for (let i = 0; i < n; i++) {
    const g = perTensor ? 0 : groupOf(view, i);
    const q = quantizeValue(job.data[i], inverse[g], zeroPoint[g], qmin, qmax);
    if (job.bits === 8) codes[i] = q & 0xff;
    else codes[i >> 1] |= (q & 0xf) << ((i & 1) * 4);
  }
  return { codes };
}

function pieces(job: QuantizeJob, maxWords: number): Piece[] {
  const view = groupView(job.shape, job.granularity);
  const { qmin, qmax } = codeRange(job.bits, job.signed, job.narrow);
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
  const codes = new Uint8Array(codeBytes(job.data.length, job.bits));
  let at = 0;
  for (const r of regions) {
    const bytes = new Uint8Array(r.codes.buffer, r.codes.byteOffset, Math.min(r.codes.byteLength, codes.length - at));
    codes.set(bytes, at);
    at += bytes.length;
  }
  return { codes };
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
