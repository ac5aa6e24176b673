/**
 * Quantization schemes and their parameters. Scales are computed here, once, on the CPU from an
 * exact range reduction, and the same f32 scale / inverse / zero point go to every backend.
 */
import { InvalidArgumentError } from '../errors.ts';
import { roundHalfEven } from './numerics.ts';
import type { Granularity } from './layout.ts';

export type Bits = 4 | 8;

export interface QuantScheme {
  bits: Bits;
  signed: boolean;
  symmetric: boolean;
  /** Narrow range drops the most negative code (int8: [-127, 127]), as symmetric weight schemes often do. */
  narrow?: boolean;
  /**
   * 8-bit codes from a 7-bit range (signed [-64, 63], unsigned [0, 127]): x86 CPUs without VNNI
   * add u8 x s8 products pairwise in 16 bits (VPMADDUBSW), which saturates with full-range weights.
   */
  reduceRange?: boolean;
  /** Codes from a grid of this many bits, stored in `bits` (3-bit weights stored as INT4). */
  gridBits?: number;
  granularity: Granularity;
}

export interface QuantParams {
  /** One f32 scale per group (always a positive normal number). */
  scale: Float32Array;
  /** The f32 inverse of each scale, the multiplier kernels use. */
  inverse: Float32Array;
  zeroPoint: Int32Array;
}

export function codeRange(bits: Bits, signed: boolean, narrow = false): { qmin: number; qmax: number } {
  if (bits !== 8 && bits !== 4) throw new InvalidArgumentError(`bits must be 4 or 8, got ${bits}`, { bits });
  const levels = 1 << bits;
  if (signed) return { qmin: -levels / 2 + (narrow ? 1 : 0), qmax: levels / 2 - 1 };
  return { qmin: 0, qmax: levels - 1 - (narrow ? 1 : 0) };
}

const MIN_NORMAL_F32 = 1.1754943508222875e-38;

/** Keeps scales usable: a zero, denormal or non-finite range gets scale 1 rather than 0 or NaN. */
function safeScale(s: number): number {
  const f = Math.fround(s);
  return Number.isFinite(f) && f >= MIN_NORMAL_F32 ? f : 1;
}

/**
 * Scale and zero point per group from per-group min / max (finite values only; a group without
 * finite values has min = max = NaN and gets scale 1, zero point at the real zero).
 */
/**
 * Codes of a `gridBits`-bit grid (fewer levels than the storage type holds: 3-bit weights stored
 * as INT4, or the 7-bit range of reduce-range stored as INT8).
 */
export function gridRange(gridBits: number, signed: boolean, narrow = false): { qmin: number; qmax: number } {
  if (!Number.isInteger(gridBits) || gridBits < 2 || gridBits > 8) throw new InvalidArgumentError(`grid bits must be an integer in [2, 8], got ${gridBits}`, { bits: gridBits });
  const levels = 1 << gridBits;
  if (signed) return { qmin: -levels / 2 + (narrow ? 1 : 0), qmax: levels / 2 - 1 };
  return { qmin: 0, qmax: levels - 1 - (narrow ? 1 : 0) };
}

/** The code range a scheme quantizes to (its grid, within the storage type's range). */
export function schemeRange(scheme: Pick<QuantScheme, 'bits' | 'signed' | 'narrow' | 'reduceRange' | 'gridBits'>): { qmin: number; qmax: number } {
  if (scheme.gridBits !== undefined && scheme.gridBits < scheme.bits) return gridRange(scheme.gridBits, scheme.signed, scheme.narrow);
  if (scheme.reduceRange && scheme.bits === 8) return gridRange(7, scheme.signed);
  return codeRange(scheme.bits, scheme.signed, scheme.narrow);
}

export function computeQuantParams(min: ArrayLike<number>, max: ArrayLike<number>, scheme: QuantScheme): QuantParams {
  const { qmin, qmax } = schemeRange(scheme);
  const n = min.length;
  const scale = new Float32Array(n);
  const inverse = new Float32Array(n);
  const zeroPoint = new Int32Array(n);
  for (let g = 0; g < n; g++) {
    const lo = Number.isNaN(min[g]) ? 0 : Math.min(min[g], 0);
    const hi = Number.isNaN(max[g]) ? 0 : Math.max(max[g], 0);
    let s: number;
    let zp: number;
    if (scheme.symmetric) {
      const absmax = Math.max(-lo, hi);
      // Symmetric signed codes use [-qmax, qmax]; unsigned symmetric centres on the middle code.
      const half = scheme.signed ? qmax : (qmax - qmin) / 2;
      s = safeScale(absmax / half);
      zp = scheme.signed ? 0 : Math.ceil((qmax + qmin) / 2);
    } else {
      s = safeScale((hi - lo) / (qmax - qmin));
      zp = qmin - roundHalfEven(lo / s);
      zp = Math.min(qmax, Math.max(qmin, zp));
    }
    scale[g] = s;
    inverse[g] = Math.fround(1 / s);
    zeroPoint[g] = zp;
  }
  return { scale, inverse, zeroPoint };
}

/** Parameters from given scales (e.g. to reproduce another tool's quantization exactly). */
export function paramsFromScales(scales: ArrayLike<number>, zeroPoints: ArrayLike<number>): QuantParams {
  const n = scales.length;
  if (zeroPoints.length !== n) {
    throw new InvalidArgumentError(`got ${n} scales but ${zeroPoints.length} zero points`);
  }
  const scale = new Float32Array(n);
  const inverse = new Float32Array(n);
  const zeroPoint = new Int32Array(n);
  for (let g = 0; g < n; g++) {
    const s = Math.fround(scales[g]);
    if (!(s > 0) || !Number.isFinite(s)) throw new InvalidArgumentError(`scale ${g} is ${scales[g]}; scales must be positive and finite`, { group: g });
    scale[g] = s;
    inverse[g] = Math.fround(1 / s);
    zeroPoint[g] = zeroPoints[g];
  }
  return { scale, inverse, zeroPoint };
}
