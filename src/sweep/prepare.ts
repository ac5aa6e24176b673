/**
 * Before any job runs: recipes parsed (a bad flag fails the sweep at once, not after an hour),
 * models hashed, every model loaded and run once in ONNX Runtime (the pre-flight), job ids
 * computed, and the float baselines benchmarked once per model.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataError, RecipeError } from '../errors.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';
import { packageVersion } from '../package-root.ts';
import { sha256File } from '../file-hash.ts';
import { benchInputs, modelFileBytes, type BenchOptions } from '../benchmark/latency.ts';
import { benchmarkIsolated } from '../benchmark/isolated.ts';
import { expandModels, jobId, parseRecipeFlags, type SweepSpec } from './spec.ts';
import { planJob, type JobSpec } from './job.ts';
import { baselineId, baselinePath, type Baseline } from './summary.ts';

export interface PreparedSweep {
  spec: SweepSpec;
  models: Array<{ path: string; sha256: string }>;
  jobs: JobSpec[];
  version: string;
}

export async function prepareSweep(spec: SweepSpec, resultsDir: string): Promise<PreparedSweep> {
  if (!spec.models.length) throw new RecipeError('no models: give model files or folders (or models: in the sweep file)');
  if (!spec.recipes.length) throw new RecipeError('no recipes: give --recipe files, or recipes:/grid: in a sweep file');
  const names = spec.recipes.map((r) => r.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new RecipeError(`two recipes are named '${dup}': recipe names must be unique`);
  for (const r of spec.recipes) parseRecipeFlags(r);
  for (const [flag, p] of [['--calibration', spec.calibration], ['--eval-data', spec.evalData]] as const) {
    if (p && !existsSync(p)) throw new DataError(`${flag} ${p}: not found`, { path: p });
  }
  const version = packageVersion();
  const models = expandModels(spec.models).map((path) => ({ path, sha256: sha256File(path) }));
  const jobs: JobSpec[] = [];
  for (const m of models) {
    for (const recipe of spec.recipes) {
      // The plan of every job, before any runs: a recipe that cannot work on a model fails the sweep now.
      try {
        await planJob({ recipe, model: m.path, calibration: spec.calibration, evalData: spec.evalData, samples: spec.samples }, join(resultsDir, 'plan-check.onnx'));
      } catch (err) {
        if (err instanceof RecipeError) throw new RecipeError(`recipe '${recipe.name}' on ${m.path}: ${err.message}`, { recipe: recipe.name, model: m.path });
        throw err;
      }
      jobs.push({
        id: jobId(m.sha256, recipe, spec, version), model: m.path, modelSha256: m.sha256, recipe,
        calibration: spec.calibration, evalData: spec.evalData, samples: spec.samples, bench: spec.bench, backend: spec.backend, resultsDir,
      });
    }
  }
  return { spec, models, jobs, version };
}

/** Loads and runs every model once in ONNX Runtime; all failures reported together. */
export async function preflight(models: ReadonlyArray<{ path: string }>, spec: Pick<SweepSpec, 'bench'>): Promise<void> {
  const failures: string[] = [];
  for (const m of models) {
    try {
      const { feeds } = await benchInputs(m.path, { ...spec.bench, batch: spec.bench.batch ?? 1 });
      const s = await ort.InferenceSession.create(m.path);
      try {
        await s.run(feeds);
      } finally {
        await s.release();
      }
    } catch (err) {
      failures.push(`${m.path}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (failures.length) throw new DataError(`pre-flight failed (no job was started): ${failures.length} model(s) do not load and run in ONNX Runtime: ${failures.join('; ')}`);
}

/** A model's float benchmark already in baselines/ (for these benchmark settings), else null. */
function readBaseline(m: { path: string; sha256: string }, bench: BenchOptions, version: string, resultsDir: string): Baseline | null {
  const file = baselinePath(resultsDir, baselineId(m.sha256, bench, version));
  // The path as this machine names the model (a shared folder may be mounted elsewhere).
  return existsSync(file) ? { ...(JSON.parse(readFileSync(file, 'utf8')) as Baseline), model: m.path } : null;
}

/** One model's float benchmark, run once per model and benchmark settings (kept in baselines/). */
export async function ensureBaseline(m: { path: string; sha256: string }, bench: BenchOptions, version: string, resultsDir: string, onRun?: () => void): Promise<Baseline> {
  const known = readBaseline(m, bench, version, resultsDir);
  if (known) return known;
  mkdirSync(join(resultsDir, 'baselines'), { recursive: true });
  const file = baselinePath(resultsDir, baselineId(m.sha256, bench, version));
  onRun?.();
  const result = (await benchmarkIsolated(m.path, bench)).result;
  const b: Baseline = { model: m.path, modelSha256: m.sha256, bytes: modelFileBytes(m.path), bench: result };
  writeFileAtomic(file, JSON.stringify(b, jsonNumbers, 2) + '\n');
  return b;
}

export async function ensureBaselines(p: PreparedSweep, resultsDir: string, onModel?: (path: string) => void): Promise<Map<string, Baseline>> {
  const out = new Map<string, Baseline>();
  for (const m of p.models) out.set(m.path, await ensureBaseline(m, p.spec.bench, p.version, resultsDir, () => onModel?.(m.path)));
  return out;
}

/** Baselines already in the folder (for `report` and `sweep --status`), by model path. */
export function readBaselines(p: Pick<PreparedSweep, 'models' | 'version'> & { spec: Pick<SweepSpec, 'bench'> }, resultsDir: string): Map<string, Baseline> {
  const out = new Map<string, Baseline>();
  for (const m of p.models) {
    const b = readBaseline(m, p.spec.bench, p.version, resultsDir);
    if (b) out.set(m.path, b);
  }
  return out;
}
