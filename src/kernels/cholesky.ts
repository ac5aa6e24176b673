/**
 * cholesky: X = L⁻¹ for a symmetric positive definite A = L Lᵀ, in f32 on the GPU — the
 * factorization GPTQ needs (linalg/obs.ts gets the upper factor of A⁻¹ from it by reversing rows
 * and columns before and after). One workgroup per matrix: right-looking Cholesky in place, then
 * forward substitution L X = I row by row (shaders/cholesky.wgsl). A pivot that is not positive is
 * reported by index (the caller adds damping and retries).
 *
 * The CPU reference does the same f32 operations in the same order; WGSL's sqrt and division are
 * not correctly rounded on every GPU (2.5 ULP), so results carry a tolerance (tolerances.ts).
 */
import { InvalidArgumentError } from '../errors.ts';
import { UnsliceableError } from './layout.ts';
import { type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export interface CholeskyJob {
  /** Row-major [n, n], symmetric (only the lower triangle is read). */
  a: Float32Array;
  n: number;
}

export interface CholeskyResult {
  /** Row-major [n, n]: L⁻¹, lower triangular (zeros above the diagonal); null when a pivot failed. */
  inverse: Float32Array | null;
  /** Index of the first pivot that was not positive, or -1. */
  failedPivot: number;
}

function validate(job: CholeskyJob): void {
  const { n } = job;
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`cholesky: n (${n}) must be a non-negative integer`);
  if (job.a.length !== n * n) throw new InvalidArgumentError(`cholesky: A has ${job.a.length} elements, [${n}, ${n}] needs ${n * n}`);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) if (!Number.isFinite(job.a[i * n + j])) throw new InvalidArgumentError(`cholesky: A[${i}][${j}] is ${job.a[i * n + j]}`);
}

function cpu(job: CholeskyJob): CholeskyResult {
  const { n } = job;
  const a = Float32Array.from(job.a);
  for (let j = 0; j < n; j++) {
    const d = a[j * n + j];
    if (!(d > 0)) return { inverse: null, failedPivot: j };
    const p = Math.fround(Math.sqrt(d));
    a[j * n + j] = p;
    const inv = Math.fround(1 / p);
    for (let i = j + 1; i < n; i++) {
      const v = Math.fround(a[i * n + j] * inv);
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
    for (let i = j + 1; i < n; i++) {
      const lij = a[j * n + i];
      if (lij === 0) continue;
      const ri = i * n;
      const rj = j * n;
      for (let k = j + 1; k <= i; k++) a[ri + k] = a[ri + k] - Math.fround(lij * a[rj + k]);
    }
  }
  const x = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const liiInverse = Math.fround(1 / a[i * n + i]);
    for (let c = 0; c <= i; c++) {
      let acc = c === i ? 1 : 0;
      for (let k = c; k < i; k++) acc = Math.fround(acc - Math.fround(a[i * n + k] * x[k * n + c]));
      x[i * n + c] = Math.fround(acc * liiInverse);
    }
  }
  return { inverse: x, failedPivot: -1 };
}

function pieces(job: CholeskyJob, maxWords: number): Piece[] {
  const { n } = job;
  if (n === 0) return [];
  if (n * n > maxWords) throw new UnsliceableError(`cholesky: a ${n}x${n} matrix does not fit one binding window of ${maxWords} words`);
  return [{
    entryPoint: 'factor',
    workgroups: 1,
    words: { a: n * n, x: n * n, status: 1 },
    uploads: [{ stream: 'a', at: 0, data: job.a }],
    record: (o) => [o.a, o.x, n, o.status],
  }];
}

function finish(job: CholeskyJob, regions: PieceRegions[]): CholeskyResult {
  const { n } = job;
  if (n === 0) return { inverse: new Float32Array(0), failedPivot: -1 };
  const r = regions[0];
  const status = r.status[0];
  if (status !== 0xffffffff) return { inverse: null, failedPivot: status };
  const got = new Float32Array(r.x.buffer, r.x.byteOffset, r.x.length);
  // Only the lower triangle is written (pooled buffers hold anything above it).
  const x = new Float32Array(n * n);
  for (let i = 0; i < n; i++) x.set(got.subarray(i * n, i * n + i + 1), i * n);
  return { inverse: x, failedPivot: -1 };
}

/**
 * The job for the upper factor U of (H + damping·I)⁻¹: with P the reversal, chol(P H P) = L gives
 * U = P L⁻¹ P, and P M P of a row-major matrix is its flat array reversed (linalg/obs.ts does the
 * same in f64). `upperFactor` turns the kernel's L⁻¹ back into U.
 */
export function upperFactorJob(h: ArrayLike<number>, n: number, damping = 0): CholeskyJob {
  const a = new Float32Array(n * n);
  for (let k = 0; k < n * n; k++) a[n * n - 1 - k] = h[k];
  if (damping) for (let i = 0; i < n; i++) a[i * n + i] += damping;
  return { a, n };
}

export function upperFactor(inverse: Float32Array): Float64Array {
  return Float64Array.from(inverse).reverse();
}

export const choleskyKernel: KernelDescriptor<CholeskyJob, CholeskyResult> = {
  name: 'cholesky',
  shader: 'cholesky',
  entryPoints: ['factor'],
  streams: [
    { name: 'a', role: 'inout' },
    { name: 'x', role: 'out' },
    { name: 'status', role: 'out' },
  ],
  recordWords: 5,
  validate,
  // Multiply-adds: n³/6 for the factor, as many for the inverse.
  work: (job) => (job.n * job.n * job.n) / 3,
  cpu,
  pieces,
  finish,
};
