/** The Pareto front over size, latency and quality: candidates no other candidate beats on all three. */
export interface ParetoPoint {
  id: string;
  /** Smaller is better. */
  size: number;
  /** Smaller is better. */
  latency: number;
  /** Larger is better. */
  quality: number;
}

/** a dominates b: at least as good on every objective and strictly better on one. */
export function dominates(a: ParetoPoint, b: ParetoPoint): boolean {
  const noWorse = a.size <= b.size && a.latency <= b.latency && a.quality >= b.quality;
  const better = a.size < b.size || a.latency < b.latency || a.quality > b.quality;
  return noWorse && better;
}

/** Ids of the non-dominated points, in input order. */
export function paretoFront(points: readonly ParetoPoint[]): string[] {
  return points.filter((p) => !points.some((q) => q !== p && dominates(q, p))).map((p) => p.id);
}
