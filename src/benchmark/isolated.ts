/**
 * Benchmarks of several models, each in a fresh Node process (child.ts), one after the other so
 * they never compete for cores; then one comparison against the first model.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, ModelpressError, type ErrorCode } from '../errors.ts';
import { packageRoot } from '../package-root.ts';
import { benchmarkModel, checkBenchOptions, type BenchOptions, type BenchResult } from './latency.ts';

export interface BenchComparison {
  results: BenchResult[];
  /** Per model, against the first: p50 speed-up (first p50 / this p50) and size ratio (this / first). */
  ratios: Array<{ model: string; speedup: number; sizeRatio: number; throughputRatio: number }>;
  /** Whether each model ran in a process of its own (false when the compiled child is missing). */
  isolated: boolean;
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

/** One model in a child process; in this process when the compiled child is not there. */
export async function benchmarkIsolated(path: string, o: BenchOptions = {}): Promise<{ result: BenchResult; isolated: boolean }> {
  checkBenchOptions(o);
  if (!existsSync(path)) throw new DataError(`model not found: ${path}`, { path });
  const script = childScript();
  if (!script) return { result: await benchmarkModel(path, o), isolated: false };
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script, JSON.stringify({ path, options: o })], { maxBuffer: 64 * 1024 * 1024, env: process.env }, (err, stdout, stderr) => {
      if (err && !stdout) reject(new DataError(`the benchmark of ${path} stopped: ${(stderr || err.message).trim().split('\n').slice(-3).join(' ')}`, { path }));
      else resolve(stdout);
    });
  });
  const last = out.trim().split('\n').pop() ?? '';
  const msg = JSON.parse(last) as { result?: BenchResult; error?: string; code?: ErrorCode | 'INTERNAL' };
  if (msg.error) throw msg.code && msg.code !== 'INTERNAL' ? new ChildBenchError(msg.code, msg.error) : new DataError(`the benchmark of ${path} failed: ${msg.error}`, { path });
  return { result: msg.result!, isolated: true };
}

export async function benchmarkModels(paths: readonly string[], o: BenchOptions = {}, onModel?: (i: number, total: number, path: string) => void): Promise<BenchComparison> {
  if (!paths.length) throw new DataError('no model to benchmark');
  checkBenchOptions(o);
  for (const p of paths) if (!existsSync(p)) throw new DataError(`model not found: ${p}`, { path: p });
  const results: BenchResult[] = [];
  let isolated = true;
  for (const [i, p] of paths.entries()) {
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
  };
}
