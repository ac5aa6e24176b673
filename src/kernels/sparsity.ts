/**
 * sparsity: keep-masks for magnitude pruning (passes/sparsify), as bits. Two job kinds:
 *
 * - `threshold`: keep |x| > threshold (unstructured; the threshold is chosen on the host from the
 *   sorted magnitudes, per layer or over all layers).
 * - `nm`: N:M, keep the N largest |x| of every M consecutive elements along the input-channel axis
 *   of an [outer, dim, inner] view (ties to the lower index), the layout TensorRT's 2:4 sparse
 *   kernels read. A last group shorter than M keeps min(N, its length).
 *
 * Magnitudes are compared as integers (|x|'s bits, denormals flushed): exact on every backend.
 */
import { InvalidArgumentError } from '../errors.ts';
import { f32Bits, flushDenormalBits } from './numerics.ts';
import { UnsliceableError } from './layout.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export interface ThresholdMaskJob {
  kind: 'threshold';
  data: Float32Array;
  /** Keep elements whose magnitude exceeds this (a non-negative f32). */
  threshold: number;
}

export interface NmMaskJob {
  kind: 'nm';
  data: Float32Array;
  /** The [outer, dim, inner] view; groups run along dim. */
  outer: number;
  dim: number;
  inner: number;
  n: number;
  m: number;
}

export type SparsityJob = ThresholdMaskJob | NmMaskJob;

export interface SparsityResult {
  /** 1 = kept, one byte per element. */
  keep: Uint8Array;
}

export const MAX_M = 32;

const magnitude = (x: number) => (flushDenormalBits(f32Bits(x)) & 0x7fffffff) >>> 0;

function validate(job: SparsityJob): void {
  if (job.kind === 'threshold') {
    if (!(job.threshold >= 0) || !Number.isFinite(job.threshold)) throw new InvalidArgumentError(`sparsity: threshold must be a finite magnitude >= 0, got ${job.threshold}`);
    return;
  }
  if (!Number.isInteger(job.m) || job.m < 1 || job.m > MAX_M) throw new InvalidArgumentError(`sparsity: M must be an integer in [1, ${MAX_M}], got ${job.m}`);
  if (!Number.isInteger(job.n) || job.n < 0 || job.n > job.m) throw new InvalidArgumentError(`sparsity: N must be an integer in [0, M = ${job.m}], got ${job.n}`);
  if (job.outer * job.dim * job.inner !== job.data.length) throw new InvalidArgumentError(`sparsity: view [${job.outer}, ${job.dim}, ${job.inner}] does not cover ${job.data.length} elements`);
}

function cpu(job: SparsityJob): SparsityResult {
  const keep = new Uint8Array(job.data.length);
  if (job.kind === 'threshold') {
    const t = magnitude(job.threshold);
    for (let i = 0; i < job.data.length; i++) keep[i] = magnitude(job.data[i]) > t ? 1 : 0;
    return { keep };
  }
  const { outer, dim, inner, n, m, data } = job;
  const mags = new Uint32Array(m);
  for (let o = 0; o < outer; o++) {
    for (let b = 0; b * m < dim; b++) {
      const len = Math.min(m, dim - b * m);
      for (let i = 0; i < inner; i++) {
        const base = (o * dim + b * m) * inner + i;
        for (let j = 0; j < len; j++) mags[j] = magnitude(data[base + j * inner]);
        for (let j = 0; j < len; j++) {
          let rank = 0;
          for (let q = 0; q < len; q++) if (mags[q] > mags[j] || (mags[q] === mags[j] && q < j)) rank++;
          keep[base + j * inner] = rank < n ? 1 : 0;
        }
      }
    }
  }
  return { keep };
}

function pieces(job: SparsityJob, maxWords: number): Piece[] {
  const out: Piece[] = [];
  if (job.kind === 'threshold') {
    const chunk = Math.max(32, Math.floor(maxWords / 32) * 32);
    const t = magnitude(job.threshold);
    for (let start = 0; start < job.data.length; start += chunk) {
      const count = Math.min(chunk, job.data.length - start);
      const words = Math.ceil(count / 32);
      out.push({
        entryPoint: 'sparsity_threshold',
        workgroups: Math.ceil(words / WORKGROUP_SIZE),
        words: { src: count, mask: words },
        uploads: [{ stream: 'src', at: 0, data: job.data.subarray(start, start + count) }],
        record: (o) => [o.src, count, o.mask, t],
      });
    }
    return out;
  }
  // Whole outer slices per piece: a group's elements are strided by `inner` inside one slice.
  const slice = job.dim * job.inner;
  if (slice > maxWords) throw new UnsliceableError(`an N:M slice of ${slice} elements exceeds the binding window (${maxWords} words)`);
  const nb = Math.ceil(job.dim / job.m);
  const per = Math.max(1, Math.floor(maxWords / Math.max(1, slice)));
  for (let o0 = 0; o0 < job.outer; o0 += per) {
    const outer = Math.min(per, job.outer - o0);
    const groups = outer * nb * job.inner;
    out.push({
      entryPoint: 'sparsity_nm',
      workgroups: Math.max(1, Math.ceil(groups / WORKGROUP_SIZE)),
      words: { src: outer * slice, mask: groups },
      uploads: [{ stream: 'src', at: 0, data: job.data.subarray(o0 * slice, (o0 + outer) * slice) }],
      record: (o) => [o.src, outer, job.dim, job.inner, job.n, job.m, o.mask],
    });
  }
  return out;
}

function finish(job: SparsityJob, regions: PieceRegions[]): SparsityResult {
  const keep = new Uint8Array(job.data.length);
  if (job.kind === 'threshold') {
    let at = 0;
    for (const r of regions) {
      for (let w = 0; w < r.mask.length && at < keep.length; w++) {
        for (let j = 0; j < 32 && at < keep.length; j++) keep[at++] = (r.mask[w] >>> j) & 1;
      }
    }
    return { keep };
  }
  const { dim, inner, m } = job;
  const nb = Math.ceil(dim / m);
  let o = 0;
  for (const r of regions) {
    const outer = r.mask.length / (nb * inner);
    for (let g = 0; g < r.mask.length; g++) {
      const i = g % inner;
      const b = Math.floor(g / inner) % nb;
      const oo = o + Math.floor(g / (inner * nb));
      const len = Math.min(m, dim - b * m);
      for (let j = 0; j < len; j++) keep[(oo * dim + b * m + j) * inner + i] = (r.mask[g] >>> j) & 1;
    }
    o += outer;
  }
  return { keep };
}

export const sparsityKernel: KernelDescriptor<SparsityJob, SparsityResult> = {
  name: 'sparsity',
  shader: 'sparsity',
  entryPoints: ['sparsity_threshold', 'sparsity_nm'],
  streams: [
    { name: 'src', role: 'in' },
    { name: 'mask', role: 'out' },
  ],
  recordWords: 8,
  validate,
  work: (job) => job.data.length,
  cpu,
  pieces,
  finish,
};
