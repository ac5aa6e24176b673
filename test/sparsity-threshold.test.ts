// The magnitude threshold of sparsity (k-th smallest |x| by two counting passes) against sorting
// every |x|, on data with zeros of both signs, denormals, infinities and NaN, over one or several arrays.
import { describe, expect, it } from 'vitest';
import { kthSmallestMagnitude } from '../src/passes/sparsify/sparsify.ts';
import { makeData } from './cases/random.ts';

function bySorting(arrays: Float32Array[], k: number): number {
  const all = new Float32Array(arrays.reduce((a, d) => a + d.length, 0));
  let at = 0;
  for (const d of arrays) {
    for (let i = 0; i < d.length; i++) all[at + i] = Math.abs(d[i]);
    at += d.length;
  }
  return all.sort()[k - 1];
}

describe('kthSmallestMagnitude', () => {
  it('equals sorting every |x| for every k on special values, and on samples of k for random and wide data', () => {
    const special = Float32Array.from([0, -0, 1e-45, -1e-45, 1.1754942e-38, -1.17549435e-38, Infinity, -Infinity, NaN, 1, -1, 0.5, -2, 3.4e38, -3.4e38, NaN, 1e-45]);
    for (let k = 1; k <= special.length; k++) expect(Object.is(kthSmallestMagnitude([special], k), bySorting([special], k)) || Number.isNaN(bySorting([special], k)), `k=${k}`).toBe(true);
    let seed = 70;
    for (const kind of ['random', 'special', 'denormal', 'wide', 'ties'] as const) {
      const parts = [makeData(5000, kind, seed++), makeData(1, kind, seed++), makeData(20011, kind, seed++)];
      const n = parts.reduce((a, d) => a + d.length, 0);
      for (const k of [1, 2, 17, Math.floor(n / 2), n - 1, n]) {
        const want = bySorting(parts, k);
        const got = kthSmallestMagnitude(parts, k);
        expect(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)), `${kind} k=${k}: ${got} vs ${want}`).toBe(true);
      }
    }
  });
});
