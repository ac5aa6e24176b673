/**
 * Exact 1-D k-means over weighted points. Optimal clusters of sorted 1-D points are contiguous runs
 * (Bellman 1973; Grønlund et al. 2017, the kmeans1d package coremltools uses), so a dynamic program
 * over the sorted distinct values finds the global optimum of Σ w (v − c)²: no seeds, no local
 * minima, the same answer on every run. Rows of the table are filled by divide and conquer (the
 * optimal split point is monotone in the prefix length): O(k · B log B) for B distinct values.
 * f64 throughout; values are centred first so the prefix sums keep their precision. With the CPU
 * engine on, the rows run in WebAssembly (wasm/cpu-kernels.ts kmeansRow), operation for operation
 * the loop below: the same table, about twice as fast.
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
  /** cost[j][n - 1]: the optimum with j + 1 clusters over all points. */
  total: Float64Array;
  /** back[j][i]: the first point of the last cluster of the optimum over points 0..i with j + 1 clusters. */
  back: Array<Uint16Array | Int32Array>;
  clusterCost: (a: number, b: number) => number;
  mean: (a: number, b: number) => number;
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

function table(p: Points, k: number): Table {
  const n = p.values.length;
  let w0 = 0;
  let w1 = 0;
  for (let i = 0; i < n; i++) {
    w0 += p.weights[i];
    w1 += p.weights[i] * p.values[i];
  }
  const shift = w0 > 0 ? w1 / w0 : 0;
  const P0 = new Float64Array(n + 1);
  const P1 = new Float64Array(n + 1);
  const P2 = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const w = p.weights[i];
    const v = p.values[i] - shift;
    P0[i + 1] = P0[i] + w;
    P1[i + 1] = P1[i] + w * v;
    P2[i + 1] = P2[i] + w * v * v;
  }
  // Made in another function: variables a closure captures are read from a context object on
  // every access, and the hot loop below reads P0..P2 (measured: 25 000 points, k = 16, 72 -> 40 ms).
  const { clusterCost, mean } = prefixCosts(P0, P1, P2, shift, p.values);
  const layers = Math.min(k, n);
  let prev = new Float64Array(n);
  for (let i = 0; i < n; i++) prev[i] = clusterCost(0, i);
  // The rows in WebAssembly when the engine is on (~2x: the same operations, no JIT guards).
  const fast = layers > 1 ? wasmFor(n)?.kmeansRows(P0, P1, P2, prev, layers) : null;
  if (fast) return { ...fast, clusterCost, mean };
  const total = new Float64Array(layers);
  const back: Array<Uint16Array | Int32Array> = [];
  back.push(n <= 65536 ? new Uint16Array(n) : new Int32Array(n));
  if (n) total[0] = prev[n - 1];
  let cur = new Float64Array(n);
  // Explicit stack of (lo, hi, optLo, optHi) ranges; depth <= log2(n) + 1, four ints each.
  const stack = new Int32Array(4 * 2 * (Math.ceil(Math.log2(n + 1)) + 2));

  for (let j = 1; j < layers; j++) {
    const bj = n <= 65536 ? new Uint16Array(n) : new Int32Array(n);
    cur.fill(Infinity);
    // The last cluster of the best split of 0..i starts at m in [j, i]; its start is monotone in i.
    let sp = 0;
    // The last row is read only at the prefix of all points (its optimum, the backtrack's start): fill that one alone.
    stack[sp++] = j === layers - 1 ? n - 1 : j; stack[sp++] = n - 1; stack[sp++] = j; stack[sp++] = n - 1;
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
      const lb = j > 1 ? back[j - 1][mid] : j;
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
      if (mid + 1 <= hi) { stack[sp++] = mid + 1; stack[sp++] = hi; stack[sp++] = arg; stack[sp++] = optHi; }
      if (lo <= mid - 1) { stack[sp++] = lo; stack[sp++] = mid - 1; stack[sp++] = optLo; stack[sp++] = arg; }
    }
    back.push(bj);
    total[j] = cur[n - 1];
    [prev, cur] = [cur, prev];
  }
  return { total, back, clusterCost, mean };
}

function backtrack(t: Table, n: number, clusters: number): Partition {
  const starts: number[] = new Array(clusters);
  let end = n - 1;
  for (let j = clusters - 1; j >= 0; j--) {
    const s = j === 0 ? 0 : t.back[j][end];
    starts[j] = s;
    end = s - 1;
  }
  const centroids = starts.map((s, j) => t.mean(s, j + 1 < clusters ? starts[j + 1] - 1 : n - 1));
  let cost = 0;
  starts.forEach((s, j) => (cost += t.clusterCost(s, j + 1 < clusters ? starts[j + 1] - 1 : n - 1)));
  return { starts, centroids, cost };
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
  const t = table(p, k);
  return backtrack(t, n, Math.min(k, n));
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
