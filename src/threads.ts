/** Threads a pass may use: MODELPRESS_THREADS when set, else the machine's available parallelism. */
import { availableParallelism } from 'node:os';

export function defaultThreads(): number {
  const env = Number(process.env.MODELPRESS_THREADS);
  return Number.isInteger(env) && env >= 1 ? env : availableParallelism();
}
