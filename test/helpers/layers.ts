/** Generated layers for the data-aware methods' tests (GPTQ, SparseGPT). */
import { seededRandom } from '../../src/random.ts';
import { gramKernel } from '../../src/kernels/gram.ts';

/** A layer W [rows, cols] with correlated inputs (as real activations are): X = relu(Z·M), H = XᵀX. */
export function correlatedLayer(rows: number, cols: number, samples: number, seed: number): { w: Float64Array; h: Float64Array } {
  const r = seededRandom(seed);
  const n = () => r() * 2 - 1;
  const w = Float64Array.from({ length: rows * cols }, n);
  const m = Float32Array.from({ length: cols * cols }, n);
  const z = Float32Array.from({ length: samples * cols }, n);
  const x = new Float32Array(samples * cols);
  for (let s = 0; s < samples; s++) for (let j = 0; j < cols; j++) {
    let v = 0;
    for (let k = 0; k < cols; k++) v += z[s * cols + k] * m[k * cols + j];
    x[s * cols + j] = Math.max(0, v); // ReLU-like, some inputs often zero
  }
  return { w, h: gramKernel.cpu({ a: x, rows: samples, fa: cols }).gram };
}
