/**
 * Shared exact-numerics helpers. The CPU references use these so that they perform the same
 * f32 operations, in the same order, as the WGSL kernels (see DESIGN.md, numerics policy).
 */
const ROUND_MAGIC = 6755399441055744; // 1.5 * 2^52: adding it rounds an f64 to an integer, half to even.

/** Round half to even, exact for every f32 input with |x| < 2^51 (WGSL `round`). */
export function roundHalfEven(x: number): number {
  return x + ROUND_MAGIC - ROUND_MAGIC;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

export function bitsToF32(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}

const EXP_MASK = 0x7f800000;

export function isFiniteBits(bits: number): boolean {
  return (bits & EXP_MASK) !== EXP_MASK;
}

/**
 * Denormals are flushed to (signed) zero by some GPUs and not by others; every kernel that does
 * arithmetic on inputs flushes them explicitly, here and in WGSL, so all backends agree.
 */
export function flushDenormalBits(bits: number): number {
  return (bits & EXP_MASK) === 0 ? (bits & 0x80000000) >>> 0 : bits >>> 0;
}

export function flushDenormal(x: number): number {
  return bitsToF32(flushDenormalBits(f32Bits(x)));
}

/** Order-preserving map from f32 bits to u32, so min/max become exact integer operations. */
export function sortableKey(bits: number): number {
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

export function keyToF32(key: number): number {
  const bits = key & 0x80000000 ? key & 0x7fffffff : ~key;
  return bitsToF32(bits >>> 0);
}

export const KEY_EMPTY_MIN = 0xffffffff;
export const KEY_EMPTY_MAX = 0;
