/**
 * Symmetric positive-definite solves in f64 on the CPU: Cholesky A = L Lᵀ, then forward and back
 * substitution for many right-hand sides. Damping λ = factor · mean(diag A) is added to the
 * diagonal and raised tenfold whenever a pivot is not positive (GPTQ's recipe), so a Gram matrix
 * of rank-deficient activations still solves. Zero-diagonal ("dead") features get the damping alone as pivot.
 */
import { InvalidArgumentError } from '../errors.ts';
import { choleskyBlocked, choleskyDiagonalBlock } from './blocked.ts';

export interface SolveOptions {
  /** Initial damping as a fraction of mean(diag A) (default 0.01). */
  damping?: number;
  /** Damping raises before giving up (default 6: up to 1e6 × the initial damping). */
  retries?: number;
  /** Ridge target [n, m]: solves (A + λI) X = B + λ·prior, pulling X toward `prior` instead of 0. */
  prior?: Float64Array;
}

export interface SolveResult {
  /** Row-major [n, m]. */
  x: Float64Array;
  /** The damping fraction that succeeded. */
  damping: number;
  /** Features whose diagonal was zero. */
  dead: number;
}

/** In-place lower Cholesky factor of `a` (row-major n×n); returns false on a non-positive pivot. */
export function choleskyInPlace(a: Float64Array, n: number): boolean {
  return choleskyDiagonalBlock(a, n, 0, n);
}

/** Solves (A + λI) X = B (+ λ·prior) for X, A symmetric positive semi-definite (row-major n×n), B row-major n×m. */
export function solveSpd(A: Float64Array, B: Float64Array, n: number, m: number, o: SolveOptions = {}): SolveResult {
  if (A.length !== n * n) throw new InvalidArgumentError(`solveSpd: A has ${A.length} entries, n = ${n} needs ${n * n}`);
  if (B.length !== n * m) throw new InvalidArgumentError(`solveSpd: B has ${B.length} entries, [${n}, ${m}] needs ${n * m}`);
  let meanDiag = 0;
  let dead = 0;
  for (let i = 0; i < n; i++) {
    meanDiag += A[i * n + i];
    if (A[i * n + i] === 0) dead++;
  }
  meanDiag = n ? meanDiag / n : 0;
  if (!(meanDiag > 0)) meanDiag = 1;
  let damping = o.damping ?? 0.01;
  const retries = o.retries ?? 6;
  for (let attempt = 0; attempt <= retries; attempt++, damping = damping > 0 ? damping * 10 : 1e-6) {
    const L = Float64Array.from(A);
    const lambda = damping * meanDiag;
    // A dead feature's pivot is λ alone: with a prior its solution is the prior, without one 0.
    for (let i = 0; i < n; i++) L[i * n + i] = A[i * n + i] === 0 ? (lambda > 0 ? lambda : 1) : L[i * n + i] + lambda;
    if (!choleskyBlocked(L, n)) continue;
    const x = Float64Array.from(B);
    if (o.prior) for (let k = 0; k < x.length; k++) x[k] += lambda * o.prior[k];
    // L Y = B (forward), then Lᵀ X = Y (back), all m columns at once.
    for (let i = 0; i < n; i++) {
      const ri = i * n;
      const xi = i * m;
      for (let k = 0; k < i; k++) {
        const l = L[ri + k];
        if (l === 0) continue;
        const xk = k * m;
        for (let c = 0; c < m; c++) x[xi + c] -= l * x[xk + c];
      }
      const inv = 1 / L[ri + i];
      for (let c = 0; c < m; c++) x[xi + c] *= inv;
    }
    for (let i = n - 1; i >= 0; i--) {
      const xi = i * m;
      for (let k = i + 1; k < n; k++) {
        const l = L[k * n + i];
        if (l === 0) continue;
        const xk = k * m;
        for (let c = 0; c < m; c++) x[xi + c] -= l * x[xk + c];
      }
      const inv = 1 / L[i * n + i];
      for (let c = 0; c < m; c++) x[xi + c] *= inv;
    }
    return { x, damping, dead };
  }
  throw new InvalidArgumentError(`solveSpd: no positive-definite factorization with damping up to ${damping / 10} x mean(diag) (${n} features)`);
}
