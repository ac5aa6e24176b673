/** Slicing dense row-major tensors along one axis, and moving an axis to the front (for row scores). */

export interface DenseTensor {
  data: Float32Array;
  dims: number[];
}

/** Rows shorter than this are copied element by element (a subarray + set costs ~50 ns each). */
const SHORT_ROW = 32;

/** Keeps the indices in `keep` (ascending) along `axis`. */
export function sliceAxis(t: DenseTensor, axis: number, keep: readonly number[]): DenseTensor {
  const outer = t.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = t.dims[axis];
  const out = new Float32Array(outer * keep.length * inner);
  const src = t.data;
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < keep.length; j++) {
      const from = (o * n + keep[j]) * inner;
      // Short rows (columns of a MatMul weight: inner 1) element by element; a subarray each costs more.
      if (inner < SHORT_ROW) for (let e = 0; e < inner; e++) out[at + e] = src[from + e];
      else out.set(src.subarray(from, from + inner), at);
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
  const src = t.data;
  const row = outer * inner;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const from = (o * n + k) * inner;
      const to = k * row + o * inner;
      if (inner < SHORT_ROW) for (let e = 0; e < inner; e++) out[to + e] = src[from + e];
      else out.set(src.subarray(from, from + inner), to);
    }
  }
  return out;
}
