/**
 * The CPU path's fast engine: WebAssembly SIMD loops (wasm/cpu-kernels.ts, AssemblyScript,
 * compiled to wasm/cpu-kernels.wasm) for the kernels' hot cases — 8-bit quantize, range, and the
 * round-trip error sums — over per-tensor and per-channel groups. The TypeScript references in
 * src/kernels/ stay the oracle; tests compare both engines on the same cases (integer results
 * bit-identical). `MODELPRESS_CPU_ENGINE=js` (or setCpuEngine('js')) turns the fast engine off.
 *
 * Tensors are copied into the module's memory a block at a time (at most BLOCK elements), so its
 * memory stays bounded whatever the tensor size.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.ts';
import type { GroupView } from '../kernels/layout.ts';

interface Exports {
  memory: WebAssembly.Memory;
  quantize8(src: number, dst: number, n: number, inv: number, zp: number, qmin: number, qmax: number): void;
  quantize8Lanes(src: number, dst: number, n: number, invPtr: number, zpPtr: number, qmin: number, qmax: number): void;
  range(src: number, n: number, pivot: number, moments: number, out: number): void;
  dequantStats8(codes: number, orig: number, n: number, scale: number, zp: number, signed: number, out: number): void;
  dequantStats8Lanes(codes: number, orig: number, n: number, scalePtr: number, zpPtr: number, signed: number, out: number): void;
  histogram(src: number, n: number, lo: number, hi: number, scale: number, bins: number, slots: number): void;
}

export type CpuEngine = 'wasm' | 'js';

/** Elements copied into WebAssembly memory per block (4 MiB of f32). */
const BLOCK = 1 << 20;
/** Below this many elements the JS loop wins (no copy, no call overhead). */
let minElements = 256;

let engine: CpuEngine = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.MODELPRESS_CPU_ENGINE === 'js' ? 'js' : 'wasm';
let instance: Exports | null | undefined;

/** Chooses the CPU engine; `minElements` (tests: 0) is the size below which the JS loop is used anyway. */
export function setCpuEngine(e: CpuEngine, opts: { minElements?: number } = {}): void {
  engine = e;
  if (opts.minElements !== undefined) minElements = opts.minElements;
}

export function cpuEngine(): CpuEngine {
  return engine;
}

function load(): Exports | null {
  if (instance !== undefined) return instance;
  try {
    const bytes = readFileSync(join(packageRoot(), 'wasm', 'cpu-kernels.wasm'));
    instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { abort: () => { throw new Error('cpu-kernels.wasm aborted'); } },
    }).exports as unknown as Exports;
  } catch {
    // No SIMD support or no file: the TypeScript loops serve.
    instance = null;
  }
  return instance;
}

/** The module when the fast engine is on and worth it for n elements, else null. */
export function wasmFor(n: number): WasmKernels | null {
  if (engine !== 'wasm' || n < minElements || n === 0) return null;
  const x = load();
  return x ? (kernels ??= new WasmKernels(x)) : null;
}

let kernels: WasmKernels | undefined;

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
  /** Tensors each entry point processed (tests check the fast engine really ran). */
  readonly calls = { quantize8: 0, range: 0, dequantStats8: 0, histogram: 0 };
  constructor(x: Exports) {
    this.x = x;
  }

  /** Makes the memory at least `bytes` long; returns its current buffer. */
  private reserve(bytes: number): ArrayBuffer {
    const mem = this.x.memory;
    const need = bytes + 1024; // the module's own data sits below 1 KiB
    if (mem.buffer.byteLength < need) mem.grow(Math.ceil((need - mem.buffer.byteLength) / 65536));
    return mem.buffer as ArrayBuffer;
  }

  /**
   * 8-bit codes for channel-mode groups (per tensor, or per channel on any axis), the same
   * values as the reference's quantizeChannels8.
   */
  quantize8(data: Float32Array, v: GroupView, inverse: Float32Array, zeroPoint: Int32Array, qmin: number, qmax: number, codes: Uint8Array): void {
    this.calls.quantize8++;
    const n = data.length;
    const block = Math.min(BLOCK, n);
    // Layout: [params: inv f32 x dim, zp i32 x dim][src f32 x block][dst u8 x block]
    const pBytes = v.dim * 8;
    const base = 1024;
    const srcAt = base + ((pBytes + 15) & ~15);
    const dstAt = srcAt + block * 4;
    const buf = this.reserve(dstAt + block);
    new Float32Array(buf, base, v.dim).set(inverse.subarray(0, v.dim));
    new Int32Array(buf, base + v.dim * 4, v.dim).set(zeroPoint.subarray(0, v.dim));
    const src = new Float32Array(buf, srcAt, block);
    const dst = new Uint8Array(buf, dstAt, block);
    const lanes = v.inner === 1 && v.dim > 1;
    for (let start = 0; start < n; start += block) {
      const end = Math.min(n, start + block);
      src.set(data.subarray(start, end));
      if (lanes) {
        // Channels on the last axis: rows of `dim` elements with per-lane parameters.
        for (let i = start; i < end;) {
          const d = i % v.dim;
          const len = Math.min(end - i, v.dim - d);
          this.x.quantize8Lanes(srcAt + (i - start) * 4, dstAt + (i - start), len, base + d * 4, base + v.dim * 4 + d * 4, qmin, qmax);
          i += len;
        }
      } else {
        forEachRun(v, start, end, (at, len, g) => this.x.quantize8(srcAt + (at - start) * 4, dstAt + (at - start), len, inverse[g], zeroPoint[g], qmin, qmax));
      }
      codes.set(dst.subarray(0, end - start), start);
    }
  }

  /**
   * Per-group min / max / absmax keys, NaN / Inf / finite counts and pivot-shifted f64 sums for
   * channel-mode groups. Calls `store(g, ...)` once per group.
   */
  range(data: Float32Array, v: GroupView, moments: boolean): RangeParts[] {
    this.calls.range++;
    const n = data.length;
    const block = Math.min(BLOCK, n);
    const outAt = 1024;
    const outBytes = 48 * v.groups;
    const srcAt = outAt + ((outBytes + 15) & ~15);
    const buf = this.reserve(srcAt + block * 4);
    const out = new DataView(buf, outAt, outBytes);
    for (let g = 0; g < v.groups; g++) {
      out.setUint32(g * 48, 0xffffffff, true);
      for (let w = 4; w < 48; w += 4) out.setUint32(g * 48 + w, 0, true);
    }
    // Pivot per group: its first finite element (shifted sums keep the variance accurate).
    const pivots = new Float32Array(v.groups).fill(NaN);
    const src = new Float32Array(buf, srcAt, block);
    for (let start = 0; start < n; start += block) {
      const end = Math.min(n, start + block);
      src.set(data.subarray(start, end));
      forEachRun(v, start, end, (at, len, g) => {
        if (moments && Number.isNaN(pivots[g])) {
          for (let k = at; k < at + len; k++) {
            if (Number.isFinite(data[k])) {
              pivots[g] = data[k];
              break;
            }
          }
        }
        this.x.range(srcAt + (at - start) * 4, len, Number.isNaN(pivots[g]) ? 0 : pivots[g], moments ? 1 : 0, outAt + g * 48);
      });
    }
    const view = new DataView(this.x.memory.buffer as ArrayBuffer, outAt, outBytes);
    return Array.from({ length: v.groups }, (_, g) => ({
      kmin: view.getUint32(g * 48, true), kmax: view.getUint32(g * 48 + 4, true), amax: view.getUint32(g * 48 + 8, true),
      nan: view.getUint32(g * 48 + 12, true), inf: view.getUint32(g * 48 + 16, true), count: view.getUint32(g * 48 + 20, true),
      pivot: Number.isNaN(pivots[g]) ? 0 : pivots[g], sum: view.getFloat64(g * 48 + 24, true), sumSq: view.getFloat64(g * 48 + 32, true),
    }));
  }

  /** Adds the data to a histogram's slots (the reference's layout), with the same f32 bin arithmetic. */
  histogram(h: HistogramParts): void {
    this.calls.histogram++;
    const n = h.data.length;
    const block = Math.min(BLOCK, n);
    const slotsAt = 1024;
    const srcAt = slotsAt + ((h.slots.byteLength + 15) & ~15);
    const buf = this.reserve(srcAt + block * 4);
    new Uint32Array(buf, slotsAt, h.slots.length).set(h.slots);
    const src = new Float32Array(buf, srcAt, block);
    for (let start = 0; start < n; start += block) {
      const end = Math.min(n, start + block);
      src.set(h.data.subarray(start, end));
      this.x.histogram(srcAt, end - start, h.lo, h.hi, h.scale, h.bins, slotsAt);
    }
    h.slots.set(new Uint32Array(this.x.memory.buffer as ArrayBuffer, slotsAt, h.slots.length));
  }

  /**
   * Round-trip error sums of 8-bit codes against the original values, for channel-mode
   * quantization groups; `statsGroup(i)` maps a run's first element to its statistics group.
   */
  dequantStats8(codes: Uint8Array, original: Float32Array, v: GroupView, scale: Float32Array, zeroPoint: Int32Array, signed: boolean,
    statsGroups: number, statsGroup: (element: number) => number): ErrorSums[] {
    this.calls.dequantStats8++;
    const n = original.length;
    const block = Math.min(BLOCK, n);
    const base = 1024;
    const pBytes = v.dim * 8;
    const outAt = base + ((pBytes + 15) & ~15);
    const outBytes = 48 * statsGroups;
    const origAt = outAt + ((outBytes + 15) & ~15);
    const codesAt = origAt + block * 4;
    const buf = this.reserve(codesAt + block + 16);
    new Float32Array(buf, base, v.dim).set(scale.subarray(0, v.dim));
    new Int32Array(buf, base + v.dim * 4, v.dim).set(zeroPoint.subarray(0, v.dim));
    new Uint8Array(buf, outAt, outBytes).fill(0);
    const orig = new Float32Array(buf, origAt, block);
    const cod = new Uint8Array(buf, codesAt, block);
    const lanes = v.inner === 1 && v.dim > 1;
    const s = signed ? 1 : 0;
    for (let start = 0; start < n; start += block) {
      const end = Math.min(n, start + block);
      orig.set(original.subarray(start, end));
      cod.set(codes.subarray(start, end));
      if (lanes) {
        for (let i = start; i < end;) {
          const d = i % v.dim;
          const len = Math.min(end - i, v.dim - d);
          const sg = statsGroup(i);
          this.x.dequantStats8Lanes(codesAt + (i - start), origAt + (i - start) * 4, len, base + d * 4, base + v.dim * 4 + d * 4, s, outAt + sg * 48);
          i += len;
        }
      } else {
        forEachRun(v, start, end, (at, len, g) => this.x.dequantStats8(codesAt + (at - start), origAt + (at - start) * 4, len, scale[g], zeroPoint[g], s, outAt + statsGroup(at) * 48));
      }
    }
    const view = new DataView(this.x.memory.buffer as ArrayBuffer, outAt, outBytes);
    return Array.from({ length: statsGroups }, (_, g) => ({
      e2: view.getFloat64(g * 48, true), x2: view.getFloat64(g * 48 + 8, true), h2: view.getFloat64(g * 48 + 16, true), xh: view.getFloat64(g * 48 + 24, true),
      emax: view.getFloat32(g * 48 + 32, true), n: view.getUint32(g * 48 + 36, true), bad: view.getUint32(g * 48 + 40, true),
    }));
  }
}

export interface HistogramParts {
  data: Float32Array;
  lo: number;
  hi: number;
  scale: number;
  bins: number;
  /** bins + 5 words (bins, below, above, nan, min key, max key), updated in place. */
  slots: Uint32Array;
}

export interface RangeParts {
  kmin: number;
  kmax: number;
  amax: number;
  nan: number;
  inf: number;
  count: number;
  /** Sums of (x - pivot) and (x - pivot)^2 over the finite values, in f64. */
  pivot: number;
  sum: number;
  sumSq: number;
}

export interface ErrorSums {
  e2: number;
  x2: number;
  h2: number;
  xh: number;
  emax: number;
  n: number;
  bad: number;
}
