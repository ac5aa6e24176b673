/**
 * A sweep's results folder → one summary: per job its size, latency, quality and speed-up against
 * the float baseline, the goals it meets or misses, whether it is slower than the float model (and
 * why), and the Pareto front per model among the jobs that meet the goals. Written as sweep.json,
 * results.md and results.csv; the HTML report reads the same summary.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';
import { OnnxModel } from '../onnx/model.ts';
import { slowdownCause, summarizeEncodings } from '../analysis/encodings.ts';
import { SLOWDOWN_MARGIN } from '../eval/evaluate.ts';
import { csvCell, formatTable } from '../cli/format.ts';
import type { BenchOptions, BenchResult } from '../benchmark/latency.ts';
import { jobPath, type JobResult } from './job.ts';
import { paretoFront } from './pareto.ts';
import type { SweepGoals, SweepRecipe } from './spec.ts';

export interface Baseline {
  model: string;
  modelSha256: string;
  bytes: number;
  bench: BenchResult;
}

export interface JobRow {
  id: string;
  model: string;
  recipe: string;
  status: 'done' | 'failed' | 'missing';
  error: string | null;
  host: string | null;
  bytes: number | null;
  sizeRatio: number | null;
  p50Ms: number | null;
  speedup: number | null;
  metric: string | null;
  quality: number | null;
  baselineQuality: number | null;
  dropPoints: number | null;
  meetsGoals: boolean;
  /** The goals a finished job misses, e.g. "drop 1.20 > 1". */
  missed: string[];
  /** Slower than the float model beyond timing noise. */
  slower: boolean;
  slowerCause: string | null;
  pareto: boolean;
}

export interface SweepSummary {
  modelpress: string;
  writtenAt: string;
  goals: SweepGoals;
  models: Array<{ model: string; modelSha256: string; bytes: number; p50Ms: number }>;
  recipes: SweepRecipe[];
  jobs: JobRow[];
  /** Ids of the Pareto-optimal jobs (per model, among those meeting the goals). */
  pareto: string[];
  counts: { jobs: number; done: number; failed: number; missing: number; slower: number; meetGoals: number };
}

export function baselineId(modelSha256: string, bench: BenchOptions, version: string): string {
  return createHash('sha256').update(JSON.stringify({ modelSha256, bench, version })).digest('hex').slice(0, 16);
}

export function baselinePath(resultsDir: string, id: string): string {
  return join(resultsDir, 'baselines', `${id}.json`);
}

export function readJob(resultsDir: string, id: string): JobResult | null {
  const p = jobPath(resultsDir, id);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as JobResult) : null;
}

function slowerCause(resultsDir: string, r: JobResult): string | null {
  try {
    return slowdownCause(summarizeEncodings(OnnxModel.read(join(resultsDir, r.output!)))) ?? 'no compressed encoding in its graph explains it';
  } catch {
    return null;
  }
}

export function jobRow(resultsDir: string, id: string, model: string, recipe: string, r: JobResult | null, base: Baseline | undefined, goals: SweepGoals): JobRow {
  const row: JobRow = {
    id, model, recipe, status: r ? r.status : 'missing', error: r?.error ? `${r.error.code}: ${r.error.message}` : null, host: r?.host ?? null,
    bytes: null, sizeRatio: null, p50Ms: null, speedup: null, metric: null, quality: null, baselineQuality: null, dropPoints: null,
    meetsGoals: false, missed: [], slower: false, slowerCause: null, pareto: false,
  };
  if (!r || r.status !== 'done' || !r.compress || !r.bench || !r.quality) return row;
  row.bytes = r.compress.bytesAfter;
  row.sizeRatio = r.compress.sizeRatio;
  row.p50Ms = r.bench.latencyMs.p50;
  row.speedup = r.speedup ?? (base ? base.bench.latencyMs.p50 / r.bench.latencyMs.p50 : null);
  row.metric = r.quality.metric;
  row.quality = r.quality.value;
  row.baselineQuality = r.quality.baseline;
  row.dropPoints = r.quality.dropPoints;
  if (goals.maxDrop !== undefined && row.dropPoints > goals.maxDrop) row.missed.push(`drop ${row.dropPoints.toFixed(2)} > ${goals.maxDrop}`);
  if (goals.minSpeedup !== undefined && (row.speedup ?? 0) < goals.minSpeedup) row.missed.push(`speed-up ${row.speedup?.toFixed(2)} < ${goals.minSpeedup}`);
  if (goals.maxSize !== undefined && row.sizeRatio > goals.maxSize) row.missed.push(`size ${row.sizeRatio.toFixed(3)} > ${goals.maxSize}`);
  row.meetsGoals = row.missed.length === 0;
  if (row.speedup !== null && row.speedup * SLOWDOWN_MARGIN < 1) {
    row.slower = true;
    row.slowerCause = slowerCause(resultsDir, r);
  }
  return row;
}

export interface SweepJobRef {
  id: string;
  model: string;
  recipe: string;
}

export function summarizeSweep(resultsDir: string, refs: readonly SweepJobRef[], baselines: ReadonlyMap<string, Baseline>, goals: SweepGoals, recipes: SweepRecipe[], version: string): SweepSummary {
  const jobs = refs.map((j) => jobRow(resultsDir, j.id, j.model, j.recipe, readJob(resultsDir, j.id), baselines.get(j.model), goals));
  const pareto: string[] = [];
  for (const model of new Set(jobs.map((j) => j.model))) {
    const candidates = jobs.filter((j) => j.model === model && j.status === 'done' && j.meetsGoals);
    pareto.push(...paretoFront(candidates.map((j) => ({ id: j.id, size: j.sizeRatio!, latency: j.p50Ms!, quality: j.quality! }))));
  }
  for (const j of jobs) j.pareto = pareto.includes(j.id);
  return {
    modelpress: version,
    writtenAt: new Date().toISOString(),
    goals,
    models: [...baselines.values()].map((b) => ({ model: b.model, modelSha256: b.modelSha256, bytes: b.bytes, p50Ms: b.bench.latencyMs.p50 })),
    recipes,
    jobs,
    pareto,
    counts: {
      jobs: jobs.length, done: jobs.filter((j) => j.status === 'done').length, failed: jobs.filter((j) => j.status === 'failed').length,
      missing: jobs.filter((j) => j.status === 'missing').length, slower: jobs.filter((j) => j.slower).length, meetGoals: jobs.filter((j) => j.meetsGoals).length,
    },
  };
}

const TABLE_HEADER = ['job', 'model', 'recipe', 'status', 'size', 'p50 ms', 'speed-up', 'quality', 'drop', 'goals', 'pareto'];

export function summaryRows(s: SweepSummary): string[][] {
  const base = (p: string) => p.split('/').pop() ?? p;
  return s.jobs.map((j) => [
    j.id, base(j.model), j.recipe, j.status,
    j.sizeRatio === null ? '-' : `${(100 * j.sizeRatio).toFixed(1)} %`,
    j.p50Ms === null ? '-' : j.p50Ms.toFixed(3),
    j.speedup === null ? '-' : `${j.speedup.toFixed(2)}x${j.slower ? ' SLOWER' : ''}`,
    j.quality === null ? '-' : `${j.quality.toFixed(2)} (${j.metric})`,
    j.dropPoints === null ? '-' : j.dropPoints.toFixed(2),
    j.status !== 'done' ? (j.error ?? '-').slice(0, 60) : j.meetsGoals ? 'met' : j.missed.join('; '),
    j.pareto ? '*' : '',
  ]);
}

export function summaryTable(s: SweepSummary): string {
  return formatTable(TABLE_HEADER, summaryRows(s));
}

export function summaryCsv(s: SweepSummary): string {
  const header = ['id', 'model', 'recipe', 'status', 'bytes', 'size_ratio', 'p50_ms', 'speedup', 'metric', 'quality', 'baseline_quality', 'drop_points', 'meets_goals', 'missed', 'slower', 'pareto', 'error'];
  const rows = s.jobs.map((j) => [j.id, j.model, j.recipe, j.status, j.bytes, j.sizeRatio, j.p50Ms, j.speedup, j.metric, j.quality, j.baselineQuality, j.dropPoints, j.meetsGoals, j.missed.join('; '), j.slower, j.pareto, j.error]
    .map((v) => csvCell(v === null ? '' : String(v))));
  return [header, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

/** sweep.json, results.md, results.csv in the results folder. */
export function writeSummary(resultsDir: string, s: SweepSummary): void {
  writeFileAtomic(join(resultsDir, 'sweep.json'), JSON.stringify(s, jsonNumbers, 2) + '\n');
  const goals = Object.entries(s.goals).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const md = [`# modelpress sweep`, '', `${s.counts.jobs} jobs: ${s.counts.done} done, ${s.counts.failed} failed, ${s.counts.missing} not run; ${s.counts.meetGoals} meet the goals (${goals}); ${s.counts.slower} slower than float; Pareto front marked *.`, '', '```', summaryTable(s).trimEnd(), '```', ''];
  writeFileAtomic(join(resultsDir, 'results.md'), md.join('\n'));
  writeFileAtomic(join(resultsDir, 'results.csv'), summaryCsv(s));
}
