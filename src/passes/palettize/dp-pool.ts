/**
 * The k-means dynamic programs of many groups, spread over this thread and worker threads (one
 * per further core) when there is enough work. The same function solves every problem wherever it
 * runs, so results do not depend on the thread count.
 *
 * Workers cost ~40-80 ms of a core to start (Node's bootstrap, module loading, WebAssembly
 * instantiation and warm-up); on a 2-core machine that used to eat the gain. So the palettize pass
 * uses the process's pool (`DpPool.shared`), started by its first pass while the weights are read
 * and kept for later ones, and every thread — this one included — takes the next problem from a
 * shared counter: a worker that is still starting takes fewer, and nobody waits on a fixed share.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../../package-root.ts';
import { defaultThreads } from '../../threads.ts';
import { solvePartition, type PartitionProblem, type Solved } from './kmeans1d.ts';

export interface PoolOptions {
  /** Threads in all, this one included (default: MODELPRESS_THREADS, else the machine's available parallelism). */
  threads?: number;
  /**
   * Below this much work (Σ k · distinct values) the problems are solved on this thread alone:
   * a message round trip and a cold worker's first calls cost more than small programs.
   */
  minWork?: number;
}

/** Default `minWork` with a warm pool (ResNet-18 at 4 bits per tensor: ~5e6). */
const MIN_WORK = 1e6;

/** The compiled worker (dist/): the TypeScript sources cannot run in a worker under plain Node. */
export function workerScript(): string | null {
  const path = join(packageRoot(), 'dist', 'src', 'passes', 'palettize', 'dp-worker.js');
  return existsSync(path) ? path : null;
}

/** A job for the workers: they take problems in `order` from the shared counter `next`. */
export interface JobMessage {
  job: number;
  order: number[];
  problems: readonly PartitionProblem[];
  next: Int32Array;
}

/** One problem solved by a worker. */
export interface SolvedMessage {
  job: number;
  index: number;
  solved: Solved;
}

export class DpPool {
  private jobs = 0;
  private broken = false;
  private constructor(private readonly workers: Worker[], private readonly minWork: number) {}

  private static process: DpPool | null | undefined;

  /**
   * The process's pool, started on first use and kept (its idle workers do not keep the process
   * alive): a worker's start-up (Node's bootstrap, module loading, WebAssembly compilation and
   * warm-up) costs ~40-80 ms of a core, which every palettize pass paid again when each started its
   * own (ResNet-18 at 4 bits: ~370 -> ~290 ms a run after the first). Null on one core or without
   * the compiled worker; replaced if a worker failed.
   */
  static shared(): DpPool | null {
    if (DpPool.process === undefined || DpPool.process?.broken) DpPool.process = DpPool.start();
    return DpPool.process;
  }

  /** Ends the process's pool (a long-running host that is done palettizing frees its workers); the next use starts a new one. */
  static async closeShared(): Promise<void> {
    const p = DpPool.process;
    DpPool.process = undefined;
    await p?.close();
  }

  /**
   * Starts threads − 1 workers now (they warm up in the background); null on one core or without
   * the compiled worker. Calls with less work than `minWork` stay on this thread.
   */
  static start(threads = defaultThreads(), minWork = MIN_WORK): DpPool | null {
    const script = workerScript();
    if (!script || threads < 2) return null;
    const workers = Array.from({ length: threads - 1 }, () => new Worker(script));
    // Idle workers must not keep the process alive if a caller forgets close().
    for (const w of workers) w.unref();
    return new DpPool(workers, minWork);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Solves `problems` on this thread and the workers, the longest first: every thread takes the
   * next unsolved problem from a shared counter, so a worker still starting (or slowed by other
   * work on the machine) takes fewer, and this thread never waits for a share it could have done.
   */
  async solve(problems: readonly PartitionProblem[], minWork = this.minWork): Promise<{ solved: Solved[]; threads: number; byWorkers: number }> {
    const cost = problems.map((p) => p.k * p.values.length);
    const work = cost.reduce((a, b) => a + b, 0);
    const threads = Math.min(this.threads, problems.length);
    if (threads < 2 || work < minWork) return { solved: problems.map(solvePartition), threads: 1, byWorkers: 0 };
    const order = problems.map((_, i) => i).sort((a, b) => cost[b] - cost[a]);
    const next = new Int32Array(new SharedArrayBuffer(4));
    const job = ++this.jobs;
    const solved = new Array<Solved>(problems.length);
    let remaining = problems.length;
    let byWorkers = 0;
    let settle!: (err?: Error) => void;
    const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    const onMessage = (m: SolvedMessage) => {
      if (m.job !== job) return;
      solved[m.index] = m.solved;
      byWorkers++;
      if (--remaining === 0) settle();
    };
    const onError = (err: Error) => {
      this.broken = true;
      settle(err);
    };
    const workers = this.workers.slice(0, threads - 1);
    for (const w of workers) {
      // Referenced while a job is out: the process must wait for the worker's answers.
      w.ref();
      w.on('message', onMessage);
      w.on('error', onError);
      w.postMessage({ job, order, problems, next } satisfies JobMessage);
    }
    try {
      for (let t; (t = Atomics.add(next, 0, 1)) < order.length; ) {
        solved[order[t]] = solvePartition(problems[order[t]]);
        remaining--;
      }
      if (remaining > 0) await done;
    } finally {
      for (const w of workers) {
        w.off('message', onMessage);
        w.off('error', onError);
        w.unref();
      }
    }
    return { solved, threads, byWorkers };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Solves `problems` with `pool` when given, else with a pool of its own (closed after) when there is enough work. */
export async function solvePartitions(problems: readonly PartitionProblem[], o: PoolOptions & { pool?: DpPool | null } = {}): Promise<{ solved: Solved[]; threads: number }> {
  if (o.pool) return o.pool.solve(problems, o.minWork);
  const work = problems.reduce((s, p) => s + p.k * p.values.length, 0);
  // A cold pool only pays for large programs (measured before pools were warm: ~1.5e7 on 2 cores).
  if (work < (o.minWork ?? 1.5e7)) return { solved: problems.map(solvePartition), threads: 1 };
  const pool = DpPool.start(Math.min(o.threads ?? defaultThreads(), problems.length));
  if (!pool) return { solved: problems.map(solvePartition), threads: 1 };
  try {
    return await pool.solve(problems, 0);
  } finally {
    await pool.close();
  }
}
