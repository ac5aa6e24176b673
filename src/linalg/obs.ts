/**
 * The Optimal-Brain-Surgeon column sweep GPTQ and SparseGPT share: the layer objective
 * ‖WX − ŴX‖² with H = XXᵀ; columns visited in a given order, each column's new values chosen by the
 * method (a grid value, or kept / zero), its error spread over the columns not yet visited through
 * the upper Cholesky factor U of H⁻¹ — within a block at once, to later blocks lazily (block 128).
 */
import { InvalidArgumentError } from '../errors.ts';
import { choleskyBlocked, lowerInverseBlocked } from './blocked.ts';
import { OP } from './pool-steps.ts';
import { f64For, f64Like, releaseF64, withThreads } from './pool.ts';

/**
 * Upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ U), or null if H is not positive definite. With P the
 * reversal permutation, chol(P H P) = L gives H = V Vᵀ with V = P L P upper triangular, so
 * U = V⁻¹ = P L⁻¹ P: one Cholesky and one triangular inverse (≈ n³/3 multiply-adds, blocked).
 * P M P of a row-major matrix is its flat array reversed.
 */
export function inverseUpperFactor(h: Float64Array, n: number): Float64Array | null {
  // Shared memory: large factorizations run on the linear-algebra pool's threads.
  const l = f64For(n * n, n);
  l.set(h);
  return inverseUpperFactorInPlace(l, n);
}

/** inverseUpperFactor overwriting `h` (a scratch copy the caller gives up): one n×n buffer fewer. */
export function inverseUpperFactorInPlace(h: Float64Array, n: number): Float64Array | null {
  h.reverse();
  if (!choleskyBlocked(h, n)) return null;
  return lowerInverseBlocked(h, n).reverse();
}

export interface ObsLayer {
  /** Row-major [rows, cols] in visiting order; dead columns zeroed. */
  w: Float64Array;
  /** Upper factor of the damped H⁻¹, visiting order. */
  u: Float64Array;
  damping: number;
  /** Inputs whose Gram diagonal is 0: their weights never contribute. */
  dead: number;
}

/**
 * W and H permuted to the visiting order `perm`, dead inputs set aside (diagonal 1, weights 0),
 * and H + λ·mean(diag H)·I factored, λ from `damping` raised tenfold until the factorization holds.
 */
export function prepareLayer(what: string, w0: Float64Array, h0: Float64Array, rows: number, cols: number, perm: readonly number[], damping0 = 0.01): ObsLayer {
  const { w, h, mean, dead } = permuteLayer(what, w0, h0, rows, cols, perm);
  let damping = damping0;
  let u: Float64Array | null = null;
  const hd = f64For(cols * cols, cols);
  for (let attempt = 0; attempt < 8 && !u; attempt++, damping *= 10) {
    hd.set(h);
    for (let i = 0; i < cols; i++) hd[i * cols + i] += damping * mean;
    u = inverseUpperFactorInPlace(hd, cols);
  }
  releaseF64(hd);
  if (!u) throw new InvalidArgumentError(`${what}: the Hessian of ${cols} inputs is not positive definite even with damping ${damping / 10} x mean(diag)`);
  return { w, u, damping: damping / 10, dead };
}

/**
 * prepareLayer's first half: W and H permuted to the visiting order, dead inputs set aside
 * (diagonal 1, weights 0), and mean(diag H) for the damping — what a factorization elsewhere (the
 * GPU's `cholesky` kernel) starts from.
 */
export function permuteLayer(what: string, w0: Float64Array, h0: Float64Array, rows: number, cols: number, perm: readonly number[]): { w: Float64Array; h: Float64Array; mean: number; dead: number } {
  if (w0.length !== rows * cols) throw new InvalidArgumentError(`${what}: W has ${w0.length} entries, [${rows}, ${cols}] needs ${rows * cols}`);
  if (h0.length !== cols * cols) throw new InvalidArgumentError(`${what}: H has ${h0.length} entries, ${cols} inputs need ${cols * cols}`);
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] = h0[perm[i] * cols + perm[j]];
  // Shared memory for large layers: the sweep's updates run on the linear-algebra pool's threads.
  const w = f64For(rows * cols, cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c] = w0[r * cols + perm[c]];
  let dead = 0;
  let mean = 0;
  for (let i = 0; i < cols; i++) {
    if (h[i * cols + i] === 0) {
      h[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + i] = 0;
      dead++;
    }
    mean += h[i * cols + i] / cols;
  }
  return { w, h, mean, dead };
}

export interface SweepHooks {
  /** Before the first column of each block [b0, b1). */
  block?(b0: number, b1: number): void;
  /** Before column i (visiting order). */
  column?(i: number): void;
}

/**
 * The sweep: `choose(x, r, i)` gives the new value of W[r][i] (x is its current, already updated
 * value); returns the chosen values, row-major in visiting order. `w` is updated in place.
 */
export function obsSweep(layer: ObsLayer, rows: number, cols: number, choose: (x: number, r: number, i: number) => number, hooks: SweepHooks = {}, blockSize = 128): Float64Array {
  const { w, u } = layer;
  const q = new Float64Array(rows * cols);
  const err = f64Like(w, rows * blockSize);
  // The lazy updates W[:, b1:] −= E · U[b0:b1, b1:], the rows of W split between the threads.
  try {
    return withThreads([w, err, u], rows >= 16 ? cols : 0, (step) =>
      sweepBlocks(layer, rows, cols, choose, hooks, blockSize, q, err, (b0, b1) =>
        step(OP.GEMM_ROWS, [0, b1, cols, 1, 0, blockSize, 2, b0 * cols + b1, cols, rows, cols - b1, b1 - b0])));
  } finally {
    releaseF64(err);
  }
}

function sweepBlocks(
  layer: ObsLayer, rows: number, cols: number, choose: (x: number, r: number, i: number) => number, hooks: SweepHooks, blockSize: number,
  q: Float64Array, err: Float64Array, lazyUpdate: (b0: number, b1: number) => void,
): Float64Array {
  const { w, u } = layer;
  for (let b0 = 0; b0 < cols; b0 += blockSize) {
    const b1 = Math.min(cols, b0 + blockSize);
    hooks.block?.(b0, b1);
    for (let i = b0; i < b1; i++) {
      hooks.column?.(i);
      const d = u[i * cols + i];
      for (let r = 0; r < rows; r++) {
        const x = w[r * cols + i];
        const qv = choose(x, r, i);
        q[r * cols + i] = qv;
        const e = (x - qv) / d;
        err[r * blockSize + (i - b0)] = e;
        if (e === 0) continue;
        // Within the block: update the remaining columns now.
        const row = r * cols;
        const ui = i * cols;
        for (let j = i + 1; j < b1; j++) w[row + j] -= e * u[ui + j];
      }
    }
    // Lazy update of every later column with the block's errors: W[:, b1:] −= E · U[b0:b1, b1:].
    if (b1 < cols) lazyUpdate(b0, b1);
  }
  return q;
}
