/**
 * Which coupled channels to remove. Components are classed by the producers they touch (a plain
 * conv's channels form one class; a residual chain's channels another), and each class keeps a
 * multiple of `round` channels — ONNX Runtime's NCHWc convolutions leave their fast path otherwise.
 * `ratio`: the same fraction in every class. `macs`: a global threshold on scores normalized per
 * class, searched until the model's MACs drop by the asked fraction.
 */
import type { ChannelGraph } from '../../analysis/channel-groups.ts';
import type { LayerCost } from '../../analysis/macs.ts';

export interface SelectOptions {
  ratio?: number;
  /** Fraction of the model's MACs to remove (instead of `ratio`). */
  macs?: number;
  round: number;
  /** No class loses more than this fraction of its channels. */
  maxRatio: number;
}

interface ChannelClass {
  /** Component roots, ascending by score. */
  removable: number[];
  size: number;
  meanScore: number;
}

export interface Selection {
  removed: Set<number>;
  macsBefore: number;
  macsAfter: number;
  /** `macs` mode: false when the target could not be reached within `maxRatio` and `round`. */
  reached: boolean;
}

function classes(cg: ChannelGraph, scores: Float64Array): ChannelClass[] {
  const producersOf = new Map<number, Set<number>>();
  for (let id = 0; id < cg.producerOf.length; id++) {
    const r = cg.root(id);
    let s = producersOf.get(r);
    if (!s) producersOf.set(r, (s = new Set()));
    s.add(cg.producerOf[id]);
  }
  const byKey = new Map<string, number[]>();
  for (const [r, ps] of producersOf) {
    const key = [...ps].sort((a, b) => a - b).join(',');
    let list = byKey.get(key);
    if (!list) byKey.set(key, (list = []));
    list.push(r);
  }
  return [...byKey.values()].map((roots) => {
    const removable = roots.filter((r) => !cg.blocked.has(r)).sort((a, b) => scores[a] - scores[b] || a - b);
    const mean = roots.reduce((s, r) => s + scores[r], 0) / roots.length;
    return { removable, size: roots.length, meanScore: mean };
  });
}

/** How many to remove from a class of `size`, at most `removable`, keeping a multiple of `round`. */
export function removalCount(size: number, removable: number, want: number, round: number, maxRatio: number): number {
  const most = Math.min(removable, Math.floor(size * maxRatio + 1e-9));
  let best = 0;
  for (let n = 1; n <= most; n++) {
    const kept = size - n;
    if (kept < round || kept % round !== 0) continue;
    if (Math.abs(n - want) < Math.abs(best - want)) best = n;
  }
  return best;
}

/** Per counted layer: which ids its output and input channels carry (for MACs after removal). */
export interface CostModel {
  layers: Array<{ macs: number; out: Int32Array | null; in: Int32Array | null }>;
  total: number;
}

export function costModel(cg: ChannelGraph, costs: readonly LayerCost[]): CostModel {
  const outOf = new Map<string, Int32Array>();
  for (const p of cg.producers) outOf.set(p.node.name || p.node.output[0], cg.labels.get(p.node.output[0])!.ids);
  const inOf = new Map<string, Int32Array>();
  for (const s of cg.slices) {
    if (s.role === 'consumer' || (s.role === 'depthwise' && s.input === 1)) inOf.set(s.node.name || s.node.output[0], cg.labels.get(s.value)!.ids);
  }
  const layers = costs.filter((c) => c.macs !== null).map((c) => ({ macs: c.macs!, out: outOf.get(c.node) ?? null, in: inOf.get(c.node) ?? null }));
  return { layers, total: layers.reduce((s, l) => s + l.macs, 0) };
}

export function macsAfter(cg: ChannelGraph, model: CostModel, removed: ReadonlySet<number>): number {
  const frac = (ids: Int32Array | null) => {
    if (!ids || !ids.length) return 1;
    let kept = 0;
    for (const id of ids) if (id < 0 || !removed.has(cg.root(id))) kept++;
    return kept / ids.length;
  };
  return model.layers.reduce((s, l) => s + l.macs * frac(l.out) * frac(l.in), 0);
}

export function selectChannels(cg: ChannelGraph, scores: Float64Array, costs: readonly LayerCost[], o: SelectOptions): Selection {
  const cls = classes(cg, scores);
  const cm = costModel(cg, costs);
  const pick = (want: (c: ChannelClass) => number) => {
    const removed = new Set<number>();
    for (const c of cls) {
      const n = removalCount(c.size, c.removable.length, want(c), o.round, o.maxRatio);
      for (const r of c.removable.slice(0, n)) removed.add(r);
    }
    return removed;
  };
  if (o.macs === undefined) {
    const removed = pick((c) => c.size * (o.ratio ?? 0));
    return { removed, macsBefore: cm.total, macsAfter: macsAfter(cg, cm, removed), reached: true };
  }
  const goal = cm.total * (1 - o.macs);
  // Removing every channel whose normalized score is below t; t found by bisection.
  const atThreshold = (t: number) => pick((c) => c.removable.filter((r) => (c.meanScore > 0 ? scores[r] / c.meanScore : 0) < t).length);
  let hi = 1;
  const maxScore = Math.max(1, ...cls.flatMap((c) => c.removable.map((r) => (c.meanScore > 0 ? scores[r] / c.meanScore : 0))));
  let best = atThreshold(Infinity);
  let bestMacs = macsAfter(cg, cm, best);
  if (bestMacs > goal) return { removed: best, macsBefore: cm.total, macsAfter: bestMacs, reached: false };
  let lo = 0;
  hi = maxScore * 1.001 + 1e-9;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    const r = atThreshold(mid);
    const m = macsAfter(cg, cm, r);
    if (m <= goal) {
      hi = mid;
      best = r;
      bestMacs = m;
    } else lo = mid;
  }
  return { removed: best, macsBefore: cm.total, macsAfter: bestMacs, reached: true };
}
