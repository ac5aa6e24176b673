// `modelpress bench`: statistics by nearest rank, the isolated runs, concurrency, CSV/JSON, errors.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { latencyStats, nearestRank, benchmarkModel } from '../src/benchmark/latency.ts';
import { benchmarkModels } from '../src/benchmark/isolated.ts';
import { MNIST, MNIST_DATA } from './helpers/models.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('latency statistics', () => {
  it('percentiles by nearest rank (the ceil(p/100 n)-th smallest value)', () => {
    const ten = [10, 3, 7, 1, 9, 2, 8, 4, 6, 5];
    const s = [...ten].sort((a, b) => a - b);
    expect([50, 90, 95, 99].map((p) => nearestRank(s, p))).toEqual([5, 9, 10, 10]);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    const st = latencyStats(hundred);
    expect([st.p50, st.p90, st.p95, st.p99, st.min, st.max, st.mean]).toEqual([50, 90, 95, 99, 1, 100, 50.5]);
    expect(latencyStats([4]).p99).toBe(4);
    expect(latencyStats([2, 4]).stdev).toBeCloseTo(Math.SQRT2, 12);
  });
  it('drift: the slowest over the fastest median of five consecutive blocks of runs', () => {
    expect(latencyStats(Array.from({ length: 24 }, () => 1)).drift).toBeNull();
    expect(latencyStats(Array.from({ length: 50 }, (_, i) => 1 + (i % 3) * 0.01)).drift).toBe(1);
    // The third block (runs 20-29) ran 1.5x slower: something else had the cores.
    const busy = Array.from({ length: 50 }, (_, i) => (i >= 20 && i < 30 ? 3 : 2));
    expect(latencyStats(busy).drift).toBe(1.5);
  });
});

describe('benchmarkModel', () => {
  it('reports session creation and first run apart, then exactly --runs timed runs', async () => {
    const r = await benchmarkModel(MNIST, { runs: 7, warmup: 2, batch: 4, threads: 1 });
    expect(r.runs).toBe(7);
    expect(r.warmup).toBe(2);
    expect(r.batch).toBe(4);
    expect(r.sessionCreateMs).toBeGreaterThan(0);
    expect(r.firstRunMs).toBeGreaterThan(0);
    const l = r.latencyMs;
    expect(l.min).toBeLessThanOrEqual(l.p50);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    expect(r.throughput.samplesPerS).toBeCloseTo(r.throughput.runsPerS * 4, 6);
    expect(r.environment).toMatchObject({ onnxruntime: expect.stringMatching(/^\d+\.\d+/), executionProvider: 'cpu', intraOpThreads: 1, graphOptimization: 'all' });
    expect(r.environment.logicalCores).toBeGreaterThan(0);
  });
  it('by default: at least 100 runs and at least 2 s of them', async () => {
    const r = await benchmarkModel(MNIST, { warmup: 1 });
    expect(r.runs).toBeGreaterThan(100); // a sub-millisecond model: thousands of runs in 2 s
    expect(r.runs / r.throughput.runsPerS).toBeGreaterThanOrEqual(2);
  });
  it('runs for a duration instead of a count', async () => {
    const r = await benchmarkModel(MNIST, { durationS: 0.3, warmup: 1 });
    expect(r.runs).toBeGreaterThan(1);
    expect(r.runs / r.throughput.runsPerS).toBeGreaterThanOrEqual(0.3);
  });
  it('feeds the first --batch samples of --data', async () => {
    const r = await benchmarkModel(MNIST, { runs: 2, warmup: 0, batch: 3, data: `${MNIST_DATA}/t10k-images-idx3-ubyte` });
    expect(r.batch).toBe(3);
    expect(r.inputs).toMatch(/t10k-images/);
  });
  it('with --concurrency, worker streams share the runs out exactly', async () => {
    const r = await benchmarkModel(MNIST, { runs: 9, warmup: 1, concurrency: 2, threads: 1 });
    expect(r.concurrency).toBe(2);
    expect(r.runs).toBe(9);
  });
});

describe('benchmarkModels (one process per model)', () => {
  it('compares against the first model', async () => {
    const c = await benchmarkModels([MNIST, MNIST], { runs: 5, warmup: 1 });
    expect(c.isolated).toBe(true);
    expect(c.results).toHaveLength(2);
    expect(c.ratios[0]).toMatchObject({ speedup: 1, sizeRatio: 1 });
    expect(c.ratios[1].sizeRatio).toBe(1);
    expect(c.ratios[1].speedup).toBeCloseTo(c.results[0].latencyMs.p50 / c.results[1].latencyMs.p50, 12);
    // A fresh process per model: the peak includes the session, above what Node started with.
    for (const r of c.results) expect(r.rssMiB.peak).toBeGreaterThan(r.rssMiB.before);
  });
});

describe('interleaved runs', () => {
  it('several models in one process, runs round-robin, the same count each', async () => {
    const c = await benchmarkModels([MNIST, MNIST], { runs: 6, warmup: 1, interleave: true });
    expect(c.interleaved).toBe(true);
    expect(c.results.map((r) => r.runs)).toEqual([6, 6]);
    expect(c.results[0].rssMiB.peak).toBe(c.results[1].rssMiB.peak);
    await expect(benchmarkModels([MNIST], { interleave: true, concurrency: 2 })).rejects.toThrow(/interleaved runs measure one stream/);
  });
});

describe('modelpress bench', () => {
  it('--csv: a header and one row per model', () => {
    const r = run(['bench', MNIST, MNIST, '--runs', '3', '--warmup', '1', '--csv', '-q']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0].split(',').slice(0, 9)).toEqual(['model', 'bytes', 'batch', 'concurrency', 'warmup', 'runs', 'session_create_ms', 'first_run_ms', 'p50_ms']);
    expect(lines[1].split(',')[5]).toBe('3');
  });
  it('prints the environment and the table', () => {
    const r = run(['bench', MNIST, '--runs', '3', '--warmup', '0']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^environment: .*ONNX Runtime \d+\.\d+\.\d+, cpu EP/m);
    expect(r.stdout).toMatch(/^runs: 0 warm-up excluded, 3 timed, batch 1, concurrency 1/m);
    expect(r.stdout).toMatch(/p50 ms +p90 ms +p95 ms +p99 ms/);
    expect(r.stderr).toMatch(/benchmarking 1\/1/);
  });
  it('refuses bad input with one clear line', () => {
    const cases: Array<[string[], RegExp]> = [
      [['bench', 'missing.onnx'], /model not found: missing\.onnx/],
      [['bench', MNIST, '--runs', '3', '--duration', '1'], /give --runs or --duration, not both/],
      [['bench', MNIST, '--runs', '0'], /--runs needs an integer ≥ 1, got 0/],
      [['bench', MNIST, '--json', '--csv'], /give --json or --csv, not both/],
      [['bench', MNIST, '--shape', 'x'], /--shape x: expected name=d0,d1/],
      [['bench', 'package.json', '--runs', '1'], /package\.json is not a valid ONNX model/],
    ];
    for (const [args, msg] of cases) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    }
  });
});
