/**
 * The k-means dynamic programs of many groups, spread over worker threads (one per core, at most
 * one per problem) when there is enough work; on this thread otherwise. The same function solves
 * every problem wherever it runs, so results do not depend on the thread count.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../../package-root.ts';
import { defaultThreads } from '../../threads.ts';
import { solvePartition, type PartitionProblem, type Solved } from './kmeans1d.ts';

export interface PoolOptions {
  /** Worker threads (default: MODELPRESS_THREADS, else the machine's available parallelism). */
  threads?: number;
  /**
   * Below this much work (Σ k · distinct values) the problems are solved on this thread: starting
   * workers costs ~80 ms and their code runs cold, so measured on ResNet-18 (2 cores) threads only
   * paid off from ~1.5e7 (4-bit per tensor, ~5e6: 0.61 s on one thread, 0.72 s on two).
   */
  minWork?: number;
}

/** The compiled worker (dist/): the TypeScript sources cannot run in a worker under plain Node. */
export function workerScript(): string | null {
  const path = join(packageRoot(), 'dist', 'src', 'passes', 'palettize', 'dp-worker.js');
  return existsSync(path) ? path : null;
}

export async function solvePartitions(problems: readonly PartitionProblem[], o: PoolOptions = {}): Promise<{ solved: Solved[]; threads: number }> {
  const cost = problems.map((p) => p.k * p.values.length);
  const work = cost.reduce((a, b) => a + b, 0);
  const script = workerScript();
  const threads = Math.min(o.threads ?? defaultThreads(), problems.length);
  if (!script || threads < 2 || work < (o.minWork ?? 1.5e7)) return { solved: problems.map(solvePartition), threads: 1 };
  // Longest problems first, each to the least loaded thread.
  const order = problems.map((_, i) => i).sort((a, b) => cost[b] - cost[a]);
  const load = new Array<number>(threads).fill(0);
  const share: number[][] = Array.from({ length: threads }, () => []);
  for (const i of order) {
    const t = load.indexOf(Math.min(...load));
    share[t].push(i);
    load[t] += cost[i];
  }
  const solved = new Array<Solved>(problems.length);
  await Promise.all(share.map((idx) => new Promise<void>((resolve, reject) => {
    const w = new Worker(script);
    w.once('message', (out: Solved[]) => {
      out.forEach((s, j) => (solved[idx[j]] = s));
      void w.terminate();
      resolve();
    });
    w.once('error', reject);
    w.postMessage(idx.map((i) => problems[i]));
  })));
  return { solved, threads };
}
