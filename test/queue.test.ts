// Sweeps on a BullMQ queue against a real Redis (Debian's redis-server, started here on a free
// loopback port with persistence off, killed by its PID at the end): two workers drain a 12-job
// sweep with every job done exactly once and the same results table as a local sweep; a worker
// killed mid-job (SIGKILL) loses the job to the other worker; a poison job fails after its
// attempts while the rest complete; resubmitting a finished sweep runs nothing.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { redisServerPath, startRedis } from './helpers/redis.ts';
import { prepareSweep } from '../src/sweep/prepare.ts';
import { runLocalSweep } from '../src/sweep/local.ts';
import type { SweepSummary } from '../src/sweep/summary.ts';
import type { JobResult } from '../src/sweep/job.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'modelpress-queue-'));
const which = redisServerPath();
if (!which) console.warn('queue.test: skipping: redis-server is not installed (Debian: apt-get install redis-server); .ci/run installs it');

const FASHION = 'test/assets/fashion-mnist';
const MODELS = ['test/assets/fashion-cnn.onnx', 'test/assets/fashion-residual.onnx', 'test/assets/fashion-inverted-residual.onnx'];
const RECIPES = {
  int8: { weights: 'int8' },
  pal4: { palettize: 4, groupSize: 8 },
  prune25: { prune: 0.25 },
  w8a8: { activations: 'uint8', calibSamples: 32 },
};

let redis: Awaited<ReturnType<typeof startRedis>> | null = null;
let url = '';
const workers: ChildProcess[] = [];

/** Polls a queue job until it reaches one of `states` (or ~timeout); returns the last state seen. */
async function waitForState(q: Queue, id: string, states: string[], timeoutMs: number, everyMs = 50): Promise<string> {
  let state = '';
  for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((r) => setTimeout(r, everyMs))) {
    state = await (await q.getJob(id))!.getState();
    if (states.includes(state)) break;
  }
  return state;
}

/** A worker in a process group of its own, so killing it takes its sandboxed job processes too. */
/** lockMs: short only where a test kills a worker; elsewhere long, so a loaded machine's late lock renewal is not taken for a dead worker. */
function startWorker(prefix: string, name: string, lockMs = 15_000): { proc: ChildProcess; log: () => string; ready: Promise<void> } {
  const proc = spawn(process.execPath, [bin, 'worker', '--queue', url, '--queue-prefix', prefix, '--lock-ms', String(lockMs), '--name', name], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  workers.push(proc);
  let text = '';
  const ready = new Promise<void>((resolve) => proc.stderr!.on('data', (d: Buffer) => {
    text += d.toString();
    if (text.includes('waiting for jobs')) resolve();
  }));
  return { proc, log: () => text, ready };
}

function killGroup(p: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-p.pid!, signal);
  } catch { /* already gone */ }
}

function sweepCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, 'sweep', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function sweepArgs(results: string, prefix: string, recipes: Record<string, object>, models = MODELS): string[] {
  const file = join(dir, `${prefix}.json`);
  writeFileSync(file, JSON.stringify({ recipes, calibration: join(process.cwd(), FASHION, 'train-images-idx3-ubyte.gz'), evalData: join(process.cwd(), FASHION, 't10k-images-idx3-ubyte.gz'), samples: 200, bench: { runs: 3, warmup: 1 } }));
  return [...models, '-o', results, '--sweep', file, '--backend', 'cpu', '--queue', url, '--queue-prefix', prefix];
}

beforeAll(async () => {
  if (!which) return;
  redis = await startRedis(which);
  url = redis.url;
}, 30_000);

afterAll(async () => {
  for (const w of workers) killGroup(w, 'SIGKILL');
  await redis?.stop();
});

describe.skipIf(!which)('sweeps on a BullMQ queue (real Redis)', () => {
  it('two workers drain a 12-job sweep, every job done exactly once, the same table as a local sweep', async () => {
    const prefix = `mpq1-${process.pid}`;
    const a = startWorker(prefix, 'worker-a');
    const b = startWorker(prefix, 'worker-b');
    await Promise.all([a.ready, b.ready]);
    const results = join(dir, 'queued');
    const r = await sweepCli(sweepArgs(results, prefix, RECIPES));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/12 jobs \(3 models × 4 recipes\): 12 submitted/);
    expect(r.stderr).toMatch(/\[12\/12\] done/);
    const queued = JSON.parse(readFileSync(join(results, 'sweep.json'), 'utf8')) as SweepSummary;
    expect(queued.counts).toMatchObject({ jobs: 12, done: 12, failed: 0 });

    const q = new Queue('modelpress-sweep', { connection: { host: '127.0.0.1', port: Number(new URL(url).port) }, prefix });
    const by = new Set<string>();
    for (const j of queued.jobs) {
      const bj = (await q.getJob(`job-${j.id}`))!;
      expect(await bj.getState()).toBe('completed');
      expect(bj.attemptsMade).toBe(1);
      by.add(bj.processedBy!);
    }
    await q.close();
    expect([...by].sort()).toEqual(['worker-a', 'worker-b']);
    const completions = (a.log() + b.log()).match(/completed job job-[0-9a-f]+/g)!;
    expect(completions).toHaveLength(12);
    expect(new Set(completions).size).toBe(12);

    // The same sweep run locally: the same jobs, sizes and quality (latency is measured anew).
    const spec = {
      models: MODELS, recipes: Object.entries(RECIPES).map(([name, flags]) => ({ name, flags })),
      calibration: join(FASHION, 'train-images-idx3-ubyte.gz'), evalData: join(FASHION, 't10k-images-idx3-ubyte.gz'), samples: 200,
      goals: {}, bench: { runs: 3, warmup: 1 }, backend: 'cpu' as const,
    };
    const local = await runLocalSweep(await prepareSweep(spec, join(dir, 'local')), join(dir, 'local'));
    const key = (s: SweepSummary) => s.jobs.map((j) => [j.id, j.recipe, j.status, j.sizeRatio, j.metric, j.quality]);
    expect(key(queued)).toEqual(key(local));
  }, 600_000);

  it('a worker killed mid-job: the job is retried after its lock expires and completes on another worker', async () => {
    const prefix = `mpq2-${process.pid}`;
    const a = startWorker(prefix, 'doomed', 2000);
    await a.ready;
    const results = join(dir, 'killed');
    const sub = await sweepCli([...sweepArgs(results, prefix, { w8a8: RECIPES.w8a8 }, [MODELS[1]]), '--detach']);
    expect(sub.status, sub.stderr).toBe(0);
    const q = new Queue('modelpress-sweep', { connection: { host: '127.0.0.1', port: Number(new URL(url).port) }, prefix });
    const jobs = await q.getJobs(['waiting', 'active', 'waiting-children', 'prioritized'], 0, 100);
    const job = jobs.find((j) => j.name === 'job')!;
    expect(await waitForState(q, job.id!, ['active'], 15_000, 25)).toBe('active');
    killGroup(a.proc, 'SIGKILL');
    const b = startWorker(prefix, 'rescuer', 2000);
    await b.ready;
    expect(await waitForState(q, job.id!, ['completed', 'failed'], 60_000, 100)).toBe('completed');
    const done = (await q.getJob(job.id!))!;
    expect(done.processedBy).toBe('rescuer');
    await q.close();
    const result = JSON.parse(readFileSync(join(results, 'jobs', `${job.id!.replace(/^job-/, '')}.json`), 'utf8')) as JobResult;
    expect(result.status).toBe('done');
    killGroup(b.proc, 'SIGTERM');
  }, 300_000);

  it('a poison job fails after its attempts and is reported while the rest complete; resubmitting runs nothing', async () => {
    const prefix = `mpq3-${process.pid}`;
    const w = startWorker(prefix, 'worker-p');
    await w.ready;
    const results = join(dir, 'poison');
    const recipes = { int8: RECIPES.int8, poison: { palettize: 2, palettizeMode: 'unique' } };
    const args = [...sweepArgs(results, prefix, recipes, [MODELS[0]]), '--attempts', '2'];
    const r = await sweepCli(args);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/retrying fashion-cnn\.onnx × poison/);
    expect(r.stderr).toMatch(/failed after its attempts: palettize: mode 'unique'/);
    const s = JSON.parse(readFileSync(join(results, 'sweep.json'), 'utf8')) as SweepSummary;
    expect(s.jobs.map((j) => [j.recipe, j.status])).toEqual([['int8', 'done'], ['poison', 'failed']]);
    const q = new Queue('modelpress-sweep', { connection: { host: '127.0.0.1', port: Number(new URL(url).port) }, prefix });
    const poison = (await q.getJob(`job-${s.jobs[1].id}`))!;
    expect(poison.attemptsMade).toBe(2);
    const before = await q.getJobCounts();

    const again = await sweepCli(args);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/0 submitted .* 2 already finished/);
    expect(again.stderr).toMatch(/nothing to run/);
    expect(await q.getJobCounts()).toEqual(before);
    // --status with --queue: the queue's view beside the results folder's, nothing run.
    const st = await sweepCli([...args, '--status']);
    expect(st.status).toBe(0);
    expect(st.stdout).toMatch(/^queue redis:\/\/127\.0\.0\.1:\d+: (1 completed, 1 failed|1 failed, 1 completed)$/m);
    expect(st.stdout).toMatch(/^2 jobs: 1 done, 1 failed, 0 not run$/m);
    expect(await q.getJobCounts()).toEqual(before);
    await q.close();
    expect(existsSync(join(results, 'jobs', `${s.jobs[0].id}.json`))).toBe(true);
    killGroup(w.proc, 'SIGTERM');
  }, 300_000);
});
