/**
 * Blocked f64 Cholesky and lower-triangular inverse for the GPTQ / SparseGPT / OBS factorizations
 * (Hessians of 1–5 K inputs). The unblocked loops in cholesky.ts stream the whole matrix once per
 * column — memory-bound beyond ~1 K (0.4 G multiply-adds/s at 2304 inputs). Here nearly all the
 * work is one register-blocked kernel, C −= A·B on 4×4 tiles over cache-sized panels, as LAPACK's
 * right-looking potrf / trtri do it. Results agree with the unblocked loops to f64 rounding, not
 * bit for bit (the sums run in another order).
 */

/** Columns per panel: a 64-wide panel of 4 rows stays in L1, and the tile kernel dominates from n ≈ 256. */
const BLOCK = 64;

/**
 * C −= A·B on row-major views: C [m × n] at cOff (row stride ldc), A [m × k] at aOff (lda),
 * B [k × n] at bOff (ldb). Arrays may be the same one when the regions do not overlap.
 */
export function gemmSub(
  c: Float64Array, cOff: number, ldc: number,
  a: Float64Array, aOff: number, lda: number,
  b: Float64Array, bOff: number, ldb: number,
  m: number, n: number, k: number,
): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const a0 = aOff + i * lda;
    const a1 = a0 + lda;
    const a2 = a1 + lda;
    const a3 = a2 + lda;
    for (let j = 0; j < n4; j += 4) {
      // 16 accumulators in registers; each step reads 4 of A and 4 of B for 16 multiply-adds.
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      let bp = bOff + j;
      for (let p = 0; p < k; p++, bp += ldb) {
        const b0 = b[bp], b1 = b[bp + 1], b2 = b[bp + 2], b3 = b[bp + 3];
        const x0 = a[a0 + p], x1 = a[a1 + p], x2 = a[a2 + p], x3 = a[a3 + p];
        c00 += x0 * b0; c01 += x0 * b1; c02 += x0 * b2; c03 += x0 * b3;
        c10 += x1 * b0; c11 += x1 * b1; c12 += x1 * b2; c13 += x1 * b3;
        c20 += x2 * b0; c21 += x2 * b1; c22 += x2 * b2; c23 += x2 * b3;
        c30 += x3 * b0; c31 += x3 * b1; c32 += x3 * b2; c33 += x3 * b3;
      }
      let cp = cOff + i * ldc + j;
      c[cp] -= c00; c[cp + 1] -= c01; c[cp + 2] -= c02; c[cp + 3] -= c03;
      cp += ldc;
      c[cp] -= c10; c[cp + 1] -= c11; c[cp + 2] -= c12; c[cp + 3] -= c13;
      cp += ldc;
      c[cp] -= c20; c[cp + 1] -= c21; c[cp + 2] -= c22; c[cp + 3] -= c23;
      cp += ldc;
      c[cp] -= c30; c[cp + 1] -= c31; c[cp + 2] -= c32; c[cp + 3] -= c33;
    }
  }
  // Edges: the rows and columns the 4×4 tiles left.
  for (let i = 0; i < m; i++) {
    const ap = aOff + i * lda;
    for (let j = i < m4 ? n4 : 0; j < n; j++) {
      let s = 0;
      for (let p = 0, bp = bOff + j; p < k; p++, bp += ldb) s += a[ap + p] * b[bp];
      c[cOff + i * ldc + j] -= s;
    }
  }
}

/**
 * In-place lower Cholesky factor of `a` (row-major n×n, lower triangle read); false on a
 * non-positive pivot. The strict upper triangle is left unspecified (partly overwritten).
 */
export function choleskyBlocked(a: Float64Array, n: number): boolean {
  // Panel transposed, [BLOCK × (n − e)]: the trailing update's B operand, read along rows.
  const bt = new Float64Array(BLOCK * n);
  for (let kb = 0; kb < n; kb += BLOCK) {
    const e = Math.min(n, kb + BLOCK);
    const w = e - kb;
    // Diagonal block: left-looking within the block (earlier blocks already subtracted).
    for (let j = kb; j < e; j++) {
      const rj = j * n;
      let d = a[rj + j];
      for (let p = kb; p < j; p++) d -= a[rj + p] * a[rj + p];
      if (!(d > 0) || !Number.isFinite(d)) return false;
      const ljj = Math.sqrt(d);
      a[rj + j] = ljj;
      const inv = 1 / ljj;
      for (let i = j + 1; i < e; i++) {
        const ri = i * n;
        let s = a[ri + j];
        for (let p = kb; p < j; p++) s -= a[ri + p] * a[rj + p];
        a[ri + j] = s * inv;
      }
    }
    if (e === n) break;
    // Panel below: L21 = A21 · L11⁻ᵀ, row by row.
    for (let i = e; i < n; i++) {
      const ri = i * n;
      for (let j = kb; j < e; j++) {
        const rj = j * n;
        let s = a[ri + j];
        for (let p = kb; p < j; p++) s -= a[ri + p] * a[rj + p];
        a[ri + j] = s / a[rj + j];
      }
    }
    const rest = n - e;
    for (let p = 0; p < w; p++) for (let j = 0; j < rest; j++) bt[p * rest + j] = a[(e + j) * n + kb + p];
    // Trailing update of the lower triangle, A22 −= L21 · L21ᵀ, in square tiles on or below the diagonal.
    for (let ib = e; ib < n; ib += BLOCK) {
      const ie = Math.min(n, ib + BLOCK);
      for (let jb = e; jb < ie; jb += BLOCK) {
        const je = Math.min(ie, jb + BLOCK);
        gemmSub(a, ib * n + jb, n, a, ib * n + kb, n, bt, jb - e, rest, ie - ib, je - jb, w);
      }
    }
  }
  return true;
}

/**
 * Inverse of a lower-triangular L (row-major n×n, lower triangle read, diagonal non-zero) into a
 * new array (upper triangle zero). Block rows top to bottom: X_ij = −X_ii · Σ_k L_ik X_kj.
 */
export function lowerInverseBlocked(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  // Diagonal blocks first: X_ii = L_ii⁻¹ by substitution.
  for (let ib = 0; ib < n; ib += BLOCK) {
    const ie = Math.min(n, ib + BLOCK);
    for (let i = ib; i < ie; i++) {
      const ri = i * n;
      const inv = 1 / l[ri + i];
      x[ri + i] = inv;
      for (let j = ib; j < i; j++) {
        let s = 0;
        for (let p = j; p < i; p++) s += l[ri + p] * x[p * n + j];
        x[ri + j] = -s * inv;
      }
    }
  }
  const t = new Float64Array(BLOCK * BLOCK);
  for (let ib = BLOCK; ib < n; ib += BLOCK) {
    const ie = Math.min(n, ib + BLOCK);
    const h = ie - ib;
    for (let jb = 0; jb < ib; jb += BLOCK) {
      const w = Math.min(ib, jb + BLOCK) - jb;
      // T = −L[ib, jb:ib] · X[jb:ib, jb]  (X is zero above its diagonal, so k starts at jb).
      t.fill(0, 0, h * w);
      gemmSub(t, 0, w, l, ib * n + jb, n, x, jb * n + jb, n, h, w, ib - jb);
      // X_ij = X_ii · T.
      gemmSub(x, ib * n + jb, n, x, ib * n + ib, n, t, 0, w, h, w, h);
      for (let i = ib; i < ie; i++) for (let j = jb; j < jb + w; j++) x[i * n + j] = -x[i * n + j];
    }
  }
  return x;
}
