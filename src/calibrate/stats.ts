/**
 * Streaming activation statistics for calibration, with memory independent of the number of
 * samples: exact min / max (range kernel) and a signed histogram over [-A, A] whose range doubles
 * when a batch exceeds it (pairs of bins merge exactly), so counts stay integers and batches merge.
 */
import type { Scheduler } from '../scheduler/scheduler.ts';
import { rangeKernel } from '../kernels/range.ts';
import { emptyHistogram, type HistogramJob, type HistogramResult } from '../kernels/histogram.ts';
import { countHistograms, type HistogramHelper } from './histogram-helper.ts';

/** The `count` largest of two descending runs, descending. */
export function mergeLargest(a: Float32Array | null, b: Float32Array, count: number): Float32Array {
  if (!a) return b.length > count ? b.slice(0, count) : Float32Array.from(b);
  const out = new Float32Array(Math.min(count, a.length + b.length));
  let i = 0;
  let j = 0;
  for (let k = 0; k < out.length; k++) out[k] = j >= b.length || (i < a.length && a[i] >= b[j]) ? a[i++] : b[j++];
  return out;
}

/** Bins of the |x| histogram (the signed state has twice as many). */
export const HALF_BINS = 2048;

export class TensorStats {
  min = NaN;
  max = NaN;
  count = 0;
  nonFinite = 0;
  /** Signed histogram over [-limit, limit], 2 * HALF_BINS bins (0 is the middle edge). */
  hist: HistogramResult | null = null;
  limit = 0;
  /**
   * Percentile calibration reduced in ONNX Runtime: the largest finite magnitudes seen, largest
   * first — enough of them for the `topPercentile` percentile of every value counted.
   */
  top: Float32Array | null = null;
  topPercentile = NaN;

  /** Merges a batch's largest magnitudes (descending), keeping the `keep` largest overall. */
  addTop(batchTop: Float32Array, keep: number, percentile: number): void {
    this.top = mergeLargest(this.top, batchTop, keep);
    this.topPercentile = percentile;
  }

  /**
   * Merges a batch's min / max computed elsewhere (ONNX Runtime's ReduceMin / ReduceMax): ranges
   * only, no histogram. Non-finite extremes count as non-finite values.
   */
  addRange(min: number, max: number, elements: number): void {
    if (!Number.isFinite(min) || !Number.isFinite(max)) {
      this.nonFinite += elements;
      return;
    }
    this.min = Number.isNaN(this.min) ? min : Math.min(this.min, min);
    this.max = Number.isNaN(this.max) ? max : Math.max(this.max, max);
    this.count += elements;
  }

  absmax(): number {
    return Math.max(Math.abs(this.min), Math.abs(this.max));
  }

  /** Doubles the range until it covers `a`, merging pairs of bins around the middle. */
  cover(a: number): void {
    // Keep the range a normal f32 (denormal edges would be flushed to zero by the kernels).
    a = Math.max(a, 2 ** -100);
    if (!this.hist) {
      // A power of two: the range only ever doubles, so edges stay exact in f32.
      this.limit = 2 ** Math.ceil(Math.log2(a));
      this.hist = emptyHistogram(2 * HALF_BINS);
      return;
    }
    while (a > this.limit) {
      const old = this.hist.counts;
      const next = new Uint32Array(old.length);
      const h = HALF_BINS;
      for (let i = 0; i < h / 2; i++) {
        next[h + i] = old[h + 2 * i] + old[h + 2 * i + 1];
        next[h - 1 - i] = old[h - 1 - 2 * i] + old[h - 2 - 2 * i];
      }
      this.hist.counts = next;
      this.limit *= 2;
    }
  }

  /** |x| histogram over [0, limit] with HALF_BINS bins (the signed halves folded). */
  magnitudes(): Uint32Array {
    const out = new Uint32Array(HALF_BINS);
    const c = this.hist?.counts;
    if (!c) return out;
    for (let i = 0; i < HALF_BINS; i++) out[i] = c[HALF_BINS + i] + c[HALF_BINS - 1 - i];
    return out;
  }

  binWidth(): number {
    return this.limit / HALF_BINS;
  }
}

/**
 * Adds one batch of activations (one Float32Array per tensor) to their stats. The histogram pass
 * also returns exact min / max, so once ranges have settled a batch costs one pass; a tensor seen
 * for the first time gets a range pass first, and one whose values outgrow its range is re-counted
 * after the range doubles.
 */
export async function addBatch(scheduler: Scheduler, stats: TensorStats[], batch: Float32Array[], helper: HistogramHelper | null = null): Promise<void> {
  const fresh = stats.map((s, i) => (s.hist ? -1 : i)).filter((i) => i >= 0);
  if (fresh.length) {
    const ranges = await scheduler.run(rangeKernel, fresh.map((i) => ({ data: batch[i], shape: [batch[i].length], granularity: { kind: 'tensor' as const }, moments: false })));
    ranges.forEach((r, k) => stats[fresh[k]].cover(r.count[0] > 0 ? Math.max(Math.abs(r.min[0]), Math.abs(r.max[0])) : 0));
  }
  let todo = stats.map((_, i) => i);
  while (todo.length) {
    const jobs: HistogramJob[] = todo.map((i) => ({ data: batch[i], lo: -stats[i].limit, hi: stats[i].limit, bins: 2 * HALF_BINS, initial: stats[i].hist! }));
    const hists = await countHistograms(scheduler, jobs, helper);
    // Arrays counted on the helper thread come back as new views.
    todo.forEach((i, k) => (batch[i] = jobs[k].data));
    const again: number[] = [];
    hists.forEach((h, k) => {
      const s = stats[todo[k]];
      const a = Number.isNaN(h.min) ? 0 : Math.max(Math.abs(h.min), Math.abs(h.max));
      if (a > s.limit) {
        // Finite values beyond the range: grow the previous state and count this batch again.
        s.cover(a);
        again.push(todo[k]);
        return;
      }
      s.hist = h;
      s.min = h.min;
      s.max = h.max;
      let n = 0;
      for (const c of h.counts) n += c;
      s.count = n;
      // In range after growth, values counted below / above can only be ±Inf.
      s.nonFinite = h.nan + h.below + h.above;
    });
    todo = again;
  }
}
