/**
 * The WebAssembly kernels' exports, and the units a large kernel call is cut into so that worker
 * threads can share it (wasm-pool.ts). Shared by the calling thread and the workers.
 *
 * A unit is a fixed range of UNIT elements, counted from element 0 of the tensor, whatever the
 * thread count or the copy blocks: units whose sums are not exact (f64 error sums) each write
 * their own 48-byte partial, and the caller adds the partials in unit order, so the results do
 * not depend on how many threads ran them, nor on which.
 */

export interface Exports {
  quantize8(src: number, dst: number, n: number, inv: number, zp: number, qmin: number, qmax: number): void;
  quantize8Lanes(src: number, dst: number, n: number, invPtr: number, zpPtr: number, qmin: number, qmax: number): void;
  range(src: number, n: number, pivot: number, moments: number, out: number): void;
  dequantStats8(codes: number, orig: number, n: number, scale: number, zp: number, signed: number, out: number): void;
  dequantStats8Lanes(codes: number, orig: number, n: number, scalePtr: number, zpPtr: number, signed: number, out: number): void;
  histogram(src: number, n: number, lo: number, hi: number, scale: number, bins: number, slots: number): void;
  paletteHistogram(src: number, n: number, shift: number, counts: number): void;
  kmeansRow(P0: number, P1: number, P2: number, prev: number, cur: number, back: number, prevBack: number, j: number, n: number, from: number, stack: number, ub: number): void;
  paletteAssign(src: number, dst: number, n: number, shift: number, table: number): void;
  paletteSums(src: number, idx: number, n: number, sw: number, sx: number): void;
  paletteStats(src: number, idx: number, n: number, out: number): void;
  paletteDecode(src: number, idx: number, dst: number, start: number, end: number, inner: number, rowsPerGroup: number, k: number, table: number,
    rowScale: number, scaled: number, out: number): void;
  quantize8Runs(src: number, dst: number, start: number, end: number, inner: number, dim: number, invPtr: number, zpPtr: number, qmin: number, qmax: number): void;
  rangeRuns(src: number, start: number, end: number, inner: number, dim: number, out: number): void;
  dequantStats8Runs(codes: number, orig: number, start: number, end: number, inner: number, dim: number, scalePtr: number, zpPtr: number, signed: number,
    statsInner: number, statsDim: number, out: number): void;
  quantize8StatsRuns(src: number, dst: number, start: number, end: number, inner: number, dim: number, invPtr: number, zpPtr: number, scalePtr: number,
    qmin: number, qmax: number, signed: number, out: number): void;
  rangeLanes(src: number, n: number, tab: number, dim: number): void;
  rangeLanesMoments(src: number, n: number, tab: number, dim: number, piv: number, sums: number): void;
  quantize8StatsLanes(src: number, dst: number, n: number, invPtr: number, zpPtr: number, scalePtr: number, qmin: number, qmax: number, signed: number, out: number): void;
  quantize8Groups(src: number, dst: number, start: number, end: number, block: number, inner: number, dim: number, invPtr: number, zpPtr: number, qmin: number, qmax: number): void;
  dequantStats8Groups(codes: number, orig: number, start: number, end: number, block: number, inner: number, dim: number, scalePtr: number, zpPtr: number, signed: number, out: number): void;
  packNibbles(src: number, dst: number, n: number): void;
  rangeBlocks(src: number, start: number, end: number, block: number, inner: number, dim: number, out: number, tab: number, groups: number): void;
  dequantStats8LaneTable(codes: number, orig: number, n: number, scalePtr: number, zpPtr: number, signed: number, sums: number, words: number, dim: number): void;
}

/** Elements per unit (128 Ki: ~0.1 ms of quantize, far above a wake-up's cost). */
export const UNIT = 1 << 17;

/** Layout of the shared control words. */
export const CTL = {
  /** Bumped for every call the workers are woken for. */
  GEN: 0,
  /** The call's tag and next unit to claim (see runUnits). */
  NEXT: 1,
  /** Units finished. */
  FINISHED: 2,
  /** Workers listening. */
  READY: 3,
  /** Set by a worker whose unit threw. */
  FAILED: 4,
  OP: 5,
  /** The call's element range [START, END). */
  START: 6,
  END: 7,
  /** Tests: 0, or the thread count when thread t takes exactly the units k ≡ t (mod it). */
  STATIC: 8,
  PARAMS: 9,
  WORDS: 25,
} as const;

/**
 * What a unit does over elements [a, b). Pointers are byte offsets in the shared memory; `src`
 * and `dst` address element 0 (they may be block-relative, i.e. below the block's own address).
 */
export const OP = {
  /** quantize8Runs; params src, dst, inner, dim, inv, zp, qmin, qmax. */
  QUANTIZE_RUNS: 1,
  /** quantize8Lanes over runs of the last axis; params src, dst, dim, inv, zp, qmin, qmax. */
  QUANTIZE_LANES: 2,
  /** quantize8StatsRuns, one partial per unit; params src, dst, inner, dim, inv, zp, scale, qmin, qmax, signed, partials. */
  QUANTIZE_STATS: 3,
  /** quantize8StatsLanes over runs of the last axis, one partial per unit; params src, dst, dim, inv, zp, scale, qmin, qmax, signed, partials. */
  QUANTIZE_STATS_LANES: 8,
  /** rangeRuns (no moments) into the claiming thread's own table; params src, inner, dim, tables, tableBytes. */
  RANGE: 4,
  /** rangeLanes over runs of the last axis into the claiming thread's own lane-major tables; params src, dim, tables, tableBytes. */
  RANGE_LANES: 9,
  /** dequantStats8Runs, one statistics group, one partial per unit; params codes, orig, inner, dim, scale, zp, signed, partials. */
  DEQUANT_RUNS: 5,
  /** dequantStats8Lanes over runs of the last axis, one partial per unit; params codes, orig, dim, scale, zp, signed, partials. */
  DEQUANT_LANES: 6,
  /**
   * dequantStats8Runs with per-channel statistics over contiguous channels (stats groups = quantization
   * groups, outer 1): whole channels inside the unit go straight to the table, the unit's partial
   * channels at either end to its two edge partials (unitEdges); params codes, orig, inner, dim,
   * scale, zp, signed, table, edges.
   */
  DEQUANT_CHANNELS: 7,
  /** Test hook: a worker's unit throws (the failure path). */
  TEST_THROW: 99,
} as const;

/**
 * A unit [a, b) over contiguous runs of `inner`: its partial run at the start [a, head), its whole
 * runs [head, tail), its partial run at the end [tail, b) (any may be empty).
 */
export function unitEdges(a: number, b: number, inner: number): { head: number; tail: number } {
  const head = a % inner === 0 ? a : Math.min(b, (Math.floor(a / inner) + 1) * inner);
  const tail = Math.max(head, Math.floor(b / inner) * inner);
  return { head, tail };
}

/** The units of [start, end): the first one's index and how many. */
export function unitSpan(start: number, end: number): { first: number; count: number } {
  const first = Math.floor(start / UNIT);
  return { first, count: end > start ? Math.ceil(end / UNIT) - first : 0 };
}

/** NEXT holds the call's tag above TAG_SHIFT and the next unit below it. */
const TAG_SHIFT = 20;
const UNIT_MASK = (1 << TAG_SHIFT) - 1;
const TAG_MASK = 0x7ff;

/** The first NEXT word of call number `call` (unit 0). */
export function firstClaim(call: number): number {
  return (call & TAG_MASK) << TAG_SHIFT;
}

/**
 * Claims and runs units of the current call until none is left. `thread` is 0 on the calling
 * thread, 1.. on the workers (it picks the RANGE tables). A claim is a compare-and-swap on NEXT,
 * which carries the call's tag: a worker still busy with an earlier call can never take a unit
 * of the next one with that call's words half read. A unit that throws still counts as finished
 * (FAILED is set) and the thread goes on, so the call always completes; returns the first error.
 */
export function runUnits(x: Exports, ctl: Int32Array, thread: number): unknown {
  let failure: unknown = null;
  const run = (k: number) => {
    const start = ctl[CTL.START];
    const unit = Math.floor(start / UNIT) + k;
    try {
      runUnit(x, ctl, thread, k, Math.max(start, unit * UNIT), Math.min(ctl[CTL.END], (unit + 1) * UNIT));
    } catch (err) {
      failure ??= err;
      Atomics.store(ctl, CTL.FAILED, 1);
    } finally {
      Atomics.add(ctl, CTL.FINISHED, 1);
      Atomics.notify(ctl, CTL.FINISHED);
    }
  };
  const threads = ctl[CTL.STATIC];
  if (threads > 0) {
    // Every thread is woken and takes its own units: the caller cannot post the next call before they are done.
    const { count } = unitSpan(ctl[CTL.START], ctl[CTL.END]);
    for (let k = thread; k < count; k += threads) run(k);
    return failure;
  }
  for (;;) {
    const v = Atomics.load(ctl, CTL.NEXT);
    const k = v & UNIT_MASK;
    const { count } = unitSpan(ctl[CTL.START], ctl[CTL.END]);
    if (k >= count) return failure;
    if (Atomics.compareExchange(ctl, CTL.NEXT, v, v + 1) !== v) continue;
    // The call's words stay put until every claimed unit has finished.
    run(k);
  }
}

function runUnit(x: Exports, ctl: Int32Array, thread: number, k: number, a: number, b: number): void {
  const p = (i: number) => ctl[CTL.PARAMS + i];
  switch (ctl[CTL.OP]) {
    case OP.QUANTIZE_RUNS:
      x.quantize8Runs(p(0), p(1), a, b, p(2), p(3), p(4), p(5), p(6), p(7));
      return;
    case OP.QUANTIZE_LANES: {
      const [src, dst, dim, inv, zp, qmin, qmax] = [p(0), p(1), p(2), p(3), p(4), p(5), p(6)];
      for (let j = a; j < b;) {
        const d = j % dim;
        const len = Math.min(b - j, dim - d);
        x.quantize8Lanes(src + j * 4, dst + j, len, inv + d * 4, zp + d * 4, qmin, qmax);
        j += len;
      }
      return;
    }
    case OP.QUANTIZE_STATS:
      x.quantize8StatsRuns(p(0), p(1), a, b, p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10) + 48 * k);
      return;
    case OP.QUANTIZE_STATS_LANES: {
      const [src, dst, dim, inv, zp, scale, qmin, qmax, signed, out] = [p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9) + 48 * k];
      for (let j = a; j < b;) {
        const d = j % dim;
        const len = Math.min(b - j, dim - d);
        x.quantize8StatsLanes(src + j * 4, dst + j, len, inv + d * 4, zp + d * 4, scale + d * 4, qmin, qmax, signed, out);
        j += len;
      }
      return;
    }
    case OP.RANGE:
      x.rangeRuns(p(0), a, b, p(1), p(2), p(3) + thread * p(4));
      return;
    case OP.RANGE_LANES: {
      const [src, dim] = [p(0), p(1)];
      const tab = p(2) + thread * p(3);
      for (let j = a; j < b;) {
        const d = j % dim;
        const len = Math.min(b - j, dim - d);
        x.rangeLanes(src + j * 4, len, tab + d * 4, dim);
        j += len;
      }
      return;
    }
    case OP.DEQUANT_RUNS:
      x.dequantStats8Runs(p(0), p(1), a, b, p(2), p(3), p(4), p(5), p(6), 1, 1, p(7) + 48 * k);
      return;
    case OP.DEQUANT_LANES: {
      const [codes, orig, dim, scale, zp, signed, out] = [p(0), p(1), p(2), p(3), p(4), p(5), p(6) + 48 * k];
      for (let j = a; j < b;) {
        const d = j % dim;
        const len = Math.min(b - j, dim - d);
        x.dequantStats8Lanes(codes + j, orig + j * 4, len, scale + d * 4, zp + d * 4, signed, out);
        j += len;
      }
      return;
    }
    case OP.DEQUANT_CHANNELS: {
      const [codes, orig, inner, dim, scale, zp, signed, table, edges] = [p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8) + 96 * k];
      const { head, tail } = unitEdges(a, b, inner);
      if (head > a) x.dequantStats8Runs(codes, orig, a, head, inner, dim, scale, zp, signed, 1, 1, edges);
      if (tail > head) x.dequantStats8Runs(codes, orig, head, tail, inner, dim, scale, zp, signed, inner, dim, table);
      if (b > tail) x.dequantStats8Runs(codes, orig, tail, b, inner, dim, scale, zp, signed, 1, 1, edges + 48);
      return;
    }
    case OP.TEST_THROW:
      if (thread > 0) throw new Error('test: a planted failure in a WebAssembly worker');
      return;
    default:
      throw new Error(`unknown WebAssembly unit op ${ctl[CTL.OP]}`);
  }
}
