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
/**
 * Groups up to this length (and longer than THREAD_GROUP_MAX) are reduced by `lanes` threads each,
 * 256 / lanes groups per workgroup, so every thread accumulates ~32 elements before the barrier
 * tree and the tree is log2(lanes) deep: a workgroup per 1024-element channel spent most of its
 * time in barriers (lavapipe: range 2.7x, dequantize + statistics 4.7x quantize's kernel time).
 */
export const LANE_GROUP_MAX = 4096;
/** Elements each lane accumulates, about. */
const PER_LANE = 32;

/** Threads per group for a lane-variant slice of kLen elements per group (mirrored in common.wgsl). */
export function lanesFor(kLen: number): number {
  const want = Math.ceil(kLen / PER_LANE);
  let lanes = 1;
  while (lanes < want) lanes *= 2;
  return Math.min(WORKGROUP_SIZE / 2, Math.max(2, lanes));
}

export interface ReductionSlice extends Slice {
  readonly threadVariant: boolean;
  /** Lane variant: threads per group (0 for the thread and workgroup variants). */
  readonly lanes: number;
  readonly nchunks: number;
  readonly workgroups: number;
  /** Partials this slice produces (one per task). */
  readonly partials: number;
}

/** `lanes`: the kernel has a lane-variant entry point (range, dequantize). */
export function reductionSlices(v: GroupView, maxElems: number, align = 8, o: { lanes?: boolean } = {}): ReductionSlice[] {
  return sliceView(v, maxElems, align).map((s) => {
    const groups = s.g1 - s.g0;
    const kLen = s.k1 - s.k0;
    const threadVariant = kLen <= THREAD_GROUP_MAX;
    const lanes = !threadVariant && o.lanes && kLen <= LANE_GROUP_MAX ? lanesFor(kLen) : 0;
    const nchunks = threadVariant || lanes ? 1 : Math.max(1, Math.ceil(kLen / REDUCE_CHUNK));
    const workgroups = s.elemCount === 0 || groups === 0 ? 0
      : threadVariant ? Math.ceil(groups / WORKGROUP_SIZE)
        : lanes ? Math.ceil(groups / (WORKGROUP_SIZE / lanes))
          : groups * nchunks;
    return { ...s, threadVariant, lanes, nchunks, workgroups, partials: groups * nchunks };
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
