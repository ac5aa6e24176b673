/**
 * GPTQ (Frantar et al. 2022): quantizes a weight matrix W [rows = outputs, cols = inputs] column by
 * column, spreading each column's rounding error over the columns not yet quantized through the
 * inverse Hessian of the layer objective ‖WX − ŴX‖² (H = XXᵀ of the layer's inputs). Lazy block
 * updates (block 128), damping as a fraction of mean(diag H) raised on a failed factorization,
 * dead inputs (zero diagonal) set to zero, optional act-order (largest diag H first). f64 on the
 * CPU; the quantization grid is the caller's (scales fixed beforehand: "static groups").
 */
import { InvalidArgumentError } from '../errors.ts';
import { choleskyInPlace } from './cholesky.ts';

export interface GptqInput {
  /** Row-major [rows, cols]. */
  w: Float64Array;
  rows: number;
  cols: number;
  /** Row-major [cols, cols] Gram matrix of the layer's inputs. */
  h: Float64Array;
  /** The grid value of `value` for weight (row, col) in original column order. */
  grid: (value: number, row: number, col: number) => number;
  /** Fraction of mean(diag H) added to the diagonal (default 0.01). */
  damping?: number;
  blockSize?: number;
  actOrder?: boolean;
}

export interface GptqResult {
  /** Row-major [rows, cols] grid values, original column order. */
  q: Float64Array;
  damping: number;
  dead: number;
  /** Factorization (Cholesky + triangular inverse, retries included) and column sweep, ms. */
  timeMs: { solve: number; sweep: number };
}

/**
 * Upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ U), or null if H is not positive definite. With P the
 * reversal permutation, chol(P H P) = L gives H = V Vᵀ with V = P L P upper triangular, so
 * U = V⁻¹: one Cholesky and one triangular inverse, both walking rows (≈ n³/2 multiply-adds).
 */
export function inverseUpperFactor(h: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) l[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
  if (!choleskyInPlace(l, n)) return null;
  const u = new Float64Array(n * n);
  const acc = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const li = (n - 1 - i) * n;
    const vii = l[li + (n - 1 - i)];
    acc.fill(0, i + 1);
    for (let k = i + 1; k < n; k++) {
      const vik = l[li + (n - 1 - k)];
      if (vik === 0) continue;
      const uk = k * n;
      for (let j = k; j < n; j++) acc[j] += vik * u[uk + j];
    }
    u[i * n + i] = 1 / vii;
    for (let j = i + 1; j < n; j++) u[i * n + j] = -acc[j] / vii;
  }
  return u;
}

export function gptq(input: GptqInput): GptqResult {
  const { rows, cols } = input;
  if (input.w.length !== rows * cols) throw new InvalidArgumentError(`gptq: W has ${input.w.length} entries, [${rows}, ${cols}] needs ${rows * cols}`);
  if (input.h.length !== cols * cols) throw new InvalidArgumentError(`gptq: H has ${input.h.length} entries, ${cols} inputs need ${cols * cols}`);
  const blockSize = input.blockSize ?? 128;
  // Column order: act-order sorts by decreasing diag(H).
  const perm = Array.from({ length: cols }, (_, i) => i);
  if (input.actOrder) perm.sort((a, b) => input.h[b * cols + b] - input.h[a * cols + a] || a - b);
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] = input.h[perm[i] * cols + perm[j]];
  const w = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c] = input.w[r * cols + perm[c]];
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
  let damping = input.damping ?? 0.01;
  const tSolve = performance.now();
  let u: Float64Array | null = null;
  for (let attempt = 0; attempt < 8 && !u; attempt++, damping *= 10) {
    const hd = Float64Array.from(h);
    for (let i = 0; i < cols; i++) hd[i * cols + i] += damping * mean;
    u = inverseUpperFactor(hd, cols);
  }
  if (!u) throw new InvalidArgumentError(`gptq: the Hessian of ${cols} inputs is not positive definite even with damping ${damping / 10} x mean(diag)`);
  damping /= 10;
  const tSweep = performance.now();
  const q = new Float64Array(rows * cols);
  const err = new Float64Array(rows * blockSize);
  for (let b0 = 0; b0 < cols; b0 += blockSize) {
    const b1 = Math.min(cols, b0 + blockSize);
    for (let i = b0; i < b1; i++) {
      const d = u[i * cols + i];
      for (let r = 0; r < rows; r++) {
        const x = w[r * cols + i];
        const qv = input.grid(x, r, perm[i]);
        q[r * cols + i] = qv;
        const e = (x - qv) / d;
        err[r * blockSize + (i - b0)] = e;
        // Within the block: update the remaining columns now.
        const row = r * cols;
        const ui = i * cols;
        for (let j = i + 1; j < b1; j++) w[row + j] -= e * u[ui + j];
      }
    }
    // Lazy update of every later column with the block's errors.
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let i = b0; i < b1; i++) {
        const e = err[r * blockSize + (i - b0)];
        if (e === 0) continue;
        const ui = i * cols;
        for (let j = b1; j < cols; j++) w[row + j] -= e * u[ui + j];
      }
    }
  }
  // Back to the original column order.
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + perm[c]] = q[r * cols + c];
  return { q: out, damping, dead, timeMs: { solve: tSweep - tSolve, sweep: performance.now() - tSweep } };
}

/** The layer objective ‖(W − Ŵ) X‖² = Σ_rows dᵀ H d, d = W − Ŵ per row. */
export function layerObjective(w: Float64Array, q: Float64Array, h: Float64Array, rows: number, cols: number): number {
  let total = 0;
  const d = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) d[c] = w[r * cols + c] - q[r * cols + c];
    for (let i = 0; i < cols; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < cols; j++) s += h[i * cols + j] * d[j];
      total += d[i] * s;
    }
  }
  return total;
}
