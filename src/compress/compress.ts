/**
 * compressModel: read an ONNX model, compress its weights per the recipe, write the result
 * atomically, and return (and optionally write) the report.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { OutputError } from '../errors.ts';
import { OnnxModel, writeModel, type WriteOptions } from '../onnx/model.ts';
import { Scheduler, type BackendChoice, type BackendInfo } from '../scheduler/scheduler.ts';
import type { RunStats } from '../scheduler/stats.ts';
import { configFor, describeRecipe, parseRecipe, type Recipe } from '../recipe/recipe.ts';
import { quantizeDynamic } from './dynamic.ts';
import { packageVersion } from '../package-root.ts';
import type { Logger } from '../log.ts';
import { compressWeights, type TensorReport } from './weight-only.ts';
import type { Skip } from './targets.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { jsonNumbers } from '../json.ts';
import type { GateReport, SensitivityEntry, StaticPipelineOptions } from './static-pipeline.ts';
import type { ActivationReport } from './static.ts';
import type { EvalReport } from '../eval/evaluate.ts';

export interface CompressOptions {
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
}

export interface CompressReport {
  modelpress: string;
  mode: 'weight-only' | 'static-w8a8' | 'dynamic';
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
  };
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

export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = new Uint8Array(1 << 20);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
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

export async function compressModel(input: string, output: string, opts: CompressOptions = {}): Promise<CompressReport> {
  const t0 = performance.now();
  checkOutputPath(input, output, Boolean(opts.force));
  if (opts.reportPath) checkOutputPath(input, opts.reportPath, true);
  const recipe = opts.recipe ?? parseRecipe({});
  const model = OnnxModel.read(input);
  const sha256 = sha256File(input);
  const scheduler = opts.scheduler ?? (await Scheduler.create({ backend: opts.backend ?? 'auto', logger: opts.logger }));
  try {
    scheduler.resetStats();
    let result: { tensors: TensorReport[]; skipped: Skip[] };
    let extra: Partial<CompressReport> = {};
    let externalFile: string | null = null;
    let externalBytes = 0;
    if (opts.static) {
      // Loaded on demand: it brings ONNX Runtime, which weight-only runs never need.
      const { staticPipeline } = await import('./static-pipeline.ts');
      const sp = await staticPipeline(input, output, { ...opts.static, scheduler, onProgress: (stage, d, t) => opts.onProgress?.(d, t, stage) });
      result = { tensors: sp.result.weights, skipped: sp.result.skipped };
      extra = {
        activations: sp.result.activations,
        calibration: { ...sp.result.calibration, biases: sp.result.biases },
        evaluation: sp.evaluation, sensitivity: sp.sensitivity, gate: sp.gate,
      };
    } else {
      result = { tensors: [], skipped: [] };
      const created = new Set<string>();
      if (opts.dynamic) {
        const floatNodes = new Set(model.msg.graph!.node.filter((n) => configFor(recipe, n) === null).map((n) => n.name ?? ''));
        const d = await quantizeDynamic(model, { scheduler, floatNodes, reduceRange: opts.dynamic.reduceRange, minElements: recipe.minElements });
        result.tensors.push(...d.tensors);
        result.skipped.push(...d.skipped);
        for (const c of d.created) created.add(c);
      }
      const w = await compressWeights(model, { recipe, scheduler, onProgress: opts.onProgress });
      result.tensors.push(...w.tensors);
      // A weight the dynamic pass skipped may still be compressed weight-only: report it once.
      const compressed = new Set(result.tensors.map((t) => t.name));
      result.skipped = [...result.skipped, ...w.skipped].filter((sk, i, all) => !compressed.has(sk.name) && !created.has(sk.name) && all.findIndex((o) => o.name === sk.name) === i);
      const written = writeModel(model, output, opts.write);
      externalFile = written.externalFile;
      externalBytes = written.externalBytes;
    }
    const modelBytesAfter = statSync(output).size + externalBytes;
    const before = result.tensors.reduce((s, t) => s + t.bytesBefore, 0);
    const after = result.tensors.reduce((s, t) => s + t.bytesAfter, 0);
    const sqnrs = result.tensors.map((t) => t.sqnrDb).filter((x) => Number.isFinite(x));
    const info = scheduler.info;
    const report: CompressReport = {
      modelpress: packageVersion(),
      mode: opts.static ? 'static-w8a8' : opts.dynamic ? 'dynamic' : 'weight-only',
      manifest: {
        input: { path: input, sha256, bytes: model.sourceBytes },
        output: { path: output, bytes: modelBytesAfter, externalData: externalFile },
        recipe: opts.static ? { weights: 'int8', granularity: 'channel', symmetric: true, format: 'qdq', ...opts.static } : { ...describeRecipe(recipe), ...(opts.dynamic ? { activations: 'dynamic', ...opts.dynamic } : {}) },
        backend: { active: info.active, reason: info.reason, runtime: info.runtime, adapter: info.adapter ? info.adapter.description || info.adapter.vendor : null },
      },
      totals: {
        tensorsQuantized: result.tensors.length,
        tensorsSkipped: result.skipped.length,
        weightBytesBefore: before,
        weightBytesAfter: after,
        modelBytesBefore: model.sourceBytes,
        modelBytesAfter,
        ratio: modelBytesAfter ? model.sourceBytes / modelBytesAfter : 0,
        worstSqnrDb: sqnrs.length ? Math.min(...sqnrs) : null,
      },
      tensors: result.tensors,
      skipped: result.skipped,
      stats: scheduler.stats,
      timeMs: performance.now() - t0,
      ...extra,
    };
    if (opts.reportPath) writeFileAtomic(opts.reportPath, JSON.stringify(report, jsonNumbers, 2) + '\n');
    return report;
  } finally {
    if (!opts.scheduler) scheduler.dispose();
  }
}

export { jsonNumbers } from '../json.ts';
