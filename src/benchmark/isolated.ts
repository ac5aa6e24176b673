/**
 * Benchmarks of several models, each in a fresh Node process (child.ts), one after the other so
 * they never compete for cores; then one comparison against the first model.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, ModelpressError, type ErrorCode } from '../errors.ts';
import { packageRoot } from '../package-root.ts';
import { benchmarkInterleaved, benchmarkModel, checkBenchOptions, type BenchOptions, type BenchResult } from './latency.ts';

export interface BenchComparison {
  results: BenchResult[];
  /** Per model, against the first: p50 speed-up (first p50 / this p50) and size ratio (this / first). */
  ratios: Array<{ model: string; speedup: number; sizeRatio: number; throughputRatio: number }>;
  /** Whether each model ran in a process of its own (false with interleave, or when the compiled child is missing). */
  isolated: boolean;
  /** Whether the models' runs were interleaved in one process. */
  interleaved: boolean;
}

function childScript(): string | null {
  const p = join(packageRoot(), 'dist', 'src', 'benchmark', 'child.js');
  return existsSync(p) ? p : null;
}

class ChildBenchError extends ModelpressError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'BenchError';
  }
}

async function runChild(request: { path?: string; paths?: string[]; options: BenchOptions }, label: string): Promise<{ result?: BenchResult; results?: BenchResult[] }> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [childScript()!, JSON.stringify(request)], { maxBuffer: 64 * 1024 * 1024, env: process.env }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new DataError(`the benchmark of ${label} stopped: ${(stderr || err.message).trim().split('\n').slice(-3).join(' ')}`, { path: label }));
      else resolve(stdout);
    });
  });
  const msg = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { result?: BenchResult; results?: BenchResult[]; error?: string; code?: ErrorCode | 'INTERNAL' };
  if (msg.error) throw msg.code && msg.code !== 'INTERNAL' ? new ChildBenchError(msg.code, msg.error) : new DataError(`the benchmark of ${label} failed: ${msg.error}`, { path: label });
  return msg;
}

/** One model in a child process; in this process when the compiled child is not there. */
export async function benchmarkIsolated(path: string, o: BenchOptions = {}): Promise<{ result: BenchResult; isolated: boolean }> {
  checkBenchOptions(o);
  if (!existsSync(path)) throw new DataError(`model not found: ${path}`, { path });
  if (!childScript()) return { result: await benchmarkModel(path, o), isolated: false };
  return { result: (await runChild({ path, options: o }, path)).result!, isolated: true };
}

/** Several models interleaved in one child process (benchmarkInterleaved): for ratios between them. */
export async function benchmarkInterleavedIsolated(paths: readonly string[], o: BenchOptions = {}): Promise<{ results: BenchResult[]; isolated: boolean }> {
  checkBenchOptions(o);
  for (const p of paths) if (!existsSync(p)) throw new DataError(`model not found: ${p}`, { path: p });
  if (!childScript()) return { results: await benchmarkInterleaved(paths, o), isolated: false };
  return { results: (await runChild({ paths: [...paths], options: o }, paths.join(', '))).results!, isolated: true };
}

/**
 * The `bench` command: each model in a process of its own, one after the other — or, with
 * `interleave`, all of them in one process with their runs interleaved (ratios robust to drifting
 * load; one peak RSS for all).
 */
export async function benchmarkModels(paths: readonly string[], o: BenchOptions & { interleave?: boolean } = {}, onModel?: (i: number, total: number, path: string) => void): Promise<BenchComparison> {
  if (!paths.length) throw new DataError('no model to benchmark');
  const { interleave, ...opts } = o;
  o = opts;
  checkBenchOptions(o);
  for (const p of paths) if (!existsSync(p)) throw new DataError(`model not found: ${p}`, { path: p });
  const results: BenchResult[] = [];
  let isolated = true;
  if (interleave) {
    onModel?.(0, 1, paths.join(', '));
    const r = await benchmarkInterleavedIsolated(paths, o);
    results.push(...r.results);
    isolated = false;
  }
  for (const [i, p] of (interleave ? [] : paths).entries()) {
    onModel?.(i, paths.length, p);
    const r = await benchmarkIsolated(p, o);
    results.push(r.result);
    isolated &&= r.isolated;
  }
  const first = results[0];
  return {
    results,
    ratios: results.map((r) => ({
      model: r.model,
      speedup: first.latencyMs.p50 / r.latencyMs.p50,
      sizeRatio: r.bytes / first.bytes,
      throughputRatio: r.throughput.samplesPerS / first.throughput.samplesPerS,
    })),
    isolated,
    interleaved: Boolean(interleave),
  };
}
