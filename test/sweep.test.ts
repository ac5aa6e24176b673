// Sweeps: recipe flags parsed as compress parses them, job ids, the Pareto front, goals and slow
// variants, and a real local sweep on the bundled MNIST CNN (resume, a failing job, pre-flight).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandGrid, flagArgv, jobId, loadSweepFile, parseRecipeFlags } from '../src/sweep/spec.ts';
import { dominates, paretoFront } from '../src/sweep/pareto.ts';
import { jobRow, type Baseline } from '../src/sweep/summary.ts';
import { prepareSweep } from '../src/sweep/prepare.ts';
import { JobRunner, runLocalSweep, type SweepEvent } from '../src/sweep/local.ts';
import type { JobResult } from '../src/sweep/job.ts';
import type { BenchResult } from '../src/benchmark/latency.ts';
import { MNIST, MNIST_DATA } from './helpers/models.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });
const dir = mkdtempSync(join(tmpdir(), 'modelpress-sweep-'));

describe('sweep recipes', () => {
  it('are compress flags in camelCase, parsed by the compress command', () => {
    expect(flagArgv({ pruneMacs: 0.3, symmetric: true, asymmetric: false, exclude: ['Gemm', 'conv1'] })).toEqual(['--prune-macs', '0.3', '--symmetric', '--exclude', 'Gemm', 'conv1']);
    const { flags, targetGiven } = parseRecipeFlags({ name: 'p', flags: { prune: 0.3, weights: 'int4', target: 'qdq' } });
    expect(flags).toMatchObject({ prune: '0.3', weights: 'int4', target: 'qdq' });
    expect(targetGiven).toBe(true);
    expect(parseRecipeFlags({ name: 'd', flags: {} }).targetGiven).toBe(false);
  });
  it('refuses unknown flags, bad choices and flags the sweep sets, naming the recipe', () => {
    expect(() => parseRecipeFlags({ name: 'r1', flags: { weigths: 'int8' } })).toThrow(/recipe 'r1': unknown compress flag 'weigths'; recipe keys are compress's long flags in camelCase: .*weights/);
    expect(() => parseRecipeFlags({ name: 'r2', flags: { weights: 'int9' } })).toThrow(/recipe 'r2': option '--weights <type>' argument 'int9' is invalid\. Allowed choices are int8, uint8, int4, uint4, int3, uint3, fp16/);
    expect(() => parseRecipeFlags({ name: 'r3', flags: { output: 'x.onnx' } })).toThrow(/recipe 'r3': 'output' is set by the sweep itself/);
  });
  it('a grid expands to every combination, named by its settings', () => {
    const g = expandGrid({ palettize: [4, 6], groupSize: [0, 8] }, { minElements: '512' });
    expect(g.map((r) => r.name)).toEqual(['palettize=4,groupSize=0', 'palettize=4,groupSize=8', 'palettize=6,groupSize=0', 'palettize=6,groupSize=8']);
    expect(g[3].flags).toEqual({ minElements: '512', palettize: 6, groupSize: 8 });
    expect(() => expandGrid({ palettize: [] })).toThrow(/grid\.palettize: give a non-empty list/);
  });
  it('a sweep file: paths relative to it, recipes as flags or files, unknown keys refused', () => {
    const f = join(dir, 'sweep.yaml');
    writeFileSync(join(dir, 'r.yaml'), 'weights: int4\n');
    writeFileSync(f, 'models: [m.onnx]\nrecipes:\n  a: { weights: int8 }\n  b: r.yaml\ngoals: { maxDrop: 1 }\n');
    const s = loadSweepFile(f);
    expect(s.models).toEqual([join(dir, 'm.onnx')]);
    expect(s.recipes).toEqual([{ name: 'a', flags: { weights: 'int8' } }, { name: 'b', flags: { recipe: resolve(dir, 'r.yaml') } }]);
    writeFileSync(f, 'models: [m.onnx]\nrecipe: {}\n');
    expect(() => loadSweepFile(f)).toThrow(/Unrecognized key.*"recipe"/);
  });
  it('job ids: stable for the same model, recipe, data and version; different when any changes', () => {
    const spec = { calibration: '/data/calib.npy', bench: { runs: 10 } };
    const r = { name: 'a', flags: { weights: 'int8' } };
    const id = jobId('abc', r, spec, '0.1.0');
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(jobId('abc', { name: 'renamed', flags: { weights: 'int8' } }, { ...spec, calibration: '/elsewhere/calib.npy' }, '0.1.0')).toBe(id);
    expect(jobId('abd', r, spec, '0.1.0')).not.toBe(id);
    expect(jobId('abc', { name: 'a', flags: { weights: 'int4' } }, spec, '0.1.0')).not.toBe(id);
    expect(jobId('abc', r, { ...spec, bench: { runs: 11 } }, '0.1.0')).not.toBe(id);
    expect(jobId('abc', r, spec, '0.2.0')).not.toBe(id);
  });
});

describe('Pareto front', () => {
  it('keeps exactly the non-dominated points', () => {
    const pts = [
      { id: 'a', size: 0.25, latency: 1.0, quality: 98 },
      { id: 'b', size: 0.13, latency: 1.2, quality: 97 },
      { id: 'c', size: 0.25, latency: 1.1, quality: 98 }, // dominated by a
      { id: 'd', size: 0.5, latency: 0.7, quality: 96 },
      { id: 'e', size: 0.5, latency: 0.8, quality: 95 }, // dominated by d
      { id: 'f', size: 0.25, latency: 1.0, quality: 98 }, // equal to a: neither dominates
    ];
    expect(dominates(pts[0], pts[2])).toBe(true);
    expect(dominates(pts[0], pts[5])).toBe(false);
    expect(paretoFront(pts)).toEqual(['a', 'b', 'd', 'f']);
    expect(paretoFront([])).toEqual([]);
  });
});

function fakeBench(p50: number): BenchResult {
  return { latencyMs: { p50 } } as BenchResult;
}

describe('job rows', () => {
  const base: Baseline = { model: MNIST, modelSha256: 'x', bytes: 1000, bench: fakeBench(2) };
  const done = (over: Partial<JobResult>): JobResult => ({
    id: 'j', model: MNIST, modelSha256: 'x', recipe: { name: 'r', flags: {} }, status: 'done', modelpress: '0', host: 'h', startedAt: '', finishedAt: '', timeMs: 1,
    output: 'm.onnx',
    compress: { mode: 'weight-only', passes: ['quantize'], bytesBefore: 1000, bytesAfter: 300, sizeRatio: 0.3, timeMs: 1, worstSqnrDb: 30, macsBefore: 1, macsAfter: 1, backend: 'cpu' },
    quality: { metric: 'accuracy', value: 97, baseline: 98.5, dropPoints: 1.5, samples: 10, inputs: '', outputs: [] },
    bench: fakeBench(1), ...over,
  });
  it('speed-up against the float baseline and the goals each job misses', () => {
    const r = jobRow(dir, 'j', MNIST, 'r', done({}), base, { maxDrop: 1, minSpeedup: 1.5, maxSize: 0.25 });
    expect(r.speedup).toBe(2);
    expect(r.meetsGoals).toBe(false);
    expect(r.missed).toEqual(['drop 1.50 > 1', 'size 0.300 > 0.25']);
    expect(jobRow(dir, 'j', MNIST, 'r', done({}), base, { maxDrop: 2 }).meetsGoals).toBe(true);
  });
  it('flags a variant slower than its float model, naming the cause in its graph', () => {
    const out = join(dir, 'qdq.onnx');
    expect(run(['compress', MNIST, '-o', out, '--format', 'qdq', '--backend', 'cpu', '-q']).status).toBe(0);
    const r = jobRow(dir, 'j', MNIST, 'r', done({ output: 'qdq.onnx', bench: fakeBench(2.5) }), base, {});
    expect(r.speedup).toBeCloseTo(0.8, 12);
    expect(r.slower).toBe(true);
    expect(r.slowerCause).toMatch(/DequantizeLinear/);
    expect(jobRow(dir, 'j', MNIST, 'r', done({ bench: fakeBench(2.05) }), base, {}).slower).toBe(false); // within the 5 % noise margin
    // The interleaved measurement (variant and float in one process) wins over the separate baseline.
    const inter = jobRow(dir, 'j', MNIST, 'r', done({ output: 'qdq.onnx', bench: fakeBench(2.5), speedup: 1.01 }), base, {});
    expect(inter.speedup).toBe(1.01);
    expect(inter.slower).toBe(false);
  });
  it('failed and missing jobs carry no figures', () => {
    const f = jobRow(dir, 'j', MNIST, 'r', done({ status: 'failed', error: { code: 'X', message: 'boom' } }), base, {});
    expect(f).toMatchObject({ status: 'failed', error: 'X: boom', sizeRatio: null, meetsGoals: false });
    expect(jobRow(dir, 'j', MNIST, 'r', null, base, {}).status).toBe('missing');
  });
});

describe('a local sweep on the MNIST CNN', () => {
  const results = join(dir, 'results');
  const spec = {
    models: [MNIST],
    recipes: [
      { name: 'int8', flags: { weights: 'int8' } },
      { name: 'pal4', flags: { palettize: 4 } },
      // Fails while running: a 2-bit "unique" palette cannot hold the layers' distinct values.
      { name: 'poison', flags: { palettize: 2, palettizeMode: 'unique' } },
    ],
    evalData: `${MNIST_DATA}/t10k-images-idx3-ubyte`,
    samples: 300,
    goals: { maxDrop: 1 },
    bench: { runs: 5, warmup: 1 },
    backend: 'cpu' as const,
  };
  it('runs every job, records the failing one, writes the results folder; a re-run runs nothing', async () => {
    const events: SweepEvent[] = [];
    const p = await prepareSweep(spec, results);
    const s = await runLocalSweep(p, results, { onEvent: (e) => events.push(e) });
    expect(events[0]).toEqual({ type: 'plan', jobs: 3, toRun: 3, finished: 0 });
    expect(events.filter((e) => e.type === 'job-end').map((e) => (e as { status: string }).status)).toEqual(['done', 'done', 'failed']);
    expect(s.counts).toMatchObject({ jobs: 3, done: 2, failed: 1, missing: 0 });
    const poison = s.jobs.find((j) => j.recipe === 'poison')!;
    expect(poison.error).toMatch(/unique/);
    for (const j of s.jobs.filter((x) => x.status === 'done')) {
      expect(j.metric).toBe('accuracy');
      expect(j.dropPoints!).toBeLessThan(1);
      expect(j.sizeRatio!).toBeLessThan(0.3);
      expect(existsSync(join(results, 'models', `${j.id}.onnx`))).toBe(true);
      const job = JSON.parse(readFileSync(join(results, 'jobs', `${j.id}.json`), 'utf8')) as JobResult;
      expect(job.bench!.runs).toBe(5);
      expect(job.speedup).toBeCloseTo(job.floatP50Ms! / job.bench!.latencyMs.p50, 12);
      expect(j.speedup).toBe(job.speedup);
      expect(job.layers!.tensors.length + job.layers!.palette.length).toBeGreaterThan(0);
    }
    // 4-bit palettes are smaller than int8 at (nearly) the same accuracy: pal4 is on the front.
    expect(s.pareto).toContain(s.jobs.find((j) => j.recipe === 'pal4')!.id);
    expect(readdirSync(results).sort()).toEqual(['baselines', 'jobs', 'models', 'results.csv', 'results.md', 'sweep.json']);
    expect(readFileSync(join(results, 'results.csv'), 'utf8').trim().split('\n')).toHaveLength(4);

    const again: SweepEvent[] = [];
    const s2 = await runLocalSweep(await prepareSweep(spec, results), results, { onEvent: (e) => again.push(e) });
    expect(again[0]).toEqual({ type: 'plan', jobs: 3, toRun: 0, finished: 3 });
    expect(again.some((e) => e.type === 'job-start')).toBe(false);
    expect(s2.jobs.map((j) => [j.id, j.status, j.quality])).toEqual(s.jobs.map((j) => [j.id, j.status, j.quality]));
  });
  it('the CLI: --status reads the folder; a bad recipe or a model ONNX Runtime cannot run fails before any job', () => {
    const st = run(['sweep', MNIST, '-o', results, '--sweep', writeSweep(), '--status']);
    expect(st.status).toBe(0);
    expect(st.stdout).toMatch(/^3 jobs: 2 done, 1 failed, 0 not run$/m);
    const bad = run(['sweep', MNIST, '-o', join(dir, 'bad'), '--recipe', 'nope.yaml']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/recipe file not found: nope\.yaml/);
    const broken = join(dir, 'broken.onnx');
    writeFileSync(broken, readFileSync(MNIST).subarray(0, 2000));
    const pf = run(['sweep', MNIST, broken, '-o', join(dir, 'pf'), '--sweep', writeSweep()]);
    expect(pf.status).toBe(1);
    expect(pf.stderr).toMatch(/broken\.onnx/);
    expect(existsSync(join(dir, 'pf', 'jobs'))).toBe(false);
  });
  function writeSweep(): string {
    const f = join(dir, 'cli-sweep.json');
    writeFileSync(f, JSON.stringify({ recipes: Object.fromEntries(spec.recipes.map((r) => [r.name, r.flags])), evalData: resolve(spec.evalData), samples: 300, goals: spec.goals, bench: spec.bench }));
    return f;
  }
});

describe('the local job runner', () => {
  it('a job whose process is killed is recorded as failed; the next job gets a fresh process', async () => {
    const results = join(dir, 'crash');
    const p = await prepareSweep({ models: [MNIST], recipes: [{ name: 'a', flags: { weights: 'int8' } }, { name: 'b', flags: { weights: 'int4' } }], goals: {}, bench: { runs: 3, warmup: 0 }, backend: 'cpu' }, results);
    const runner = new JobRunner();
    try {
      const pending = runner.run(p.jobs[0]);
      await new Promise((r) => setTimeout(r, 300));
      (runner as unknown as { child: { kill(s: string): void } }).child.kill('SIGKILL');
      const crashed = await pending;
      expect(crashed.status).toBe('failed');
      expect(crashed.error).toMatchObject({ code: 'CRASHED', message: expect.stringMatching(/ended by signal SIGKILL/) });
      const next = await runner.run(p.jobs[1]);
      expect(next.status).toBe('done');
    } finally {
      runner.close();
    }
  });
});
