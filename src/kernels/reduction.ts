/**
 * Shared slicing and bookkeeping for kernels that reduce over groups (range, dequantize
 * statistics, channel norms). Mirrors the reduction prelude in shaders/common.wgsl.
 */
import { groupLength, sliceView, type GroupView, type Slice } from './layout.ts';
import { WORKGROUP_SIZE } from './kernel.ts';

/** Elements one workgroup reduces (the WGSL override REDUCE_CHUNK is set from this). */
export const REDUCE_CHUNK = 16384;
/** Groups up to this length are reduced one per thread instead of one per workgroup. */
export const THREAD_GROUP_MAX = 64;

export interface ReductionSlice extends Slice {
  readonly threadVariant: boolean;
  readonly nchunks: number;
  readonly workgroups: number;
  /** Partials this slice produces (one per task). */
  readonly partials: number;
}

export function reductionSlices(v: GroupView, maxElems: number, align = 8): ReductionSlice[] {
  return sliceView(v, maxElems, align).map((s) => {
    const groups = s.g1 - s.g0;
    const kLen = s.k1 - s.k0;
    const threadVariant = kLen <= THREAD_GROUP_MAX;
    const nchunks = threadVariant ? 1 : Math.max(1, Math.ceil(kLen / REDUCE_CHUNK));
    const workgroups = s.elemCount === 0 || groups === 0 ? 0 : threadVariant ? Math.ceil(groups / WORKGROUP_SIZE) : groups * nchunks;
    return { ...s, threadVariant, nchunks, workgroups, partials: groups * nchunks };
  });
}

/** Record words 1..12 of a reduction segment. */
export function reductionHead(v: GroupView, s: ReductionSlice, srcBase: number): number[] {
  return [srcBase, s.elemStart, v.mode, v.dim, v.inner, v.block, v.outer, s.g0, s.g1 - s.g0, s.k0, s.k1, s.nchunks];
}

/** Visits each partial of a slice with its group and the number of elements it covered. */
export function forEachPartial(
  v: GroupView,
  s: ReductionSlice,
  visit: (group: number, elements: number, partIndex: number) => void,
): void {
  for (let gl = 0; gl < s.g1 - s.g0; gl++) {
    const g = s.g0 + gl;
    const len = groupLength(v, g);
    for (let c = 0; c < s.nchunks; c++) {
      const kb = s.threadVariant ? s.k0 : s.k0 + c * REDUCE_CHUNK;
      const ke = Math.min(len, s.threadVariant ? s.k1 : Math.min(s.k1, kb + REDUCE_CHUNK));
      visit(g, Math.max(0, ke - kb), gl * s.nchunks + c);
    }
  }
}
