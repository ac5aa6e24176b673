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
  /** Per producer node: a lower max ratio (recipe `nodes:` overrides); a class takes its members' smallest. */
  nodeMaxRatio?: ReadonlyMap<string, number>;
}

export interface ChannelClass {
  /** A lower max ratio set for one of its producers. */
  maxRatio?: number;
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

export function classes(cg: ChannelGraph, scores: Float64Array, nodeMaxRatio?: ReadonlyMap<string, number>): ChannelClass[] {
  const producersOf = new Map<number, Set<number>>();
  for (let id = 0; id < cg.producerOf.length; id++) {
    const r = cg.root(id);
    let s = producersOf.get(r);
    if (!s) producersOf.set(r, (s = new Set()));
    s.add(cg.producerOf[id]);
  }
  const byKey = new Map<string, { roots: number[]; producers: number[] }>();
  for (const [r, ps] of producersOf) {
    const producers = [...ps].sort((a, b) => a - b);
    const key = producers.join(',');
    let entry = byKey.get(key);
    if (!entry) byKey.set(key, (entry = { roots: [], producers }));
    entry.roots.push(r);
  }
  return [...byKey.values()].map(({ roots, producers }) => {
    const removable = roots.filter((r) => !cg.blocked.has(r)).sort((a, b) => scores[a] - scores[b] || a - b);
    const mean = roots.reduce((s, r) => s + scores[r], 0) / roots.length;
    const limits = producers.map((p) => nodeMaxRatio?.get(cg.producers[p].node.name ?? '')).filter((x): x is number => x !== undefined);
    return { removable, size: roots.length, meanScore: mean, ...(limits.length ? { maxRatio: Math.min(...limits) } : {}) };
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
  const cls = classes(cg, scores, o.nodeMaxRatio);
  const cm = costModel(cg, costs);
  const pick = (want: (c: ChannelClass) => number) => {
    const removed = new Set<number>();
    for (const c of cls) {
      const n = removalCount(c.size, c.removable.length, want(c), o.round, Math.min(o.maxRatio, c.maxRatio ?? 1));
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
  const norm = (c: ChannelClass, r: number) => (c.meanScore > 0 ? scores[r] / c.meanScore : 0);
  const countsAt = (t: number) => cls.map((c) => removalCount(c.size, c.removable.length, c.removable.filter((r) => norm(c, r) < t).length, o.round, Math.min(o.maxRatio, c.maxRatio ?? 1)));
  const build = (counts: number[]) => {
    const removed = new Set<number>();
    counts.forEach((n, i) => { for (const r of cls[i].removable.slice(0, n)) removed.add(r); });
    return removed;
  };
  let counts = countsAt(Infinity);
  if (macsAfter(cg, cm, build(counts)) > goal) {
    const removed = build(counts);
    return { removed, macsBefore: cm.total, macsAfter: macsAfter(cg, cm, removed), reached: false };
  }
  let lo = 0;
  let hi = Math.max(1, ...cls.flatMap((c) => c.removable.map((r) => norm(c, r)))) * 1.001 + 1e-9;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    const c = countsAt(mid);
    if (macsAfter(cg, cm, build(c)) <= goal) {
      hi = mid;
      counts = c;
    } else lo = mid;
  }
  // Rounding makes the threshold overshoot: give back the most important steps the target allows.
  for (let changed = true; changed;) {
    changed = false;
    const order = cls.map((c, i) => ({ i, s: counts[i] ? norm(c, c.removable[counts[i] - 1]) : -Infinity })).filter((x) => counts[x.i] > 0).sort((a, b) => b.s - a.s);
    for (const { i } of order) {
      const valid = validCounts(cls[i], o.round, o.maxRatio);
      const prev = valid.filter((n) => n < counts[i]).pop() ?? 0;
      const trial = [...counts];
      trial[i] = prev;
      if (macsAfter(cg, cm, build(trial)) <= goal) {
        counts = trial;
        changed = true;
        break;
      }
    }
  }
  const removed = build(counts);
  return { removed, macsBefore: cm.total, macsAfter: macsAfter(cg, cm, removed), reached: true };
}

/** The same number of channels removed from every class as `removed`, chosen by lowest `order` score instead. */
export function rankWithinClasses(cg: ChannelGraph, removed: ReadonlySet<number>, order: Float64Array, nodeMaxRatio?: ReadonlyMap<string, number>): Set<number> {
  const out = new Set<number>();
  for (const c of classes(cg, order, nodeMaxRatio)) {
    const n = c.removable.filter((r) => removed.has(r)).length;
    for (const r of c.removable.slice(0, n)) out.add(r);
  }
  return out;
}

/** The removal counts a class allows: kept counts multiples of `round`, at most `maxRatio` removed. */
export function validCounts(c: ChannelClass, round: number, maxRatio: number): number[] {
  const most = Math.min(c.removable.length, Math.floor(c.size * Math.min(maxRatio, c.maxRatio ?? 1) + 1e-9));
  const out = [0];
  for (let n = 1; n <= most; n++) {
    const kept = c.size - n;
    if (kept >= round && kept % round === 0) out.push(n);
  }
  return out;
}

/**
 * AIMET-style allocation for a MAC target: every class's output error measured at a few removal
 * counts (`errorOf`, linear in between), then the cheapest step — least error added per MAC
 * removed — taken greedily until the target is met.
 */
export async function allocateBySensitivity(cg: ChannelGraph, cls: ChannelClass[], costs: readonly LayerCost[], o: SelectOptions & { macs: number },
  errorOf: (removed: ReadonlySet<number>) => Promise<number>, probes = 3, onProgress?: (done: number, total: number) => void): Promise<Selection & { curves: Array<{ size: number; points: Array<[number, number]> }> }> {
  const cm = costModel(cg, costs);
  const goal = cm.total * (1 - o.macs);
  const options = cls.map((c) => validCounts(c, o.round, o.maxRatio));
  // Error curves: measured at up to `probes` counts spread over the valid ones.
  const curves: Array<Array<[number, number]>> = [];
  const total = options.reduce((s, v) => s + Math.min(probes, v.length - 1), 0);
  let done = 0;
  for (const [i, c] of cls.entries()) {
    const v = options[i];
    const points: Array<[number, number]> = [[0, 0]];
    const picks = v.length - 1 <= probes ? v.slice(1) : Array.from({ length: probes }, (_, k) => v[Math.round(((k + 1) * (v.length - 1)) / probes)]);
    for (const n of [...new Set(picks)]) {
      points.push([n, await errorOf(new Set(c.removable.slice(0, n)))]);
      onProgress?.(++done, total);
    }
    curves.push(points);
  }
  const interp = (i: number, n: number) => {
    const p = curves[i];
    for (let k = 1; k < p.length; k++) {
      if (n <= p[k][0]) return p[k - 1][1] + ((p[k][1] - p[k - 1][1]) * (n - p[k - 1][0])) / (p[k][0] - p[k - 1][0]);
    }
    return p[p.length - 1][1];
  };
  const at = cls.map(() => 0);
  const build = (state: number[]) => {
    const removed = new Set<number>();
    state.forEach((k, i) => { for (const r of cls[i].removable.slice(0, options[i][k])) removed.add(r); });
    return removed;
  };
  let removed = build(at);
  let macs = cm.total;
  while (macs > goal) {
    let best = -1;
    let bestCost = Infinity;
    let bestMacs = macs;
    for (let i = 0; i < cls.length; i++) {
      if (at[i] + 1 >= options[i].length) continue;
      const next = [...at];
      next[i]++;
      const m = macsAfter(cg, cm, build(next));
      const saved = macs - m;
      if (saved <= 0) continue;
      const cost = Math.max(0, interp(i, options[i][at[i] + 1]) - interp(i, options[i][at[i]])) / saved;
      if (cost < bestCost) { bestCost = cost; best = i; bestMacs = m; }
    }
    if (best < 0) break;
    at[best]++;
    macs = bestMacs;
  }
  // The last step may overshoot the target: give steps back, the one whose error saved is largest
  // first, while the target still holds (as the threshold allocation does).
  for (;;) {
    let best = -1;
    let bestGain = 0;
    let bestMacs = macs;
    for (let i = 0; i < cls.length; i++) {
      if (at[i] === 0) continue;
      const prev = [...at];
      prev[i]--;
      const m = macsAfter(cg, cm, build(prev));
      if (m > goal) continue;
      const gain = interp(i, options[i][at[i]]) - interp(i, options[i][at[i] - 1]);
      if (gain > bestGain) { bestGain = gain; best = i; bestMacs = m; }
    }
    if (best < 0) break;
    at[best]--;
    macs = bestMacs;
  }
  removed = build(at);
  return { removed, macsBefore: cm.total, macsAfter: macsAfter(cg, cm, removed), reached: macs <= goal, curves: curves.map((points, i) => ({ size: cls[i].size, points })) };
}
