/**
 * The scheduler runs passes (one kernel over many jobs) on the GPU or the CPU and records why.
 *
 * GPU passes: jobs are cut into pieces, packed into few dispatches (multi-tensor apply), encoded
 * many per compute pass, submitted every `batchSize` dispatches and read back after the submit;
 * nothing is awaited between kernels of a batch. A GPU failure redoes the whole pass on the CPU.
 */
import { GpuFailureError, GpuUnavailableError, describeError } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { AdapterDescription, RuntimeName } from '../gpu/runtime.ts';
import { currentRuntime } from '../gpu/runtime.ts';
import type { KernelDescriptor, PieceRegions, Piece } from '../kernels/kernel.ts';
import { UnsliceableError } from '../kernels/layout.ts';
import { BufferPool } from './buffer-pool.ts';
import { packDispatches, type Dispatch } from './packing.ts';
import { emptyKernelStats, emptyRunStats, type KernelStats, type RunStats } from './stats.ts';
import { wasmEngine } from '../cpu/wasm-kernels.ts';

export type BackendChoice = 'auto' | 'gpu' | 'cpu';

export interface ProgressEvent {
  kernel: string;
  done: number;
  total: number;
  unit: 'dispatches' | 'jobs';
}

export interface SchedulerOptions {
  backend?: BackendChoice;
  logger?: Logger;
  /** Dispatches recorded per submit (default 16). 1 gives unbatched submission. */
  batchSize?: number;
  /** Passes with less work than this many elements run on the CPU (default 16384 for auto, 0 for gpu). */
  cpuThreshold?: number;
  /** At most this many segments per dispatch (default unlimited; 1 gives one dispatch per tensor). */
  maxSegmentsPerDispatch?: number;
  /** Binding window in bytes (default: the adapter's maxStorageBufferBindingSize). Lower it to test windowing. */
  bindingWindowBytes?: number;
  onProgress?: (e: ProgressEvent) => void;
  /**
   * Let `auto` use a software adapter (lavapipe, SwiftShader, WARP). Off by default: the CPU path
   * gives the same results faster than a CPU-emulated GPU. `backend: 'gpu'` always allows it.
   */
  allowSoftwareAdapter?: boolean;
  /** Test hook: make the GPU reject the dispatch with this 0-based index (counted over the scheduler's life). */
  injectFailureAtDispatch?: number;
  /**
   * Benchmarks only: record every dispatch this many times in its timed pass and report the
   * kernel time divided by it, so a sub-millisecond kernel is timed back to back, with the GPU at
   * its working clocks rather than waking from idle. Kernels that accumulate (histogram counts,
   * atomics) return multiplied results with it: never set it where results are used.
   */
  timingRepeats?: number;
}

export interface BackendInfo {
  runtime: RuntimeName;
  requested: BackendChoice;
  /** The backend passes go to by default. */
  active: 'gpu' | 'cpu';
  reason: string;
  adapter: AdapterDescription | null;
  limits: Record<string, number> | null;
  features: string[];
  timestamps: boolean;
}

/** Words of each binding window kept back from a piece (region alignment). */
const PIECE_MARGIN_WORDS = 16;

/** Uploads are gathered into one write when a stream has more parts than this... */
const GATHER_MIN_PARTS = 8;
/** ...and they are small on average. */
const GATHER_MAX_AVERAGE_BYTES = 1 << 20;

interface Staged {
  buffer: GPUBuffer;
  bytes: number;
}

export class Scheduler {
  private readonly gpu: GpuContext | null;
  private readonly pool: BufferPool | null;
  private readonly opts: Required<Omit<SchedulerOptions, 'onProgress' | 'injectFailureAtDispatch' | 'logger' | 'bindingWindowBytes' | 'allowSoftwareAdapter'>> &
    Pick<SchedulerOptions, 'onProgress' | 'injectFailureAtDispatch' | 'bindingWindowBytes'>;
  private readonly log: Logger;
  private readonly backendInfo: BackendInfo;
  private runStats: RunStats = emptyRunStats();
  private dispatchCounter = 0;
  private timestampQuery: { set: GPUQuerySet; resolve: GPUBuffer; staging: GPUBuffer } | null = null;

  private constructor(gpu: GpuContext | null, info: BackendInfo, opts: SchedulerOptions, log: Logger) {
    this.gpu = gpu;
    this.pool = gpu ? new BufferPool(gpu.device) : null;
    this.backendInfo = info;
    this.log = log;
    const backend = opts.backend ?? 'auto';
    this.opts = {
      backend,
      batchSize: Math.max(1, opts.batchSize ?? 16),
      cpuThreshold: opts.cpuThreshold ?? (backend === 'gpu' ? 0 : 16384),
      maxSegmentsPerDispatch: opts.maxSegmentsPerDispatch ?? Number.POSITIVE_INFINITY,
      onProgress: opts.onProgress,
      injectFailureAtDispatch: opts.injectFailureAtDispatch,
      bindingWindowBytes: opts.bindingWindowBytes,
      timingRepeats: Math.max(1, Math.floor(opts.timingRepeats ?? 1)),
    };
  }

  static async create(opts: SchedulerOptions = {}): Promise<Scheduler> {
    const log = opts.logger ?? createLogger('warn');
    const requested = opts.backend ?? 'auto';
    const base = { runtime: currentRuntime(), requested, adapter: null, limits: null, features: [], timestamps: false };
    if (requested === 'cpu') {
      return new Scheduler(null, { ...base, active: 'cpu', reason: 'the CPU backend was requested' }, opts, log);
    }
    const softwareWanted = requested === 'gpu' || Boolean(opts.allowSoftwareAdapter);
    // Loaded on demand: the WebGPU side (WGSL reflection, Dawn) costs start-up time a CPU run never needs.
    const { GpuContext } = await import('../gpu/context.ts');
    const got = await GpuContext.create(log, softwareWanted);
    if (!(got instanceof GpuContext)) {
      if (requested === 'gpu') throw new GpuUnavailableError(`the GPU backend was requested but ${got.reason}`);
      // One line, once: a machine without a GPU is normal, not an error.
      if (/software rasterizer/.test(got.reason)) log.info(`using the CPU path: ${got.reason}`);
      else log.warn(`no GPU: ${got.reason}; using the CPU path (same results, slower)`);
      return new Scheduler(null, { ...base, active: 'cpu', reason: got.reason }, opts, log);
    }
    const a = got.acquired;
    if (requested === 'auto' && a.adapter.software && !opts.allowSoftwareAdapter) {
      const reason = `the only WebGPU adapter is a software rasterizer (${a.adapter.description || a.adapter.device}); the CPU path gives the same results faster (--backend gpu uses the adapter anyway)`;
      got.dispose();
      log.info(reason);
      return new Scheduler(null, { ...base, active: 'cpu', reason, adapter: a.adapter, limits: { ...a.limits }, features: a.features, timestamps: a.timestamps }, opts, log);
    }
    const why = requested === 'gpu' ? 'the GPU backend was requested' : `a WebGPU adapter is available${a.adapter.software ? ' (software rasterizer)' : ''}`;
    return new Scheduler(got, {
      ...base,
      active: 'gpu',
      reason: why,
      adapter: a.adapter,
      limits: { ...a.limits },
      features: a.features,
      timestamps: a.timestamps,
    }, opts, log);
  }

  get info(): BackendInfo {
    return this.backendInfo;
  }

  /** Statistics since creation or the last `resetStats`. */
  get stats(): RunStats {
    return this.runStats;
  }

  resetStats(): void {
    this.runStats = emptyRunStats();
  }

  /**
   * Runs `fn` with an allocator of f32 arrays for the tensors of one pass (`reserveBytes` of them
   * at most). On the CPU path they live in the engine's memory, so its kernels read them in place
   * (no copy); the arrays are valid until `fn` settles. Elsewhere they are plain arrays.
   */
  async withHostArrays<T>(reserveBytes: number, fn: (alloc: (n: number) => Float32Array) => Promise<T>): Promise<T> {
    const engine = this.gpu ? null : wasmEngine();
    if (!engine) return fn((n) => new Float32Array(n));
    return engine.pin(reserveBytes, () => fn((n) => engine.residentF32(n)));
  }

  /**
   * A pass about to run the CPU kernels over `totalBytes` of tensors: large work starts the
   * engine's worker threads now, so they are listening by the time the first tensors are read.
   */
  prepareCpuThreads(totalBytes: number): void {
    if (!this.gpu) wasmEngine()?.prepareThreads(totalBytes);
  }

  private kernelStats(name: string): KernelStats {
    return (this.runStats.kernels[name] ??= emptyKernelStats());
  }

  /** Runs one kernel over many jobs; results are in job order. */
  async run<Job, Result>(kernel: KernelDescriptor<Job, Result>, jobs: readonly Job[]): Promise<Result[]> {
    for (const job of jobs) kernel.validate(job);
    const t0 = performance.now();
    const ks = this.kernelStats(kernel.name);
    ks.passes++;
    const work = jobs.reduce((s, j) => s + kernel.work(j), 0);
    ks.elements += work;
    try {
      const gpuReason = this.gpuRefusal(work);
      if (gpuReason) {
        if (this.gpu) this.runStats.cpuPasses.push({ kernel: kernel.name, reason: gpuReason });
        return this.runCpu(kernel, jobs, ks);
      }
      try {
        return await this.runGpu(kernel, jobs, ks);
      } catch (err) {
        if (!(err instanceof GpuFailureError)) throw err;
        this.log.warn(`${err.message}; redoing the pass on the CPU`);
        this.runStats.fallbacks.push({ kernel: kernel.name, reason: err.message });
        return this.runCpu(kernel, jobs, ks);
      }
    } finally {
      this.runStats.wallMs += performance.now() - t0;
    }
  }

  private gpuRefusal(work: number): string | undefined {
    if (!this.gpu) return this.backendInfo.reason;
    const unusable = this.gpu.unusableReason;
    if (unusable) return unusable;
    if (work < this.opts.cpuThreshold) return `small pass (${work} elements < cpuThreshold ${this.opts.cpuThreshold})`;
    return undefined;
  }

  private runCpu<Job, Result>(kernel: KernelDescriptor<Job, Result>, jobs: readonly Job[], ks: KernelStats): Result[] {
    const t0 = performance.now();
    const out: Result[] = [];
    jobs.forEach((job, i) => {
      out.push(kernel.cpu(job));
      this.opts.onProgress?.({ kernel: kernel.name, done: i + 1, total: jobs.length, unit: 'jobs' });
    });
    ks.cpuPasses++;
    ks.cpuMs += performance.now() - t0;
    return out;
  }

  /** Bytes one piece of a GPU pass may bind per stream (0 without a GPU): what a job must fit to run there. */
  gpuWindowBytes(): number {
    return this.gpu ? 4 * (this.windowWords() - PIECE_MARGIN_WORDS) : 0;
  }

  private windowWords(): number {
    const limits = this.gpu!.acquired.limits;
    const bytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize, this.opts.bindingWindowBytes ?? Infinity);
    return Math.floor(bytes / 16) * 4;
  }

  private async runGpu<Job, Result>(kernel: KernelDescriptor<Job, Result>, jobs: readonly Job[], ks: KernelStats): Promise<Result[]> {
    const gpu = this.gpu!;
    const t0 = performance.now();
    const pipelines = await gpu.pipelinesFor(kernel as KernelDescriptor<unknown, unknown>);
    const maxWords = this.windowWords();
    const results: Array<Result | undefined> = new Array(jobs.length);
    const jobPieces: Piece[][] = jobs.map((job, i) => {
      try {
        return kernel.pieces(job, maxWords - PIECE_MARGIN_WORDS);
      } catch (err) {
        if (!(err instanceof UnsliceableError)) throw err;
        this.runStats.cpuPasses.push({ kernel: kernel.name, reason: `job ${i}: ${err.message}` });
        results[i] = kernel.cpu(job);
        return [];
      }
    });
    const streamNames = kernel.streams.map((s) => s.name);
    const dispatches = packDispatches(jobPieces, streamNames, {
      maxWords,
      maxWorkgroups: gpu.acquired.limits.maxComputeWorkgroupsPerDimension ** 2,
      maxSegments: this.opts.maxSegmentsPerDispatch,
    });
    const regions: PieceRegions[][] = jobPieces.map((p) => new Array(p.length));
    let gpuNs = 0;
    let timed = false;
    for (let b = 0; b < dispatches.length; b += this.opts.batchSize) {
      const batch = dispatches.slice(b, b + this.opts.batchSize);
      const ns = await this.runBatch(kernel, pipelines.layout, pipelines.byEntryPoint, batch, regions, ks);
      if (ns !== null) {
        gpuNs += ns;
        timed = true;
      }
      this.opts.onProgress?.({ kernel: kernel.name, done: Math.min(dispatches.length, b + batch.length), total: dispatches.length, unit: 'dispatches' });
    }
    jobs.forEach((job, i) => {
      if (results[i] === undefined) results[i] = kernel.finish(job, regions[i]);
    });
    ks.gpuPasses++;
    ks.gpuWallMs += performance.now() - t0;
    if (timed) ks.gpuKernelMs = (ks.gpuKernelMs ?? 0) + gpuNs / 1e6;
    return results as Result[];
  }

  /** Encodes, submits and reads back one batch of dispatches. Returns GPU nanoseconds if timed. */
  private async runBatch<Job, Result>(
    kernel: KernelDescriptor<Job, Result>,
    layout: GPUBindGroupLayout,
    pipelines: Map<string, GPUComputePipeline>,
    batch: Dispatch[],
    regions: PieceRegions[][],
    ks: KernelStats,
  ): Promise<number | null> {
    const device = this.gpu!.device;
    const pool = this.pool!;
    const queue = device.queue;
    const used: GPUBuffer[] = [];
    const staged: Array<{ dispatch: Dispatch; stream: string; source: GPUBuffer; staging: Staged }> = [];
    const acquire = (usage: number, bytes: number, label: string) => {
      const buf = pool.acquire(usage, Math.max(16, bytes), label);
      used.push(buf);
      return buf;
    };
    const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('internal');
    let uploaded = 0;
    let readBack = 0;
    let mapped = false;
    try {
      const encoder = device.createCommandEncoder({ label: kernel.name });
      const binds: Array<{ dispatch: Dispatch; group: GPUBindGroup; grid: [number, number] }> = [];
      for (const dispatch of batch) {
        const idx = this.dispatchCounter++;
        const maxX = this.gpu!.acquired.limits.maxComputeWorkgroupsPerDimension;
        const gridX = Math.min(dispatch.workgroups, maxX);
        const gridY = Math.ceil(dispatch.workgroups / gridX);
        const rw = kernel.recordWords;
        const table = new Uint32Array(dispatch.pieces.length * rw);
        dispatch.pieces.forEach((p, s) => {
          table[s * rw] = p.firstWorkgroup;
          table.set(p.piece.record(p.offsets), s * rw + 1);
        });
        const infoBuf = acquire(GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, 16, `${kernel.name}:info`);
        queue.writeBuffer(infoBuf, 0, new Uint32Array([dispatch.pieces.length, dispatch.workgroups, gridX, rw]));
        const segBuf = acquire(STORAGE, table.byteLength, `${kernel.name}:segments`);
        queue.writeBuffer(segBuf, 0, table);
        uploaded += table.byteLength + 16;
        // Pooled buffers are rounded up to a power of two: bind only the bytes in use, which stay
        // within the adapter's binding window whatever the bucket.
        const streamBufs: GPUBufferBinding[] = [];
        for (const spec of kernel.streams) {
          const bytes = Math.max(16, Math.ceil(dispatch.words[spec.name] / 4) * 16);
          const buf = acquire(STORAGE, bytes, `${kernel.name}:${spec.name}`);
          streamBufs.push({ buffer: buf, offset: 0, size: bytes });
          if (spec.role !== 'out') uploaded += this.upload(queue, buf, spec.name, dispatch);
          if (spec.role !== 'in') {
            const staging = acquire(GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, bytes, `${kernel.name}:${spec.name}:staging`);
            staged.push({ dispatch, stream: spec.name, source: buf, staging: { buffer: staging, bytes } });
          }
        }
        if (idx === this.opts.injectFailureAtDispatch) {
          // A copy from a buffer onto itself is a validation error: the real capture path runs.
          encoder.copyBufferToBuffer(segBuf, 0, segBuf, 0, 4);
        }
        const group = device.createBindGroup({
          layout,
          entries: [{ buffer: infoBuf, size: 16 }, { buffer: segBuf, size: Math.max(16, table.byteLength) }, ...streamBufs].map((resource, binding) => ({ binding, resource })),
        });
        binds.push({ dispatch, group, grid: [gridX, gridY] });
      }
      const ts = this.timestamps();
      const pass = encoder.beginComputePass({
        label: kernel.name,
        ...(ts ? { timestampWrites: { querySet: ts.set, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {}),
      });
      for (let rep = 0; rep < this.opts.timingRepeats; rep++) {
        for (const { dispatch, group, grid } of binds) {
          pass.setPipeline(pipelines.get(dispatch.entryPoint)!);
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(grid[0], grid[1]);
        }
      }
      pass.end();
      if (ts) {
        encoder.resolveQuerySet(ts.set, 0, 2, ts.resolve, 0);
        encoder.copyBufferToBuffer(ts.resolve, 0, ts.staging, 0, 16);
      }
      for (const st of staged) {
        encoder.copyBufferToBuffer(st.source, 0, st.staging.buffer, 0, st.staging.bytes);
      }
      queue.submit([encoder.finish()]);
      ks.submits++;
      ks.dispatches += batch.length;
      ks.segments += batch.reduce((s, d) => s + d.pieces.length, 0);
      this.runStats.submits++;
      this.runStats.dispatches += batch.length;
      const errs = [await device.popErrorScope(), await device.popErrorScope(), await device.popErrorScope()];
      const kinds = ['internal', 'out-of-memory', 'validation'] as const;
      const firstErr = errs.findIndex((e) => e !== null);
      if (firstErr >= 0) throw new GpuFailureError(kernel.name, kinds[firstErr], errs[firstErr]!.message);
      const lost = this.gpu!.unusableReason;
      if (lost) throw new GpuFailureError(kernel.name, 'device-lost', lost);
      const maps = staged.map((s) => s.staging.buffer.mapAsync(GPUMapMode.READ, 0, s.staging.bytes));
      if (ts) maps.push(ts.staging.mapAsync(GPUMapMode.READ, 0, 16));
      try {
        await Promise.all(maps);
      } catch (err) {
        throw new GpuFailureError(kernel.name, this.gpu!.unusableReason ? 'device-lost' : 'map-failed', describeError(err), { cause: err });
      }
      mapped = true;
      for (const st of staged) {
        const words = new Uint32Array(st.staging.buffer.getMappedRange(0, st.staging.bytes));
        for (const p of st.dispatch.pieces) {
          const n = p.piece.words[st.stream] ?? 0;
          const off = p.offsets[st.stream];
          (regions[p.job][p.index] ??= {})[st.stream] = words.slice(off, off + n);
        }
        readBack += st.staging.bytes;
      }
      let ns: number | null = null;
      if (ts) {
        const t = new BigUint64Array(ts.staging.getMappedRange(0, 16));
        const d = t[1] - t[0];
        ns = d > 0n ? Number(d) / this.opts.timingRepeats : 0;
      }
      return ns;
    } finally {
      if (mapped) {
        for (const st of staged) st.staging.buffer.unmap();
        if (this.timestampQuery && this.timestampQuery.staging.mapState === 'mapped') this.timestampQuery.staging.unmap();
      } else {
        // Failure path: scopes may still be open if we threw before popping them.
        for (let i = 0; i < 3; i++) {
          try {
            await device.popErrorScope();
          } catch {
            break;
          }
        }
        for (const st of staged) if (st.staging.buffer.mapState === 'mapped') st.staging.buffer.unmap();
      }
      for (const b of used) pool.release(b);
      ks.bytesUploaded += uploaded;
      ks.bytesReadBack += readBack;
      this.runStats.bytesUploaded += uploaded;
      this.runStats.bytesReadBack += readBack;
    }
  }

  /**
   * Writes a stream's uploads. Many small uploads are gathered into one host array and written
   * once (a writeBuffer call costs far more than copying a few KiB); big ones go straight through.
   */
  private upload(queue: GPUQueue, buf: GPUBuffer, stream: string, dispatch: Dispatch): number {
    const parts: Array<{ at: number; data: ArrayBufferView }> = [];
    for (const p of dispatch.pieces) {
      for (const u of p.piece.uploads) {
        // Deno's wgpu panics on zero-byte writes; there is nothing to write anyway.
        if (u.stream === stream && u.data.byteLength > 0) parts.push({ at: (p.offsets[stream] + u.at) * 4, data: u.data });
      }
    }
    let bytes = 0;
    for (const p of parts) bytes += p.data.byteLength;
    const bytesOf = (d: ArrayBufferView) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    if (parts.length > GATHER_MIN_PARTS && bytes / parts.length < GATHER_MAX_AVERAGE_BYTES) {
      const end = Math.max(...parts.map((p) => p.at + p.data.byteLength));
      const host = new Uint8Array(Math.ceil(end / 4) * 4);
      for (const p of parts) host.set(bytesOf(p.data), p.at);
      queue.writeBuffer(buf, 0, host);
      return bytes;
    }
    for (const { at, data } of parts) {
      if (data.byteLength % 4 === 0) {
        queue.writeBuffer(buf, at, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
      } else {
        const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
        padded.set(bytesOf(data));
        queue.writeBuffer(buf, at, padded);
      }
    }
    return bytes;
  }

  private timestamps(): { set: GPUQuerySet; resolve: GPUBuffer; staging: GPUBuffer } | null {
    if (!this.gpu!.acquired.timestamps) return null;
    if (!this.timestampQuery) {
      const device = this.gpu!.device;
      this.timestampQuery = {
        set: device.createQuerySet({ type: 'timestamp', count: 2 }),
        resolve: device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        staging: device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      };
    }
    return this.timestampQuery;
  }

  /** Releases every GPU resource; nothing stays mapped. Safe to call twice. */
  dispose(): void {
    this.pool?.destroyAll();
    if (this.timestampQuery) {
      this.timestampQuery.set.destroy();
      this.timestampQuery.resolve.destroy();
      this.timestampQuery.staging.destroy();
      this.timestampQuery = null;
    }
    this.gpu?.dispose();
  }
}
