/**
 * compressModel: the compression pipeline. The model is read once, an ordered list of passes runs
 * over it (prune, then quantize; see passes/registry.ts), and it is written once, atomically, with
 * one report: a section per pass, the totals and the reproducibility manifest.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { OutputError, RecipeError } from '../errors.ts';
import { OnnxModel, writeModel, type WriteOptions } from '../onnx/model.ts';
import { Scheduler, type BackendChoice, type BackendInfo } from '../scheduler/scheduler.ts';
import type { RunStats } from '../scheduler/stats.ts';
import { describeRecipe, parseRecipe, type Recipe } from '../recipe/recipe.ts';
import { packageVersion } from '../package-root.ts';
import type { Logger } from '../log.ts';
import type { TensorReport } from '../passes/quantize/weight-only.ts';
import type { Skip } from '../passes/quantize/targets.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';
import type { GateReport, SensitivityEntry, StaticPipelineOptions } from '../passes/quantize/static-pipeline.ts';
import type { ActivationReport } from '../passes/quantize/static.ts';
import type { EvalReport } from '../eval/evaluate.ts';
import type { CalibrationSource, PassContext } from '../passes/pass.ts';
import { passes, type PassName, type PassSpec } from '../passes/registry.ts';
import type { QuantizeMode, QuantizeReport } from '../passes/quantize/pass.ts';
import type { PrunePassReport } from '../passes/prune/pass.ts';
import { layerCosts } from '../analysis/macs.ts';
import { sha256FileInBackground } from '../file-hash.ts';

export interface CompressOptions {
  /** The passes to run, in order. Without it: one quantize pass from recipe / static / dynamic. */
  passes?: PassSpec[];
  /** Data for every pass that reads calibration data. */
  calibration?: CalibrationSource;
  recipe?: Recipe;
  backend?: BackendChoice;
  /** Use this scheduler instead of creating one (its backend wins). */
  scheduler?: Scheduler;
  force?: boolean;
  reportPath?: string;
  write?: WriteOptions;
  logger?: Logger;
  onProgress?: (done: number, total: number, name: string) => void;
  /** Static W8A8: calibrate activations and insert QDQ pairs (weights int8 per-channel). */
  static?: Omit<StaticPipelineOptions, 'scheduler'>;
  /**
   * Dynamic-range quantization: MatMul/Gemm products in int8 with activations quantized at run
   * time; the recipe then compresses the remaining weights (convolutions) weight-only.
   */
  dynamic?: { reduceRange?: boolean };
  /**
   * The input's SHA-256 for the manifest when the caller has already started it (the CLI starts
   * hashing before it loads the pipeline's modules, so the hash is not the run's tail).
   */
  inputSha256?: Promise<string>;
}

export interface PassSection {
  pass: PassName;
  timeMs: number;
  usedCalibration: boolean;
  report: unknown;
}

export interface CompressReport {
  modelpress: string;
  /** The quantization applied ('float' when no quantize pass ran). */
  mode: QuantizeMode | 'float';
  manifest: {
    input: { path: string; sha256: string; bytes: number };
    output: { path: string; bytes: number; externalData: string | null };
    recipe: Record<string, unknown>;
    backend: Pick<BackendInfo, 'active' | 'reason' | 'runtime'> & { adapter: string | null };
  };
  totals: {
    tensorsQuantized: number;
    tensorsSkipped: number;
    weightBytesBefore: number;
    weightBytesAfter: number;
    modelBytesBefore: number;
    modelBytesAfter: number;
    ratio: number;
    worstSqnrDb: number | null;
    macsBefore: number;
    macsAfter: number;
  };
  passes: PassSection[];
  /** The prune pass's section, when it ran. */
  prune?: PrunePassReport;
  tensors: TensorReport[];
  skipped: Skip[];
  stats: RunStats;
  timeMs: number;
  /** Static W8A8 only. */
  activations?: ActivationReport[];
  calibration?: { samples: number; method: string; ortMs: number; statsMs: number; biases: number };
  evaluation?: EvalReport | null;
  sensitivity?: SensitivityEntry[] | null;
  gate?: GateReport | null;
}

function samePath(a: string, b: string): boolean {
  const ra = existsSync(a) ? realpathSync(a) : resolve(a);
  const rb = existsSync(b) ? realpathSync(b) : resolve(b);
  return ra === rb;
}

/** Refuses to overwrite the input, or an existing output without `force`. */
export function checkOutputPath(input: string, output: string, force: boolean): void {
  if (samePath(input, output)) throw new OutputError(`output path ${output} is the input model; choose another path (inputs are never modified)`, { path: output });
  if (existsSync(output) && !force) throw new OutputError(`output ${output} already exists; pass --force to replace it`, { path: output });
}

/**
 * Passes must follow the registry's order (prune before quantize) and appear once each: a quantize
 * before a prune would prune quantized weights, and two quantize passes would quantize twice.
 */
export function validatePassOrder(list: readonly PassSpec[]): void {
  for (let i = 1; i < list.length; i++) {
    const a = passes[list[i - 1].pass];
    const b = passes[list[i].pass];
    if (a.name === b.name) throw new RecipeError(`two ${a.name} passes: give one ${a.name} pass with all its options (passes: ${list.map((p) => p.pass).join(', ')})`);
    if (a.rank > b.rank) {
      const order = [...list].sort((x, y) => passes[x.pass].rank - passes[y.pass].rank).map((p) => p.pass).join(', ');
      throw new RecipeError(`${b.name} cannot run after ${a.name}: order the passes ${order}`);
    }
  }
  for (const p of list) if (!(p.pass in passes)) throw new RecipeError(`unknown pass '${String(p.pass)}' (known: ${Object.keys(passes).join(', ')})`);
  const compact = list.findIndex((p) => p.pass === 'sparsify' && p.options.format === 'compact');
  const later = compact >= 0 ? list.slice(compact + 1).find((p) => p.pass === 'palettize' || p.pass === 'quantize') : undefined;
  if (later) throw new RecipeError(`sparsify format 'compact' stores weights as a decode chain that ${later.pass} cannot read; use format 'dense' (zeros stay exactly zero through ${later.pass}) or drop ${later.pass}`);
}

/** The pass list a call without `passes` means: one quantize pass, as compress always did. */
function legacyPasses(opts: CompressOptions): { list: PassSpec[]; calibration?: CalibrationSource } {
  const recipe = opts.recipe ?? parseRecipe({});
  if (opts.static) {
    const { calibrationData, preprocess, samples, seed, onProgress: _ignored, ...rest } = opts.static;
    return { list: [{ pass: 'quantize', options: { mode: 'static-w8a8', recipe, static: rest } }], calibration: { data: calibrationData, preprocess, samples, seed } };
  }
  if (opts.dynamic) return { list: [{ pass: 'quantize', options: { mode: 'dynamic', recipe, reduceRange: opts.dynamic.reduceRange } }] };
  return { list: [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }] };
}

function describePass(p: PassSpec): Record<string, unknown> {
  if (p.pass === 'quantize') {
    const { recipe, ...rest } = p.options;
    return { pass: 'quantize', ...rest, ...(p.options.mode === 'static-w8a8' ? { weights: 'int8', granularity: 'channel', symmetric: true, format: 'qdq' } : describeRecipe(recipe)) };
  }
  if (p.pass === 'distill') {
    const { requantize, ...rest } = p.options;
    return { pass: 'distill', ...rest, ...(requantize ? { requantize: 'as the quantize pass' } : {}) };
  }
  const { exclude, ...rest } = p.options;
  return { pass: p.pass, ...rest, ...(exclude?.size ? { exclude: [...exclude] } : {}) };
}

export async function compressModel(input: string, output: string, opts: CompressOptions = {}): Promise<CompressReport> {
  const t0 = performance.now();
  checkOutputPath(input, output, Boolean(opts.force));
  if (opts.reportPath) checkOutputPath(input, opts.reportPath, true);
  const legacy = opts.passes ? null : legacyPasses(opts);
  const list = opts.passes ?? legacy!.list;
  const calibration = opts.calibration ?? legacy?.calibration;
  validatePassOrder(list);
  let model = OnnxModel.read(input);
  const inputBytes = model.sourceBytes;
  // Hashed beside the passes' work; awaited for the manifest. Marked handled so a failing pass does
  // not also surface the hash's rejection as an unhandled one.
  const hashing = opts.inputSha256 ?? sha256FileInBackground(input, inputBytes);
  hashing.catch(() => undefined);
  const macsBefore = layerCosts(model).macs;
  const scheduler = opts.scheduler ?? (await Scheduler.create({ backend: opts.backend ?? 'auto', logger: opts.logger }));
  try {
    scheduler.resetStats();
    const sections: PassSection[] = [];
    const tensors: TensorReport[] = [];
    const skipped: Skip[] = [];
    let quantize: QuantizeReport | null = null;
    let prune: PrunePassReport | undefined;
    for (const spec of list) {
      const started = performance.now();
      const ctx: PassContext = { model, inputPath: input, scheduler, calibration, logger: opts.logger, onProgress: (stage, d, t) => opts.onProgress?.(d, t, stage) };
      const descriptor = passes[spec.pass] as { run(ctx: PassContext, o: unknown): ReturnType<(typeof passes)[PassName]['run']> };
      const outcome = await descriptor.run(ctx, spec.options);
      if (outcome.model) model = outcome.model;
      tensors.push(...(outcome.tensors ?? []));
      skipped.push(...(outcome.skipped ?? []));
      sections.push({ pass: spec.pass, timeMs: performance.now() - started, usedCalibration: outcome.usedCalibration, report: outcome.report });
      if (spec.pass === 'quantize') quantize = outcome.report as QuantizeReport;
      if (spec.pass === 'prune') prune = outcome.report as PrunePassReport;
    }
    if (calibration && !sections.some((s) => s.usedCalibration)) {
      opts.logger?.warn(`--calibration ${calibration.data} was read by no pass (${list.map((p) => p.pass).join(', ')}); it is used by: ${Object.values(passes).filter((p) => p.calibrationUse).map((p) => `${p.name} (${p.calibrationUse})`).join('; ')}`);
    }
    const written = writeModel(model, output, opts.write);
    const modelBytesAfter = statSync(output).size + written.externalBytes;
    // A weight several passes touched (sparsify, then palettize) counts once: as it came in, as it left.
    const byName = new Map<string, { before: number; after: number }>();
    for (const t of tensors) byName.set(t.name, { before: byName.get(t.name)?.before ?? t.bytesBefore, after: t.bytesAfter });
    const before = [...byName.values()].reduce((s, t) => s + t.before, 0);
    const after = [...byName.values()].reduce((s, t) => s + t.after, 0);
    const sqnrs = tensors.map((t) => t.sqnrDb).filter((x) => Number.isFinite(x));
    const info = scheduler.info;
    const q = list.find((p) => p.pass === 'quantize');
    const sha256 = await hashing;
    const report: CompressReport = {
      modelpress: packageVersion(),
      mode: quantize?.mode ?? 'float',
      manifest: {
        input: { path: input, sha256, bytes: inputBytes },
        output: { path: output, bytes: modelBytesAfter, externalData: written.externalFile },
        recipe: { ...(q ? describePass(q) : {}), passes: list.map(describePass), ...(calibration ? { calibration } : {}) },
        backend: { active: info.active, reason: info.reason, runtime: info.runtime, adapter: info.adapter ? info.adapter.description || info.adapter.vendor : null },
      },
      totals: {
        tensorsQuantized: byName.size,
        tensorsSkipped: skipped.length,
        weightBytesBefore: before,
        weightBytesAfter: after,
        modelBytesBefore: inputBytes,
        modelBytesAfter,
        ratio: modelBytesAfter ? inputBytes / modelBytesAfter : 0,
        worstSqnrDb: sqnrs.length ? Math.min(...sqnrs) : null,
        macsBefore: prune ? prune.macsBefore : macsBefore,
        macsAfter: prune ? prune.macsAfter : macsBefore,
      },
      passes: sections,
      ...(prune ? { prune } : {}),
      tensors,
      skipped,
      stats: scheduler.stats,
      timeMs: performance.now() - t0,
      ...(quantize && quantize.mode === 'static-w8a8' ? {
        activations: quantize.activations, calibration: quantize.calibration, sensitivity: quantize.sensitivity, gate: quantize.gate,
        // The static pass evaluated its own output: stale once a later pass (distill) changed the model.
        evaluation: list[list.length - 1].pass === 'quantize' ? quantize.evaluation : null,
      } : {}),
    };
    if (opts.reportPath) writeFileAtomic(opts.reportPath, JSON.stringify(report, jsonNumbers, 2) + '\n');
    return report;
  } finally {
    if (!opts.scheduler) scheduler.dispose();
  }
}

export { jsonNumbers } from '../json.ts';
