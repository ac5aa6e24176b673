/**
 * The CPU path's fast engine: WebAssembly SIMD loops (wasm/cpu-kernels.ts, AssemblyScript,
 * compiled to wasm/cpu-kernels.wasm) for the kernels' hot cases — 8-bit quantize, range,
 * histogram and the round-trip error sums — over per-tensor and per-channel groups. The
 * TypeScript references in src/kernels/ stay the oracle; tests compare both engines on the same
 * cases (integer results bit-identical). `MODELPRESS_CPU_ENGINE=js` (or setCpuEngine('js')) turns
 * the fast engine off.
 *
 * Memory: the module's memory is used as a stack: callers `mark()`, allocate, and `release()`.
 * Tensors a pass reads from disk can live there (`residentF32`, inside `pin`), so kernels work on
 * them in place; other inputs are copied in a block at a time (at most BLOCK elements), so the
 * engine's memory stays bounded whatever the tensor size. Growing a (non-shared) memory detaches
 * every view of it, so while resident arrays are alive (pinned) the memory never grows: the pass
 * reserves what it needs up front, and a kernel whose scratch would not fit falls back to the
 * TypeScript loop. With more than one thread the memory is shared (it then never detaches, and
 * the same rules keep it simple) and large calls run on worker threads (wasm-pool.ts); block
 * copies into a shared memory measured 1.0–1.3x the time of a plain one, a whole compress run the
 * same.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.ts';
import { defaultThreads } from '../threads.ts';
import { MODE_CHANNEL, type GroupView } from '../kernels/layout.ts';
import { OP, UNIT, unitEdges, type Exports } from './wasm-units.ts';
import { LocalUnits, WasmPool, workerScript, type UnitRunner } from './wasm-pool.ts';

export type CpuEngine = 'wasm' | 'js';

/** A cluster's statistics before any weight: count, sum, sum of squares, minimum, maximum. */
const EMPTY_STATS = [0, 0, 0, Infinity, -Infinity];
/** Elements copied into WebAssembly memory per block (4 MiB of f32). */
const BLOCK = 1 << 20;
/** The module's own data sits below this offset; the stack starts above it. */
const STACK_BASE = 1 << 16;
const PAGE = 65536;
/** Pages the memory may grow to (4 GiB, wasm32's limit). */
const MAX_PAGES = 65536;
/** Kernel scratch reserved beside pinned arrays: copy blocks, codes, parameters, partial sums. */
const SCRATCH_BYTES = 8 * BLOCK + (1 << 20);
/** Below this many elements the JS loop wins (no copy, no call overhead). */
let minElements = 256;
/**
 * Work of at least this many bytes starts the worker threads. Below it the kernels take well
 * under 0.1 s on one thread, and workers cost ~10 MB of RSS each and their start-up: ResNet-18
 * (47 MB) measured 0.95x with two threads on two cores (bench/threads.ts).
 */
const THREADS_FROM_BYTES = 64 << 20;
/** Units in one copy block (the per-unit partial sums of a block). */
const BLOCK_UNITS = BLOCK / UNIT;

let engine: CpuEngine = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.MODELPRESS_CPU_ENGINE === 'js' ? 'js' : 'wasm';
let kernels: WasmKernels | null | undefined;
const compiled = new Map<string, WebAssembly.Module>();
/** Threads the engine may use; null: defaultThreads() (MODELPRESS_THREADS, else the machine's). */
let threadsWanted: number | null = null;

/**
 * Chooses the CPU engine; `minElements` (tests: 0) is the size below which the JS loop is used
 * anyway; `threads` replaces the engine by one with that many threads (null: the default), whose
 * workers start as for any engine (startThreads, or large work).
 */
export function setCpuEngine(e: CpuEngine, opts: { minElements?: number; threads?: number | null } = {}): void {
  engine = e;
  if (opts.minElements !== undefined) minElements = opts.minElements;
  if (opts.threads !== undefined && opts.threads !== threadsWanted) {
    kernels?.close();
    kernels = undefined;
    threadsWanted = opts.threads;
  }
}

export function cpuEngine(): CpuEngine {
  return engine;
}

function load(): WasmKernels | null {
  if (kernels !== undefined) return kernels;
  try {
    const root = packageRoot();
    const threads = threadsWanted ?? defaultThreads();
    // More than one thread: the shared-memory build, which worker threads instantiate on the same memory.
    const script = threads >= 2 ? workerScript(root) : null;
    const threadsWasm = join(root, 'wasm', 'cpu-kernels-threads.wasm');
    const shared = script !== null && existsSync(threadsWasm);
    const file = shared ? threadsWasm : join(root, 'wasm', 'cpu-kernels.wasm');
    // Compiled once per build: a replaced engine (tests, benchmarks) keeps the tiered-up code.
    const module = compiled.get(file) ?? compiled.set(file, new WebAssembly.Module(readFileSync(file))).get(file)!;
    const memory = new WebAssembly.Memory({ initial: STACK_BASE / PAGE + 1, maximum: MAX_PAGES, shared });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    kernels = new WasmKernels(instance.exports as unknown as Exports, memory, shared ? { module, script: script!, threads } : null);
  } catch {
    // No SIMD support or no file: the TypeScript loops serve.
    kernels = null;
  }
  return kernels;
}

/** The engine when it is on and worth it for n elements, else null. */
export function wasmFor(n: number): WasmKernels | null {
  if (engine !== 'wasm' || n < minElements || n === 0) return null;
  return load();
}

/** The engine when it is on (for passes that place their tensors in its memory), else null. */
export function wasmEngine(): WasmKernels | null {
  return engine === 'wasm' ? load() : null;
}

/** Runs of consecutive elements sharing one group, in [start, end): (offset, length, group). */
function forEachRun(v: GroupView, start: number, end: number, fn: (at: number, len: number, g: number) => void): void {
  const inner = v.inner;
  let i = start;
  while (i < end) {
    const k = Math.floor(i / inner);
    const runEnd = Math.min(end, (k + 1) * inner);
    fn(i, runEnd - i, k % v.dim);
    i = runEnd;
  }
}

export class WasmKernels {
  private readonly x: Exports;
  private readonly memory: WebAssembly.Memory;
  private top = STACK_BASE;
  /** Every buffer object views were made from: a view over one of them is resident. */
  private readonly buffers = new WeakSet<object>();
  /** Tensors each entry point processed (tests check the fast engine really ran). */
  readonly calls = { quantize8: 0, range: 0, dequantStats8: 0, histogram: 0, quantize8Stats: 0, quantizeGroups: 0, palette: 0, kmeans: 0, paletteFinish: 0 };
  /** Inputs processed in place (resident) rather than copied in. */
  resident = 0;

  /** Where a call's units run: this thread, until startThreads() gives it workers. */
  private units: UnitRunner;
  private pool: WasmPool | null = null;

  constructor(x: Exports, memory: WebAssembly.Memory, private threading: { module: WebAssembly.Module; script: string; threads: number } | null) {
    this.x = x;
    this.memory = memory;
    this.units = new LocalUnits(x);
  }

  /** Threads the kernels run on once started (1 without a shared memory: one core, MODELPRESS_THREADS=1, no worker script). */
  get maxThreads(): number {
    return this.threading?.threads ?? 1;
  }

  /** Threads the kernels may run on now (1 until startThreads, or without a shared memory). */
  get threads(): number {
    return this.units.threads;
  }

  /**
   * Starts the worker threads (in the background: calls use them once they listen). Nothing
   * happens on one thread, a second time, or after a worker failed.
   */
  startThreads(): WasmPool | null {
    if (this.pool || !this.threading) return this.pool;
    const { module, script, threads } = this.threading;
    try {
      this.pool = new WasmPool(this.x, module, this.memory, script, threads);
    } catch {
      // A runtime whose workers cannot take a module and a shared memory: this thread does the work.
      this.threading = null;
      return null;
    }
    this.units = this.pool;
    return this.pool;
  }

  /** Starts the worker threads for work of `bytes` when it is large enough to repay them. */
  prepareThreads(bytes: number): void {
    if (bytes >= THREADS_FROM_BYTES) this.startThreads();
  }

  /** Stops the workers (an engine being replaced). */
  close(): void {
    this.pool?.close();
    this.pool = null;
    this.units = new LocalUnits(this.x);
  }

  /** The runner for a call; a broken pool is dropped and not restarted (later calls run on this thread). */
  private runner(): UnitRunner {
    if (this.pool?.broken) {
      this.close();
      this.threading = null;
    }
    return this.units;
  }

  private buffer(): ArrayBuffer {
    const b = this.memory.buffer as ArrayBuffer;
    this.buffers.add(b);
    return b;
  }

  /** The current stack top, to `release` back to. */
  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    this.top = mark;
  }

  private pinned = 0;

  /**
   * Runs `fn` with resident arrays allowed: the memory first grows to fit `reserveBytes` of them
   * plus kernel scratch, then never grows until `fn` settles (growth would detach the arrays).
   */
  async pin<T>(reserveBytes: number, fn: () => Promise<T>): Promise<T> {
    const mark = this.mark();
    const need = this.top + reserveBytes + SCRATCH_BYTES;
    const have = this.memory.buffer.byteLength;
    if (this.pinned === 0 && need > have) this.memory.grow(Math.ceil((need - have) / PAGE));
    this.prepareThreads(reserveBytes);
    this.pinned++;
    try {
      return await fn();
    } finally {
      this.pinned--;
      this.release(mark);
    }
  }

  /**
   * Reserves bytes on the stack (16-byte aligned), growing the memory if needed; returns the
   * offset, or -1 when it does not fit while resident arrays are pinned.
   */
  alloc(bytes: number): number {
    const at = this.top;
    const end = at + ((bytes + 15) & ~15);
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      if (this.pinned > 0) return -1;
      this.memory.grow(Math.ceil((end - have) / PAGE));
    }
    this.top = end;
    return at;
  }

  /** A Float32Array in engine memory (valid until the stack is released below it), or a plain one when it does not fit. */
  residentF32(n: number): Float32Array {
    const at = this.pinned > 0 ? this.alloc(n * 4) : -1;
    return at < 0 ? new Float32Array(n) : new Float32Array(this.buffer(), at, n);
  }

  /** Runs a kernel wrapper on the stack (released after); null when its scratch did not fit. */
  private attempt<T>(fn: () => T): T | null {
    const m = this.mark();
    try {
      return fn();
    } catch (err) {
      if (err instanceof NoRoom) return null;
      throw err;
    } finally {
      this.release(m);
    }
  }

  /** Scratch for a kernel; throws NoRoom (the caller falls back to TypeScript) when pinned memory is full. */
  private scratch(bytes: number): number {
    const at = this.alloc(bytes);
    if (at < 0) throw new NoRoom();
    return at;
  }

  /** Where the data already is in engine memory, or -1. */
  private addressOf(a: ArrayBufferView): number {
    return this.buffers.has(a.buffer) ? a.byteOffset : -1;
  }

  /**
   * Calls `fn(blockStart, blockEnd, srcAddress)` over blocks of f32 input: in place when the
   * input is resident, else copied into a scratch block.
   */
  private blocks(data: Float32Array, fn: (start: number, end: number, src: number) => void): void {
    const n = data.length;
    const at = this.addressOf(data);
    if (at >= 0) {
      this.resident++;
      fn(0, n, at);
      return;
    }
    const block = Math.min(BLOCK, n);
    const srcAt = this.scratch(block * 4);
    const src = new Float32Array(this.buffer(), srcAt, block);
    for (let start = 0; start < n; start += block) {
      const end = Math.min(n, start + block);
      src.set(data.subarray(start, end));
      fn(start, end, srcAt - start * 4);
    }
  }

  private params(a: Float32Array | Int32Array, count: number): number {
    const at = this.scratch(count * 4);
    if (a instanceof Float32Array) new Float32Array(this.buffer(), at, count).set(a.subarray(0, count));
    else new Int32Array(this.buffer(), at, count).set(a.subarray(0, count));
    return at;
  }

  /**
   * 8-bit codes for channel-mode groups (per tensor, or per channel on any axis), the same
   * values as the reference's quantizeChannels8.
   */
  quantize8(data: Float32Array, v: GroupView, inverse: Float32Array, zeroPoint: Int32Array, qmin: number, qmax: number, codes: Uint8Array): boolean {
    return this.attempt(() => {
      const invAt = this.params(inverse, v.dim);
      const zpAt = this.params(zeroPoint, v.dim);
      // Two output blocks: the codes of one are copied out while the threads quantize the next.
      const dstAt = [this.scratch(Math.min(BLOCK, data.length)), this.scratch(Math.min(BLOCK, data.length))];
      const lanes = v.inner === 1 && v.dim > 1;
      const units = this.runner();
      let done: { at: number; i: number; len: number } | null = null;
      const copyOut = () => done && codes.set(new Uint8Array(this.buffer(), done.at, done.len), done.i);
      let chunk = 0;
      this.blocks(data, (start, end, src) => {
        // `src` addresses element `start` at src + start * 4 (block-relative when copied).
        for (let i = start; i < end; chunk++) {
          const chunkEnd = Math.min(end, i + BLOCK);
          const at = dstAt[chunk & 1];
          if (lanes) units.begin(OP.QUANTIZE_LANES, i, chunkEnd, [src, at - i, v.dim, invAt, zpAt, qmin, qmax]);
          else units.begin(OP.QUANTIZE_RUNS, i, chunkEnd, [src, at - i, v.inner, v.dim, invAt, zpAt, qmin, qmax]);
          copyOut();
          units.end();
          done = { at, i, len: chunkEnd - i };
          i = chunkEnd;
        }
      });
      copyOut();
      this.calls.quantize8++;
      return true;
    }) ?? false;
  }

  /**
   * Codes for any channel- or block-mode grouping, 8-bit or 4-bit (quantized as bytes, then packed
   * two per byte, the first in the low nibble), the same values as the reference's per-element
   * loop; with `scale`, also the per-tensor error sums of those codes, taken from the bytes while
   * they are in cache. On this thread (the sums in one order); null when the scratch does not fit.
   */
  quantizeGroups(data: Float32Array, v: GroupView, inverse: Float32Array, zeroPoint: Int32Array, scale: Float32Array | null, qmin: number, qmax: number,
    bits: 4 | 8, signed: boolean, codes: Uint8Array): ErrorSums | true | null {
    return this.attempt(() => {
      const invAt = this.params(inverse, v.groups);
      const zpAt = this.params(zeroPoint, v.groups);
      const scaleAt = scale ? this.params(scale, v.groups) : 0;
      const block = v.mode === MODE_CHANNEL ? 0 : v.block;
      const bytesAt = this.scratch(Math.min(BLOCK, data.length) + 16);
      const packedAt = bits === 4 ? this.scratch((Math.min(BLOCK, data.length) >> 1) + 16) : 0;
      const outAt = this.scratch(48);
      new Uint8Array(this.buffer(), outAt, 48).fill(0);
      this.blocks(data, (start, end, src) => {
        // Blocks start at multiples of BLOCK (even), so nibble pairs never straddle two chunks.
        for (let i = start; i < end;) {
          const chunkEnd = Math.min(end, i + BLOCK);
          this.x.quantize8Groups(src, bytesAt - i, i, chunkEnd, block, v.inner, v.dim, invAt, zpAt, qmin, qmax);
          if (scale) this.x.dequantStats8Groups(bytesAt - i, src, i, chunkEnd, block, v.inner, v.dim, scaleAt, zpAt, signed ? 1 : 0, outAt);
          if (bits === 8) codes.set(new Uint8Array(this.buffer(), bytesAt, chunkEnd - i), i);
          else {
            this.x.packNibbles(bytesAt, packedAt, chunkEnd - i);
            codes.set(new Uint8Array(this.buffer(), packedAt, (chunkEnd - i + 1) >> 1), i >> 1);
          }
          i = chunkEnd;
        }
      });
      this.calls.quantizeGroups++;
      if (!scale) return true;
      const sums = new ErrorSumsFold();
      sums.add(new DataView(this.buffer(), outAt, 48), 1);
      return sums.result();
    });
  }

  /**
   * quantize8 and the per-tensor error sums of its codes in one pass over the data (pieces of
   * each run are quantized and compared while in cache); null when the scratch does not fit.
   */
  quantize8Stats(data: Float32Array, v: GroupView, scale: Float32Array, inverse: Float32Array, zeroPoint: Int32Array, qmin: number, qmax: number,
    signed: boolean, codes: Uint8Array): ErrorSums | null {
    const lanes = v.inner === 1 && v.dim > 1;
    return this.attempt(() => {
      const invAt = this.params(inverse, v.dim);
      const zpAt = this.params(zeroPoint, v.dim);
      const scaleAt = this.params(scale, v.dim);
      // One partial per unit, added in unit order (the same sums whatever the thread count). Two
      // blocks of codes and partials: one is read back while the threads work on the next.
      const partsAt = [this.scratch(48 * (BLOCK_UNITS + 1)), this.scratch(48 * (BLOCK_UNITS + 1))];
      const dstAt = [this.scratch(Math.min(BLOCK, data.length) + 16), this.scratch(Math.min(BLOCK, data.length) + 16)];
      const units = this.runner();
      const sums = new ErrorSumsFold();
      let done: { at: number; parts: number; count: number; i: number; len: number } | null = null;
      const readBack = () => {
        if (!done) return;
        sums.add(new DataView(this.buffer(), done.parts, 48 * done.count), done.count);
        codes.set(new Uint8Array(this.buffer(), done.at, done.len), done.i);
      };
      let chunk = 0;
      this.blocks(data, (start, end, src) => {
        for (let i = start; i < end; chunk++) {
          const chunkEnd = Math.min(end, i + BLOCK);
          const [at, parts] = [dstAt[chunk & 1], partsAt[chunk & 1]];
          const count = this.zeroParts(parts, i, chunkEnd);
          if (lanes) units.begin(OP.QUANTIZE_STATS_LANES, i, chunkEnd, [src, at - i, v.dim, invAt, zpAt, scaleAt, qmin, qmax, signed ? 1 : 0, parts]);
          else units.begin(OP.QUANTIZE_STATS, i, chunkEnd, [src, at - i, v.inner, v.dim, invAt, zpAt, scaleAt, qmin, qmax, signed ? 1 : 0, parts]);
          readBack();
          units.end();
          done = { at, parts, count, i, len: chunkEnd - i };
          i = chunkEnd;
        }
      });
      readBack();
      this.calls.quantize8Stats++;
      return sums.result();
    });
  }

  /**
   * Scratch for one table per thread (each merged exactly at the end) and the runner to fill
   * them; one table, on this thread, when more would not fit pinned memory.
   */
  private threadTables(tableBytes: number): { units: UnitRunner; tables: number; at: number } {
    const units = this.runner();
    const at = units.threads > 1 ? this.alloc(tableBytes * units.threads) : -1;
    if (at >= 0) return { units, tables: units.threads, at };
    return { units: units.threads > 1 ? new LocalUnits(this.x) : units, tables: 1, at: this.scratch(tableBytes) };
  }

  /** Zeroes the partials of the units of [start, end); returns how many there are. */
  private zeroParts(at: number, start: number, end: number): number {
    const count = Math.ceil(end / UNIT) - Math.floor(start / UNIT);
    new Uint8Array(this.buffer(), at, 48 * count).fill(0);
    return count;
  }

  /**
   * Per-group min / max / absmax keys, NaN / Inf / finite counts and pivot-shifted f64 sums for
   * channel-mode groups, as one table (typed arrays: per-channel tensors have thousands of groups).
   */
  range(data: Float32Array, v: GroupView, moments: boolean): RangeTable | null {
    if (v.inner === 1 && v.dim > 1) return moments ? this.rangeLanesMoments(data, v) : this.rangeLanes(data, v);
    return this.attempt(() => {
      // Without moments every field merges exactly (min, max, counts): each thread fills its own table.
      const { units, tables, at: outAt } = moments ? { units: null, tables: 1, at: this.scratch(48 * v.groups) } : this.threadTables(48 * v.groups);
      const init = new Uint32Array(this.buffer(), outAt, 12 * v.groups * tables).fill(0);
      for (let g = 0; g < v.groups * tables; g++) init[12 * g] = 0xffffffff;
      // Pivot per group: its first finite element (shifted sums keep the variance accurate).
      const pivots = new Float32Array(v.groups).fill(NaN);
      this.blocks(data, (start, end, src) => {
        if (units) {
          units.run(OP.RANGE, start, end, [src, v.inner, v.dim, outAt, 48 * v.groups]);
          return;
        }
        forEachRun(v, start, end, (at, len, g) => {
          if (Number.isNaN(pivots[g])) {
            for (let k = at; k < at + len; k++) {
              if (Number.isFinite(data[k])) {
                pivots[g] = data[k];
                break;
              }
            }
          }
          this.x.range(src + at * 4, len, Number.isNaN(pivots[g]) ? 0 : pivots[g], moments ? 1 : 0, outAt + g * 48);
        });
      });
      this.calls.range++;
      if (tables > 1) mergeRangeTables(new Uint32Array(this.buffer(), outAt, 12 * v.groups * tables), new Float64Array(this.buffer(), outAt, 6 * v.groups * tables), v.groups, tables);
      for (let g = 0; g < v.groups; g++) if (Number.isNaN(pivots[g])) pivots[g] = 0;
      const bytes = new Uint8Array(this.buffer(), outAt, 48 * v.groups).slice();
      return { words: new Uint32Array(bytes.buffer), sums: new Float64Array(bytes.buffer), pivots };
    });
  }

  /**
   * range without moments for block-mode groups, on this thread: blocks along the last axis fill
   * 48-byte records directly, blocks along an outer axis a lane-major table (one lane per group)
   * turned into the records at the end.
   */
  rangeBlocks(data: Float32Array, v: GroupView): RangeTable | null {
    return this.attempt(() => {
      const groups = v.groups;
      const lanes = v.inner > 1;
      const outAt = lanes ? 0 : this.scratch(48 * groups);
      const tabAt = lanes ? this.scratch(24 * groups) : 0;
      if (lanes) {
        const tab = new Uint32Array(this.buffer(), tabAt, 6 * groups).fill(0);
        tab.fill(0xffffffff, 0, groups);
      } else {
        const init = new Uint32Array(this.buffer(), outAt, 12 * groups).fill(0);
        for (let g = 0; g < groups; g++) init[12 * g] = 0xffffffff;
      }
      this.blocks(data, (start, end, src) => this.x.rangeBlocks(src, start, end, v.block, v.inner, v.dim, outAt, tabAt, groups));
      this.calls.range++;
      let words: Uint32Array;
      if (lanes) {
        const tab = new Uint32Array(this.buffer(), tabAt, 6 * groups);
        words = new Uint32Array(12 * groups);
        for (let f = 0; f < 6; f++) for (let g = 0; g < groups; g++) words[12 * g + f] = tab[f * groups + g];
      } else {
        words = new Uint32Array(new Uint8Array(this.buffer(), outAt, 48 * groups).slice().buffer);
      }
      return { words, sums: new Float64Array(words.buffer), pivots: new Float32Array(groups) };
    });
  }

  /**
   * range without moments for channels on the last axis: lane-major tables (six u32 fields of
   * `dim` words), one per thread, merged and turned into the 48-byte records at the end.
   */
  private rangeLanes(data: Float32Array, v: GroupView): RangeTable | null {
    return this.attempt(() => {
      const dim = v.dim;
      const { units, tables, at: tabAt } = this.threadTables(24 * dim);
      const tab = new Uint32Array(this.buffer(), tabAt, 6 * dim * tables).fill(0);
      for (let t = 0; t < tables; t++) tab.fill(0xffffffff, 6 * dim * t, 6 * dim * t + dim);
      this.blocks(data, (start, end, src) => units.run(OP.RANGE_LANES, start, end, [src, dim, tabAt, 24 * dim]));
      const words = new Uint32Array(12 * dim);
      for (let f = 0; f < 6; f++) {
        for (let g = 0; g < dim; g++) {
          let w = tab[f * dim + g];
          for (let t = 1; t < tables; t++) {
            const o = tab[6 * dim * t + f * dim + g];
            w = f === 0 ? Math.min(w, o) : f < 3 ? Math.max(w, o) : w + o;
          }
          words[12 * g + f] = w;
        }
      }
      this.calls.range++;
      return { words, sums: new Float64Array(words.buffer), pivots: new Float32Array(dim) };
    });
  }

  /**
   * range with moments for channels on the last axis, on this thread (f64 sums in one order):
   * lane-major tables and sums, each lane's pivot its first finite value.
   */
  private rangeLanesMoments(data: Float32Array, v: GroupView): RangeTable | null {
    const dim = v.dim;
    const pivots = new Float32Array(dim).fill(NaN);
    let missing = dim;
    for (let i = 0; i < data.length && missing > 0; i++) {
      const d = i % dim;
      if (Number.isNaN(pivots[d]) && Number.isFinite(data[i])) {
        pivots[d] = data[i];
        missing--;
      }
    }
    for (let d = 0; d < dim; d++) if (Number.isNaN(pivots[d])) pivots[d] = 0;
    return this.attempt(() => {
      const pivAt = this.params(pivots, dim);
      const tabAt = this.scratch(24 * dim);
      const sumsAt = this.scratch(16 * dim);
      const tab = new Uint32Array(this.buffer(), tabAt, 6 * dim).fill(0);
      tab.fill(0xffffffff, 0, dim);
      new Float64Array(this.buffer(), sumsAt, 2 * dim).fill(0);
      this.blocks(data, (start, end, src) => {
        for (let j = start; j < end;) {
          const d = j % dim;
          const len = Math.min(end - j, dim - d);
          this.x.rangeLanesMoments(src + j * 4, len, tabAt + d * 4, dim, pivAt + d * 4, sumsAt + d * 8);
          j += len;
        }
      });
      const words = new Uint32Array(12 * dim);
      const sums = new Float64Array(words.buffer);
      const t = new Uint32Array(this.buffer(), tabAt, 6 * dim);
      const f = new Float64Array(this.buffer(), sumsAt, 2 * dim);
      for (let g = 0; g < dim; g++) {
        for (let k = 0; k < 6; k++) words[12 * g + k] = t[k * dim + g];
        sums[6 * g + 3] = f[g];
        sums[6 * g + 4] = f[dim + g];
      }
      this.calls.range++;
      return { words, sums, pivots };
    });
  }

  /** Adds the data to a histogram's slots (the reference's layout), with the same f32 bin arithmetic. */
  histogram(h: HistogramParts): boolean {
    return this.attempt(() => {
      const slotsAt = this.scratch(h.slots.byteLength);
      new Uint32Array(this.buffer(), slotsAt, h.slots.length).set(h.slots);
      this.blocks(h.data, (start, end, src) => this.x.histogram(src + start * 4, end - start, h.lo, h.hi, h.scale, h.bins, slotsAt));
      h.slots.set(new Uint32Array(this.buffer(), slotsAt, h.slots.length));
      this.calls.histogram++;
      return true;
    }) ?? false;
  }

  /**
   * Palette keys of each group's weights (groups of `groupLength`, scaled by 2^shift) counted into
   * its 65 536-word region of `counts`, the same keys as palette.ts's paletteKeys.
   */
  paletteHistogram(data: Float32Array, groupLength: number, shift: number, counts: Uint32Array): boolean {
    return this.attempt(() => {
      const keys = 65536;
      const at = this.scratch(keys * 4);
      // Views are made afresh after every call that may grow the memory (growth detaches them).
      for (let g0 = 0, base = 0; g0 < data.length; g0 += groupLength, base += keys) {
        new Uint32Array(this.buffer(), at, keys).fill(0);
        this.blocks(data.subarray(g0, Math.min(data.length, g0 + groupLength)), (start, end, src) => this.x.paletteHistogram(src + start * 4, end - start, shift, at));
        counts.set(new Uint32Array(this.buffer(), at, keys), base);
      }
      this.calls.palette++;
      return true;
    }) ?? false;
  }

  /** indices[i] = the group's table[key of data[i]] (one 65 536-entry table per group, concatenated). */
  paletteAssign(data: Float32Array, groupLength: number, shift: number, tables: (group: number, into: Uint8Array) => void, indices: Uint8Array): boolean {
    return this.attempt(() => {
      const tableAt = this.scratch(65536);
      const dstAt = this.scratch(Math.min(BLOCK, data.length));
      for (let g0 = 0, g = 0; g0 < data.length; g0 += groupLength, g++) {
        tables(g, new Uint8Array(this.buffer(), tableAt, 65536));
        this.blocks(data.subarray(g0, Math.min(data.length, g0 + groupLength)), (start, end, src) => {
          for (let i = start; i < end; i += BLOCK) {
            const len = Math.min(BLOCK, end - i);
            this.x.paletteAssign(src + i * 4, dstAt, len, shift, tableAt);
            indices.set(new Uint8Array(this.buffer(), dstAt, len), g0 + i);
          }
        });
      }
      this.calls.palette++;
      return true;
    }) ?? false;
  }

  /** Copies `indices[start, end)` into scratch `at`; returns the address of element 0 (block-relative). */
  private codesAt(indices: Uint8Array, start: number, end: number, at: number): number {
    new Uint8Array(this.buffer(), at, end - start).set(indices.subarray(start, end));
    return at - start;
  }

  /**
   * Per group (of `groupLength` weights) and cluster: the count and sum of the weights assigned to
   * it, as palettize.ts clusterSums adds them (same order, so the same f64 sums); null when the
   * scratch does not fit.
   */
  paletteSums(data: Float32Array, indices: Uint8Array, groupLength: number, groups: number, k: number): { sw: Float64Array; sx: Float64Array } | null {
    return this.attempt(() => {
      const swAt = this.scratch(8 * groups * k);
      const sxAt = this.scratch(8 * groups * k);
      new Float64Array(this.buffer(), swAt, groups * k).fill(0);
      new Float64Array(this.buffer(), sxAt, groups * k).fill(0);
      this.groupRuns(data, indices, groupLength, (src, idx, n, g) => this.x.paletteSums(src, idx, n, swAt + 8 * g * k, sxAt + 8 * g * k));
      this.calls.paletteFinish++;
      return { sw: new Float64Array(this.buffer(), swAt, groups * k).slice(), sx: new Float64Array(this.buffer(), sxAt, groups * k).slice() };
    });
  }

  /**
   * Per group and cluster: count, sum, sum of squares, minimum and maximum of the weights assigned
   * to it (five f64 per cluster), added in element order as palettize.ts clusterStats does.
   */
  paletteStats(data: Float32Array, indices: Uint8Array, groupLength: number, groups: number, k: number): Float64Array | null {
    return this.attempt(() => {
      const records = groups * k;
      const outAt = this.scratch(40 * records);
      const init = new Float64Array(this.buffer(), outAt, 5 * records);
      for (let c = 0; c < records; c++) init.set(EMPTY_STATS, 5 * c);
      this.groupRuns(data, indices, groupLength, (src, idx, n, g) => this.x.paletteStats(src, idx, n, outAt + 40 * g * k));
      this.calls.paletteFinish++;
      return new Float64Array(this.buffer(), outAt, 5 * records).slice();
    });
  }

  /**
   * Calls fn over runs of `data` (element addresses) and `indices` (byte addresses in a scratch block)
   * that stay within one group of `groupLength` elements; resident inputs come as one block, their
   * indices copied in a scratch block at a time.
   */
  private groupRuns(data: Float32Array, indices: Uint8Array, groupLength: number, fn: (src: number, idx: number, n: number, group: number) => void): void {
    const block = Math.min(BLOCK, data.length);
    const idxAt = this.scratch(block);
    this.blocks(data, (start, end, src) => {
      for (let a0 = start; a0 < end; a0 += block) {
        const a1 = Math.min(end, a0 + block);
        const idx = this.codesAt(indices, a0, a1, idxAt);
        for (let a = a0; a < a1;) {
          const g = Math.floor(a / groupLength);
          const b = Math.min(a1, (g + 1) * groupLength);
          fn(src + a * 4, idx + a, b - a, g);
          a = b;
        }
      }
    });
  }

  /**
   * palettize.ts decodeWithMetrics: decodes row by row (table[group][index] x the row's scale, f32)
   * into `decoded` (when given) and returns the f64 error sums against `x`, the same operations in the same order.
   */
  paletteDecode(x: Float32Array, indices: Uint8Array, table: Float32Array, k: number, inner: number, rowsPerGroup: number, rowScale: Float32Array | undefined,
    decoded: Float32Array | null): { e2: number; emax: number; x2: number; h2: number; xh: number } | null {
    return this.attempt(() => {
      const tableAt = this.params(table, table.length);
      const scaleAt = rowScale ? this.params(rowScale, rowScale.length) : 0;
      const outAt = this.scratch(40);
      new Float64Array(this.buffer(), outAt, 5).fill(0);
      const block = Math.min(BLOCK, x.length);
      const idxAt = this.scratch(block);
      const dstAt = this.scratch(4 * block);
      this.blocks(x, (start, end, src) => {
        // Resident inputs come as one block: decode them a scratch block at a time.
        for (let a = start; a < end; a += block) {
          const b = Math.min(end, a + block);
          this.x.paletteDecode(src, this.codesAt(indices, a, b, idxAt), dstAt - 4 * a, a, b, inner, rowsPerGroup, k, tableAt, scaleAt, rowScale ? 1 : 0, outAt);
          decoded?.set(new Float32Array(this.buffer(), dstAt, b - a), a);
        }
      });
      const o = new Float64Array(this.buffer(), outAt, 5);
      this.calls.paletteFinish++;
      return { e2: o[0], emax: o[1], x2: o[2], h2: o[3], xh: o[4] };
    });
  }

  /**
   * Rows 1..layers-1 of the exact 1-D k-means table (palettize/kmeans1d.ts rows()): the same f64
   * operations in the same order as its TypeScript loop, so costs and argmins are identical.
   * P0..P2 are the centred prefix sums (n + 1 each), `first` row 0's costs, `ub` the bound past
   * which cells are not needed; returns each row's argmins (row 0 all zero), its optimum over all
   * points and the last row's costs (filled at every prefix with `lastFull`, else at n - 1 only),
   * or null when the scratch does not fit pinned memory or n needs more than 16-bit argmins.
   */
  kmeansRows(P0: Float64Array, P1: Float64Array, P2: Float64Array, first: Float64Array, layers: number, ub: number, lastFull: boolean): { back: Uint16Array[]; total: Float64Array; last: Float64Array } | null {
    const n = first.length;
    if (n > 65535) return null;
    return this.attempt(() => {
      const at = (a: Float64Array) => {
        const p = this.scratch(a.byteLength);
        new Float64Array(this.buffer(), p, a.length).set(a);
        return p;
      };
      const p0 = at(P0);
      const p1 = at(P1);
      const p2 = at(P2);
      let prev = at(first);
      let cur = this.scratch(8 * n);
      let backAt = this.scratch(2 * n);
      let prevBackAt = this.scratch(2 * n);
      const stack = this.scratch(4 * 8 * (Math.ceil(Math.log2(n + 1)) + 2));
      const back: Uint16Array[] = [new Uint16Array(n)];
      const total = new Float64Array(layers);
      total[0] = first[n - 1];
      for (let j = 1; j < layers; j++) {
        this.x.kmeansRow(p0, p1, p2, prev, cur, backAt, prevBackAt, j, n, j === layers - 1 && !lastFull ? n - 1 : j, stack, ub);
        back.push(new Uint16Array(this.buffer(), backAt, n).slice());
        total[j] = new Float64Array(this.buffer(), cur, n)[n - 1];
        [prev, cur] = [cur, prev];
        [prevBackAt, backAt] = [backAt, prevBackAt];
      }
      this.calls.kmeans++;
      return { back, total, last: new Float64Array(this.buffer(), prev, n).slice() };
    });
  }

  /** dequantStats8 with one statistics group: units with their own partials, on the engine's threads. */
  private dequantStats8Tensor(codes: Uint8Array, original: Float32Array, v: GroupView, scale: Float32Array, zeroPoint: Int32Array, signed: boolean): ErrorSumsTable | null {
    return this.attempt(() => {
      const scaleAt = this.params(scale, v.dim);
      const zpAt = this.params(zeroPoint, v.dim);
      const partsAt = this.scratch(48 * (BLOCK_UNITS + 1));
      const codesAt = this.scratch(Math.min(BLOCK, original.length) + 16);
      const cod = new Uint8Array(this.buffer(), codesAt, Math.min(BLOCK, original.length));
      const lanes = v.inner === 1 && v.dim > 1;
      const s = signed ? 1 : 0;
      const units = this.runner();
      const sums = new ErrorSumsFold();
      this.blocks(original, (start, end, src) => {
        for (let i = start; i < end;) {
          const chunkEnd = Math.min(end, i + BLOCK);
          cod.set(codes.subarray(i, chunkEnd));
          const count = this.zeroParts(partsAt, i, chunkEnd);
          if (lanes) units.run(OP.DEQUANT_LANES, i, chunkEnd, [codesAt - i, src, v.dim, scaleAt, zpAt, s, partsAt]);
          else units.run(OP.DEQUANT_RUNS, i, chunkEnd, [codesAt - i, src, v.inner, v.dim, scaleAt, zpAt, s, partsAt]);
          sums.add(new DataView(this.buffer(), partsAt, 48 * count), count);
          i = chunkEnd;
        }
      });
      this.calls.dequantStats8++;
      // The fold's record has the table's 48-byte layout already.
      const bytes = sums.record();
      return { f64: new Float64Array(bytes), f32: new Float32Array(bytes), u32: new Uint32Array(bytes), groups: 1 };
    });
  }

  /**
   * dequantStats8 with per-channel statistics over contiguous channels: units write their whole
   * channels to the table and their partial ones to edge partials, added to the table in unit order.
   */
  private dequantStats8Channels(codes: Uint8Array, original: Float32Array, v: GroupView, scale: Float32Array, zeroPoint: Int32Array, signed: boolean): ErrorSumsTable | null {
    return this.attempt(() => {
      const scaleAt = this.params(scale, v.dim);
      const zpAt = this.params(zeroPoint, v.dim);
      const tableAt = this.scratch(48 * v.dim);
      new Uint8Array(this.buffer(), tableAt, 48 * v.dim).fill(0);
      const edgesAt = this.scratch(96 * (BLOCK_UNITS + 1));
      const codesAt = this.scratch(Math.min(BLOCK, original.length) + 16);
      const cod = new Uint8Array(this.buffer(), codesAt, Math.min(BLOCK, original.length));
      const s = signed ? 1 : 0;
      const units = this.runner();
      this.blocks(original, (start, end, src) => {
        for (let i = start; i < end;) {
          const chunkEnd = Math.min(end, i + BLOCK);
          cod.set(codes.subarray(i, chunkEnd));
          const first = Math.floor(i / UNIT);
          const count = Math.ceil(chunkEnd / UNIT) - first;
          new Uint8Array(this.buffer(), edgesAt, 96 * count).fill(0);
          units.run(OP.DEQUANT_CHANNELS, i, chunkEnd, [codesAt - i, src, v.inner, v.dim, scaleAt, zpAt, s, tableAt, edgesAt]);
          const edges = new DataView(this.buffer(), edgesAt, 96 * count);
          const table = new DataView(this.buffer(), tableAt, 48 * v.dim);
          for (let k = 0; k < count; k++) {
            const a = Math.max(i, (first + k) * UNIT);
            const b = Math.min(chunkEnd, (first + k + 1) * UNIT);
            const { head, tail } = unitEdges(a, b, v.inner);
            if (head > a) addErrorSums(table, 48 * Math.floor(a / v.inner), edges, 96 * k);
            if (b > tail) addErrorSums(table, 48 * Math.floor(tail / v.inner), edges, 96 * k + 48);
          }
          i = chunkEnd;
        }
      });
      this.calls.dequantStats8++;
      const bytes = new Uint8Array(this.buffer(), tableAt, 48 * v.dim).slice();
      return { f64: new Float64Array(bytes.buffer), f32: new Float32Array(bytes.buffer), u32: new Uint32Array(bytes.buffer), groups: v.dim };
    });
  }

  /**
   * dequantStats8 with statistics per channel on the last axis (MatMul weights' channels), on
   * this thread (f64 sums in one order): lane-major tables, turned into 48-byte records at the end.
   */
  private dequantStats8Lanes(codes: Uint8Array, original: Float32Array, v: GroupView, scale: Float32Array, zeroPoint: Int32Array, signed: boolean): ErrorSumsTable | null {
    return this.attempt(() => {
      const dim = v.dim;
      const scaleAt = this.params(scale, dim);
      const zpAt = this.params(zeroPoint, dim);
      const sumsAt = this.scratch(24 * dim);
      const wordsAt = this.scratch(12 * dim);
      new Uint8Array(this.buffer(), sumsAt, 24 * dim).fill(0);
      new Uint8Array(this.buffer(), wordsAt, 12 * dim).fill(0);
      const codesAt = this.scratch(Math.min(BLOCK, original.length) + 16);
      const cod = new Uint8Array(this.buffer(), codesAt, Math.min(BLOCK, original.length));
      const s = signed ? 1 : 0;
      this.blocks(original, (start, end, src) => {
        for (let i = start; i < end;) {
          const chunkEnd = Math.min(end, i + BLOCK);
          cod.set(codes.subarray(i, chunkEnd));
          for (let j = i; j < chunkEnd;) {
            const d = j % dim;
            const len = Math.min(chunkEnd - j, dim - d);
            this.x.dequantStats8LaneTable(codesAt - i + j, src + j * 4, len, scaleAt + d * 4, zpAt + d * 4, s, sumsAt + d * 8, wordsAt + d * 4, dim);
            j += len;
          }
          i = chunkEnd;
        }
      });
      this.calls.dequantStats8++;
      const f = new Float64Array(this.buffer(), sumsAt, 3 * dim);
      const w = new Uint32Array(this.buffer(), wordsAt, 3 * dim);
      const bytes = new ArrayBuffer(48 * dim);
      const f64 = new Float64Array(bytes);
      const u32 = new Uint32Array(bytes);
      for (let g = 0; g < dim; g++) {
        const [e2, x2, xe] = [f[g], f[dim + g], f[2 * dim + g]];
        // Σh² and Σx·h from Σx², Σx·e and Σe², as the per-tensor kernel derives them.
        f64[6 * g] = e2;
        f64[6 * g + 1] = x2;
        f64[6 * g + 2] = x2 - 2 * xe + e2;
        f64[6 * g + 3] = x2 - xe;
        u32[12 * g + 8] = w[g];
        u32[12 * g + 9] = w[dim + g];
        u32[12 * g + 10] = w[2 * dim + g];
      }
      return { f64, f32: new Float32Array(bytes), u32, groups: dim };
    });
  }

  /**
   * Round-trip error sums of 8-bit codes against the original values, for channel-mode
   * quantization groups; statistics groups are per tensor (groups 1) or channel-mode (inner, dim).
   */
  dequantStats8(codes: Uint8Array, original: Float32Array, v: GroupView, scale: Float32Array, zeroPoint: Int32Array, signed: boolean,
    stats: { groups: number; inner: number; dim: number }): ErrorSumsTable | null {
    const statsGroups = stats.groups;
    const statsInner = stats.inner;
    const statsDim = stats.groups === 1 ? 1 : stats.dim;
    const statsGroup = (i: number) => (statsDim === 1 ? 0 : Math.floor(i / statsInner) % statsDim);
    if (statsGroups === 1) return this.dequantStats8Tensor(codes, original, v, scale, zeroPoint, signed);
    if (statsInner === 1 && v.inner === 1 && statsDim === v.dim) return this.dequantStats8Lanes(codes, original, v, scale, zeroPoint, signed);
    if (statsInner === v.inner && statsDim === v.dim && v.inner * v.dim === original.length) return this.dequantStats8Channels(codes, original, v, scale, zeroPoint, signed);
    return this.attempt(() => {
      const scaleAt = this.params(scale, v.dim);
      const zpAt = this.params(zeroPoint, v.dim);
      const outAt = this.scratch(48 * statsGroups);
      new Uint8Array(this.buffer(), outAt, 48 * statsGroups).fill(0);
      const codesAt = this.scratch(Math.min(BLOCK, original.length) + 16);
      const cod = new Uint8Array(this.buffer(), codesAt, Math.min(BLOCK, original.length));
      const lanes = v.inner === 1 && v.dim > 1;
      const s = signed ? 1 : 0;
      this.blocks(original, (start, end, src) => {
        for (let i = start; i < end;) {
          const chunkEnd = Math.min(end, i + BLOCK);
          cod.set(codes.subarray(i, chunkEnd));
          const c = codesAt - i;
          if (lanes) {
            for (let j = i; j < chunkEnd;) {
              const d = j % v.dim;
              const len = Math.min(chunkEnd - j, v.dim - d);
              this.x.dequantStats8Lanes(c + j, src + j * 4, len, scaleAt + d * 4, zpAt + d * 4, s, outAt + statsGroup(j) * 48);
              j += len;
            }
          } else {
            this.x.dequantStats8Runs(c, src, i, chunkEnd, v.inner, v.dim, scaleAt, zpAt, s, statsInner, statsDim, outAt);
          }
          i = chunkEnd;
        }
      });
      this.calls.dequantStats8++;
      // One table, not an object per group (per-channel statistics have thousands of groups).
      const bytes = new Uint8Array(this.buffer(), outAt, 48 * statsGroups).slice();
      return { f64: new Float64Array(bytes.buffer), f32: new Float32Array(bytes.buffer), u32: new Uint32Array(bytes.buffer), groups: statsGroups };
    });
  }
}

/** Range tables 1.. of a multi-thread range merged into table 0 (48 bytes per group, see RangeTable). */
function mergeRangeTables(w: Uint32Array, f: Float64Array, groups: number, tables: number): void {
  for (let t = 1; t < tables; t++) {
    for (let g = 0; g < groups; g++) {
      const a = 12 * g;
      const b = 12 * (t * groups + g);
      w[a] = Math.min(w[a], w[b]);
      w[a + 1] = Math.max(w[a + 1], w[b + 1]);
      w[a + 2] = Math.max(w[a + 2], w[b + 2]);
      w[a + 3] += w[b + 3];
      w[a + 4] += w[b + 4];
      w[a + 5] += w[b + 5];
      f[6 * g + 3] += f[6 * (t * groups + g) + 3];
      f[6 * g + 4] += f[6 * (t * groups + g) + 4];
    }
  }
}

/** One 48-byte error-sums record added onto another (the kernel's own accumulation; Math.max propagates NaN as its f32 max does). */
function addErrorSums(to: DataView, at: number, from: DataView, off: number): void {
  for (let f = 0; f < 32; f += 8) to.setFloat64(at + f, to.getFloat64(at + f, true) + from.getFloat64(off + f, true), true);
  to.setFloat32(at + 32, Math.max(to.getFloat32(at + 32, true), from.getFloat32(off + 32, true)), true);
  to.setUint32(at + 36, to.getUint32(at + 36, true) + from.getUint32(off + 36, true), true);
  to.setUint32(at + 40, to.getUint32(at + 40, true) + from.getUint32(off + 40, true), true);
}

/** Error sums of a run of units' partials (48 bytes each), added in unit order onto one record. */
class ErrorSumsFold {
  private readonly acc = new DataView(new ArrayBuffer(48));

  add(parts: DataView, count: number): void {
    for (let u = 0; u < count; u++) addErrorSums(this.acc, 0, parts, 48 * u);
  }

  /** A copy of the record (an ErrorSumsTable's layout). */
  record(): ArrayBuffer {
    return this.acc.buffer.slice(0) as ArrayBuffer;
  }

  result(): ErrorSums {
    const a = this.acc;
    return {
      e2: a.getFloat64(0, true), x2: a.getFloat64(8, true), h2: a.getFloat64(16, true), xh: a.getFloat64(24, true),
      emax: a.getFloat32(32, true), n: a.getUint32(36, true), bad: a.getUint32(40, true),
    };
  }
}

/** Pinned engine memory cannot hold a kernel's scratch: the caller uses the TypeScript loop. */
class NoRoom extends Error {}

export interface HistogramParts {
  data: Float32Array;
  lo: number;
  hi: number;
  scale: number;
  bins: number;
  /** bins + 5 words (bins, below, above, nan, min key, max key), updated in place. */
  slots: Uint32Array;
}

/**
 * The range kernel's partial results, 48 bytes per group: words[12 g ..] = kmin, kmax, amax, NaN
 * count, Inf count, finite count (u32); sums[6 g + 3], sums[6 g + 4] = Σ (x − pivot), Σ (x − pivot)²
 * over the finite values (f64); pivots[g] = the group's pivot.
 */
export interface RangeTable {
  words: Uint32Array;
  sums: Float64Array;
  pivots: Float32Array;
}

/**
 * Error sums of many groups, 48 bytes each: f64[6 g .. 6 g + 3] = e2, x2, h2, xh; f32[12 g + 8] =
 * max |error|; u32[12 g + 9] = finite count, u32[12 g + 10] = non-finite count.
 */
export interface ErrorSumsTable {
  f64: Float64Array;
  f32: Float32Array;
  u32: Uint32Array;
  groups: number;
}

/** Round-trip error sums of one statistics group (the dequantize kernel's partial form). */
export interface ErrorSums {
  e2: number;
  x2: number;
  h2: number;
  xh: number;
  emax: number;
  n: number;
  bad: number;
}
