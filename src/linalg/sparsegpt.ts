/**
 * SparseGPT (Frantar & Alistarh 2023): prunes a weight matrix W [rows = outputs, cols = inputs]
 * column by column, each pruned weight's error spread over the columns not yet visited through the
 * inverse Hessian of the layer objective ‖WX − ŴX‖² (H = XXᵀ), exactly as GPTQ spreads rounding
 * errors (same upper factor of H⁻¹, lazy block updates). The mask is chosen as the sweep goes:
 * unstructured, per block of columns, the fraction `sparsity` of the block with the lowest saliency
 * w² / [H⁻¹]ᵢᵢ² (over all rows); N:M, at the first column of each group, the M − N lowest of the
 * group per row. f64 on the CPU; the sweep is linalg/obs.ts, shared with GPTQ.
 */
import { InvalidArgumentError } from '../errors.ts';
import { obsSweep, prepareLayer, type SweepHooks } from './obs.ts';

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
  if ((input.sparsity === undefined) === (input.nm === undefined)) throw new InvalidArgumentError('sparsegpt: give exactly one of sparsity and nm');
  const perm = input.order ?? Array.from({ length: cols }, (_, i) => i);
  const pos = new Int32Array(cols);
  perm.forEach((c, i) => (pos[c] = i));
  // Dead inputs are zeroed by prepareLayer: pruning their weights is free, and the mask finds them first.
  const layer = prepareLayer('sparsegpt', input.w, input.h, rows, cols, perm, input.damping ?? 0.01);
  const { w, u } = layer;
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
  const saliency = (r: number, i: number) => w[r * cols + i] ** 2 / u[i * cols + i] ** 2;
  const hooks: SweepHooks = {};
  if (input.sparsity !== undefined) {
    const sparsity = input.sparsity;
    // Unstructured: each block's mask is the lowest saliencies w² / [H⁻¹]ᵢᵢ² over all its rows and columns.
    hooks.block = (b0, b1) => {
      const sal: Array<[number, number]> = [];
      for (let r = 0; r < rows; r++) for (let i = b0; i < b1; i++) sal.push([saliency(r, i), r * cols + i]);
      sal.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const cut = Math.round(sal.length * sparsity);
      for (let q = 0; q < cut; q++) keep[sal[q][1]] = 0;
    };
  } else {
    const n = input.nm!.n;
    // N:M: at a group's first column, each row keeps its n most salient weights of the group.
    hooks.column = (i) => {
      const len = groupAt.get(i);
      if (len === undefined) return;
      for (let r = 0; r < rows; r++) {
        const s = Array.from({ length: len }, (_, j) => [saliency(r, i + j), j]);
        s.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
        for (let q = n; q < len; q++) keep[r * cols + i + s[q][1]] = 0;
      }
    };
  }
  const q = obsSweep(layer, rows, cols, (x, r, i) => (keep[r * cols + i] ? x : 0), hooks, input.blockSize ?? 128);
  const out = new Float64Array(rows * cols);
  const keepOut = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = keep[r * cols + c];
      keepOut[r * cols + perm[c]] = k;
      out[r * cols + perm[c]] = k ? q[r * cols + c] : 0;
    }
  }
  return { w: out, keep: keepOut, damping: layer.damping };
}
