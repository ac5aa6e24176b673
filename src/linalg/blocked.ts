/**
 * Blocked f64 Cholesky and lower-triangular inverse for the GPTQ / SparseGPT / OBS factorizations
 * (Hessians of 1–5 K inputs). The unblocked loops in cholesky.ts stream the whole matrix once per
 * column — memory-bound beyond ~1 K (0.4 G multiply-adds/s at 2304 inputs). Here nearly all the
 * work is one register-blocked kernel, C −= A·B on 4×4 tiles over cache-sized panels, as LAPACK's
 * right-looking potrf / trtri do it. Results agree with the unblocked loops to f64 rounding, not
 * bit for bit (the sums run in another order). The trailing updates and the off-diagonal blocks of
 * the inverse are spread over the linear-algebra pool's threads when the operands are shared.
 */
import { BLOCK } from './gemm.ts';
import { OP } from './pool-steps.ts';
import { f64Like, releaseF64, withThreads } from './pool.ts';

/**
 * Left-looking Cholesky of the diagonal block [from, to) of `a` (row-major n×n), columns before
 * `from` already subtracted (the blocked factorization's panels); false on a non-positive pivot.
 */
export function choleskyDiagonalBlock(a: Float64Array, n: number, from: number, to: number): boolean {
  for (let j = from; j < to; j++) {
    const rj = j * n;
    let d = a[rj + j];
    for (let k = from; k < j; k++) d -= a[rj + k] * a[rj + k];
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    const inv = 1 / ljj;
    for (let i = j + 1; i < to; i++) {
      const ri = i * n;
      let s = a[ri + j];
      for (let k = from; k < j; k++) s -= a[ri + k] * a[rj + k];
      a[ri + j] = s * inv;
    }
  }
  return true;
}

/**
 * In-place lower Cholesky factor of `a` (row-major n×n, lower triangle read); false on a
 * non-positive pivot. The strict upper triangle is left unspecified (partly overwritten).
 */
export function choleskyBlocked(a: Float64Array, n: number): boolean {
  // Panel transposed, [BLOCK × (n − e)]: the trailing update's B operand, read along rows.
  const bt = f64Like(a, BLOCK * n);
  try {
    return factorPanels(a, bt, n);
  } finally {
    releaseF64(bt);
  }
}

function factorPanels(a: Float64Array, bt: Float64Array, n: number): boolean {
  return withThreads([a, bt], n, (step) => {
    for (let kb = 0; kb < n; kb += BLOCK) {
      const e = Math.min(n, kb + BLOCK);
      // Diagonal block: left-looking within the block (earlier blocks already subtracted).
      if (!choleskyDiagonalBlock(a, n, kb, e)) return false;
      if (e === n) break;
      // Panel below, L21 = A21 · L11⁻ᵀ row by row, and its transpose for the update.
      step(OP.CHOL_PANEL, [n, kb, e]);
      // Trailing update of the lower triangle, A22 −= L21 · L21ᵀ, in square tiles on or below the diagonal.
      step(OP.CHOL_UPDATE, [n, kb, e]);
    }
    return true;
  });
}

/**
 * Inverse of a lower-triangular L (row-major n×n, lower triangle read, diagonal non-zero) into a
 * new array (upper triangle zero). Block rows top to bottom: X_ij = −X_ii · Σ_k L_ik X_kj.
 */
export function lowerInverseBlocked(l: Float64Array, n: number): Float64Array {
  const x = f64Like(l, n * n);
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
  // Then block row by block row (each needs the rows above): X_ij = −X_ii · Σ_k L_ik X_kj.
  withThreads([l, x], n, (step) => {
    for (let ib = BLOCK; ib < n; ib += BLOCK) step(OP.TRI_INV_ROW, [n, ib]);
  });
  return x;
}
