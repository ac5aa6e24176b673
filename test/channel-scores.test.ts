// The channel-scores kernel's CPU path on the values that decide its definition: denormal weights
// count as zero (as the GPU flushes them), signs do not matter, sums are exact on small integers.
import { describe, expect, it } from 'vitest';
import { channelScoresKernel } from '../src/kernels/channel-scores.ts';

describe('channel scores (CPU path)', () => {
  it('L1 / L2 per channel: denormals flushed to zero, exact on small integers', () => {
    const d = 1e-40; // a denormal f32
    const weights = Float32Array.from([d, -d, d, -0, 1, -2, d, 0, 3, 4, -d, 0]);
    const r = channelScoresKernel.cpu({ weights, shape: [3, 4], criteria: ['l1', 'l2'] });
    expect(Array.from(r.l1!)).toEqual([0, 3, 7]);
    expect(Array.from(r.l2!)).toEqual([0, Math.fround(Math.sqrt(5)), 5]);
  });
});
