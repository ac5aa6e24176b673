/**
 * Streaming activation statistics for calibration, with memory independent of the number of
 * samples: exact min / max (range kernel) and a signed histogram over [-A, A] whose range doubles
 * when a batch exceeds it (pairs of bins merge exactly), so counts stay integers and batches merge.
 */
import type { Scheduler } from '../scheduler/scheduler.ts';
import { rangeKernel } from '../kernels/range.ts';
import { histogramKernel, type HistogramResult } from '../kernels/histogram.ts';

/** Bins of the |x| histogram (the signed state has twice as many). */
export const HALF_BINS = 2048;

export class TensorStats {
  min = Infinity;
  max = -Infinity;
  count = 0;
  nonFinite = 0;
  /** Signed histogram over [-limit, limit], 2 * HALF_BINS bins (0 is the middle edge). */
  hist: HistogramResult | null = null;
  limit = 0;

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
      this.hist = { counts: new Uint32Array(2 * HALF_BINS), below: 0, above: 0, nan: 0 };
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

/** Adds one batch of activations (one Float32Array per tensor) to their stats: two passes in all. */
export async function addBatch(scheduler: Scheduler, stats: TensorStats[], batch: Float32Array[]): Promise<void> {
  const ranges = await scheduler.run(rangeKernel, batch.map((data) => ({ data, shape: [data.length], granularity: { kind: 'tensor' as const }, moments: false })));
  ranges.forEach((r, i) => {
    const s = stats[i];
    if (r.count[0] > 0) {
      s.min = Math.min(s.min, r.min[0]);
      s.max = Math.max(s.max, r.max[0]);
    }
    s.count += r.count[0];
    s.nonFinite += r.nanCount[0] + r.infCount[0];
    s.cover(Number.isFinite(s.min) ? s.absmax() : 0);
  });
  const hists = await scheduler.run(histogramKernel, batch.map((data, i) => ({
    data, lo: -stats[i].limit, hi: stats[i].limit, bins: 2 * HALF_BINS, initial: stats[i].hist!,
  })));
  hists.forEach((h, i) => (stats[i].hist = h));
}
