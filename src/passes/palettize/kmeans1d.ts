/**
 * Exact 1-D k-means over weighted points. Optimal clusters of sorted 1-D points are contiguous runs
 * (Bellman 1973; Grønlund et al. 2017, the kmeans1d package coremltools uses), so a dynamic program
 * over the sorted distinct values finds the global optimum of Σ w (v − c)²: no seeds, no local
 * minima, the same answer on every run. Rows of the table are filled by divide and conquer (the
 * optimal split point is monotone in the prefix length): O(k · B log B) for B distinct values.
 * Large problems are solved from both ends with half-height tables pruned by an upper bound
 * (splitSolve: about half the time). f64 throughout; values are centred first so the prefix sums
 * keep their precision. With the CPU engine on, the rows run in WebAssembly (wasm/cpu-kernels.ts
 * kmeansRow), operation for operation the loop in rows(): the same tables.
 */
import { InvalidArgumentError } from '../../errors.ts';
import { wasmFor } from '../../cpu/wasm-kernels.ts';

export interface Points {
  /** Sorted ascending, distinct. */
  values: Float64Array;
  /** Positive weights (counts, or counts times a sensitivity). */
  weights: Float64Array;
}

export interface Partition {
  /** Index of the first point of each cluster (starts[0] = 0), ascending. */
  starts: number[];
  /** Weighted mean of each cluster. */
  centroids: number[];
  /** Σ w (v − c)² of the partition. */
  cost: number;
}

interface Table {
  /** total[j]: the optimum with j + 1 clusters over all points (Infinity where pruned). */
  total: Float64Array;
  /** back[j][i]: the first point of the last cluster of the optimum over points 0..i with j + 1 clusters. */
  back: Array<Uint16Array | Int32Array>;
  /** The last row's costs at every prefix (Infinity where not computed). */
  last: Float64Array;
  clusterCost: (a: number, b: number) => number;
  mean: (a: number, b: number) => number;
}

/** Centred prefix sums of weights, weighted values and weighted squares (n + 1 each). */
interface Prefix {
  P0: Float64Array;
  P1: Float64Array;
  P2: Float64Array;
  shift: number;
}

/** Prefix sums over the points in order, or (reversed) over -values[n-1], -values[n-2], ... (ascending too). */
function prefixSums(values: Float64Array, weights: Float64Array, reversed = false): Prefix {
  const n = values.length;
  const sign = reversed ? -1 : 1;
  let w0 = 0;
  let w1 = 0;
  for (let i = 0; i < n; i++) {
    const t = reversed ? n - 1 - i : i;
    w0 += weights[t];
    w1 += weights[t] * (sign * values[t]);
  }
  const shift = w0 > 0 ? w1 / w0 : 0;
  const P0 = new Float64Array(n + 1);
  const P1 = new Float64Array(n + 1);
  const P2 = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const t = reversed ? n - 1 - i : i;
    const w = weights[t];
    const v = sign * values[t] - shift;
    P0[i + 1] = P0[i] + w;
    P1[i + 1] = P1[i] + w * v;
    P2[i + 1] = P2[i] + w * v * v;
  }
  return { P0, P1, P2, shift };
}

/** Cost and weighted mean of the cluster of points a..b from the centred prefix sums. */
function prefixCosts(P0: Float64Array, P1: Float64Array, P2: Float64Array, shift: number, values: Float64Array): Pick<Table, 'clusterCost' | 'mean'> {
  const clusterCost = (a: number, b: number) => {
    const w = P0[b + 1] - P0[a];
    if (w <= 0) return 0;
    const s = P1[b + 1] - P1[a];
    const c = P2[b + 1] - P2[a] - (s * s) / w;
    return c > 0 ? c : 0;
  };
  const mean = (a: number, b: number) => {
    const w = P0[b + 1] - P0[a];
    return w > 0 ? (P1[b + 1] - P1[a]) / w + shift : (values[a] + values[b]) / 2;
  };
  return { clusterCost, mean };
}

/**
 * Rows 0..layers-1 of the table over the prefix sums (n = P0.length - 1 points). Cells whose cost
 * exceeds `ub` (an upper bound on the cost of the whole problem) cannot lie on an optimal path:
 * each row's costs only grow with the prefix, so once a computed cell exceeds it the cells to its
 * right are left uncomputed (Infinity). Every cell at or under `ub` gets exactly the cost and
 * leftmost argmin it would get without the bound, so the bound changes the work, not the answer.
 * With `lastFull` false the last row is filled at the prefix of all points only (the backtrack's start).
 */
function rows(P0: Float64Array, P1: Float64Array, P2: Float64Array, layers: number, ub: number, lastFull: boolean): Omit<Table, 'clusterCost' | 'mean'> {
  const n = P0.length - 1;
  let prev = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = P0[i + 1];
    const s = P1[i + 1];
    const c = w > 0 ? P2[i + 1] - (s * s) / w : 0;
    prev[i] = c > 0 ? c : 0;
  }
  // The rows in WebAssembly when the engine is on (~2x: the same operations, no JIT guards).
  const fast = layers > 1 ? wasmFor(n)?.kmeansRows(P0, P1, P2, prev, layers, ub, lastFull) : null;
  if (fast) return fast;
  const total = new Float64Array(layers);
  const back: Array<Uint16Array | Int32Array> = [];
  back.push(n <= 65536 ? new Uint16Array(n) : new Int32Array(n));
  if (n) total[0] = prev[n - 1];
  let cur = new Float64Array(n);
  // Explicit stack of (lo, hi, optLo, optHi) ranges; depth <= log2(n) + 1, four ints each.
  const stack = new Int32Array(4 * 2 * (Math.ceil(Math.log2(n + 1)) + 2));

  for (let j = 1; j < layers; j++) {
    const bj = n <= 65536 ? new Uint16Array(n) : new Int32Array(n);
    const prevBack = back[j - 1];
    cur.fill(Infinity);
    // The last cluster of the best split of 0..i starts at m in [j, i]; its start is monotone in i.
    let sp = 0;
    stack[sp++] = j === layers - 1 && !lastFull ? n - 1 : j; stack[sp++] = n - 1; stack[sp++] = j; stack[sp++] = n - 1;
    while (sp > 0) {
      const optHi = stack[--sp];
      const optLo = stack[--sp];
      const hi = stack[--sp];
      const lo = stack[--sp];
      const mid = (lo + hi) >> 1;
      let best = Infinity;
      let arg = optLo;
      const end = mid < optHi ? mid : optHi;
      // Cost of [m, mid] inlined: q - s² / w over prefix sums (the hot loop).
      const w1 = P0[mid + 1];
      const s1 = P1[mid + 1];
      const q1 = P2[mid + 1];
      // Knuth's bound: with one more cluster the last one starts no earlier than the previous
      // row's (leftmost) argmin at the same prefix (Monge costs); cuts the 8-bit DP by ~20 %.
      // Only where that cell was within the bound (its argmin exact).
      const lb = j > 1 && prev[mid] <= ub ? prevBack[mid] : j;
      let m0 = optLo > j ? optLo : j;
      if (lb > m0 && lb <= end) m0 = lb;
      for (let m = m0; m <= end; m++) {
        const w = w1 - P0[m];
        const sm = s1 - P1[m];
        const q = q1 - P2[m];
        const pv = prev[m - 1];
        // The previous row's optimum only grows with the prefix and a cluster's cost is >= 0: once
        // it alone reaches the best, no later split can win.
        if (pv >= best) break;
        // Screened without the division (q - sm²/w + pv < best <=> (q + pv - best) w < sm², w > 0):
        // most candidates lose, and the division bounded the loop.
        if (w <= 0 || (q + pv - best) * w < sm * sm) {
          let c = w > 0 ? q - (sm * sm) / w : 0;
          if (c < 0) c = 0;
          c += pv;
          if (c < best) {
            best = c;
            arg = m;
          }
        }
      }
      cur[mid] = best;
      bj[mid] = arg;
      // Past the bound, every longer prefix is too: the right half is not needed.
      if (mid + 1 <= hi && best <= ub) { stack[sp++] = mid + 1; stack[sp++] = hi; stack[sp++] = arg; stack[sp++] = optHi; }
      if (lo <= mid - 1) { stack[sp++] = lo; stack[sp++] = mid - 1; stack[sp++] = optLo; stack[sp++] = arg; }
    }
    back.push(bj);
    total[j] = cur[n - 1];
    [prev, cur] = [cur, prev];
  }
  return { total, back, last: prev };
}

/** The full table of k rows over all points (no bound). */
function table(p: Points, k: number): Table {
  const { P0, P1, P2, shift } = prefixSums(p.values, p.weights);
  // Made in another function: variables a closure captures are read from a context object on
  // every access, and the hot loop reads P0..P2 (measured: 25 000 points, k = 16, 72 -> 40 ms).
  const { clusterCost, mean } = prefixCosts(P0, P1, P2, shift, p.values);
  return { ...rows(P0, P1, P2, Math.min(k, p.values.length), Infinity, false), clusterCost, mean };
}

function backtrack(t: Pick<Table, 'back' | 'clusterCost' | 'mean'>, n: number, clusters: number): Partition {
  return finish(clusterStarts(t.back, n - 1, clusters), n, t);
}

/** The first point of each of `clusters` clusters of the optimum over points 0..end, from the argmins. */
function clusterStarts(back: Table['back'], end: number, clusters: number): number[] {
  const starts: number[] = new Array(clusters);
  for (let j = clusters - 1; j >= 0; j--) {
    const s = j === 0 ? 0 : back[j][end];
    starts[j] = s;
    end = s - 1;
  }
  return starts;
}

function finish(starts: number[], n: number, t: Pick<Table, 'clusterCost' | 'mean'>): Partition {
  const clusters = starts.length;
  const centroids = starts.map((s, j) => t.mean(s, j + 1 < clusters ? starts[j + 1] - 1 : n - 1));
  let cost = 0;
  starts.forEach((s, j) => (cost += t.clusterCost(s, j + 1 < clusters ? starts[j + 1] - 1 : n - 1)));
  return { starts, centroids, cost };
}

/** Bins (runs of consecutive points) of the coarse problem that gives the upper bound. */
const COARSE_BINS = 512;
/** Below this many points the single table is as fast (and the coarse bound does not pay). */
const SPLIT_MIN_POINTS = 4 * COARSE_BINS;

/**
 * The optimum with exactly k clusters (k <= n) found from both ends: the first ⌊k/2⌋ clusters by
 * the table over prefixes, the other k − ⌊k/2⌋ by the same table over the reversed points
 * (suffixes), joined at the split point that minimizes the sum. The two half-height tables are
 * pruned by an upper bound on the optimum — the exact optimum of a coarse problem whose clusters
 * are whole runs of ~n/512 points (a feasible partition, so its cost bounds the optimum) — and a
 * cell costing more than the whole optimum is never on the optimal path. On ResNet-18's 4-bit
 * problems (~25 000 points, k 16) this evaluates ~55 candidate splits per point instead of ~160:
 * most cells of the low rows cost more than the optimum, and each side stops at its middle row
 * (the high rows, where few cells exceed the bound, are never computed).
 */
function splitSolve(p: Points, k: number): Partition {
  const n = p.values.length;
  const f = prefixSums(p.values, p.weights);
  const { clusterCost, mean } = prefixCosts(f.P0, f.P1, f.P2, f.shift, p.values);
  // Coarse problem: the prefix sums sampled at bin edges (clusters of whole bins, exact costs).
  const c0 = new Float64Array(COARSE_BINS + 1);
  const c1 = new Float64Array(COARSE_BINS + 1);
  const c2 = new Float64Array(COARSE_BINS + 1);
  for (let t = 0; t <= COARSE_BINS; t++) {
    const i = Math.round((t * n) / COARSE_BINS);
    c0[t] = f.P0[i];
    c1[t] = f.P1[i];
    c2[t] = f.P2[i];
  }
  const coarse = rows(c0, c1, c2, k, Infinity, false);
  // A margin over the coarse optimum: its own sums round differently from the cells'.
  const ub = coarse.total[k - 1] * (1 + 1e-9) + 1e-300;
  const g = prefixSums(p.values, p.weights, true);
  const a = k >> 1;
  const b = k - a;
  const F = rows(f.P0, f.P1, f.P2, a, ub, true);
  const G = rows(g.P0, g.P1, g.P2, b, ub, true);
  // The split s: points 0..s-1 in a clusters, s..n-1 in b (the reversed prefix 0..n-1-s); leftmost on ties.
  let best = Infinity;
  let s = -1;
  for (let t = a; t <= n - b; t++) {
    const c = F.last[t - 1] + G.last[n - 1 - t];
    if (c < best) {
      best = c;
      s = t;
    }
  }
  if (s < 0) throw new Error(`kmeans1d: no split within the bound (n ${n}, k ${k}): a bug`);
  const starts = clusterStarts(F.back, s - 1, a);
  // Reversed clusters: the one ending at reversed index r starts (forward) at point n - 1 - r.
  let rEnd = n - 1 - s;
  for (let j = b - 1; j >= 0; j--) {
    starts.push(n - 1 - rEnd);
    rEnd = (j === 0 ? 0 : G.back[j][rEnd]) - 1;
  }
  return finish(starts, n, { clusterCost, mean });
}

function check(p: Points, k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new InvalidArgumentError(`k-means needs k >= 1 clusters, got ${k}`);
  if (p.values.length !== p.weights.length) throw new InvalidArgumentError(`k-means: ${p.values.length} values but ${p.weights.length} weights`);
}

/** The optimal partition of the points into at most k clusters (fewer only when there are fewer points). */
export function kmeans1d(p: Points, k: number): Partition {
  check(p, k);
  const n = p.values.length;
  if (n === 0) return { starts: [], centroids: [], cost: 0 };
  if (k >= 4 && n >= SPLIT_MIN_POINTS && n >= 8 * k) return splitSolve(p, k);
  return kmeans1dTable(p, k);
}

/** The same optimum from one full table (no split, no bound): small problems, and the tests' oracle. */
export function kmeans1dTable(p: Points, k: number): Partition {
  check(p, k);
  const n = p.values.length;
  if (n === 0) return { starts: [], centroids: [], cost: 0 };
  return backtrack(table(p, k), n, Math.min(k, n));
}

/**
 * The optimal partition into at most k clusters in which the point `zero` (value 0) is a cluster of
 * its own, so exact zeros (sparsified weights) decode to exactly 0: the k − 1 other clusters are
 * shared between the negative and the positive side as minimizes the total cost. Null when k is
 * too small for that (2 clusters and values on both sides of 0).
 */
export function kmeans1dWithZero(p: Points, k: number, zero: number): Partition | null {
  check(p, k);
  if (k < 2) throw new InvalidArgumentError('keeping zeros exact needs at least 2 clusters');
  if (!(p.values[zero] === 0)) throw new InvalidArgumentError(`kmeans1dWithZero: point ${zero} is not 0`);
  const neg: Points = { values: p.values.subarray(0, zero), weights: p.weights.subarray(0, zero) };
  const pos: Points = { values: p.values.subarray(zero + 1), weights: p.weights.subarray(zero + 1) };
  const tn = neg.values.length ? table(neg, k - 1) : null;
  const tp = pos.values.length ? table(pos, k - 1) : null;
  const costOf = (t: Table | null, c: number) => (t ? (c >= 1 && c <= t.total.length ? t.total[c - 1] : Infinity) : c === 0 ? 0 : Infinity);
  let best = Infinity;
  let a = 0;
  for (let c = 0; c <= k - 1; c++) {
    const cost = costOf(tn, c) + costOf(tp, Math.min(k - 1 - c, tp ? tp.total.length : 0));
    if (cost < best) {
      best = cost;
      a = c;
    }
  }
  if (best === Infinity) return null;
  const b = Math.min(k - 1 - a, tp ? tp.total.length : 0);
  const left = tn && a ? backtrack(tn, neg.values.length, a) : { starts: [], centroids: [], cost: 0 };
  const right = tp && b ? backtrack(tp, pos.values.length, b) : { starts: [], centroids: [], cost: 0 };
  return {
    starts: [...left.starts, zero, ...right.starts.map((s) => s + zero + 1)],
    centroids: [...left.centroids, 0, ...right.centroids],
    cost: left.cost + right.cost,
  };
}

/** Cost of a given partition (for tests: brute force compares against it). */
export function partitionCost(p: Points, starts: readonly number[]): number {
  let cost = 0;
  for (let j = 0; j < starts.length; j++) {
    const a = starts[j];
    const b = j + 1 < starts.length ? starts[j + 1] : p.values.length;
    let w = 0;
    let s = 0;
    for (let i = a; i < b; i++) {
      w += p.weights[i];
      s += p.weights[i] * p.values[i];
    }
    const c = w > 0 ? s / w : 0;
    for (let i = a; i < b; i++) cost += p.weights[i] * (p.values[i] - c) ** 2;
  }
  return cost;
}

/** One group's dynamic program, as the palettize pass poses it (and its worker threads solve it). */
export interface PartitionProblem {
  values: Float64Array;
  weights: Float64Array;
  k: number;
  /** Index of the point 0 to keep as a cluster of its own, or null. */
  zero: number | null;
}

export interface Solved extends Partition {
  /** Whether 0 got its own cluster (false when k was too small for it). */
  zeroKept: boolean;
}

export function solvePartition(p: PartitionProblem): Solved {
  const points = { values: p.values, weights: p.weights };
  const withZero = p.zero !== null ? kmeans1dWithZero(points, p.k, p.zero) : null;
  return withZero ? { ...withZero, zeroKept: true } : { ...kmeans1d(points, p.k), zeroKept: false };
}
