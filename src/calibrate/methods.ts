/**
 * Calibration methods: the clipping range of each activation from its streamed statistics.
 *  - minmax: the observed [min, max];
 *  - percentile: clip |x| at the given percentile of the |x| histogram;
 *  - entropy: the threshold minimising KL(P || Q) (TensorRT's method), searched on the GPU;
 *  - mse: the threshold minimising the expected quantization + clipping error, searched on the GPU.
 * The range always contains 0 and never exceeds [min, max].
 */
import { DataError } from '../errors.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { pickThreshold, thresholdSearchKernel, type ThresholdSearchJob } from '../kernels/threshold-search.ts';
import type { TensorStats } from './stats.ts';

/** The percentile method's default: clip |x| at its 99.99th percentile. */
export const DEFAULT_PERCENTILE = 99.99;

export const CALIB_METHODS = ['minmax', 'percentile', 'entropy', 'mse'] as const;
export type CalibMethod = (typeof CALIB_METHODS)[number];

export interface ClipRange {
  min: number;
  max: number;
  /** The |x| threshold chosen (null for minmax). */
  threshold: number | null;
}

export interface MethodOptions {
  method: CalibMethod;
  /** For 'percentile' (default 99.99). */
  percentile?: number;
  /** Activation code type: decides the levels the searches assume. */
  signed: boolean;
}

function clamp(s: TensorStats, t: number | null): ClipRange {
  if (t === null) return { min: s.min, max: s.max, threshold: null };
  return { min: Math.max(s.min, -t), max: Math.min(s.max, t), threshold: t };
}

export function percentileThreshold(magnitudes: Uint32Array, width: number, p: number): number {
  let total = 0;
  for (const c of magnitudes) total += c;
  if (total === 0) return 0;
  const target = (p / 100) * total;
  let run = 0;
  for (let b = 0; b < magnitudes.length; b++) {
    run += magnitudes[b];
    if (run >= target) return (b + 1) * width;
  }
  return magnitudes.length * width;
}

/**
 * The exact percentile from the largest magnitudes (ONNX Runtime's TopK): the smallest |x| with at
 * least p % of the values at or below it — the (m+1)-th largest, m = n − ceil(p/100 · n). The
 * histogram's answer is the upper edge of the bin holding it.
 */
export function percentileFromLargest(s: TensorStats, p: number): number {
  const top = s.top!;
  if (!(p >= s.topPercentile)) throw new DataError(`calibration kept the magnitudes above the ${s.topPercentile} percentile; the ${p} percentile needs more (collect again with that percentile)`);
  if (top.length === 0 || s.count === 0) return 0;
  const m = s.count - Math.ceil((p / 100) * s.count);
  return top[Math.min(m, top.length - 1)];
}

/** Levels of |x| the quantized codes resolve: int8 has 128 magnitudes; uint8 on x >= 0 has 256. */
function levelsFor(s: TensorStats, signed: boolean, method: 'entropy' | 'mse'): number {
  const nonNegative = s.min >= 0;
  if (method === 'entropy') return signed || !nonNegative ? 128 : 256;
  return signed || !nonNegative ? 127 : 255;
}

/** Clip ranges for all tensors; entropy and mse run as one threshold_search pass over all of them. */
export async function clipRanges(scheduler: Scheduler, stats: TensorStats[], opts: MethodOptions): Promise<ClipRange[]> {
  for (const s of stats) {
    if (s.count === 0) throw new DataError('calibration saw no finite value for an activation; check the calibration data', {});
  }
  if (opts.method === 'minmax') return stats.map((s) => clamp(s, null));
  if (opts.method === 'percentile') {
    const p = opts.percentile ?? DEFAULT_PERCENTILE;
    if (!(p > 0 && p <= 100)) throw new DataError(`percentile must be in (0, 100], got ${p}`);
    return stats.map((s) => clamp(s, s.top ? percentileFromLargest(s, p) : percentileThreshold(s.magnitudes(), s.binWidth(), p)));
  }
  const method = opts.method;
  const jobs: ThresholdSearchJob[] = stats.map((s) => ({ counts: s.magnitudes(), binWidth: s.binWidth(), method, levels: levelsFor(s, opts.signed, method) }));
  const results = await scheduler.run(thresholdSearchKernel, jobs);
  return stats.map((s, i) => clamp(s, pickThreshold(jobs[i], results[i]) * jobs[i].binWidth));
}
