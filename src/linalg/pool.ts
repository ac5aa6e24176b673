/**
 * The blocked f64 kernels spread over worker threads. The caller's API stays synchronous: this
 * thread posts a step, takes its own share, and waits for the others with Atomics.wait (allowed
 * on Node's main thread). Operands live in SharedArrayBuffers (`sharedF64`); a session binds them
 * once (one postMessage), then each step costs two atomic wake-ups. Without a second core, the
 * compiled worker (dist/) or shared operands, everything runs on this thread with the same code,
 * so the results do not depend on the thread count: each output tile is computed by one thread,
 * in the same order.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../package-root.ts';
import { defaultThreads } from '../threads.ts';
import { runStep, CTL, OP, type Bound } from './pool-steps.ts';
import { WorkerFailureError } from '../errors.ts';

/**
 * Shared buffers handed back by releaseF64, by byte length, for the next sharedF64 of that size:
 * the garbage collector frees SharedArrayBuffers late, and a GPTQ run allocates several n×n
 * scratch matrices per layer (peak RSS 3.8 GB on ResNet-18 without reuse, 2.1 GB unshared).
 */
const free = new Map<number, SharedArrayBuffer[]>();
let freeBytes = 0;
/** Most bytes kept for reuse; beyond it released buffers are left to the collector. */
const FREE_LIMIT = 768 << 20;

/** A zeroed Float64Array in shared memory (other threads can work on it). */
export function sharedF64(length: number): Float64Array {
  const bytes = 8 * Math.max(1, length);
  const reused = free.get(bytes)?.pop();
  if (reused) {
    freeBytes -= bytes;
    return new Float64Array(reused, 0, length).fill(0);
  }
  return new Float64Array(new SharedArrayBuffer(bytes), 0, length);
}

/**
 * Hands shared arrays back for reuse (plain arrays are ignored). The caller must hold no other
 * view of them: their memory is given out again, zeroed, by a later sharedF64.
 */
export function releaseF64(...arrays: Array<Float64Array | null | undefined>): void {
  const seen = new Set<SharedArrayBuffer>();
  for (const a of arrays) {
    if (!a || !(a.buffer instanceof SharedArrayBuffer) || seen.has(a.buffer)) continue;
    seen.add(a.buffer);
    const bytes = a.buffer.byteLength;
    if (freeBytes + bytes > FREE_LIMIT) continue;
    const list = free.get(bytes) ?? [];
    list.push(a.buffer);
    free.set(bytes, list);
    freeBytes += bytes;
  }
}

export const isShared = (a: Float64Array) => a.buffer instanceof SharedArrayBuffer;

/** Operands smaller than this run on one thread: a step's wake-ups cost more than the work. */
export const MIN_PARALLEL_N = 384;

/** A zeroed working array for an n-sized problem: shared (pool-ready) from MIN_PARALLEL_N on, plain below. */
export function f64For(length: number, n: number): Float64Array {
  return n >= MIN_PARALLEL_N ? sharedF64(length) : new Float64Array(length);
}

/** A zeroed working array that goes where `like` goes: shared when it is. */
export function f64Like(like: Float64Array, length: number): Float64Array {
  return isShared(like) ? sharedF64(length) : new Float64Array(length);
}

/** No worker progress for this long means one is gone (a step takes well under a second). */
const STALL_MS = 60_000;

class Pool {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4 * CTL.WORDS));
  private readonly workers: Worker[] = [];
  private bound: Bound | null = null;
  /** A worker failed or stopped answering: the pool is not used again. */
  broken = false;

  constructor(script: string, readonly threads: number) {
    for (let i = 1; i < threads; i++) {
      const w = new Worker(script, { workerData: { ctl: this.ctl, index: i, threads } });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Waits until ctl[word] reaches `target`; throws if the workers stop making progress. */
  private waitFor(word: number, target: number, what: string): void {
    const ctl = this.ctl;
    let seen = Atomics.load(ctl, word);
    let since = performance.now();
    while (seen < target) {
      Atomics.wait(ctl, word, seen, 1000);
      const now = Atomics.load(ctl, word);
      if (now !== seen) {
        seen = now;
        since = performance.now();
      } else if (performance.now() - since > STALL_MS) {
        this.broken = true;
        throw new WorkerFailureError(`linear-algebra pool: ${target - seen} of ${this.workers.length} worker threads stopped answering (${what})`);
      }
    }
  }

  /** A session is running (its workers are not listening for another): nested work stays on this thread. */
  get busy(): boolean {
    return this.bound !== null;
  }

  /** Runs `fn` with `arrays` visible to every thread as slots 0, 1, …; `step` runs one step everywhere. */
  session<T>(arrays: Float64Array[], fn: (step: (op: number, params: number[]) => void) => T): T {
    const ctl = this.ctl;
    Atomics.store(ctl, CTL.READY, 0);
    Atomics.store(ctl, CTL.FAILED, 0);
    for (const w of this.workers) w.postMessage({ arrays });
    // Every worker has its views before the first step.
    this.waitFor(CTL.READY, this.workers.length, 'starting');
    this.bound = { arrays, scratch: new Float64Array(64 * 64) };
    const step = (op: number, params: number[]) => {
      for (let i = 0; i < params.length; i++) ctl[CTL.PARAMS + i] = params[i];
      ctl[CTL.OP] = op;
      Atomics.store(ctl, CTL.DONE, 0);
      Atomics.add(ctl, CTL.GEN, 1);
      Atomics.notify(ctl, CTL.GEN);
      runStep(this.bound!, ctl, 0, this.threads);
      this.waitFor(CTL.DONE, this.workers.length, `step ${op}`);
      if (Atomics.load(ctl, CTL.FAILED)) {
        this.broken = true;
        throw new WorkerFailureError(`linear-algebra pool: a worker thread failed in step ${op} (its error is printed above)`);
      }
    };
    try {
      return fn(step);
    } finally {
      // Workers go back to their event loops (not after a failure: the result is abandoned anyway).
      if (!this.broken) step(OP.RELEASE, []);
      this.bound = null;
    }
  }
}

let pool: Pool | null | undefined;

/** The process's pool (started on first use), or null when only this thread can work. */
function getPool(): Pool | null {
  if (pool !== undefined) return pool;
  const threads = defaultThreads();
  const script = join(packageRoot(), 'dist', 'src', 'linalg', 'pool-worker.js');
  pool = threads >= 2 && existsSync(script) ? new Pool(script, threads) : null;
  return pool;
}

/** Threads the pool works with (1 when the work stays on this thread). */
export function poolThreads(): number {
  return getPool()?.threads ?? 1;
}

/**
 * Runs `fn` with a `step(op, params)` that executes a pool step on every thread over `arrays`
 * (slot order), or on this thread alone when there is no pool, the operands are small, or not
 * all of them are shared.
 */
export function withThreads<T>(arrays: Float64Array[], n: number, fn: (step: (op: number, params: number[]) => void) => T): T {
  const p = n >= MIN_PARALLEL_N && arrays.every(isShared) ? getPool() : null;
  if (p?.broken) pool = null;
  if (p && !p.broken && !p.busy) return p.session(arrays, fn);
  const ctl = new Int32Array(CTL.WORDS);
  const bound: Bound = { arrays, scratch: new Float64Array(64 * 64) };
  return fn((op, params) => {
    for (let i = 0; i < params.length; i++) ctl[CTL.PARAMS + i] = params[i];
    ctl[CTL.OP] = op;
    runStep(bound, ctl, 0, 1);
  });
}
