/**
 * How a tensor's elements are grouped for quantization parameters and reductions, and how a
 * tensor is cut into contiguous slices that fit one storage-binding window.
 *
 * Every granularity is a view of the tensor as [outer, dim, inner] around an axis:
 *  - per-tensor:  one group (the view [1, 1, n] in channel mode);
 *  - per-channel: group = index along the axis;
 *  - per-block:   group = (outer, block of `blockSize` along the axis, inner), row-major, which is
 *                 the layout of ONNX blocked-quantization scales (input shape with dim[axis] = ceil(dim / block)).
 */
import { InvalidArgumentError } from '../errors.ts';

export type Granularity =
  | { kind: 'tensor' }
  | { kind: 'channel'; axis: number }
  | { kind: 'block'; axis: number; blockSize: number };

export const MODE_CHANNEL = 0;
export const MODE_BLOCK = 1;

export interface GroupView {
  readonly mode: typeof MODE_CHANNEL | typeof MODE_BLOCK;
  readonly outer: number;
  readonly dim: number;
  readonly inner: number;
  /** Block size along the axis (1 in channel mode). */
  readonly block: number;
  readonly groups: number;
  readonly elements: number;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function normalizeAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new InvalidArgumentError(`${what} ${axis} is out of range for a tensor of rank ${rank}`, { axis, rank });
  }
  return a;
}

export function groupView(shape: readonly number[], g: Granularity): GroupView {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new InvalidArgumentError(`invalid shape [${shape.join(', ')}]`, { shape });
  }
  const n = elementCount(shape);
  if (g.kind === 'tensor') {
    return { mode: MODE_CHANNEL, outer: 1, dim: 1, inner: n, block: 1, groups: 1, elements: n };
  }
  const axis = normalizeAxis(g.axis, shape.length);
  const rank = shape.length === 0 ? 1 : shape.length;
  const dims = shape.length === 0 ? [1] : shape;
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i];
  for (let i = axis + 1; i < rank; i++) inner *= dims[i];
  const dim = dims[axis];
  if (g.kind === 'channel') {
    return { mode: MODE_CHANNEL, outer, dim, inner, block: 1, groups: dim, elements: n };
  }
  if (!Number.isInteger(g.blockSize) || g.blockSize < 1) {
    throw new InvalidArgumentError(`block size must be a positive integer, got ${g.blockSize}`, { blockSize: g.blockSize });
  }
  const nb = Math.ceil(dim / g.blockSize);
  return { mode: MODE_BLOCK, outer, dim, inner, block: g.blockSize, groups: outer * nb * inner, elements: n };
}

export function blocksPerRow(v: GroupView): number {
  return Math.ceil(v.dim / v.block);
}

/** Group of the element at flat index `idx`. */
export function groupOf(v: GroupView, idx: number): number {
  const d = Math.floor(idx / v.inner) % v.dim;
  if (v.mode === MODE_CHANNEL) return d;
  const i = idx % v.inner;
  const o = Math.floor(idx / (v.inner * v.dim));
  return (o * blocksPerRow(v) + Math.floor(d / v.block)) * v.inner + i;
}

/** Number of elements in group `g`. */
export function groupLength(v: GroupView, g: number): number {
  if (v.mode === MODE_CHANNEL) return v.outer * v.inner;
  const b = Math.floor(g / v.inner) % blocksPerRow(v);
  return Math.min(v.block, v.dim - b * v.block);
}

/** Flat index of the k-th element of group `g`. */
export function groupElement(v: GroupView, g: number, k: number): number {
  if (v.mode === MODE_CHANNEL) {
    return (Math.floor(k / v.inner) * v.dim + g) * v.inner + (k % v.inner);
  }
  const nb = blocksPerRow(v);
  const i = g % v.inner;
  const t = Math.floor(g / v.inner);
  const b = t % nb;
  const o = Math.floor(t / nb);
  return (o * v.dim + b * v.block + k) * v.inner + i;
}

/**
 * A contiguous run of a tensor's elements, small enough for one binding window. For each group
 * in [g0, g1) the slice holds exactly that group's elements with k in [k0, k1) (in block mode,
 * k also stops at the group's length).
 */
export interface Slice {
  readonly elemStart: number;
  readonly elemCount: number;
  readonly g0: number;
  readonly g1: number;
  readonly k0: number;
  readonly k1: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Largest r <= limit with (r * unit) % align === 0 (0 if none). */
function alignedCount(limit: number, unit: number, align: number): number {
  const step = align / gcd(unit % align || align, align);
  return Math.floor(limit / step) * step;
}

export class UnsliceableError extends InvalidArgumentError {}

/**
 * Cuts a tensor into slices of at most `maxElems` elements whose starts are multiples of
 * `align` elements.
 */
export function sliceView(v: GroupView, maxElems: number, align = 1): Slice[] {
  const n = v.elements;
  const fullK = v.mode === MODE_CHANNEL ? v.outer * v.inner : v.block;
  if (n <= maxElems) return [{ elemStart: 0, elemCount: n, g0: 0, g1: v.groups, k0: 0, k1: fullK }];
  const slices: Slice[] = [];
  const rowElems = v.dim * v.inner;
  const rows = alignedCount(Math.min(maxElems, n) / rowElems, rowElems, align);
  if (rows >= 1) {
    const groupsPerRow = v.mode === MODE_CHANNEL ? 0 : blocksPerRow(v) * v.inner;
    for (let o0 = 0; o0 < v.outer; o0 += rows) {
      const o1 = Math.min(v.outer, o0 + rows);
      if (v.mode === MODE_CHANNEL) {
        slices.push({ elemStart: o0 * rowElems, elemCount: (o1 - o0) * rowElems, g0: 0, g1: v.dim, k0: o0 * v.inner, k1: o1 * v.inner });
      } else {
        slices.push({ elemStart: o0 * rowElems, elemCount: (o1 - o0) * rowElems, g0: o0 * groupsPerRow, g1: o1 * groupsPerRow, k0: 0, k1: v.block });
      }
    }
    return slices;
  }
  if (v.mode === MODE_BLOCK) {
    const nb = blocksPerRow(v);
    const blockRow = v.block * v.inner;
    const per = alignedCount(maxElems / blockRow, blockRow, align);
    if (per < 1) throw new UnsliceableError(`a block row of ${blockRow} elements exceeds the binding window of ${maxElems} elements`);
    for (let o = 0; o < v.outer; o++) {
      for (let b0 = 0; b0 < nb; b0 += per) {
        const b1 = Math.min(nb, b0 + per);
        const start = (o * v.dim + b0 * v.block) * v.inner;
        const end = (o * v.dim + Math.min(v.dim, b1 * v.block)) * v.inner;
        slices.push({ elemStart: start, elemCount: end - start, g0: (o * nb + b0) * v.inner, g1: (o * nb + b1) * v.inner, k0: 0, k1: v.block });
      }
    }
    return slices;
  }
  const perD = alignedCount(maxElems / v.inner, v.inner, align);
  for (let o = 0; o < v.outer; o++) {
    if (perD >= 1) {
      for (let d0 = 0; d0 < v.dim; d0 += perD) {
        const d1 = Math.min(v.dim, d0 + perD);
        slices.push({ elemStart: (o * v.dim + d0) * v.inner, elemCount: (d1 - d0) * v.inner, g0: d0, g1: d1, k0: o * v.inner, k1: (o + 1) * v.inner });
      }
      continue;
    }
    const perI = Math.floor(maxElems / align) * align;
    for (let d = 0; d < v.dim; d++) {
      for (let i0 = 0; i0 < v.inner; i0 += perI) {
        const i1 = Math.min(v.inner, i0 + perI);
        slices.push({ elemStart: (o * v.dim + d) * v.inner + i0, elemCount: i1 - i0, g0: d, g1: d + 1, k0: o * v.inner + i0, k1: o * v.inner + i1 });
      }
    }
  }
  return slices;
}
