/** Slicing dense row-major tensors along one axis, and moving an axis to the front (for row scores). */

export interface DenseTensor {
  data: Float32Array;
  dims: number[];
}

/** Keeps the indices in `keep` (ascending) along `axis`. */
export function sliceAxis(t: DenseTensor, axis: number, keep: readonly number[]): DenseTensor {
  const outer = t.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = t.dims[axis];
  const out = new Float32Array(outer * keep.length * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const k of keep) {
      const from = (o * n + k) * inner;
      out.set(t.data.subarray(from, from + inner), at);
      at += inner;
    }
  }
  const dims = [...t.dims];
  dims[axis] = keep.length;
  return { data: out, dims };
}

/** The tensor viewed as [dims[axis], everything else]: row i holds every element with index i on `axis`. */
export function axisFirst(t: DenseTensor, axis: number): Float32Array {
  if (axis === 0) return t.data;
  const outer = t.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = t.dims[axis];
  const out = new Float32Array(t.data.length);
  const row = outer * inner;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const from = (o * n + k) * inner;
      out.set(t.data.subarray(from, from + inner), k * row + o * inner);
    }
  }
  return out;
}
