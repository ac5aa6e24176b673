// AssemblyScript: the CPU path's hot loops in WebAssembly SIMD (f32x4 / f64x2). Each function
// performs exactly the per-element operations of the TypeScript reference in src/kernels/ (which
// stays the oracle): the same f32 products, `f32x4.nearest` for round-half-to-even, denormal
// inputs flushed to zero, NaN / Inf handled by bit tests. Integer results are bit-identical;
// sums are f64 (their order differs from the reference: within the float tolerances).
//
// Memory is managed by the caller (src/cpu/wasm-kernels.ts): pointers are byte offsets into this
// module's exported memory.

const EXP: u32 = 0x7f800000;
const SIGN: u32 = 0x80000000;
const MANT: u32 = 0x007fffff;

// ---- quantize, 8-bit codes -------------------------------------------------------------------

@inline function quantizeOne(b: u32, inv: f32, zp: i32, qmin: i32, qmax: i32): i32 {
  const e = b & EXP;
  if (e == EXP) {
    if (b & MANT) return min(qmax, max(qmin, zp));
    return b & SIGN ? qmin : qmax;
  }
  const lo = <f32>(qmin - zp);
  const hi = <f32>(qmax - zp);
  let v: f32 = e == 0 ? 0 : reinterpret<f32>(b) * inv;
  v = v < lo ? lo : v > hi ? hi : v;
  return <i32>nearest<f32>(v) + zp;
}

/** Codes of four normal f32 with per-lane parameters: quantize8's fast-path arithmetic (see there). */
@inline function fastLanes(b: v128, invAt: usize, zpAt: usize, vqmin: v128, vqmax: v128): v128 {
  const zp = v128.load(zpAt);
  const lo = f32x4.convert_i32x4_s(i32x4.sub(vqmin, zp));
  const hi = f32x4.convert_i32x4_s(i32x4.sub(vqmax, zp));
  const v = f32x4.pmax(f32x4.pmin(f32x4.mul(b, v128.load(invAt)), hi), lo);
  return i32x4.sub(f32x4.add(v, f32x4.splat(12582912.0)), i32x4.sub(i32x4.splat(0x4b400000), zp));
}

/** Lanes: codes of four f32 inputs with per-lane inverse scale and zero point. */
@inline function quantizeLanes(b: v128, inv: v128, zp: v128, lo: v128, hi: v128, nanCode: v128, qmin: v128, qmax: v128): v128 {
  const e = v128.and(b, i32x4.splat(EXP));
  const special = i32x4.eq(e, i32x4.splat(EXP));
  const denormal = i32x4.eq(e, i32x4.splat(0));
  let v = f32x4.mul(b, inv);
  v = f32x4.max(f32x4.min(v, hi), lo);
  v = v128.bitselect(f32x4.splat(0), v, denormal);
  const q = i32x4.add(i32x4.trunc_sat_f32x4_s(f32x4.nearest(v)), zp);
  const isNan = v128.not(i32x4.eq(v128.and(b, i32x4.splat(MANT)), i32x4.splat(0)));
  const negative = i32x4.ne(v128.and(b, i32x4.splat(SIGN)), i32x4.splat(0));
  const specialCode = v128.bitselect(nanCode, v128.bitselect(qmin, qmax, negative), isNan);
  return v128.bitselect(specialCode, q, special);
}

/** The low byte of each 32-bit lane of four vectors, in order: 16 codes. */
@inline function lowBytes(q0: v128, q1: v128, q2: v128, q3: v128): v128 {
  const a = i8x16.shuffle(q0, q1, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  const b = i8x16.shuffle(q2, q3, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  return i8x16.shuffle(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
}

/** n codes from n f32 at src with one inverse scale and zero point (a per-tensor or per-channel run). */
export function quantize8(src: usize, dst: usize, n: i32, inv: f32, zp: i32, qmin: i32, qmax: i32): void {
  const vinv = f32x4.splat(inv);
  const vzp = i32x4.splat(zp);
  const lo = f32x4.splat(<f32>(qmin - zp));
  const hi = f32x4.splat(<f32>(qmax - zp));
  const nanCode = i32x4.splat(min(qmax, max(qmin, zp)));
  const vqmin = i32x4.splat(qmin);
  const vqmax = i32x4.splat(qmax);
  const magic = f32x4.splat(12582912.0);
  const magicBits = i32x4.splat(0x4b400000 - zp);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = src + (<usize>i << 2);
    const b0 = v128.load(p), b1 = v128.load(p, 16), b2 = v128.load(p, 32), b3 = v128.load(p, 48);
    // Fast path: no NaN / Inf / zero / denormal among the 16 (the usual case for weights).
    if (i32x4.all_true(v128.and(v128.and(normalLanes(b0), normalLanes(b1)), v128.and(normalLanes(b2), normalLanes(b3))))) {
      // Adding 1.5 * 2^23 rounds the clamped value to an integer, half to even (IEEE addition),
      // and leaves that integer in the low mantissa bits: subtracting the constant's bits (less
      // the zero point) gives the code. Exact for |v| <= 2^22; here |v| <= 255.
      // pmin / pmax (single instructions) are exact here: no NaN can occur, and a -0 product
      // rounds to the zero point either way.
      const q0 = i32x4.sub(f32x4.add(f32x4.pmax(f32x4.pmin(f32x4.mul(b0, vinv), hi), lo), magic), magicBits);
      const q1 = i32x4.sub(f32x4.add(f32x4.pmax(f32x4.pmin(f32x4.mul(b1, vinv), hi), lo), magic), magicBits);
      const q2 = i32x4.sub(f32x4.add(f32x4.pmax(f32x4.pmin(f32x4.mul(b2, vinv), hi), lo), magic), magicBits);
      const q3 = i32x4.sub(f32x4.add(f32x4.pmax(f32x4.pmin(f32x4.mul(b3, vinv), hi), lo), magic), magicBits);
      v128.store(dst + i, lowBytes(q0, q1, q2, q3));
      continue;
    }
    const q0 = quantizeLanes(b0, vinv, vzp, lo, hi, nanCode, vqmin, vqmax);
    const q1 = quantizeLanes(b1, vinv, vzp, lo, hi, nanCode, vqmin, vqmax);
    const q2 = quantizeLanes(b2, vinv, vzp, lo, hi, nanCode, vqmin, vqmax);
    const q3 = quantizeLanes(b3, vinv, vzp, lo, hi, nanCode, vqmin, vqmax);
    v128.store(dst + i, lowBytes(q0, q1, q2, q3));
  }
  for (; i < n; i++) store<u8>(dst + i, <u8>quantizeOne(load<u32>(src + (<usize>i << 2)), inv, zp, qmin, qmax));
}

/** n codes where element i uses inverse scale inv[i] and zero point zp[i] (channels on the last axis). */
export function quantize8Lanes(src: usize, dst: usize, n: i32, invPtr: usize, zpPtr: usize, qmin: i32, qmax: i32): void {
  const vqmin = i32x4.splat(qmin);
  const vqmax = i32x4.splat(qmax);
  let i = 0;
  // Sixteen at a time while all are normal numbers: quantize8's fast path (same operations, so
  // the same codes) with each lane's own parameters, one 16-byte store.
  for (; i + 16 <= n; i += 16) {
    const off = <usize>i << 2;
    const b0 = v128.load(src + off), b1 = v128.load(src + off, 16), b2 = v128.load(src + off, 32), b3 = v128.load(src + off, 48);
    if (!i32x4.all_true(v128.and(v128.and(normalLanes(b0), normalLanes(b1)), v128.and(normalLanes(b2), normalLanes(b3))))) break;
    const q0 = fastLanes(b0, invPtr + off, zpPtr + off, vqmin, vqmax);
    const q1 = fastLanes(b1, invPtr + off + 16, zpPtr + off + 16, vqmin, vqmax);
    const q2 = fastLanes(b2, invPtr + off + 32, zpPtr + off + 32, vqmin, vqmax);
    const q3 = fastLanes(b3, invPtr + off + 48, zpPtr + off + 48, vqmin, vqmax);
    v128.store(dst + i, lowBytes(q0, q1, q2, q3));
  }
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const zp = v128.load(zpPtr + off);
    const lo = f32x4.convert_i32x4_s(i32x4.sub(vqmin, zp));
    const hi = f32x4.convert_i32x4_s(i32x4.sub(vqmax, zp));
    const nanCode = i32x4.min_s(vqmax, i32x4.max_s(vqmin, zp));
    const q = quantizeLanes(v128.load(src + off), v128.load(invPtr + off), zp, lo, hi, nanCode, vqmin, vqmax);
    store<u8>(dst + i, <u8>i32x4.extract_lane(q, 0));
    store<u8>(dst + i + 1, <u8>i32x4.extract_lane(q, 1));
    store<u8>(dst + i + 2, <u8>i32x4.extract_lane(q, 2));
    store<u8>(dst + i + 3, <u8>i32x4.extract_lane(q, 3));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<u8>(dst + i, <u8>quantizeOne(load<u32>(src + off), load<f32>(invPtr + off), load<i32>(zpPtr + off), qmin, qmax));
  }
}

// ---- range: min / max / absmax keys, NaN / Inf counts, shifted sums ----------------------------
// out: u32 kmin, kmax, amax, nan, inf, count (offsets 0..20); f64 sum(x - pivot), sum((x - pivot)^2)
// at 24 and 32; the pivot (f32) is passed in. Accumulates onto what out holds.

@inline function keyOf(b: v128): v128 {
  const neg = i32x4.ne(v128.and(b, i32x4.splat(SIGN)), i32x4.splat(0));
  return v128.bitselect(v128.not(b), v128.or(b, i32x4.splat(SIGN)), neg);
}

/** Unsigned min / max over the four lanes (two shuffle steps). */
@inline function minLanes(v: v128): u32 {
  v = i32x4.min_u(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return <u32>i32x4.extract_lane(i32x4.min_u(v, i32x4.shuffle(v, v, 1, 0, 3, 2)), 0);
}
@inline function maxLanes(v: v128): u32 {
  v = i32x4.max_u(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return <u32>i32x4.extract_lane(i32x4.max_u(v, i32x4.shuffle(v, v, 1, 0, 3, 2)), 0);
}
@inline function sumLanes(v: v128): u32 {
  v = i32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return <u32>i32x4.extract_lane(i32x4.add(v, i32x4.shuffle(v, v, 1, 0, 3, 2)), 0);
}

/** Lanes finite and normal (|bits| - 2^23 below 0x7f000000, unsigned): not zero, denormal, Inf or NaN. */
@inline function normalLanes(b: v128): v128 {
  return i32x4.lt_u(i32x4.sub(v128.and(b, i32x4.splat(0x7fffffff)), i32x4.splat(0x00800000)), i32x4.splat(0x7f000000));
}

export function range(src: usize, n: i32, pivot: f32, moments: bool, out: usize): void {
  let kmin = i32x4.splat(-1); // 0xffffffff
  let kmax = i32x4.splat(0);
  let amax = i32x4.splat(0);
  let nan = i32x4.splat(0);
  let inf = i32x4.splat(0);
  let cnt = i32x4.splat(0);
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0), q0 = f64x2.splat(0), q1 = f64x2.splat(0);
  const vp = f32x4.splat(pivot);
  let fmin = f32x4.splat(Infinity);
  let fmax = f32x4.splat(-Infinity);
  let fastCount: u32 = 0;
  let slow = false;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    let b = v128.load(src + (<usize>i << 2));
    if (!moments) {
      // Fast path: eight (then four) finite normal values (no zero, so float min / max are exact
      // and agree with the key order; |x| max is |min| or |max|); merged into the keys at the end.
      if (i + 8 <= n) {
        const b2 = v128.load(src + (<usize>i << 2) + 16);
        if (i32x4.all_true(v128.and(normalLanes(b), normalLanes(b2)))) {
          fmin = f32x4.pmin(fmin, f32x4.pmin(b, b2));
          fmax = f32x4.pmax(fmax, f32x4.pmax(b, b2));
          fastCount += 8;
          i += 4;
          continue;
        }
      }
      if (i32x4.all_true(normalLanes(b))) {
        fmin = f32x4.pmin(fmin, b);
        fmax = f32x4.pmax(fmax, b);
        fastCount += 4;
        continue;
      }
    }
    slow = true;
    const e = v128.and(b, i32x4.splat(EXP));
    // Denormals flush to (signed) zero.
    b = v128.bitselect(v128.and(b, i32x4.splat(SIGN)), b, i32x4.eq(e, i32x4.splat(0)));
    const special = i32x4.eq(e, i32x4.splat(EXP));
    const finite = v128.not(special);
    const isNan = v128.and(special, v128.not(i32x4.eq(v128.and(b, i32x4.splat(MANT)), i32x4.splat(0))));
    nan = i32x4.sub(nan, isNan);
    inf = i32x4.sub(inf, v128.andnot(special, isNan));
    cnt = i32x4.sub(cnt, finite);
    const key = keyOf(b);
    kmin = i32x4.min_u(kmin, v128.or(key, special));
    kmax = i32x4.max_u(kmax, v128.and(key, finite));
    amax = i32x4.max_u(amax, v128.and(v128.and(b, i32x4.splat(0x7fffffff)), finite));
    if (moments) {
      const d = v128.and(f32x4.sub(b, vp), finite); // non-finite lanes contribute 0
      const lo = f64x2.promote_low_f32x4(d);
      const hi = f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 0, 1));
      s0 = f64x2.add(s0, lo);
      s1 = f64x2.add(s1, hi);
      q0 = f64x2.add(q0, f64x2.mul(lo, lo));
      q1 = f64x2.add(q1, f64x2.mul(hi, hi));
    }
  }
  if (fastCount) {
    // Every lane took part in the fast path (it always takes four at once).
    kmin = i32x4.min_u(kmin, keyOf(fmin));
    kmax = i32x4.max_u(kmax, keyOf(fmax));
    amax = i32x4.max_u(amax, i32x4.max_u(v128.and(fmin, i32x4.splat(0x7fffffff)), v128.and(fmax, i32x4.splat(0x7fffffff))));
  }
  let rkmin = min(load<u32>(out), minLanes(kmin));
  let rkmax = max(load<u32>(out, 4), maxLanes(kmax));
  let ramax = max(load<u32>(out, 8), maxLanes(amax));
  let rnan = load<u32>(out, 12), rinf = load<u32>(out, 16), rcnt = load<u32>(out, 20) + fastCount;
  let sum = load<f64>(out, 24), sq = load<f64>(out, 32);
  if (slow) {
    rnan += sumLanes(nan);
    rinf += sumLanes(inf);
    rcnt += sumLanes(cnt);
  }
  sum += f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1) + f64x2.extract_lane(s1, 0) + f64x2.extract_lane(s1, 1);
  sq += f64x2.extract_lane(q0, 0) + f64x2.extract_lane(q0, 1) + f64x2.extract_lane(q1, 0) + f64x2.extract_lane(q1, 1);
  for (; i < n; i++) {
    let b = load<u32>(src + (<usize>i << 2));
    const e = b & EXP;
    if (e == 0) b &= SIGN;
    if (e == EXP) {
      if (b & MANT) rnan++;
      else rinf++;
      continue;
    }
    const key: u32 = b & SIGN ? ~b : b | SIGN;
    rkmin = min(rkmin, key);
    rkmax = max(rkmax, key);
    ramax = max(ramax, b & 0x7fffffff);
    rcnt++;
    if (moments) {
      const d = <f64>(reinterpret<f32>(b) - pivot);
      sum += d;
      sq += d * d;
    }
  }
  store<u32>(out, rkmin);
  store<u32>(out, rkmax, 4);
  store<u32>(out, ramax, 8);
  store<u32>(out, rnan, 12);
  store<u32>(out, rinf, 16);
  store<u32>(out, rcnt, 20);
  store<f64>(out, sum, 24);
  store<f64>(out, sq, 32);
}

/**
 * Range of channels on the last axis (no moments): n consecutive elements, element i in lane i
 * (the caller offsets the tables to the run's first lane). The statistics are lane-major: six u32
 * arrays of `dim` words each at tab (kmin, kmax, amax, NaN, Inf, finite count), so four lanes
 * update with one vector load and store per field. Same rules as range: NaN / Inf counted and left
 * out, denormals flushed to signed zero. Accumulates onto the tables.
 */
export function rangeLanes(src: usize, n: i32, tab: usize, dim: i32): void {
  const field = <usize>dim << 2;
  const kminAt = tab;
  const kmaxAt = tab + field;
  const amaxAt = tab + 2 * field;
  const nanAt = tab + 3 * field;
  const infAt = tab + 4 * field;
  const cntAt = tab + 5 * field;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    let b = v128.load(src + off);
    const e = v128.and(b, i32x4.splat(EXP));
    b = v128.bitselect(v128.and(b, i32x4.splat(SIGN)), b, i32x4.eq(e, i32x4.splat(0)));
    const special = i32x4.eq(e, i32x4.splat(EXP));
    const finite = v128.not(special);
    const key = keyOf(b);
    v128.store(kminAt + off, i32x4.min_u(v128.load(kminAt + off), v128.or(key, special)));
    v128.store(kmaxAt + off, i32x4.max_u(v128.load(kmaxAt + off), v128.and(key, finite)));
    v128.store(amaxAt + off, i32x4.max_u(v128.load(amaxAt + off), v128.and(v128.and(b, i32x4.splat(0x7fffffff)), finite)));
    v128.store(cntAt + off, i32x4.sub(v128.load(cntAt + off), finite));
    if (v128.any_true(special)) {
      const isNan = v128.and(special, v128.not(i32x4.eq(v128.and(b, i32x4.splat(MANT)), i32x4.splat(0))));
      v128.store(nanAt + off, i32x4.sub(v128.load(nanAt + off), isNan));
      v128.store(infAt + off, i32x4.sub(v128.load(infAt + off), v128.andnot(special, isNan)));
    }
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    let b = load<u32>(src + off);
    const e = b & EXP;
    if (e == 0) b &= SIGN;
    if (e == EXP) {
      if (b & MANT) store<u32>(nanAt + off, load<u32>(nanAt + off) + 1);
      else store<u32>(infAt + off, load<u32>(infAt + off) + 1);
      continue;
    }
    const key: u32 = b & SIGN ? ~b : b | SIGN;
    store<u32>(kminAt + off, min(load<u32>(kminAt + off), key));
    store<u32>(kmaxAt + off, max(load<u32>(kmaxAt + off), key));
    store<u32>(amaxAt + off, max(load<u32>(amaxAt + off), b & 0x7fffffff));
    store<u32>(cntAt + off, load<u32>(cntAt + off) + 1);
  }
}

/**
 * rangeLanes plus each lane's pivot-shifted sums (range's moments): f64 lane-major arrays at sums
 * (Σ (x − pivot), then Σ (x − pivot)², `dim` each), the pivots (f32, one per lane) at piv — all
 * three offset by the caller to the run's first lane. The difference is taken in f32, as range does.
 */
export function rangeLanesMoments(src: usize, n: i32, tab: usize, dim: i32, piv: usize, sums: usize): void {
  rangeLanes(src, n, tab, dim);
  const sqAt = sums + (<usize>dim << 3);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    let b = v128.load(src + (<usize>i << 2));
    const e = v128.and(b, i32x4.splat(EXP));
    b = v128.bitselect(v128.and(b, i32x4.splat(SIGN)), b, i32x4.eq(e, i32x4.splat(0)));
    const d = v128.andnot(f32x4.sub(b, v128.load(piv + (<usize>i << 2))), i32x4.eq(e, i32x4.splat(EXP)));
    const lo = f64x2.promote_low_f32x4(d);
    const hi = f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 0, 1));
    const at = <usize>i << 3;
    v128.store(sums + at, f64x2.add(v128.load(sums + at), lo));
    v128.store(sums + at + 16, f64x2.add(v128.load(sums + at + 16), hi));
    v128.store(sqAt + at, f64x2.add(v128.load(sqAt + at), f64x2.mul(lo, lo)));
    v128.store(sqAt + at + 16, f64x2.add(v128.load(sqAt + at + 16), f64x2.mul(hi, hi)));
  }
  for (; i < n; i++) {
    let b = load<u32>(src + (<usize>i << 2));
    const e = b & EXP;
    if (e == EXP) continue;
    if (e == 0) b &= SIGN;
    const d = <f64>(reinterpret<f32>(b) - load<f32>(piv + (<usize>i << 2)));
    const at = <usize>i << 3;
    store<f64>(sums + at, load<f64>(sums + at) + d);
    store<f64>(sqAt + at, load<f64>(sqAt + at) + d * d);
  }
}

// ---- dequantize 8-bit codes against the original: round-trip error sums -----------------------
// out: f64 e2, x2, h2, xh (0..24), f32 emax bits as u32 (32), u32 count (36), u32 bad (40).
// Accumulates onto what out holds.

@inline function codesToI32(c: v128, signed: bool): v128 {
  // Four bytes at the bottom of c widened to i32 lanes.
  if (signed) return i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(c));
  return i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(c));
}

export function dequantStats8(codes: usize, orig: usize, n: i32, scale: f32, zp: i32, signed: bool, out: usize): void {
  dequantStats8Impl(codes, orig, n, scale, zp, 0, 0, signed, out);
}

export function dequantStats8Lanes(codes: usize, orig: usize, n: i32, scalePtr: usize, zpPtr: usize, signed: bool, out: usize): void {
  dequantStats8Impl(codes, orig, n, 0, 0, scalePtr, zpPtr, signed, out);
}

/** Lanes that are ±0 or finite normal: nothing to flush or mask for the error sums. */
@inline function normalOrZeroLanes(b: v128): v128 {
  return v128.or(normalLanes(b), i32x4.eq(v128.and(b, i32x4.splat(0x7fffffff)), i32x4.splat(0)));
}

@inline function dequantStats8Impl(codes: usize, orig: usize, n: i32, scale: f32, zp: i32, scalePtr: usize, zpPtr: usize, signed: bool, out: usize): void {
  const lanes = scalePtr != 0;
  // Three sums per element instead of four: Σe², Σx² and Σx·e (e = x − h). Σh² and Σx·h follow
  // per call as Σx² − 2Σx·e + Σe² and Σx² − Σx·e; e is the f32 difference, exact (Sterbenz) unless
  // x was clamped far outside the grid, where it is off by half an f32 ulp of e.
  let e2a = f64x2.splat(0), e2b = f64x2.splat(0), x2a = f64x2.splat(0), x2b = f64x2.splat(0);
  let xea = f64x2.splat(0), xeb = f64x2.splat(0);
  let emax = f32x4.splat(0);
  let cnt = i32x4.splat(0);
  let bad = i32x4.splat(0);
  let vs = f32x4.splat(scale);
  let vzp = i32x4.splat(zp);
  let i = 0;
  while (i + 4 <= n) {
    if (!lanes) {
      // Eight at a time while all eight originals are zeros or finite normal numbers (weights almost
      // always are; zeros need no flushing): eight that are not go through the general loop below.
      for (; i + 8 <= n; i += 8) {
        const off = <usize>i << 2;
        const b0 = v128.load(orig + off), b1 = v128.load(orig + off, 16);
        if (!i32x4.all_true(v128.and(normalOrZeroLanes(b0), normalOrZeroLanes(b1)))) break;
        const c = v128.load64_zero(codes + i);
        const c16 = signed ? i16x8.extend_low_i8x16_s(c) : i16x8.extend_low_i8x16_u(c);
        const q0 = signed ? i32x4.extend_low_i16x8_s(c16) : i32x4.extend_low_i16x8_u(c16);
        const q1 = signed ? i32x4.extend_high_i16x8_s(c16) : i32x4.extend_high_i16x8_u(c16);
        const r0 = f32x4.sub(b0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(q0, vzp)), vs));
        const r1 = f32x4.sub(b1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(q1, vzp)), vs));
        emax = f32x4.pmax(emax, f32x4.pmax(f32x4.abs(r0), f32x4.abs(r1)));
        const x0l = f64x2.promote_low_f32x4(b0), x0u = f64x2.promote_low_f32x4(i32x4.shuffle(b0, b0, 2, 3, 0, 1));
        const x1l = f64x2.promote_low_f32x4(b1), x1u = f64x2.promote_low_f32x4(i32x4.shuffle(b1, b1, 2, 3, 0, 1));
        const e0l = f64x2.promote_low_f32x4(r0), e0u = f64x2.promote_low_f32x4(i32x4.shuffle(r0, r0, 2, 3, 0, 1));
        const e1l = f64x2.promote_low_f32x4(r1), e1u = f64x2.promote_low_f32x4(i32x4.shuffle(r1, r1, 2, 3, 0, 1));
        e2a = f64x2.add(e2a, f64x2.add(f64x2.mul(e0l, e0l), f64x2.mul(e1l, e1l)));
        e2b = f64x2.add(e2b, f64x2.add(f64x2.mul(e0u, e0u), f64x2.mul(e1u, e1u)));
        x2a = f64x2.add(x2a, f64x2.add(f64x2.mul(x0l, x0l), f64x2.mul(x1l, x1l)));
        x2b = f64x2.add(x2b, f64x2.add(f64x2.mul(x0u, x0u), f64x2.mul(x1u, x1u)));
        xea = f64x2.add(xea, f64x2.add(f64x2.mul(x0l, e0l), f64x2.mul(x1l, e1l)));
        xeb = f64x2.add(xeb, f64x2.add(f64x2.mul(x0u, e0u), f64x2.mul(x1u, e1u)));
        cnt = i32x4.add(cnt, i32x4.splat(2));
      }
    }
    const stop = lanes ? n : min(n, i + 8);
    for (; i + 4 <= stop; i += 4) {
      const off = <usize>i << 2;
      if (lanes) {
        vs = v128.load(scalePtr + off);
        vzp = v128.load(zpPtr + off);
      }
      const q = codesToI32(v128.load32_zero(codes + i), signed);
      const h = f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(q, vzp)), vs);
      let b = v128.load(orig + off);
      let x = b;
      let hf = h;
      if (i32x4.all_true(normalOrZeroLanes(b))) {
        // Fast path: four zeros or finite normal originals, nothing to flush or mask.
        cnt = i32x4.sub(cnt, i32x4.splat(-1));
      } else {
        const e = v128.and(b, i32x4.splat(EXP));
        b = v128.bitselect(v128.and(b, i32x4.splat(SIGN)), b, i32x4.eq(e, i32x4.splat(0)));
        const special = i32x4.eq(e, i32x4.splat(EXP));
        const finite = v128.not(special);
        bad = i32x4.sub(bad, special);
        cnt = i32x4.sub(cnt, finite);
        x = v128.and(b, finite);
        hf = v128.and(h, finite);
      }
      const err = f32x4.sub(x, hf);
      // pmax is exact: no NaN reaches it.
      emax = f32x4.pmax(emax, f32x4.abs(err));
      const xl = f64x2.promote_low_f32x4(x), xu = f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1));
      const el = f64x2.promote_low_f32x4(err), eu = f64x2.promote_low_f32x4(i32x4.shuffle(err, err, 2, 3, 0, 1));
      e2a = f64x2.add(e2a, f64x2.mul(el, el));
      e2b = f64x2.add(e2b, f64x2.mul(eu, eu));
      x2a = f64x2.add(x2a, f64x2.mul(xl, xl));
      x2b = f64x2.add(x2b, f64x2.mul(xu, xu));
      xea = f64x2.add(xea, f64x2.mul(xl, el));
      xeb = f64x2.add(xeb, f64x2.mul(xu, eu));
    }
  }
  let e2 = f64x2.extract_lane(e2a, 0) + f64x2.extract_lane(e2a, 1) + f64x2.extract_lane(e2b, 0) + f64x2.extract_lane(e2b, 1);
  let x2 = f64x2.extract_lane(x2a, 0) + f64x2.extract_lane(x2a, 1) + f64x2.extract_lane(x2b, 0) + f64x2.extract_lane(x2b, 1);
  let xe = f64x2.extract_lane(xea, 0) + f64x2.extract_lane(xea, 1) + f64x2.extract_lane(xeb, 0) + f64x2.extract_lane(xeb, 1);
  let m = max(max(f32x4.extract_lane(emax, 0), f32x4.extract_lane(emax, 1)), max(f32x4.extract_lane(emax, 2), f32x4.extract_lane(emax, 3)));
  m = max(m, load<f32>(out, 32));
  let c = load<u32>(out, 36) + <u32>(i32x4.extract_lane(cnt, 0) + i32x4.extract_lane(cnt, 1) + i32x4.extract_lane(cnt, 2) + i32x4.extract_lane(cnt, 3));
  let bd = load<u32>(out, 40) + <u32>(i32x4.extract_lane(bad, 0) + i32x4.extract_lane(bad, 1) + i32x4.extract_lane(bad, 2) + i32x4.extract_lane(bad, 3));
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const s: f32 = lanes ? load<f32>(scalePtr + off) : scale;
    const z: i32 = lanes ? load<i32>(zpPtr + off) : zp;
    const q: i32 = signed ? <i32>load<i8>(codes + i) : <i32>load<u8>(codes + i);
    const h: f32 = <f32>(q - z) * s;
    let b = load<u32>(orig + off);
    const e = b & EXP;
    if (e == EXP) {
      bd++;
      continue;
    }
    if (e == 0) b &= SIGN;
    const x = reinterpret<f32>(b);
    const err: f32 = x - h;
    e2 += <f64>err * <f64>err;
    x2 += <f64>x * <f64>x;
    xe += <f64>x * <f64>err;
    m = max(m, abs(err));
    c++;
  }
  store<f64>(out, load<f64>(out) + e2);
  store<f64>(out, load<f64>(out, 8) + x2, 8);
  store<f64>(out, load<f64>(out, 16) + (x2 - 2 * xe + e2), 16);
  store<f64>(out, load<f64>(out, 24) + (x2 - xe), 24);
  store<f32>(out, m, 32);
  store<u32>(out, c, 36);
  store<u32>(out, bd, 40);
}

/**
 * Round-trip error sums per lane, for statistics per channel on the last axis: n elements from
 * lane 0 of the parameter arrays and of two lane-major tables, all offset by the caller to the
 * run's first lane — sums: f64 Σe², Σx², Σx·e (`dim` each); words: f32 max |e|, u32 count, u32
 * non-finite (`dim` each). The same arithmetic per element as dequantStats8Impl's general loop.
 */
export function dequantStats8LaneTable(codes: usize, orig: usize, n: i32, scalePtr: usize, zpPtr: usize, signed: bool, sums: usize, words: usize, dim: i32): void {
  const x2At = sums + (<usize>dim << 3);
  const xeAt = sums + (<usize>dim << 4);
  const cntAt = words + (<usize>dim << 2);
  const badAt = words + (<usize>dim << 3);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const q = codesToI32(v128.load32_zero(codes + i), signed);
    const h = f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(q, v128.load(zpPtr + off))), v128.load(scalePtr + off));
    let b = v128.load(orig + off);
    let x = b;
    let hf = h;
    if (i32x4.all_true(normalOrZeroLanes(b))) {
      v128.store(cntAt + off, i32x4.add(v128.load(cntAt + off), i32x4.splat(1)));
    } else {
      const e = v128.and(b, i32x4.splat(EXP));
      b = v128.bitselect(v128.and(b, i32x4.splat(SIGN)), b, i32x4.eq(e, i32x4.splat(0)));
      const special = i32x4.eq(e, i32x4.splat(EXP));
      const finite = v128.not(special);
      v128.store(badAt + off, i32x4.sub(v128.load(badAt + off), special));
      v128.store(cntAt + off, i32x4.sub(v128.load(cntAt + off), finite));
      x = v128.and(b, finite);
      hf = v128.and(h, finite);
    }
    const err = f32x4.sub(x, hf);
    v128.store(words + off, f32x4.pmax(v128.load(words + off), f32x4.abs(err)));
    const xl = f64x2.promote_low_f32x4(x), xu = f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1));
    const el = f64x2.promote_low_f32x4(err), eu = f64x2.promote_low_f32x4(i32x4.shuffle(err, err, 2, 3, 0, 1));
    const at = <usize>i << 3;
    v128.store(sums + at, f64x2.add(v128.load(sums + at), f64x2.mul(el, el)));
    v128.store(sums + at, f64x2.add(v128.load(sums + at, 16), f64x2.mul(eu, eu)), 16);
    v128.store(x2At + at, f64x2.add(v128.load(x2At + at), f64x2.mul(xl, xl)));
    v128.store(x2At + at, f64x2.add(v128.load(x2At + at, 16), f64x2.mul(xu, xu)), 16);
    v128.store(xeAt + at, f64x2.add(v128.load(xeAt + at), f64x2.mul(xl, el)));
    v128.store(xeAt + at, f64x2.add(v128.load(xeAt + at, 16), f64x2.mul(xu, eu)), 16);
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const q: i32 = signed ? <i32>load<i8>(codes + i) : <i32>load<u8>(codes + i);
    const h: f32 = <f32>(q - load<i32>(zpPtr + off)) * load<f32>(scalePtr + off);
    let b = load<u32>(orig + off);
    const e = b & EXP;
    if (e == EXP) {
      store<u32>(badAt + off, load<u32>(badAt + off) + 1);
      continue;
    }
    if (e == 0) b &= SIGN;
    const x = reinterpret<f32>(b);
    const err: f32 = x - h;
    const at = <usize>i << 3;
    store<f64>(sums + at, load<f64>(sums + at) + <f64>err * <f64>err);
    store<f64>(x2At + at, load<f64>(x2At + at) + <f64>x * <f64>x);
    store<f64>(xeAt + at, load<f64>(xeAt + at) + <f64>x * <f64>err);
    store<f32>(words + off, max(load<f32>(words + off), abs(err)));
    store<u32>(cntAt + off, load<u32>(cntAt + off) + 1);
  }
}

// ---- histogram: fixed bins over [lo, hi] plus below / above / NaN and min / max keys -----------
// slots: u32 x (bins + 5): the bins, below, above, nan, min key, max key. Accumulates onto them.

// histogramOne's results, in globals: each instance has its own (a static slot in memory would be
// shared by the threads of a shared memory, and rewritten whenever a worker instantiates).
let oneSlot: i32 = 0;
let oneKmin: u32 = 0;
let oneKmax: u32 = 0;

/** The slot of one value and the updated min / max keys (the reference's exact arithmetic). */
@inline function histogramOne(b: u32, lo: f32, hi: f32, scale: f32, bins: i32, kmin: u32, kmax: u32): void {
  const e = b & EXP;
  let slot: i32;
  if (e == EXP) {
    slot = b & MANT ? bins + 2 : b & SIGN ? bins : bins + 1;
  } else {
    // Denormals flush to signed zero; min / max on order-preserving keys.
    const bb = e == 0 ? b & SIGN : b;
    const key: u32 = bb & SIGN ? ~bb : bb | SIGN;
    kmin = min(kmin, key);
    kmax = max(kmax, key);
    const v = reinterpret<f32>(bb);
    if (v < lo) slot = bins;
    else if (v > hi) slot = bins + 1;
    else {
      let d: f32 = v - lo;
      if (d != 0 && abs<f32>(d) < 1.1754943508222875e-38) d = 0;
      const t = floor<f32>(d * scale);
      const last = bins - 1;
      slot = t < <f32>last ? <i32>t : last;
    }
  }
  oneSlot = slot;
  oneKmin = kmin;
  oneKmax = kmax;
}

export function histogram(src: usize, n: i32, lo: f32, hi: f32, scale: f32, bins: i32, slots: usize): void {
  const minAt = slots + (<usize>(bins + 3) << 2);
  const maxAt = slots + (<usize>(bins + 4) << 2);
  let kmin = load<u32>(minAt);
  let kmax = load<u32>(maxAt);
  const last = bins - 1;
  const lastF = <f32>last;
  const vexp = i32x4.splat(EXP);
  const vzero = i32x4.splat(0);
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  const vscale = f32x4.splat(scale);
  const vlast = f32x4.splat(lastF);
  const vminNormal = f32x4.splat(1.1754943508222875e-38);
  let fmin = f32x4.splat(Infinity);
  let fmax = f32x4.splat(-Infinity);
  let fast = false;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const b = v128.load(src + (<usize>i << 2));
    const e = v128.and(b, vexp);
    // Fast path: four finite values in range that are normal or +0 (post-ReLU activations are
    // full of +0; -0 and denormals take the exact per-element path, where keys order -0 < +0).
    const odd = v128.or(i32x4.eq(e, vexp), v128.and(i32x4.eq(e, vzero), i32x4.ne(b, vzero)));
    const inRange = v128.and(f32x4.ge(b, vlo), f32x4.le(b, vhi));
    if (!v128.any_true(odd) && i32x4.all_true(inRange)) {
      fmin = f32x4.pmin(fmin, b);
      fmax = f32x4.pmax(fmax, b);
      fast = true;
      let d = f32x4.sub(b, vlo);
      d = v128.bitselect(vzero, d, f32x4.lt(f32x4.abs(d), vminNormal));
      const t = i32x4.trunc_sat_f32x4_s(f32x4.pmin(f32x4.floor(f32x4.mul(d, vscale)), vlast));
      const p0 = slots + (<usize>i32x4.extract_lane(t, 0) << 2);
      store<u32>(p0, load<u32>(p0) + 1);
      const p1 = slots + (<usize>i32x4.extract_lane(t, 1) << 2);
      store<u32>(p1, load<u32>(p1) + 1);
      const p2 = slots + (<usize>i32x4.extract_lane(t, 2) << 2);
      store<u32>(p2, load<u32>(p2) + 1);
      const p3 = slots + (<usize>i32x4.extract_lane(t, 3) << 2);
      store<u32>(p3, load<u32>(p3) + 1);
      continue;
    }
    for (let k = i; k < i + 4; k++) {
      histogramOne(load<u32>(src + (<usize>k << 2)), lo, hi, scale, bins, kmin, kmax);
      kmin = oneKmin;
      kmax = oneKmax;
      const p = slots + (<usize>oneSlot << 2);
      store<u32>(p, load<u32>(p) + 1);
    }
  }
  for (; i < n; i++) {
    histogramOne(load<u32>(src + (<usize>i << 2)), lo, hi, scale, bins, kmin, kmax);
    kmin = oneKmin;
    kmax = oneKmax;
    const p = slots + (<usize>oneSlot << 2);
    store<u32>(p, load<u32>(p) + 1);
  }
  if (fast) {
    // Lanes never touched keep +/-Infinity, whose keys lose every comparison.
    const a = keyOf(fmin);
    const z = keyOf(fmax);
    kmin = min(min(kmin, <u32>i32x4.extract_lane(a, 0)), min(<u32>i32x4.extract_lane(a, 1), min(<u32>i32x4.extract_lane(a, 2), <u32>i32x4.extract_lane(a, 3))));
    kmax = max(max(kmax, <u32>i32x4.extract_lane(z, 0)), max(<u32>i32x4.extract_lane(z, 1), max(<u32>i32x4.extract_lane(z, 2), <u32>i32x4.extract_lane(z, 3))));
  }
  store<u32>(minAt, kmin);
  store<u32>(maxAt, kmax);
}

// ---- run loops: channel-mode groups ([outer, dim, inner], group = (i / inner) % dim) ----------
// One call covers many runs of `inner` elements, so per-channel tensors with thousands of short
// runs do not pay a JS -> wasm call per run. Elements [start, end); src / dst point at element 0.

export function quantize8Runs(src: usize, dst: usize, start: i32, end: i32, inner: i32, dim: i32, invPtr: usize, zpPtr: usize, qmin: i32, qmax: i32): void {
  let i = start;
  while (i < end) {
    const k = i / inner;
    const runEnd = min(end, (k + 1) * inner);
    const g = <usize>(k % dim) << 2;
    quantize8(src + (<usize>i << 2), dst + <usize>i, runEnd - i, load<f32>(invPtr + g), load<i32>(zpPtr + g), qmin, qmax);
    i = runEnd;
  }
}

/** Range of each group (min / max / counts; no moments), partials of 48 bytes per group at out. */
export function rangeRuns(src: usize, start: i32, end: i32, inner: i32, dim: i32, out: usize): void {
  let i = start;
  while (i < end) {
    const k = i / inner;
    const runEnd = min(end, (k + 1) * inner);
    range(src + (<usize>i << 2), runEnd - i, 0, false, out + <usize>(k % dim) * 48);
    i = runEnd;
  }
}

/** Error sums of each run; statistics groups are (i / statsInner) % statsDim (statsDim 1: one group). */
export function dequantStats8Runs(codes: usize, orig: usize, start: i32, end: i32, inner: i32, dim: i32, scalePtr: usize, zpPtr: usize, signed: bool,
  statsInner: i32, statsDim: i32, out: usize): void {
  let i = start;
  while (i < end) {
    const k = i / inner;
    const runEnd = min(end, (k + 1) * inner);
    const g = <usize>(k % dim) << 2;
    const sg = statsDim == 1 ? 0 : (i / statsInner) % statsDim;
    dequantStats8(codes + <usize>i, orig + (<usize>i << 2), runEnd - i, load<f32>(scalePtr + g), load<i32>(zpPtr + g), signed, out + <usize>sg * 48);
    i = runEnd;
  }
}

// ---- any channel- or block-mode grouping, codes as bytes (4-bit codes packed afterwards) -------
// The view [outer, dim, inner] around the axis; block 0: per channel (group = index along the
// axis), block >= 1: blocks of `block` along the axis, group = (outer, block index, inner). The
// range [start, end) is cut into segments that either share one group (a run) or take one group
// per element (a row of `inner`, or of the axis when inner is 1): segmentLen / segmentGroup /
// segmentLanes describe the segment at i.

let segmentLanes: bool = false;
let segmentGroup: i32 = 0;

@inline function segment(i: i32, end: i32, block: i32, inner: i32, dim: i32): i32 {
  const row = i / inner;
  const d = row % dim;
  let len: i32;
  if (block == 0) {
    if (inner == 1) {
      // Channels on the last axis: one group per element, the rest of the row.
      segmentLanes = true;
      segmentGroup = d;
      len = dim - d;
    } else {
      segmentLanes = false;
      segmentGroup = d;
      len = (row + 1) * inner - i;
    }
  } else {
    const nb = (dim + block - 1) / block;
    const b = d / block;
    const gBase = (row / dim * nb + b) * inner;
    if (inner == 1) {
      // Blocks along the last axis: a run to the end of the block.
      segmentLanes = false;
      segmentGroup = gBase;
      len = min(dim, (b + 1) * block) - d;
    } else {
      // Blocks along an outer axis: one group per element of the row of `inner`.
      const k = i % inner;
      segmentLanes = true;
      segmentGroup = gBase + k;
      len = inner - k;
    }
  }
  return min(len, end - i);
}

/** Byte codes of [start, end) for any channel / block grouping (element i at src + 4i, dst + i). */
export function quantize8Groups(src: usize, dst: usize, start: i32, end: i32, block: i32, inner: i32, dim: i32, invPtr: usize, zpPtr: usize, qmin: i32, qmax: i32): void {
  let i = start;
  while (i < end) {
    const len = segment(i, end, block, inner, dim);
    const g = <usize>segmentGroup << 2;
    if (segmentLanes) quantize8Lanes(src + (<usize>i << 2), dst + <usize>i, len, invPtr + g, zpPtr + g, qmin, qmax);
    else quantize8(src + (<usize>i << 2), dst + <usize>i, len, load<f32>(invPtr + g), load<i32>(zpPtr + g), qmin, qmax);
    i += len;
  }
}

/** Per-tensor error sums (one 48-byte record at out) of byte codes for any channel / block grouping. */
export function dequantStats8Groups(codes: usize, orig: usize, start: i32, end: i32, block: i32, inner: i32, dim: i32, scalePtr: usize, zpPtr: usize, signed: bool, out: usize): void {
  let i = start;
  while (i < end) {
    const len = segment(i, end, block, inner, dim);
    const g = <usize>segmentGroup << 2;
    if (segmentLanes) dequantStats8Lanes(codes + <usize>i, orig + (<usize>i << 2), len, scalePtr + g, zpPtr + g, signed, out);
    else dequantStats8(codes + <usize>i, orig + (<usize>i << 2), len, load<f32>(scalePtr + g), load<i32>(zpPtr + g), signed, out);
    i += len;
  }
}

/**
 * Range without moments for block-mode groups over [start, end): blocks along the last axis (runs)
 * accumulate onto 48-byte records at out (range's layout, one per group); blocks along an outer
 * axis (a group per element of each row of `inner`) onto rangeLanes' lane-major table at tab,
 * whose fields are `groups` words apart.
 */
export function rangeBlocks(src: usize, start: i32, end: i32, block: i32, inner: i32, dim: i32, out: usize, tab: usize, groups: i32): void {
  let i = start;
  while (i < end) {
    const len = segment(i, end, block, inner, dim);
    if (segmentLanes) rangeLanes(src + (<usize>i << 2), len, tab + (<usize>segmentGroup << 2), groups);
    else range(src + (<usize>i << 2), len, 0, false, out + <usize>segmentGroup * 48);
    i += len;
  }
}

/** n byte codes packed two per byte, the first in the low nibble (an odd last code alone in its byte). */
export function packNibbles(src: usize, dst: usize, n: i32): void {
  let j = 0;
  const pairs = n >> 1;
  for (; j + 8 <= pairs; j += 8) {
    // Sixteen codes as eight 16-bit lanes: low byte the even code, high byte the odd one.
    const w = v128.load(src + (<usize>j << 1));
    const packed = v128.or(v128.and(w, i16x8.splat(0x000f)), v128.and(i16x8.shr_u(w, 4), i16x8.splat(0x00f0)));
    v128.store64_lane(dst + <usize>j, i8x16.narrow_i16x8_u(packed, packed), 0);
  }
  for (; j < pairs; j++) store<u8>(dst + <usize>j, (load<u8>(src + (<usize>j << 1)) & 0x0f) | (load<u8>(src + (<usize>j << 1) + 1) << 4));
  if (n & 1) store<u8>(dst + <usize>pairs, load<u8>(src + <usize>(n - 1)) & 0x0f);
}

/**
 * quantize8Runs and dequantStats8Runs fused at cache level: each run is cut into pieces of 4096
 * elements, quantized, then its error sums are taken while the piece is still in cache (one
 * statistics group for the whole range, at out). Same results as the two passes.
 */
export function quantize8StatsRuns(src: usize, dst: usize, start: i32, end: i32, inner: i32, dim: i32, invPtr: usize, zpPtr: usize, scalePtr: usize,
  qmin: i32, qmax: i32, signed: bool, out: usize): void {
  let i = start;
  while (i < end) {
    const k = i / inner;
    const runEnd = min(end, (k + 1) * inner);
    const g = <usize>(k % dim) << 2;
    const inv = load<f32>(invPtr + g);
    const zp = load<i32>(zpPtr + g);
    const scale = load<f32>(scalePtr + g);
    for (let p = i; p < runEnd; p += 4096) {
      const len = min(4096, runEnd - p);
      quantize8(src + (<usize>p << 2), dst + <usize>p, len, inv, zp, qmin, qmax);
      dequantStats8(dst + <usize>p, src + (<usize>p << 2), len, scale, zp, signed, out);
    }
    i = runEnd;
  }
}

/**
 * quantize8Lanes and dequantStats8Lanes fused the same way (channels on the last axis): n elements
 * from lane 0 of the parameter arrays, pieces of 4096 quantized and compared while in cache, one
 * statistics group at out. Same codes and (up to the order of the f64 additions) the same sums as
 * the two passes.
 */
export function quantize8StatsLanes(src: usize, dst: usize, n: i32, invPtr: usize, zpPtr: usize, scalePtr: usize, qmin: i32, qmax: i32, signed: bool, out: usize): void {
  for (let p = 0; p < n; p += 4096) {
    const len = min(4096, n - p);
    const off = <usize>p << 2;
    quantize8Lanes(src + off, dst + <usize>p, len, invPtr + off, zpPtr + off, qmin, qmax);
    dequantStats8Lanes(dst + <usize>p, src + off, len, scalePtr + off, zpPtr + off, signed, out);
  }
}

// ---- palette keys: f32 -> x 2^shift (exponent add; flush / saturate) -> fp16 (half to even) -> ---
// order-preserving 16-bit key, as src/kernels/palette.ts paletteKeys computes them one by one.
// Four lanes at once and no branches: the half-subnormal range (many small weights) is rounded in
// float, |x'| * 2^24 by f32x4.nearest (round half to even, exact: x' is exact and < 2^-14).

@inline function paletteKeys4(b: v128, shift: v128): v128 {
  const mant = v128.and(b, i32x4.splat(MANT));
  const e = i32x4.shr_u(v128.and(b, i32x4.splat(0x7fffffff)), 23);
  const es = i32x4.add(e, shift);
  const he = i32x4.sub(es, i32x4.splat(112));
  // Normal halves: exponent and mantissa, + 1 when the dropped 13 bits round up (ties to even).
  let hn = v128.or(i32x4.shl(he, 10), i32x4.shr_u(mant, 13));
  hn = i32x4.add(hn, i32x4.shr_u(i32x4.add(i32x4.add(v128.and(mant, i32x4.splat(0x1fff)), v128.and(hn, i32x4.splat(1))), i32x4.splat(0xfff)), 13));
  // Subnormal halves: the scaled magnitude (valid for 1 <= es <= 254) times 2^24, rounded.
  const scaled = v128.or(i32x4.shl(es, 23), mant);
  const hs = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(scaled, f32x4.splat(16777216.0))));
  const inf = i32x4.splat(0x7c00);
  let h = v128.bitselect(hs, hn, i32x4.le_s(he, i32x4.splat(0)));
  h = v128.bitselect(inf, h, i32x4.ge_s(he, i32x4.splat(31)));
  h = v128.bitselect(inf, h, i32x4.ge_s(es, i32x4.splat(0xff)));
  h = v128.bitselect(i32x4.splat(0), h, i32x4.le_s(es, i32x4.splat(0)));
  // Non-finite inputs: NaN -> 0x7e00, +-Inf -> 0x7c00; zeros and flushed denormals -> 0.
  const nan = v128.bitselect(i32x4.splat(0x7e00), inf, i32x4.ne(mant, i32x4.splat(0)));
  h = v128.bitselect(nan, h, i32x4.eq(e, i32x4.splat(0xff)));
  h = v128.bitselect(i32x4.splat(0), h, i32x4.eq(e, i32x4.splat(0)));
  // Key: 0x8000 + h for a positive value, its 16-bit complement for a negative one.
  return v128.xor(i32x4.add(h, i32x4.splat(0x8000)), v128.and(i32x4.shr_s(b, 31), i32x4.splat(0xffff)));
}

@inline function paletteKey1(b: u32, shift: i32): u32 {
  return <u32>i32x4.extract_lane(paletteKeys4(i32x4.splat(<i32>b), i32x4.splat(shift)), 0);
}

/** Adds the keys of n f32 values to counts (65 536 u32). */
export function paletteHistogram(src: usize, n: i32, shift: i32, counts: usize): void {
  const vs = i32x4.splat(shift);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const k = paletteKeys4(v128.load(src + (<usize>i << 2)), vs);
    const p0 = counts + (<usize>i32x4.extract_lane(k, 0) << 2);
    store<u32>(p0, load<u32>(p0) + 1);
    const p1 = counts + (<usize>i32x4.extract_lane(k, 1) << 2);
    store<u32>(p1, load<u32>(p1) + 1);
    const p2 = counts + (<usize>i32x4.extract_lane(k, 2) << 2);
    store<u32>(p2, load<u32>(p2) + 1);
    const p3 = counts + (<usize>i32x4.extract_lane(k, 3) << 2);
    store<u32>(p3, load<u32>(p3) + 1);
  }
  for (; i < n; i++) {
    const p = counts + (<usize>paletteKey1(load<u32>(src + (<usize>i << 2)), shift) << 2);
    store<u32>(p, load<u32>(p) + 1);
  }
}

/** dst[i] = table[key of src[i]] for n f32 values (table: 65 536 cluster indices). */
export function paletteAssign(src: usize, dst: usize, n: i32, shift: i32, table: usize): void {
  const vs = i32x4.splat(shift);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const k = paletteKeys4(v128.load(src + (<usize>i << 2)), vs);
    store<u8>(dst + <usize>i, load<u8>(table + <usize>i32x4.extract_lane(k, 0)));
    store<u8>(dst + <usize>i + 1, load<u8>(table + <usize>i32x4.extract_lane(k, 1)));
    store<u8>(dst + <usize>i + 2, load<u8>(table + <usize>i32x4.extract_lane(k, 2)));
    store<u8>(dst + <usize>i + 3, load<u8>(table + <usize>i32x4.extract_lane(k, 3)));
  }
  for (; i < n; i++) store<u8>(dst + <usize>i, load<u8>(table + <usize>paletteKey1(load<u32>(src + (<usize>i << 2)), shift)));
}

// ---- exact 1-D k-means: one row of the dynamic program (src/passes/palettize/kmeans1d.ts) ----
// The same f64 operations in the same order as the TypeScript table(), so the rows, argmins and
// partitions are identical. P0..P2: centred prefix sums (n + 1 f64 each); prev / cur: the previous
// and this row's optimal costs (n f64); back / prevBack: argmins (n u16); prefixes from..n-1 are
// filled (the last row is read only at n - 1); stack: 8 i32 per level. ub: an upper bound on the
// whole problem's optimum; a cell over it ends its row (the right half is not searched) and its
// argmin is not used as the next row's lower bound.
// (Two candidates per step in f64x2 measured no faster: the division bounds the loop.)

export function kmeansRow(P0: usize, P1: usize, P2: usize, prev: usize, cur: usize, back: usize, prevBack: usize, j: i32, n: i32, from: i32, stack: usize, ub: f64): void {
  for (let i = 0; i < n; i++) store<f64>(cur + (<usize>i << 3), Infinity);
  let sp = 0;
  store<i32>(stack, from); store<i32>(stack + 4, n - 1); store<i32>(stack + 8, j); store<i32>(stack + 12, n - 1);
  sp = 4;
  while (sp > 0) {
    const optHi = load<i32>(stack + (<usize>(sp - 1) << 2));
    const optLo = load<i32>(stack + (<usize>(sp - 2) << 2));
    const hi = load<i32>(stack + (<usize>(sp - 3) << 2));
    const lo = load<i32>(stack + (<usize>(sp - 4) << 2));
    sp -= 4;
    const mid = (lo + hi) >> 1;
    let best: f64 = Infinity;
    let arg = optLo;
    const end = mid < optHi ? mid : optHi;
    const w1 = load<f64>(P0 + (<usize>(mid + 1) << 3));
    const s1 = load<f64>(P1 + (<usize>(mid + 1) << 3));
    const q1 = load<f64>(P2 + (<usize>(mid + 1) << 3));
    const lb: i32 = j > 1 && load<f64>(prev + (<usize>mid << 3)) <= ub ? <i32>load<u16>(prevBack + (<usize>mid << 1)) : j;
    let m0 = optLo > j ? optLo : j;
    if (lb > m0 && lb <= end) m0 = lb;
    for (let m = m0; m <= end; m++) {
      const w = w1 - load<f64>(P0 + (<usize>m << 3));
      const sm = s1 - load<f64>(P1 + (<usize>m << 3));
      const q = q1 - load<f64>(P2 + (<usize>m << 3));
      const pv = load<f64>(prev + (<usize>(m - 1) << 3));
      // The previous row's optimum only grows with the prefix and the cluster cost is >= 0: once
      // it alone reaches the best, no later split can win.
      if (pv >= best) break;
      // Screen without the division: q - sm^2/w + pv < best  <=>  (q + pv - best) w < sm^2.
      if (w <= 0 || (q + pv - best) * w < sm * sm) {
        let c: f64 = w > 0 ? q - (sm * sm) / w : 0;
        if (c < 0) c = 0;
        c += pv;
        if (c < best) {
          best = c;
          arg = m;
        }
      }
    }
    store<f64>(cur + (<usize>mid << 3), best);
    store<u16>(back + (<usize>mid << 1), <u16>arg);
    if (mid + 1 <= hi && best <= ub) {
      store<i32>(stack + (<usize>sp << 2), mid + 1); store<i32>(stack + (<usize>(sp + 1) << 2), hi);
      store<i32>(stack + (<usize>(sp + 2) << 2), arg); store<i32>(stack + (<usize>(sp + 3) << 2), optHi);
      sp += 4;
    }
    if (lo <= mid - 1) {
      store<i32>(stack + (<usize>sp << 2), lo); store<i32>(stack + (<usize>(sp + 1) << 2), mid - 1);
      store<i32>(stack + (<usize>(sp + 2) << 2), optLo); store<i32>(stack + (<usize>(sp + 3) << 2), arg);
      sp += 4;
    }
  }
}

// ---- palettization's finish (src/passes/palettize/palettize.ts clusterSums / decodeWithMetrics) ----
// The same f64 operations in the same element order as the TypeScript loops, so the refined
// centroids, the decoded weights and the error metrics are identical.

/** One group's cluster sums: sw[c] += 1 and sx[c] += x for n weights with cluster indices c. */
export function paletteSums(src: usize, idx: usize, n: i32, sw: usize, sx: usize): void {
  for (let i = 0; i < n; i++) {
    const c = <usize>load<u8>(idx + <usize>i) << 3;
    store<f64>(sw + c, load<f64>(sw + c) + 1.0);
    store<f64>(sx + c, load<f64>(sx + c) + <f64>load<f32>(src + (<usize>i << 2)));
  }
}

/**
 * One group's cluster statistics for n weights with cluster indices c: per cluster a record of five
 * f64 at out + 40 c — count, sum, sum of squares, minimum, maximum — updated in element order.
 */
export function paletteStats(src: usize, idx: usize, n: i32, out: usize): void {
  for (let i = 0; i < n; i++) {
    const r = out + <usize>load<u8>(idx + <usize>i) * 40;
    const x = <f64>load<f32>(src + (<usize>i << 2));
    store<f64>(r, load<f64>(r) + 1.0);
    store<f64>(r + 8, load<f64>(r + 8) + x);
    store<f64>(r + 16, load<f64>(r + 16) + x * x);
    store<f64>(r + 24, min<f64>(load<f64>(r + 24), x));
    store<f64>(r + 32, max<f64>(load<f64>(r + 32), x));
  }
}

/**
 * Decodes elements [start, end) of a row layout (`inner` per row, `rowsPerGroup` rows per LUT of
 * k f32 entries; `rowScale` f32 per row when `scaled`) into dst and adds the error sums against
 * src to out (f64: e2, max |error|, x2, h2, xh). src / idx / dst address element 0.
 */
export function paletteDecode(src: usize, idx: usize, dst: usize, start: i32, end: i32, inner: i32, rowsPerGroup: i32, k: i32, table: usize,
  rowScale: usize, scaled: bool, out: usize): void {
  let e2 = load<f64>(out);
  let emax = load<f64>(out + 8);
  let x2 = load<f64>(out + 16);
  let h2 = load<f64>(out + 24);
  let xh = load<f64>(out + 32);
  let j = start;
  while (j < end) {
    const r = j / inner;
    const rowEnd = min((r + 1) * inner, end);
    const base = table + (<usize>((r / rowsPerGroup) * k) << 2);
    const scale: f32 = scaled ? load<f32>(rowScale + (<usize>r << 2)) : 1.0;
    for (; j < rowEnd; j++) {
      let hf = load<f32>(base + (<usize>load<u8>(idx + <usize>j) << 2));
      if (scaled) hf = hf * scale;
      store<f32>(dst + (<usize>j << 2), hf);
      const v = <f64>load<f32>(src + (<usize>j << 2));
      const h = <f64>hf;
      const d = v - h;
      e2 += d * d;
      emax = max(emax, abs(d));
      x2 += v * v;
      h2 += h * h;
      xh += v * h;
    }
  }
  store<f64>(out, e2);
  store<f64>(out + 8, emax);
  store<f64>(out + 16, x2);
  store<f64>(out + 24, h2);
  store<f64>(out + 32, xh);
}
