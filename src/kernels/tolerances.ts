/**
 * Tolerances for float kernel outputs, GPU vs CPU reference, in one place. Integer outputs
 * (codes, counts, min/max/absmax, which are exact) have none: they must be bit-identical.
 * A value passes when |gpu - cpu| <= abs + rel * |cpu|.
 */
export interface Tolerance {
  abs: number;
  rel: number;
}

/**
 * Dequantize statistics are f32 sums of values scaled by a power of two near 1 / (the group's
 * largest magnitude): an error smaller than ~2^-63 of that magnitude squares below f32's normal
 * range and is lost (a group mixing 1e30 and 1e-7 values). Beyond this SQNR the GPU and the f64
 * reference both only have to report the error as negligible.
 */
export const SQNR_RESOLVED_DB = 300;

export const tolerances = {
  // f32 tree sums of up to 4096 values, merged in f64: ~1e-6 relative per partial.
  'range.mean': { abs: 1e-6, rel: 1e-4 },
  'range.variance': { abs: 1e-6, rel: 1e-3 },
  // The dequantized value is one exact f32 multiply: identical.
  'dequantize.values': { abs: 0, rel: 0 },
  'dequantize.mse': { abs: 1e-12, rel: 1e-3 },
  'dequantize.sqnrDb': { abs: 0.01, rel: 0 },
  'dequantize.maxAbsError': { abs: 0, rel: 1e-6 },
  'dequantize.cosine': { abs: 1e-5, rel: 0 },
  'channel_scores.l1': { abs: 1e-6, rel: 1e-4 },
  'channel_scores.l2': { abs: 1e-6, rel: 1e-4 },
  // sqrt is 2.5 ULP on WebGPU and each distance sums a row in f32.
  'channel_scores.fpgm': { abs: 1e-5, rel: 1e-4 },
  // exp/log carry 3 ULP + range-dependent error in WGSL; logits up to |30|.
  'distill_loss.loss': { abs: 1e-5, rel: 1e-4 },
  'distill_loss.grad': { abs: 1e-6, rel: 1e-3 },
  // KL sums thousands of p*log(p/q) terms in f32; only a shortlist is used (pickThreshold re-scores it in f64).
  'threshold_search.score': { abs: 1e-5, rel: 5e-3 },
  // f32 partials over chunks of 512 rows or more (16-product steps summed plainly, steps
  // compensated), added in f64; measured against the matrix's largest magnitude (cross terms may
  // cancel to near zero).
  'gram.values': { abs: 2e-5, rel: 1e-4 },
  // L⁻¹ in f32 after n pivots, each a sqrt and a division that WGSL does not round correctly
  // (2.5 ULP); measured against the inverse's largest magnitude (well-conditioned test matrices).
  'cholesky.inverse': { abs: 1e-4, rel: 1e-3 },
} as const satisfies Record<string, Tolerance>;

/**
 * gptq_sweep returns codes, but they come out of an f32 recurrence: a GPU that fuses w − e·u into
 * one multiply-add rounds once where the reference rounds twice, and a weight on a rounding
 * boundary can then take the neighbouring code (its row's later columns follow it). At most this
 * fraction of codes may differ from the CPU reference, each by one step.
 */
export const GPTQ_SWEEP_CODES = { maxDifferingFraction: 0.002, maxStep: 1 } as const;

export type ToleranceKey = keyof typeof tolerances;

export function withinTolerance(got: number, want: number, t: Tolerance): boolean {
  if (Number.isNaN(want)) return Number.isNaN(got);
  if (!Number.isFinite(want)) return got === want;
  return Math.abs(got - want) <= t.abs + t.rel * Math.abs(want);
}

/** Index of the first element out of tolerance, or -1. */
export function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, t: Tolerance): number {
  if (got.length !== want.length) return Math.min(got.length, want.length);
  for (let i = 0; i < want.length; i++) if (!withinTolerance(got[i], want[i], t)) return i;
  return -1;
}
