/**
 * GPTQ (Frantar et al. 2022): quantizes a weight matrix W [rows = outputs, cols = inputs] column by
 * column, spreading each column's rounding error over the columns not yet quantized through the
 * inverse Hessian of the layer objective ‖WX − ŴX‖² (H = XXᵀ of the layer's inputs). Lazy block
 * updates (block 128), damping as a fraction of mean(diag H) raised on a failed factorization,
 * dead inputs (zero diagonal) set to zero, optional act-order (largest diag H first). f64 on the
 * CPU; the quantization grid is the caller's (scales fixed beforehand: "static groups").
 */
import { obsSweep, prepareLayer, type ObsLayer } from './obs.ts';
import { OP } from './pool-steps.ts';
import { BLOCK } from './gemm.ts';
import { f64For, isShared, MIN_PARALLEL_N, releaseF64, sharedF64, withThreads } from './pool.ts';

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

export { inverseUpperFactor } from './obs.ts';

export function gptq(input: GptqInput): GptqResult {
  const { rows, cols } = input;
  const { layer, perm, solveMs } = gptqPrepare(input);
  const tSweep = performance.now();
  const q = obsSweep(layer, rows, cols, (x, r, i) => input.grid(x, r, perm[i]), {}, input.blockSize ?? 128);
  // The layer's working copies are this function's alone: their shared memory goes to the next layer.
  releaseF64(layer.w, layer.u);
  // Back to the original column order.
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + perm[c]] = q[r * cols + c];
  return { q: out, damping: layer.damping, dead: layer.dead, timeMs: { solve: solveMs, sweep: performance.now() - tSweep } };
}

/**
 * GPTQ's factorization without the sweep: the visiting order (act-order sorts by decreasing
 * diag H), and W and the upper factor of the damped H⁻¹ in that order — what the GPU sweep
 * (kernels/gptq-sweep.ts) starts from. The caller releases `layer.w` and `layer.u` (releaseF64).
 */
export function gptqPrepare(input: Omit<GptqInput, 'grid' | 'blockSize'>): { layer: ObsLayer; perm: number[]; solveMs: number } {
  const { rows, cols } = input;
  const perm = visitingOrder(input.h, cols, input.actOrder);
  const t0 = performance.now();
  const layer = prepareLayer('gptq', input.w, input.h, rows, cols, perm, input.damping ?? 0.01);
  return { layer, perm, solveMs: performance.now() - t0 };
}

/** GPTQ's column order: as given, or (act-order) by decreasing diag(H), ties by index. */
export function visitingOrder(h: Float64Array, cols: number, actOrder = false): number[] {
  const perm = Array.from({ length: cols }, (_, i) => i);
  if (actOrder) perm.sort((a, b) => h[b * cols + b] - h[a * cols + a] || a - b);
  return perm;
}

/** H in shared memory, one copy per H however many objectives are taken of it (RTN and GPTQ, per row group). */
const sharedCopies = new WeakMap<Float64Array, Float64Array>();
function sharedCopy(h: Float64Array): Float64Array {
  if (isShared(h)) return h;
  let c = sharedCopies.get(h);
  if (!c) {
    c = sharedF64(h.length);
    c.set(h);
    sharedCopies.set(h, c);
  }
  return c;
}

/**
 * The layer objective ‖(W − Ŵ) X‖² = Σ_rows dᵀ H d, d = W − Ŵ per row. H is symmetric, so
 * dᵀHd = Σ_i H_ii d_i² + 2 Σ_{i<j} d_i H_ij d_j: only the blocks above the diagonal go through the
 * tile kernel (half the multiply-adds of D·H), on the pool's threads when large.
 */
export function layerObjective(w: Float64Array, q: Float64Array, h: Float64Array, rows: number, cols: number): number {
  const d = f64For(rows * cols, cols);
  for (let k = 0; k < d.length; k++) d[k] = w[k] - q[k];
  const hs = cols >= MIN_PARALLEL_N ? sharedCopy(h) : h;
  // Slabs of rows so the product stays small.
  const slab = Math.max(1, Math.min(rows, Math.floor((1 << 22) / Math.max(1, cols))));
  const t = f64For(slab * cols, cols);
  try {
    return withThreads([t, d, hs], cols, (step) => {
      let total = 0;
      for (let r0 = 0; r0 < rows; r0 += slab) {
        const m = Math.min(slab, rows - r0);
        t.fill(0, 0, m * cols);
        // T[:, jb:je] = −D[:, 0:jb] · H[0:jb, jb:je]: the part of H above each diagonal block.
        for (let jb = BLOCK; jb < cols; jb += BLOCK) {
          const je = Math.min(cols, jb + BLOCK);
          step(OP.GEMM_ROWS, [0, jb, cols, 1, r0 * cols, cols, 2, jb, cols, m, je - jb, jb]);
        }
        let off = 0;
        let diag = 0;
        for (let r = 0; r < m; r++) {
          const dr = (r0 + r) * cols;
          for (let jb = 0; jb < cols; jb += BLOCK) {
            const je = Math.min(cols, jb + BLOCK);
            for (let j = jb; j < je; j++) {
              const dj = d[dr + j];
              if (dj === 0) continue;
              // Inside the diagonal block: i < j, then the diagonal.
              let s = -t[r * cols + j];
              for (let i = jb; i < j; i++) s += d[dr + i] * hs[i * cols + j];
              off += dj * s;
              diag += hs[j * cols + j] * dj * dj;
            }
          }
        }
        total += 2 * off + diag;
      }
      return total;
    });
  } finally {
    releaseF64(t, d);
  }
}
