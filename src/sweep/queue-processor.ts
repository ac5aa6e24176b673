/**
 * The queue worker's sandboxed processor (BullMQ forks a child process per running job and loads
 * this file there): a float baseline, one sweep job, or the sweep's summary once its children
 * are done. A failed job throws, so BullMQ retries it with backoff and finally records it failed.
 */
import type { SandboxedJob } from 'bullmq';
import { runJob, writeJobResult, type JobSpec } from './job.ts';
import { ensureBaseline, readBaselines } from './prepare.ts';
import { summarizeSweep, writeSummary } from './summary.ts';
import type { BaselineJobData, SweepParentData } from './queue.ts';

export default async function process(job: SandboxedJob): Promise<unknown> {
  if (job.name === 'baseline') {
    const d = job.data as BaselineJobData;
    const b = await ensureBaseline(d.model, d.bench, d.version, d.resultsDir);
    return { model: b.model, p50Ms: b.bench.latencyMs.p50 };
  }
  if (job.name === 'job') {
    const spec = job.data as JobSpec;
    const r = await runJob(spec);
    writeJobResult(spec.resultsDir, r);
    if (r.status === 'failed') throw new Error(`${r.error!.code}: ${r.error!.message}`);
    return { id: r.id, status: r.status };
  }
  if (job.name === 'sweep') {
    const d = job.data as SweepParentData;
    const s = summarizeSweep(d.resultsDir, d.refs, readBaselines({ models: d.models, version: d.version, spec: { bench: d.bench } }, d.resultsDir), d.goals, d.recipes, d.version);
    writeSummary(d.resultsDir, s);
    return s.counts;
  }
  throw new Error(`unknown job kind '${job.name}'`);
}
