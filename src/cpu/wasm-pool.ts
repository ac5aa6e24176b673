/**
 * The WebAssembly kernels on worker threads. Each worker instantiates the shared-memory build of
 * the module on the engine's own memory, so tensors resident there are read in place by every
 * thread. A call is cut into units (wasm-units.ts): this thread posts the call, takes units
 * itself, and waits with Atomics.wait for the ones the workers took. The caller's API stays
 * synchronous. Workers start in the background and join calls once they are listening; until
 * then this thread runs every unit (the results are the same either way).
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { WorkerFailureError } from '../errors.ts';
import { CTL, firstClaim, runUnits, unitSpan, type Exports } from './wasm-units.ts';

/** No progress for this long means a worker is gone (a unit takes well under a millisecond). */
const STALL_MS = 60_000;

/**
 * Runs a call's units: on this thread alone, or shared with workers. `begin` posts a call (the
 * workers start on it), `end` takes units on this thread too and returns when all are done, so
 * the caller can do other work in between (copy out the previous call's output); `run` is both.
 */
export interface UnitRunner {
  /** Threads that can take units (1: this thread only). */
  readonly threads: number;
  begin(op: number, start: number, end: number, params: readonly number[]): void;
  end(): void;
  run(op: number, start: number, end: number, params: readonly number[]): void;
}

/** Every unit on the calling thread (no workers, or a memory that is not shared): `end` runs them. */
export class LocalUnits implements UnitRunner {
  readonly threads = 1;
  private readonly ctl = new Int32Array(CTL.WORDS);
  private calls = 0;

  constructor(private readonly x: Exports) {}

  begin(op: number, start: number, end: number, params: readonly number[]): void {
    post(this.ctl, op, start, end, params, ++this.calls);
  }

  end(): void {
    const failure = runUnits(this.x, this.ctl, 0);
    if (failure) throw failure;
  }

  run(op: number, start: number, end: number, params: readonly number[]): void {
    this.begin(op, start, end, params);
    this.end();
  }
}

function post(ctl: Int32Array, op: number, start: number, end: number, params: readonly number[], call: number, staticThreads = 0): void {
  for (let i = 0; i < params.length; i++) ctl[CTL.PARAMS + i] = params[i];
  ctl[CTL.STATIC] = staticThreads;
  ctl[CTL.OP] = op;
  ctl[CTL.START] = start;
  ctl[CTL.END] = end;
  Atomics.store(ctl, CTL.FAILED, 0);
  Atomics.store(ctl, CTL.FINISHED, 0);
  // Publishing the call's first claim word makes its units claimable (and the words above visible).
  Atomics.store(ctl, CTL.NEXT, firstClaim(call));
}

export class WasmPool implements UnitRunner {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4 * CTL.WORDS));
  private readonly workers: Worker[] = [];
  private calls = 0;
  /** A worker failed or stopped answering: the engine stops using the pool. */
  broken = false;
  /** Tests: false leaves every unit to the workers (once one listens), so they certainly run some. */
  callerWorks = true;
  /**
   * Tests: thread t takes exactly the units k ≡ t (mod threads), so every thread certainly works
   * on every call of several units (used once all workers listen).
   */
  staticSplit = false;

  constructor(private readonly x: Exports, module: WebAssembly.Module, memory: WebAssembly.Memory, script: string, readonly threads: number) {
    for (let index = 1; index < threads; index++) {
      const w = new Worker(script, { workerData: { module, memory, ctl: this.ctl, index } });
      w.unref();
      // A worker that dies before listening is simply never counted as ready.
      w.on('error', (err) => {
        this.broken = true;
        console.error(`modelpress WebAssembly worker ${index}:`, err);
      });
      this.workers.push(w);
    }
  }

  /** Stops the workers. */
  close(): void {
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }

  /** Workers listening for calls (they start in the background). */
  get ready(): number {
    return Atomics.load(this.ctl, CTL.READY);
  }

  /** Waits (tests, benchmarks) until every worker listens, or `ms` pass; returns how many do. */
  waitReady(ms = 10_000): number {
    const until = performance.now() + ms;
    let seen = this.ready;
    while (seen < this.workers.length && performance.now() < until && !this.broken) {
      Atomics.wait(this.ctl, CTL.READY, seen, 50);
      seen = this.ready;
    }
    return seen;
  }

  private count = 0;
  private op = 0;
  /** Whether begin() woke the workers for this call (else this thread runs every unit). */
  private woken = false;

  begin(op: number, start: number, end: number, params: readonly number[]): void {
    const ctl = this.ctl;
    const split = this.staticSplit && this.ready === this.workers.length ? this.threads : 0;
    post(ctl, op, start, end, params, ++this.calls, split);
    this.count = unitSpan(start, end).count;
    this.op = op;
    this.woken = this.ready > 0 && (this.count > 1 || !this.callerWorks || split > 0);
    if (this.woken) {
      Atomics.add(ctl, CTL.GEN, 1);
      Atomics.notify(ctl, CTL.GEN);
    }
  }

  end(): void {
    const { ctl, count, op } = this;
    // This thread's own failure is thrown only once the call is complete (no worker still on it).
    const failure = this.callerWorks || !this.woken || ctl[CTL.STATIC] > 0 ? runUnits(this.x, ctl, 0) : null;
    let seen = Atomics.load(ctl, CTL.FINISHED);
    let since = performance.now();
    while (seen < count) {
      Atomics.wait(ctl, CTL.FINISHED, seen, 1000);
      const now = Atomics.load(ctl, CTL.FINISHED);
      if (now !== seen) {
        seen = now;
        since = performance.now();
      } else if (performance.now() - since > STALL_MS) {
        this.broken = true;
        throw new WorkerFailureError(`WebAssembly kernel pool: ${count - seen} units of op ${op} were never finished (a worker thread stopped answering)`);
      }
    }
    if (failure) throw failure;
    if (Atomics.load(ctl, CTL.FAILED)) {
      this.broken = true;
      throw new WorkerFailureError(`WebAssembly kernel pool: a worker thread failed in op ${op} (its error is printed above)`);
    }
  }

  run(op: number, start: number, end: number, params: readonly number[]): void {
    this.begin(op, start, end, params);
    this.end();
  }
}

/** The compiled worker script, when this is a built tree (tests run the sources after `npm run build`). */
export function workerScript(root: string): string | null {
  const script = `${root}/dist/src/cpu/wasm-worker.js`;
  return existsSync(script) ? script : null;
}
