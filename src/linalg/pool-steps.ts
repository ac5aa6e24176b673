/**
 * The steps the linear-algebra pool runs (pool.ts), shared by the calling thread and the workers:
 * each thread computes its own share of the output tiles, chosen by its index, so every tile is
 * computed by exactly one thread, in the same order whatever the thread count.
 */
import { BLOCK, gemmSub } from './gemm.ts';

/** Layout of the shared control words. */
export const CTL = { GEN: 0, DONE: 1, READY: 2, OP: 3, FAILED: 4, PARAMS: 5, WORDS: 21 } as const;

export const OP = {
  /** Workers go back to their event loop (the session's arrays are let go). */
  RELEASE: 0,
  /** Cholesky panel below the diagonal block, L21 = A21 · L11⁻ᵀ, and its transpose into slot 1; rows split. Params n, kb, e. */
  CHOL_PANEL: 4,
  /** Cholesky trailing update A22 −= L21·L21ᵀ (lower tiles); slots 0 = A, 1 = panel transposed. Params n, kb, e. */
  CHOL_UPDATE: 1,
  /** Triangular inverse, one block row: X_ij for every block column jb < ib; slots 0 = L, 1 = X. Params n, ib. */
  TRI_INV_ROW: 2,
  /** C −= A·B with the rows of C split; params slotC, cOff, ldc, slotA, aOff, lda, slotB, bOff, ldb, m, n, k. */
  GEMM_ROWS: 3,
  /** Test hook: every thread but the calling one throws (the failure path of pool.ts). */
  TEST_THROW: 99,
} as const;

export interface Bound {
  arrays: Float64Array[];
  /** BLOCK × BLOCK, this thread's. */
  scratch: Float64Array;
}

export function runStep(b: Bound, ctl: Int32Array, index: number, threads: number): void {
  const p = (i: number) => ctl[CTL.PARAMS + i];
  switch (ctl[CTL.OP]) {
    case OP.CHOL_PANEL: {
      const [n, kb, e] = [p(0), p(1), p(2)];
      const a = b.arrays[0];
      const bt = b.arrays[1];
      const rest = n - e;
      const per = Math.ceil(rest / threads);
      const r1 = Math.min(n, e + (index + 1) * per);
      for (let i = e + index * per; i < r1; i++) {
        const ri = i * n;
        for (let j = kb; j < Math.min(n, kb + BLOCK); j++) {
          const rj = j * n;
          let s = a[ri + j];
          for (let q = kb; q < j; q++) s -= a[ri + q] * a[rj + q];
          const v = s / a[rj + j];
          a[ri + j] = v;
          bt[(j - kb) * rest + (i - e)] = v;
        }
      }
      return;
    }
    case OP.CHOL_UPDATE: {
      const [n, kb, e] = [p(0), p(1), p(2)];
      const a = b.arrays[0];
      const bt = b.arrays[1];
      const w = Math.min(n, kb + BLOCK) - kb;
      const rest = n - e;
      // Block rows dealt round-robin: their work grows linearly, so the shares stay even.
      for (let q = index, ib = e + q * BLOCK; ib < n; q += threads, ib = e + q * BLOCK) {
        const ie = Math.min(n, ib + BLOCK);
        for (let jb = e; jb < ie; jb += BLOCK) {
          const je = Math.min(ie, jb + BLOCK);
          gemmSub(a, ib * n + jb, n, a, ib * n + kb, n, bt, jb - e, rest, ie - ib, je - jb, w);
        }
      }
      return;
    }
    case OP.TRI_INV_ROW: {
      const [n, ib] = [p(0), p(1)];
      const l = b.arrays[0];
      const x = b.arrays[1];
      const t = b.scratch;
      const ie = Math.min(n, ib + BLOCK);
      const h = ie - ib;
      for (let q = index, jb = q * BLOCK; jb < ib; q += threads, jb = q * BLOCK) {
        const w = Math.min(ib, jb + BLOCK) - jb;
        // T = −L[ib, jb:ib] · X[jb:ib, jb]  (X is zero above its diagonal, so k starts at jb).
        t.fill(0, 0, h * w);
        gemmSub(t, 0, w, l, ib * n + jb, n, x, jb * n + jb, n, h, w, ib - jb);
        // X_ij = X_ii · T.
        gemmSub(x, ib * n + jb, n, x, ib * n + ib, n, t, 0, w, h, w, h);
        for (let i = ib; i < ie; i++) for (let j = jb; j < jb + w; j++) x[i * n + j] = -x[i * n + j];
      }
      return;
    }
    case OP.GEMM_ROWS: {
      const m = p(9);
      // Row shares in multiples of 4 (the tile height), the last thread taking the remainder.
      const per = Math.ceil(m / threads / 4) * 4;
      const r0 = Math.min(m, index * per);
      const r1 = Math.min(m, r0 + per);
      if (r1 <= r0) return;
      const [ldc, lda] = [p(2), p(5)];
      gemmSub(b.arrays[p(0)], p(1) + r0 * ldc, ldc, b.arrays[p(3)], p(4) + r0 * lda, lda, b.arrays[p(6)], p(7), p(8), r1 - r0, p(10), p(11));
      return;
    }
    case OP.TEST_THROW:
      if (index !== 0) throw new Error('TEST_THROW: a planted failure');
      return;
    default:
      return;
  }
}
