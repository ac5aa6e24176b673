/**
 * Latency statistics (no ONNX Runtime here: the CLI's formatting imports this at start-up):
 * percentiles by nearest rank, as onnxruntime_perf_test reports them, and the drift between blocks
 * of runs that tells a busy machine from a quiet one.
 */
export interface LatencyStats {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
  stdev: number;
  /**
   * How much the latency drifted during the timed runs: the slowest over the fastest median of five
   * consecutive blocks of runs (null under 25 runs). Near 1 on a quiet machine; well above it when
   * something else took the cores part of the time, and the figures should be measured again.
   */
  drift: number | null;
}

/** Block medians this far apart mean the machine was busy part of the time. */
export const DRIFT_WARNING = 1.1;

/** Percentile p (0..100) by nearest rank over ascending values: the ceil(p/100 · n)-th value. */
export function nearestRank(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function latencyStats(times: readonly number[]): LatencyStats {
  const s = [...times].sort((a, b) => a - b);
  const n = s.length;
  const mean = n ? s.reduce((a, b) => a + b, 0) / n : NaN;
  const variance = n > 1 ? s.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  let drift: number | null = null;
  if (n >= 25) {
    const blocks = Array.from({ length: 5 }, (_, b) => {
      const block = times.slice(Math.floor((b * n) / 5), Math.floor(((b + 1) * n) / 5)).slice().sort((x, y) => x - y);
      return nearestRank(block, 50);
    });
    drift = Math.max(...blocks) / Math.min(...blocks);
  }
  return { p50: nearestRank(s, 50), p90: nearestRank(s, 90), p95: nearestRank(s, 95), p99: nearestRank(s, 99), mean, min: s[0] ?? NaN, max: s[n - 1] ?? NaN, stdev: Math.sqrt(variance), drift };
}
