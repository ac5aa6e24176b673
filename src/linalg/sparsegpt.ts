/**
 * SparseGPT (Frantar & Alistarh 2023): prunes a weight matrix W [rows = outputs, cols = inputs]
 * column by column, each pruned weight's error spread over the columns not yet visited through the
 * inverse Hessian of the layer objective ‖WX − ŴX‖² (H = XXᵀ), exactly as GPTQ spreads rounding
 * errors (same upper factor of H⁻¹, lazy block updates). The mask is chosen as the sweep goes:
 * unstructured, per block of columns, the fraction `sparsity` of the block with the lowest saliency
 * w² / [H⁻¹]ᵢᵢ² (over all rows); N:M, at the first column of each group, the M − N lowest of the
 * group per row. f64 on the CPU.
 */
import { InvalidArgumentError } from '../errors.ts';
import { inverseUpperFactor } from './gptq.ts';

export interface SparseGptInput {
  /** Row-major [rows, cols]. */
  w: Float64Array;
  rows: number;
  cols: number;
  /** Row-major [cols, cols] Gram matrix of the layer's inputs. */
  h: Float64Array;
  /** Unstructured: the fraction of weights to prune (per block of columns). */
  sparsity?: number;
  /**
   * N:M: groups of columns (in `order`), of at most m columns each; in every row the group keeps
   * its n most salient weights (all of them when it has no more than n).
   */
  nm?: { n: number; groups: number[][] };
  /** Column visiting order (default 0..cols-1); N:M groups must be contiguous runs of it. */
  order?: number[];
  damping?: number;
  blockSize?: number;
}

export interface SparseGptResult {
  /** Row-major [rows, cols], original column order; pruned entries exactly 0. */
  w: Float64Array;
  /** 1 = kept. */
  keep: Uint8Array;
  damping: number;
}

export function sparsegpt(input: SparseGptInput): SparseGptResult {
  const { rows, cols } = input;
  if (input.w.length !== rows * cols) throw new InvalidArgumentError(`sparsegpt: W has ${input.w.length} entries, [${rows}, ${cols}] needs ${rows * cols}`);
  if (input.h.length !== cols * cols) throw new InvalidArgumentError(`sparsegpt: H has ${input.h.length} entries, ${cols} inputs need ${cols * cols}`);
  if ((input.sparsity === undefined) === (input.nm === undefined)) throw new InvalidArgumentError('sparsegpt: give exactly one of sparsity and nm');
  const perm = input.order ?? Array.from({ length: cols }, (_, i) => i);
  const pos = new Int32Array(cols);
  perm.forEach((c, i) => (pos[c] = i));
  const blockSize = input.blockSize ?? 128;
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] = input.h[perm[i] * cols + perm[j]];
  const w = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[r * cols + c] = input.w[r * cols + perm[c]];
  let mean = 0;
  for (let i = 0; i < cols; i++) {
    if (h[i * cols + i] === 0) {
      // A dead input: its weights never contribute; prune them for free.
      h[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + i] = 0;
    }
    mean += h[i * cols + i] / cols;
  }
  let damping = input.damping ?? 0.01;
  let u: Float64Array | null = null;
  for (let attempt = 0; attempt < 8 && !u; attempt++, damping *= 10) {
    const hd = Float64Array.from(h);
    for (let i = 0; i < cols; i++) hd[i * cols + i] += damping * mean;
    u = inverseUpperFactor(hd, cols);
  }
  if (!u) throw new InvalidArgumentError(`sparsegpt: the Hessian of ${cols} inputs is not positive definite even with damping ${damping / 10} x mean(diag)`);
  damping /= 10;
  // N:M group (in visiting order) starting at each position.
  const groupAt = new Map<number, number>();
  if (input.nm) {
    for (const g of input.nm.groups) {
      const ps = g.map((c) => pos[c]).sort((a, b) => a - b);
      if (ps[ps.length - 1] - ps[0] !== ps.length - 1) throw new InvalidArgumentError('sparsegpt: an N:M group is not a contiguous run of the column order');
      groupAt.set(ps[0], ps.length);
    }
  }
  const keep = new Uint8Array(rows * cols).fill(1);
  const err = new Float64Array(rows * blockSize);
  for (let b0 = 0; b0 < cols; b0 += blockSize) {
    const b1 = Math.min(cols, b0 + blockSize);
    if (input.sparsity !== undefined) {
      // The block's mask: the lowest saliencies w² / d² over all its rows and columns.
      const sal: Array<[number, number]> = [];
      for (let r = 0; r < rows; r++) for (let i = b0; i < b1; i++) sal.push([w[r * cols + i] ** 2 / u[i * cols + i] ** 2, r * cols + i]);
      sal.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const cut = Math.round(sal.length * input.sparsity);
      for (let q = 0; q < cut; q++) keep[sal[q][1]] = 0;
    }
    for (let i = b0; i < b1; i++) {
      const len = groupAt.get(i);
      if (len !== undefined && input.nm) {
        for (let r = 0; r < rows; r++) {
          const s = Array.from({ length: len }, (_, j) => [w[r * cols + i + j] ** 2 / u[(i + j) * cols + i + j] ** 2, j]);
          s.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
          for (let q = input.nm.n; q < len; q++) keep[r * cols + i + s[q][1]] = 0;
        }
      }
      const d = u[i * cols + i];
      for (let r = 0; r < rows; r++) {
        const x = w[r * cols + i];
        const q = keep[r * cols + i] ? x : 0;
        w[r * cols + i] = q;
        const e = (x - q) / d;
        err[r * blockSize + (i - b0)] = e;
        if (e === 0) continue;
        const row = r * cols;
        const ui = i * cols;
        for (let j = i + 1; j < b1; j++) w[row + j] -= e * u[ui + j];
      }
    }
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
  const out = new Float64Array(rows * cols);
  const keepOut = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = keep[r * cols + c];
      keepOut[r * cols + perm[c]] = k;
      out[r * cols + perm[c]] = k ? w[r * cols + c] : 0;
    }
  }
  return { w: out, keep: keepOut, damping };
}
