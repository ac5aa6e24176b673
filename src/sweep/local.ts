/**
 * A sweep on this machine: jobs one after another (so benchmarks never compete for cores), in a
 * child process reused from job to job; finished jobs are skipped, so a re-run resumes an
 * interrupted sweep; a failing job records its error and the sweep goes on.
 */
import { fork, type ChildProcess } from 'node:child_process';
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

/**
 * Runs jobs in one child process, reused from job to job; a child that dies mid-job leaves a
 * failed result naming how it ended, and the next job gets a fresh child.
 */
export class JobRunner {
  private child: ChildProcess | null = null;
  private stderr = '';

  async run(job: JobSpec): Promise<JobResult> {
    const script = childScript();
    if (!script) {
      const r = await runJob(job);
      writeJobResult(job.resultsDir, r);
      return r;
    }
    const started = Date.now();
    const child = (this.child ??= this.spawn(script));
    this.stderr = '';
    const ended = await new Promise<{ ok: true } | { ok: false; code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => resolve({ ok: false, code, signal });
      child.once('exit', onExit);
      child.once('message', () => {
        child.off('exit', onExit);
        resolve({ ok: true });
      });
      child.send({ job });
    });
    const written = readJob(job.resultsDir, job.id);
    if (ended.ok && written) return written;
    this.child = null;
    const tail = this.stderr.split('\n').filter((l) => l && !l.startsWith('stage ')).slice(-3).join(' ');
    const how = ended.ok ? 'without writing a result' : ended.signal ? `by signal ${ended.signal}` : `with code ${ended.code}`;
    const r: JobResult = {
      id: job.id, model: job.model, modelSha256: job.modelSha256, recipe: job.recipe, status: 'failed',
      error: { code: 'CRASHED', message: `the job's process ended ${how}${tail ? `: ${tail}` : ''}` },
      modelpress: '', host: '', startedAt: new Date(started).toISOString(), finishedAt: new Date().toISOString(), timeMs: Date.now() - started,
    };
    writeJobResult(job.resultsDir, r);
    return r;
  }

  private spawn(script: string): ChildProcess {
    const child = fork(script, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    child.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    return child;
  }

  close(): void {
    this.child?.disconnect();
    this.child = null;
  }
}

export async function runLocalSweep(p: PreparedSweep, resultsDir: string, o: LocalSweepOptions = {}): Promise<SweepSummary> {
  const todo = jobsToRun(p, resultsDir, o.retryFailed);
  o.onEvent?.({ type: 'plan', jobs: p.jobs.length, toRun: todo.length, finished: p.jobs.length - todo.length });
  o.onEvent?.({ type: 'preflight', models: p.models.length });
  await preflight(p.models, p.spec);
  const baselines = await ensureBaselines(p, resultsDir, (model) => o.onEvent?.({ type: 'baseline', model }));
  const t0 = Date.now();
  const runner = new JobRunner();
  try {
    for (const [i, job] of todo.entries()) {
      o.onEvent?.({ type: 'job-start', index: i, total: todo.length, job });
      const r = await runner.run(job);
      const perJob = (Date.now() - t0) / (i + 1);
      o.onEvent?.({ type: 'job-end', index: i, total: todo.length, job, status: r.status, error: r.error?.message, etaS: ((todo.length - i - 1) * perJob) / 1000 });
    }
  } finally {
    runner.close();
  }
  const summary = summarizeSweep(resultsDir, p.jobs.map((j) => ({ id: j.id, model: j.model, recipe: j.recipe.name })), baselines, p.spec.goals, p.spec.recipes, p.version);
  writeSummary(resultsDir, summary);
  return summary;
}
