/**
 * A sweep on this machine: jobs one after another (so benchmarks never compete for cores), each
 * in a child process; finished jobs are skipped, so a re-run resumes an interrupted sweep; a
 * failing job records its error and the sweep goes on.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.ts';
import { runJob, writeJobResult, type JobResult, type JobSpec } from './job.ts';
import { ensureBaselines, preflight, type PreparedSweep } from './prepare.ts';
import { readJob, summarizeSweep, writeSummary, type SweepSummary } from './summary.ts';

export type SweepEvent =
  | { type: 'plan'; jobs: number; toRun: number; finished: number }
  | { type: 'preflight'; models: number }
  | { type: 'baseline'; model: string }
  | { type: 'job-start'; index: number; total: number; job: JobSpec }
  | { type: 'job-end'; index: number; total: number; job: JobSpec; status: JobResult['status']; error?: string; etaS: number | null };

export interface LocalSweepOptions {
  /** Run jobs that failed before again (finished ones are always skipped). */
  retryFailed?: boolean;
  onEvent?: (e: SweepEvent) => void;
}

/** Jobs with no result yet (and failed ones when asked to retry). */
export function jobsToRun(p: PreparedSweep, resultsDir: string, retryFailed = false): JobSpec[] {
  return p.jobs.filter((j) => {
    const r = readJob(resultsDir, j.id);
    return !r || (retryFailed && r.status === 'failed');
  });
}

function childScript(): string | null {
  const p = join(packageRoot(), 'dist', 'src', 'sweep', 'job-child.js');
  return existsSync(p) ? p : null;
}

/** Runs one job in a child process; a child that dies without a result leaves a failed one. */
export async function runJobIsolated(job: JobSpec): Promise<JobResult> {
  const script = childScript();
  if (!script) {
    const r = await runJob(job);
    writeJobResult(job.resultsDir, r);
    return r;
  }
  const started = Date.now();
  const { code, signal, stderr } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [script, JSON.stringify(job)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
    child.on('close', (c, s) => resolve({ code: c, signal: s, stderr: err }));
  });
  const written = readJob(job.resultsDir, job.id);
  if (written && Date.parse(written.finishedAt) >= started - 1000) return written;
  const tail = stderr.split('\n').filter((l) => l && !l.startsWith('stage ')).slice(-3).join(' ');
  const r: JobResult = {
    id: job.id, model: job.model, modelSha256: job.modelSha256, recipe: job.recipe, status: 'failed',
    error: { code: 'CRASHED', message: `the job's process ended ${signal ? `by signal ${signal}` : `with code ${code}`} before writing a result${tail ? `: ${tail}` : ''}` },
    modelpress: '', host: '', startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(), timeMs: Date.now() - started,
  };
  writeJobResult(job.resultsDir, r);
  return r;
}

export async function runLocalSweep(p: PreparedSweep, resultsDir: string, o: LocalSweepOptions = {}): Promise<SweepSummary> {
  const todo = jobsToRun(p, resultsDir, o.retryFailed);
  o.onEvent?.({ type: 'plan', jobs: p.jobs.length, toRun: todo.length, finished: p.jobs.length - todo.length });
  o.onEvent?.({ type: 'preflight', models: p.models.length });
  await preflight(p.models, p.spec);
  const baselines = await ensureBaselines(p, resultsDir, (model) => o.onEvent?.({ type: 'baseline', model }));
  const t0 = Date.now();
  for (const [i, job] of todo.entries()) {
    o.onEvent?.({ type: 'job-start', index: i, total: todo.length, job });
    const r = await runJobIsolated(job);
    const perJob = (Date.now() - t0) / (i + 1);
    o.onEvent?.({ type: 'job-end', index: i, total: todo.length, job, status: r.status, error: r.error?.message, etaS: ((todo.length - i - 1) * perJob) / 1000 });
  }
  const summary = summarizeSweep(resultsDir, p.jobs.map((j) => ({ id: j.id, model: j.model, recipe: j.recipe.name })), baselines, p.spec.goals, p.spec.recipes, p.version);
  writeSummary(resultsDir, summary);
  return summary;
}
