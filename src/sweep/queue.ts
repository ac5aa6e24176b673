/**
 * Sweeps across machines on BullMQ (Redis or Valkey). One flow per sweep: the parent writes the
 * summary once its children are done; each model's float baseline and each model × recipe is a
 * child. Deterministic job ids deduplicate; a child that fails after its retries does not fail the
 * sweep (ignoreDependencyOnFailure). Workers run each job in a sandboxed child process (CPU-heavy
 * work must not stall lock renewal), so a worker killed mid-job loses its lock and the job is
 * retried elsewhere. Redis holds only queue state; results go to the shared results folder.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { FlowProducer, Queue, QueueEvents, Worker, type ConnectionOptions, type FlowJob, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { DataError } from '../errors.ts';
import { packageRoot } from '../package-root.ts';
import type { JobSpec } from './job.ts';
import type { PreparedSweep } from './prepare.ts';
import { baselineId, type SweepJobRef } from './summary.ts';
import { jobsToRun } from './local.ts';
import type { SweepGoals, SweepRecipe } from './spec.ts';
import type { BenchOptions } from '../benchmark/latency.ts';

export const DEFAULT_QUEUE = 'modelpress-sweep';

export interface QueueTarget {
  /** redis://[user:password@]host:port[/db] (Valkey speaks the same protocol). */
  url: string;
  /** Key prefix in Redis (default "bull"); a fleet shares it, tests use a unique one. */
  prefix?: string;
  /** Queue name (default modelpress-sweep). */
  name?: string;
}

/** The parent's data: enough to write the summary from the results folder. */
export interface SweepParentData {
  resultsDir: string;
  refs: SweepJobRef[];
  models: Array<{ path: string; sha256: string }>;
  bench: BenchOptions;
  goals: SweepGoals;
  recipes: SweepRecipe[];
  version: string;
}

export interface BaselineJobData {
  model: { path: string; sha256: string };
  bench: BenchOptions;
  version: string;
  resultsDir: string;
}

export function connectionFrom(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DataError(`--queue ${url}: give a Redis URL, e.g. redis://127.0.0.1:6379`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new DataError(`--queue ${url}: give a redis:// or rediss:// URL`);
  return {
    host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    username: u.username || undefined, password: u.password ? decodeURIComponent(u.password) : undefined,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // Workers block on Redis; BullMQ requires unlimited retries per request on their connections.
    maxRetriesPerRequest: null,
  };
}

/** Connects once with a short timeout: an unreachable Redis is a clear error, not a hang. Warns on an evicting memory policy. */
export async function checkRedis(target: QueueTarget, warn: (msg: string) => void = () => {}): Promise<void> {
  const c = connectionFrom(target.url) as Record<string, unknown>;
  const client = new Redis({ ...c, lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 1, retryStrategy: () => null, enableOfflineQueue: false });
  let cause = '';
  client.on('error', (e: Error) => { cause ||= e.message; });
  try {
    await client.connect();
    await client.ping();
    const policy = (await client.config('GET', 'maxmemory-policy').catch(() => [])) as string[];
    if (policy[1] && policy[1] !== 'noeviction') warn(`Redis at ${target.url} has maxmemory-policy ${policy[1]}: BullMQ needs noeviction (evicted keys lose jobs)`);
  } catch (err) {
    throw new DataError(`cannot reach Redis at ${target.url}: ${cause || (err as Error).message}`, { url: target.url });
  } finally {
    client.disconnect();
  }
}

const queueName = (t: QueueTarget) => t.name ?? DEFAULT_QUEUE;
/** BullMQ refuses custom ids that look like integers; ours are hex, so they get a prefix. */
export const bullJobId = (id: string) => `job-${id}`;

export interface SubmitOptions {
  retryFailed?: boolean;
  /** Attempts per job before it counts as failed (default 3). */
  attempts?: number;
  /** First retry delay in ms, doubled each retry (default 2000). */
  backoffMs?: number;
}

export interface Submission {
  flowId: string | null;
  /** Sweep job ids put on the queue (baselines not counted). */
  submitted: string[];
  finished: number;
}

export async function submitSweep(p: PreparedSweep, resultsDir: string, target: QueueTarget, o: SubmitOptions = {}): Promise<Submission> {
  const dir = resolve(resultsDir);
  const todo = jobsToRun(p, dir, o.retryFailed);
  if (!todo.length) return { flowId: null, submitted: [], finished: p.jobs.length };
  const connection = connectionFrom(target.url);
  const queue = new Queue(queueName(target), { connection, prefix: target.prefix });
  const flow = new FlowProducer({ connection, prefix: target.prefix });
  try {
    const flowId = `sweep-${createHash('sha256').update(todo.map((j) => j.id).sort().join(',')).digest('hex').slice(0, 16)}`;
    const baselines = p.models.map((m) => ({ id: `baseline-${baselineId(m.sha256, p.spec.bench, p.version)}`, data: { model: m, bench: p.spec.bench, version: p.version, resultsDir: dir } satisfies BaselineJobData }));
    // A job still in flight from an earlier submission is not submitted twice; finished or failed
    // leftovers (whose results the folder lacks, or that are retried) are removed so they can run again.
    const inFlight: string[] = [];
    for (const id of [flowId, ...todo.map((j) => bullJobId(j.id)), ...baselines.map((b) => b.id)]) {
      const existing = await queue.getJob(id);
      if (!existing) continue;
      const state = await existing.getState();
      if (state === 'completed' || state === 'failed') await existing.remove({ removeChildren: false }).catch(() => queue.remove(id));
      else if (state !== 'unknown') inFlight.push(id);
    }
    if (inFlight.length) throw new DataError(`this sweep is already on the queue (${inFlight.length} job(s) waiting or running, e.g. ${inFlight[0]}): follow it with sweep --status, or wait for it to finish`);
    const childOpts = { attempts: o.attempts ?? 3, backoff: { type: 'exponential', delay: o.backoffMs ?? 2000 }, failParentOnFailure: false, ignoreDependencyOnFailure: true, removeOnComplete: false, removeOnFail: false };
    const children: FlowJob[] = [
      ...baselines.map((b) => ({ name: 'baseline', queueName: queueName(target), data: b.data, opts: { ...childOpts, jobId: b.id } })),
      ...todo.map((j) => ({ name: 'job', queueName: queueName(target), data: { ...j, resultsDir: dir } satisfies JobSpec, opts: { ...childOpts, jobId: bullJobId(j.id) } })),
    ];
    const parentData: SweepParentData = {
      resultsDir: dir, refs: p.jobs.map((j) => ({ id: j.id, model: j.model, recipe: j.recipe.name })), models: p.models, bench: p.spec.bench,
      goals: p.spec.goals, recipes: p.spec.recipes, version: p.version,
    };
    await flow.add({ name: 'sweep', queueName: queueName(target), data: parentData, opts: { jobId: flowId, attempts: 2, removeOnComplete: false, removeOnFail: false }, children });
    return { flowId, submitted: todo.map((j) => j.id), finished: p.jobs.length - todo.length };
  } finally {
    await flow.close();
    await queue.close();
  }
}

export type QueueEvent = { type: 'completed' | 'failed' | 'active' | 'retrying'; id: string; reason?: string };

/**
 * Follows a submitted sweep through queue events until its parent (the summary) finishes.
 * Returns the parent's state; failed child jobs are read from the results folder afterwards.
 */
export async function followSweep(flowId: string, target: QueueTarget, onEvent: (e: QueueEvent) => void): Promise<'completed' | 'failed'> {
  const connection = connectionFrom(target.url);
  const events = new QueueEvents(queueName(target), { connection, prefix: target.prefix });
  const queue = new Queue(queueName(target), { connection, prefix: target.prefix });
  try {
    await events.waitUntilReady();
    // The parent's own events end the wait at once; the poll below covers an end before subscribing.
    let wake: () => void = () => {};
    events.on('active', ({ jobId }) => onEvent({ type: 'active', id: jobId }));
    events.on('completed', ({ jobId }) => {
      if (jobId === flowId) wake();
      onEvent({ type: 'completed', id: jobId });
    });
    // BullMQ reports 'failed' once the attempts are spent; a failed attempt with retries left
    // moves the job to 'delayed' (the backoff).
    events.on('failed', ({ jobId, failedReason }) => {
      if (jobId === flowId) wake();
      onEvent({ type: 'failed', id: jobId, reason: failedReason });
    });
    events.on('delayed', async ({ jobId }) => {
      const job = await queue.getJob(jobId).catch(() => undefined);
      if (job && job.attemptsMade > 0) onEvent({ type: 'retrying', id: jobId, reason: job.failedReason });
    });
    for (;;) {
      const parent = await queue.getJob(flowId);
      const state = parent ? await parent.getState() : 'unknown';
      if (state === 'completed' || state === 'failed') return state;
      if (state === 'unknown') throw new DataError(`sweep ${flowId} is no longer on the queue (removed, or Redis was flushed)`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  } finally {
    await events.close();
    await queue.close();
  }
}

/** Where each of the sweep's jobs stands on the queue (by sweep job id); absent ids are not on it. */
export async function queueStates(ids: readonly string[], target: QueueTarget): Promise<Map<string, string>> {
  const queue = new Queue(queueName(target), { connection: connectionFrom(target.url), prefix: target.prefix });
  try {
    const out = new Map<string, string>();
    for (const id of ids) {
      const j = await queue.getJob(bullJobId(id));
      if (j) out.set(id, await j.getState());
    }
    return out;
  } finally {
    await queue.close();
  }
}

export interface WorkerOptions {
  /** Jobs at once (default 1: one worker per GPU, and benchmarks that do not share cores). */
  concurrency?: number;
  /** Lock duration in ms (default 30000): how long a dead worker's job waits before it is retried elsewhere. */
  lockMs?: number;
  name?: string;
  onEvent?: (e: { type: 'active' | 'completed' | 'failed'; job: Job; reason?: string }) => void;
}

export function processorFile(): string {
  const p = join(packageRoot(), 'dist', 'src', 'sweep', 'queue-processor.js');
  if (!existsSync(p)) throw new DataError(`the queue worker needs the compiled processor ${p}: run npm run build`);
  return p;
}

export function startWorker(target: QueueTarget, o: WorkerOptions = {}): Worker {
  const lockMs = o.lockMs ?? 30_000;
  const worker = new Worker(queueName(target), processorFile(), {
    connection: connectionFrom(target.url), prefix: target.prefix, concurrency: o.concurrency ?? 1,
    lockDuration: lockMs, stalledInterval: Math.max(1000, Math.floor(lockMs / 2)), maxStalledCount: 2,
    name: o.name ?? `${hostname()}:${process.pid}`, useWorkerThreads: false,
  });
  worker.on('active', (job) => o.onEvent?.({ type: 'active', job }));
  worker.on('completed', (job) => o.onEvent?.({ type: 'completed', job }));
  worker.on('failed', (job, err) => { if (job) o.onEvent?.({ type: 'failed', job, reason: err.message }); });
  return worker;
}
