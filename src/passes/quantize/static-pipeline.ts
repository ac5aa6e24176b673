/**
 * The static W8A8 pipeline: calibrate once, quantize, evaluate; optionally rank layers by
 * sensitivity (one layer quantized at a time) and keep the most sensitive in float until the
 * measured accuracy drop is within a bound (the accuracy gate).
 */
import { DataError, ModelpressError } from '../../errors.ts';
import { OnnxModel } from '../../onnx/model.ts';
import { openDataset, seededSample, type Preprocess } from '../../data/dataset.ts';
import { collectActivationStats, modelInput, type CollectResult } from '../../calibrate/calibrate.ts';
import { DEFAULT_PERCENTILE } from '../../calibrate/methods.ts';
import { evaluateModels, type BaselineCache, type EvalReport, type ModelRef } from '../../eval/evaluate.ts';
import { activationTensors, quantizableNodes, quantizeStatic, type StaticOptions, type StaticResult } from './static.ts';
import { correctBiases, type BiasCorrectionReport } from './bias-correction.ts';
import type { GptqLayerReport, GptqRounder, GptqTiming } from './gptq.ts';

/** The layers whose output means bias correction restores. */
const LAYER_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

export interface StaticPipelineOptions
  extends Pick<StaticOptions, 'samples' | 'seed' | 'method' | 'percentile' | 'activations' | 'symmetricActivations' | 'reduceRange' | 'scheduler'> {
  calibrationData: string;
  preprocess?: Preprocess;
  /** Labelled data for the accuracy gate and the sensitivity ranking. */
  evalData?: string;
  evalSamples?: number;
  /** Nodes kept in float from the start (--exclude); the accuracy gate may add more. */
  floatNodes?: string[];
  /** Accuracy gate: the most drop allowed, in points (needs evalData). */
  maxDrop?: number;
  /**
   * Label-free gate: the least output cosine / SQNR (dB) allowed against the float model, the
   * minimum over the model's outputs, on evalData when given, else on calibration samples that
   * range calibration did not read.
   */
  minCosine?: number;
  minSqnrDb?: number;
  /**
   * GPTQ for the int8 weights: each layer's rounding error spread by the inverse Hessian of its
   * float inputs on the calibration data (the same samples range calibration reads).
   */
  weightMethod?: 'rtn' | 'gptq';
  actOrder?: boolean;
  /** Empirical bias correction of the quantized layers (default off here; the CLI's default is auto). */
  biasCorrection?: 'auto' | 'on' | 'off';
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface SensitivityEntry {
  node: string;
  op: string;
  /** Accuracy drop in points with only this layer quantized (labelled data), else null. */
  dropPoints: number | null;
  /** Output SQNR and cosine (lowest over the outputs) with only this layer quantized. */
  sqnrDb: number;
  cosine: number;
}

export interface GateReport {
  /** The bounds asked for (null: not asked). */
  maxDrop: number | null;
  minCosine: number | null;
  minSqnrDb: number | null;
  met: boolean;
  floatNodes: string[];
  /** Null when the data had no labels. */
  finalDropPoints: number | null;
  /** Lowest over the model's outputs. */
  finalCosine: number;
  finalSqnrDb: number;
  attempts: number;
  /** What the gate measured on. */
  data: string;
}

/** Samples a candidate is judged on. */
export interface JudgeSet {
  data: string;
  preprocess?: Preprocess;
  indices?: number[];
  samples?: number;
  description: string;
  /** The baseline's outputs on these samples, computed once for every candidate judged. */
  cache: BaselineCache;
}

/**
 * Labelled evaluation data when given; else calibration samples that range calibration did not
 * read (the same seeded draw, its complement), at most `evalSamples` (default 64) of them.
 */
export async function judgeSet(model: OnnxModel, o: StaticPipelineOptions): Promise<JudgeSet> {
  if (o.evalData) return { data: o.evalData, samples: o.evalSamples, description: o.evalData, cache: { batches: new Map() } };
  const ds = await openDataset(o.calibrationData, modelInput(model), o.preprocess);
  const used = new Set(seededSample(ds.count, o.samples ?? 256, o.seed ?? 1));
  const rest = Array.from({ length: ds.count }, (_, i) => i).filter((i) => !used.has(i));
  if (rest.length < 8) {
    throw new DataError(`judging without labels needs calibration samples that calibration does not read: ${ds.description} has ${ds.count} and --calib-samples takes ${used.size}; give more data, fewer --calib-samples, or labelled --eval-data`);
  }
  const pick = seededSample(rest.length, o.evalSamples ?? 64, (o.seed ?? 1) + 1).map((k) => rest[k]);
  return { data: o.calibrationData, preprocess: o.preprocess, indices: pick, description: `${pick.length} held-out samples of ${ds.description}, not read by calibration`, cache: { batches: new Map() } };
}

/** The lowest cosine and SQNR over a model's outputs: what the label-free bounds judge. */
export const lowest = (e: EvalReport) => ({ cosine: Math.min(...e.outputs.map((x) => x.cosine)), sqnrDb: Math.min(...e.outputs.map((x) => x.sqnrDb)) });

/** Whether an evaluation meets every bound given (the drop needs labels). */
export function meetsBounds(e: EvalReport, b: { maxDrop?: number; minCosine?: number; minSqnrDb?: number }): boolean {
  const l = lowest(e);
  return (b.maxDrop === undefined || e.accuracy!.dropPoints <= b.maxDrop) && (b.minCosine === undefined || l.cosine >= b.minCosine) && (b.minSqnrDb === undefined || l.sqnrDb >= b.minSqnrDb);
}

export interface StaticPipelineResult {
  result: StaticResult;
  /** The quantized model (a copy; the input model is unchanged). */
  model: OnnxModel;
  evaluation: EvalReport | null;
  sensitivity: SensitivityEntry[] | null;
  gate: GateReport | null;
  biasCorrection: BiasCorrectionReport | null;
  /** GPTQ's per-layer objectives (RTN vs GPTQ) and timing, with weightMethod gptq. */
  gptq: { layers: GptqLayerReport[]; timing: GptqTiming } | null;
}

async function calibrateOnce(model: OnnxModel, o: StaticPipelineOptions): Promise<CollectResult> {
  const dataset = await openDataset(o.calibrationData, modelInput(model), o.preprocess);
  return collectActivationStats(model, activationTensors(model, {}), {
    dataset, samples: o.samples ?? 256, seed: o.seed, scheduler: o.scheduler, rangesOnly: (o.method ?? 'percentile') === 'minmax',
    percentile: (o.method ?? 'percentile') === 'percentile' ? (o.percentile ?? DEFAULT_PERCENTILE) : undefined,
    onProgress: (d, t) => o.onProgress?.('calibration samples', d, t),
  });
}

/** A copy of `model` (never modified) quantized with the given node choice. */
async function quantizedCopy(model: OnnxModel, o: StaticPipelineOptions, calib: CollectResult, nodes: { floatNodes?: Set<string>; onlyNodes?: Set<string> }, rounder?: GptqRounder): Promise<{ model: OnnxModel; result: StaticResult }> {
  const copy = OnnxModel.fromBytes(model.toBytes(), model.baseDir, model.sourcePath ?? '<in-memory model>');
  const dataset = await openDataset(o.calibrationData, modelInput(copy), o.preprocess);
  const result = await quantizeStatic(copy, {
    dataset, calibration: calib, method: o.method, percentile: o.percentile, activations: o.activations,
    symmetricActivations: o.symmetricActivations, reduceRange: o.reduceRange, scheduler: o.scheduler, rounder, ...nodes,
  });
  return { model: copy, result };
}

/** GPTQ's Hessians for every quantizable layer's weight, from the float model's inputs. */
async function collectRounder(model: OnnxModel, o: StaticPipelineOptions): Promise<GptqRounder> {
  const { GptqRounder: Rounder } = await import('./gptq.ts');
  const weights = quantizableNodes(model).map((n) => n.input[1]).filter((w): w is string => Boolean(w) && model.graph.weights.has(w));
  return Rounder.collect(model, weights, {
    calibration: { data: o.calibrationData, preprocess: o.preprocess, samples: o.samples, seed: o.seed }, scheduler: o.scheduler, actOrder: o.actOrder,
    onProgress: (stage, d, t) => o.onProgress?.(stage, d, t),
  });
}

const asModel = (m: OnnxModel | string) => (typeof m === 'string' ? OnnxModel.read(m) : m);
const evalOn = (j: JudgeSet) => ({ data: j.data, preprocess: j.preprocess, indices: j.indices, samples: j.samples, baselineCache: j.cache });

/**
 * Accuracy drop with one layer quantized at a time, most damaging first. `baseline` is what the
 * drop is measured against (the original model when earlier passes changed `model`).
 */
export async function sensitivityAnalysis(input: OnnxModel | string, o: StaticPipelineOptions, calib?: CollectResult, baseline?: ModelRef, judge?: JudgeSet, rounder?: GptqRounder): Promise<SensitivityEntry[]> {
  const model = asModel(input);
  const c = calib ?? (await calibrateOnce(model, o));
  const on = judge ?? (await judgeSet(model, o));
  const nodes = quantizableNodes(model);
  const out: SensitivityEntry[] = [];
  for (const [i, n] of nodes.entries()) {
    let one: OnnxModel;
    try {
      one = (await quantizedCopy(model, o, c, { onlyNodes: new Set([n.name!]) }, rounder)).model;
    } catch (err) {
      if (err instanceof ModelpressError) continue; // nothing to quantize for this node alone
      throw err;
    }
    const e = await evaluateModels(one, baseline ?? model, { ...evalOn(on), latencyRuns: 0 });
    out.push({ node: n.name!, op: n.opType ?? '', dropPoints: e.accuracy?.dropPoints ?? null, ...lowest(e) });
    o.onProgress?.('sensitivity layers', i + 1, nodes.length);
  }
  // Most damaging first: largest drop, then lowest SQNR.
  return out.sort((a, b) => (b.dropPoints ?? 0) - (a.dropPoints ?? 0) || a.sqnrDb - b.sqnrDb);
}

/**
 * Static W8A8 on an in-memory model: calibrate once, quantize a copy, evaluate against `baseline`
 * (default: the model as given), and with `maxDrop` keep the most sensitive layers in float until
 * the drop is within it. Returns the quantized model; nothing is written.
 */
export async function staticPipeline(input: OnnxModel, o: StaticPipelineOptions, baseline?: ModelRef): Promise<StaticPipelineResult> {
  if (o.maxDrop !== undefined && !o.evalData) throw new DataError('--max-drop needs labelled evaluation data (--eval-data)');
  const base = baseline ?? input;
  const calib = await calibrateOnce(input, o);
  const rounder = o.weightMethod === 'gptq' ? await collectRounder(input, o) : undefined;
  let biasReport: BiasCorrectionReport | null = null;
  // Each candidate is bias-corrected before it is judged: the gate sees the model it would keep.
  const candidate = async (floatNodes: Set<string>) => {
    const q = await quantizedCopy(input, o, calib, { floatNodes }, rounder);
    if ((o.biasCorrection ?? 'off') === 'off') return q;
    const layers = q.result.quantizedNodes.filter((n) => LAYER_OPS.has(input.msg.graph!.node.find((x) => x.name === n)?.opType ?? ''));
    const corrected = await correctBiases(input, q.model, layers, {
      mode: o.biasCorrection as 'on' | 'auto', allowAdd: false, onProgress: o.onProgress,
      calibration: { data: o.calibrationData, preprocess: o.preprocess, samples: o.samples, seed: o.seed },
    });
    biasReport = corrected.report;
    return { model: corrected.model, result: q.result };
  };
  let current = await candidate(new Set(o.floatNodes ?? []));
  const done = (evaluation: EvalReport | null, sensitivity: SensitivityEntry[] | null, gate: GateReport | null): StaticPipelineResult =>
    ({ result: current.result, model: current.model, evaluation, sensitivity, gate, biasCorrection: biasReport, gptq: rounder ? { layers: rounder.reports, timing: rounder.timing } : null });
  const labelFree = o.minCosine !== undefined || o.minSqnrDb !== undefined;
  if (!o.evalData && !labelFree) return done(null, null, null);
  const judge = await judgeSet(input, o);
  const evaluate = (m: OnnxModel) => evaluateModels(m, base, { ...evalOn(judge), latencyRuns: o.evalData ? undefined : 0 });
  let evaluation = await evaluate(current.model);
  if (o.maxDrop === undefined && !labelFree) return done(evaluation, null, null);
  if (o.maxDrop !== undefined && !evaluation.accuracy) throw new DataError(`--max-drop needs labels: ${judge.description} has none (use --min-cosine / --min-sqnr without labels)`);
  const gate = (met: boolean, floatNodes: string[], attempts: number): GateReport => ({
    maxDrop: o.maxDrop ?? null, minCosine: o.minCosine ?? null, minSqnrDb: o.minSqnrDb ?? null, met, floatNodes, attempts, data: judge.description,
    finalDropPoints: evaluation.accuracy?.dropPoints ?? null, finalCosine: lowest(evaluation).cosine, finalSqnrDb: lowest(evaluation).sqnrDb,
  });
  const meets = (e: EvalReport) => meetsBounds(e, o);
  if (meets(evaluation)) return done(evaluation, null, gate(true, [], 1));
  const ranking = await sensitivityAnalysis(input, o, calib, base, judge, rounder);
  const floatNodes = new Set<string>(o.floatNodes ?? []);
  let attempts = 1;
  for (const entry of ranking) {
    if (floatNodes.has(entry.node)) continue;
    floatNodes.add(entry.node);
    attempts++;
    try {
      current = await candidate(floatNodes);
    } catch (err) {
      if (err instanceof ModelpressError) break; // every quantizable node is float now
      throw err;
    }
    evaluation = await evaluate(current.model);
    o.onProgress?.('accuracy gate', floatNodes.size, ranking.length);
    if (meets(evaluation)) return done(evaluation, ranking, gate(true, [...floatNodes], attempts));
  }
  return done(evaluation, ranking, gate(false, [...floatNodes], attempts));
}
