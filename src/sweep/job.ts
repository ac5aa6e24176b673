/**
 * One sweep job: compress one model with one recipe, evaluate the result against the float model
 * (accuracy with labelled data, output agreement otherwise), benchmark it against the float model
 * (runs interleaved in a process of their own),
 * and write everything to `<results>/jobs/<id>.json` (the compressed model to `models/<id>.onnx`).
 * The same function runs in a local sweep's child process and in a queue worker's sandbox.
 */
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { ModelpressError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';
import { createLogger } from '../log.ts';
import { packageVersion } from '../package-root.ts';
import { planCompress, type CompressPlan } from '../cli/compress-plan.ts';
import { compressModel, type CompressReport } from '../pipeline/compress.ts';
import { evaluateModels, type OutputAgreement } from '../eval/evaluate.ts';
import { benchmarkInterleavedIsolated } from '../benchmark/isolated.ts';
import type { BenchOptions, BenchResult } from '../benchmark/latency.ts';
import type { PalettizeReport } from '../passes/palettize/pass.ts';
import type { SensitivityEntry } from '../passes/quantize/static-pipeline.ts';
import { parseRecipeFlags, type SweepRecipe } from './spec.ts';

export interface JobSpec {
  id: string;
  model: string;
  modelSha256: string;
  recipe: SweepRecipe;
  calibration?: string;
  evalData?: string;
  samples?: number;
  bench: BenchOptions;
  backend?: 'auto' | 'gpu' | 'cpu';
  resultsDir: string;
}

export interface Quality {
  /** accuracy (labelled data), top1-agreement (classifier outputs vs the float model), or cosine (other outputs), all in %. */
  metric: 'accuracy' | 'top1-agreement' | 'cosine';
  value: number;
  baseline: number;
  /** baseline − value, in points. */
  dropPoints: number;
  samples: number;
  inputs: string;
  outputs: OutputAgreement[];
}

export interface LayerPanels {
  tensors: Array<{ name: string; op: string; nodes: string[]; scheme: string; sqnrDb: number; cosine: number; bytesBefore: number; bytesAfter: number }>;
  palette: Array<{ name: string; bits: number; lutSize: number; distinct: number; groups: number; sqnrDb: number }>;
  prune: Array<{ group: number; producers: string[]; channels: number; removed: number }>;
  sensitivity: SensitivityEntry[] | null;
}

export interface JobResult {
  id: string;
  model: string;
  modelSha256: string;
  recipe: SweepRecipe;
  status: 'done' | 'failed';
  error?: { code: string; message: string };
  modelpress: string;
  host: string;
  startedAt: string;
  finishedAt: string;
  timeMs: number;
  /** The compressed model, relative to the results folder. */
  output?: string;
  compress?: { mode: string; passes: string[]; bytesBefore: number; bytesAfter: number; sizeRatio: number; timeMs: number; worstSqnrDb: number | null; macsBefore: number; macsAfter: number; backend: string };
  quality?: Quality;
  bench?: BenchResult;
  /**
   * Speed-up over the float model (its p50 / this p50), both measured in one process with their
   * runs interleaved, so load that drifts while the sweep runs does not pass for a slowdown.
   */
  speedup?: number;
  /** The float model's p50 in that interleaved measurement. */
  floatP50Ms?: number;
  layers?: LayerPanels;
}

export function jobPath(resultsDir: string, id: string): string {
  return join(resultsDir, 'jobs', `${id}.json`);
}

export function writeJobResult(resultsDir: string, r: JobResult): void {
  mkdirSync(join(resultsDir, 'jobs'), { recursive: true });
  writeFileAtomic(jobPath(resultsDir, r.id), JSON.stringify(r, jsonNumbers, 2) + '\n');
}

export function qualityFrom(e: { accuracy: { model: number; baseline: number } | null; outputs: OutputAgreement[]; samples: number; inputs: string }): Quality {
  const first = e.outputs[0];
  if (e.accuracy) return { metric: 'accuracy', value: e.accuracy.model, baseline: e.accuracy.baseline, dropPoints: e.accuracy.baseline - e.accuracy.model, samples: e.samples, inputs: e.inputs, outputs: e.outputs };
  if (first?.top1Agreement !== null && first?.top1Agreement !== undefined) {
    const v = 100 * first.top1Agreement;
    return { metric: 'top1-agreement', value: v, baseline: 100, dropPoints: 100 - v, samples: e.samples, inputs: e.inputs, outputs: e.outputs };
  }
  const cos = 100 * Math.min(...e.outputs.map((o) => o.cosine));
  return { metric: 'cosine', value: cos, baseline: 100, dropPoints: 100 - cos, samples: e.samples, inputs: e.inputs, outputs: e.outputs };
}

/** A job's compress figures, from a compress report. */
export function compressSummaryFrom(report: CompressReport): NonNullable<JobResult['compress']> {
  const t = report.totals;
  return {
    mode: report.mode, passes: report.passes.map((p) => p.pass), bytesBefore: t.modelBytesBefore, bytesAfter: t.modelBytesAfter, sizeRatio: t.modelBytesAfter / t.modelBytesBefore,
    timeMs: report.timeMs, worstSqnrDb: t.worstSqnrDb, macsBefore: t.macsBefore, macsAfter: t.macsAfter, backend: report.manifest.backend.active,
  };
}

/** What the report's per-layer panels show, from a compress report. */
export function layerPanelsFrom(report: CompressReport): LayerPanels {
  const palette = report.passes.find((p) => p.pass === 'palettize')?.report as PalettizeReport | undefined;
  return {
    tensors: report.tensors.map((x) => ({ name: x.name, op: x.op, nodes: x.nodes, scheme: x.scheme, sqnrDb: x.sqnrDb, cosine: x.cosine, bytesBefore: x.bytesBefore, bytesAfter: x.bytesAfter })),
    palette: (palette?.tensors ?? []).map((x) => ({ name: x.name, bits: x.bits, lutSize: x.lutSize, distinct: x.distinct, groups: x.groups, sqnrDb: x.sqnrDb })),
    prune: (report.prune?.groups ?? []).filter((g) => g.removed > 0 || g.prunable > 0).map((g) => ({ group: g.id, producers: g.producers, channels: g.channels, removed: g.removed })),
    sensitivity: report.sensitivity ?? null,
  };
}

/**
 * A job's pass list: its recipe's flags as compress reads them, with the sweep's data — calibration
 * for every pass that reads it, evaluation data for static W8A8's accuracy gate (--max-drop).
 */
export async function planJob(spec: Pick<JobSpec, 'recipe' | 'model' | 'calibration' | 'evalData' | 'samples'>, output: string): Promise<CompressPlan> {
  const { flags, targetGiven } = parseRecipeFlags(spec.recipe);
  const sweepData = { output, calibration: spec.calibration, evalData: spec.evalData, samples: spec.samples === undefined ? undefined : String(spec.samples) };
  return planCompress({ ...flags, ...sweepData }, spec.model, targetGiven, { calibrationAloneMeansStatic: false });
}

/** Runs one job to its result (never throws for a failing job: the error is the result). */
export async function runJob(spec: JobSpec, onStage?: (stage: string) => void): Promise<JobResult> {
  const started = Date.now();
  const base: JobResult = {
    id: spec.id, model: spec.model, modelSha256: spec.modelSha256, recipe: spec.recipe, status: 'failed',
    modelpress: packageVersion(), host: hostname(), startedAt: new Date(started).toISOString(), finishedAt: '', timeMs: 0,
  };
  try {
    const out = join(spec.resultsDir, 'models', `${spec.id}.onnx`);
    mkdirSync(join(spec.resultsDir, 'models'), { recursive: true });
    const plan = await planJob(spec, out);
    onStage?.('compress');
    const report = await compressModel(spec.model, out, { passes: plan.passes, calibration: plan.calibration, backend: spec.backend ?? 'auto', force: true, logger: createLogger('error') });
    onStage?.('evaluate');
    // Static W8A8 evaluated itself on the same data when it was given (its accuracy gate needs it).
    const evaluation = (spec.evalData ? report.evaluation : null)
      ?? await evaluateModels(out, spec.model, { data: spec.evalData ?? spec.calibration, samples: spec.samples ?? (spec.evalData || spec.calibration ? undefined : 32), latencyRuns: 0 });
    onStage?.('benchmark');
    const [bench, float] = (await benchmarkInterleavedIsolated([out, spec.model], spec.bench)).results;
    return {
      ...base,
      status: 'done',
      output: relative(spec.resultsDir, out),
      compress: compressSummaryFrom(report),
      quality: qualityFrom(evaluation),
      bench,
      speedup: float.latencyMs.p50 / bench.latencyMs.p50,
      floatP50Ms: float.latencyMs.p50,
      layers: layerPanelsFrom(report),
      finishedAt: new Date().toISOString(),
      timeMs: Date.now() - started,
    };
  } catch (err) {
    return {
      ...base,
      error: { code: err instanceof ModelpressError ? err.code : 'INTERNAL', message: err instanceof Error ? err.message : String(err) },
      finishedAt: new Date().toISOString(),
      timeMs: Date.now() - started,
    };
  }
}
