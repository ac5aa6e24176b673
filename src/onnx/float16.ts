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
  const b = u[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
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
  let r = (e << 10) | (mant >> 13);
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++;
  return sign | r;
}

export function bfloat16ToFloat(h: number): number {
  u[0] = (h & 0xffff) << 16;
  return f[0];
}
