/**
 * The k-means dynamic programs of many groups, spread over this thread and worker threads (one
 * per further core) when there is enough work. The same function solves every problem wherever it
 * runs, so results do not depend on the thread count.
 *
 * Workers cost ~80 ms to start (module loading, WebAssembly instantiation) and on a 2-core machine
 * that used to eat the gain: a pool is therefore started early (`DpPool.start`, when the palettize
 * pass begins), so the workers load while the weights are read and counted, and this thread solves
 * a share of the problems instead of waiting.
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

export class DpPool {
  private constructor(private readonly workers: Worker[], private readonly minWork: number) {}

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

  /** Solves `problems` on this thread and the workers, the longest first, each to the least loaded thread. */
  async solve(problems: readonly PartitionProblem[], minWork = this.minWork): Promise<{ solved: Solved[]; threads: number }> {
    const cost = problems.map((p) => p.k * p.values.length);
    const work = cost.reduce((a, b) => a + b, 0);
    const threads = Math.min(this.threads, problems.length);
    if (threads < 2 || work < minWork) return { solved: problems.map(solvePartition), threads: 1 };
    const order = problems.map((_, i) => i).sort((a, b) => cost[b] - cost[a]);
    const load = new Array<number>(threads).fill(0);
    const share: number[][] = Array.from({ length: threads }, () => []);
    for (const i of order) {
      const t = load.indexOf(Math.min(...load));
      share[t].push(i);
      load[t] += cost[i];
    }
    const solved = new Array<Solved>(problems.length);
    // Post the workers' shares first, then solve share 0 here while they run.
    const pending = share.slice(1).map((idx, t) => new Promise<void>((resolve, reject) => {
      const w = this.workers[t];
      const onError = (err: Error) => reject(err);
      w.once('error', onError);
      w.once('message', (out: Solved[]) => {
        w.off('error', onError);
        out.forEach((s, j) => (solved[idx[j]] = s));
        resolve();
      });
      w.postMessage(idx.map((i) => problems[i]));
    }));
    for (const i of share[0]) solved[i] = solvePartition(problems[i]);
    await Promise.all(pending);
    return { solved, threads };
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
