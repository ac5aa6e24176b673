/**
 * The static W8A8 pipeline: calibrate once, quantize, evaluate; optionally rank layers by
 * sensitivity (one layer quantized at a time) and keep the most sensitive in float until the
 * measured accuracy drop is within a bound (the accuracy gate).
 */
import { DataError, ModelpressError } from '../../errors.ts';
import { OnnxModel } from '../../onnx/model.ts';
import { openDataset, type Preprocess } from '../../data/dataset.ts';
import { collectActivationStats, modelInput, type CollectResult } from '../../calibrate/calibrate.ts';
import { evaluateModels, type EvalReport, type ModelRef } from '../../eval/evaluate.ts';
import { activationTensors, quantizableNodes, quantizeStatic, type StaticOptions, type StaticResult } from './static.ts';
import { correctBiases, type BiasCorrectionReport } from './bias-correction.ts';

/** The layers whose output means bias correction restores. */
const LAYER_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

export interface StaticPipelineOptions
  extends Pick<StaticOptions, 'samples' | 'seed' | 'method' | 'percentile' | 'activations' | 'symmetricActivations' | 'scheduler'> {
  calibrationData: string;
  preprocess?: Preprocess;
  /** Labelled data for the accuracy gate and the sensitivity ranking. */
  evalData?: string;
  evalSamples?: number;
  /** Nodes kept in float from the start (--exclude); the accuracy gate may add more. */
  floatNodes?: string[];
  /** Accuracy gate: the most drop allowed, in points (needs evalData). */
  maxDrop?: number;
  /** Empirical bias correction of the quantized layers (default off here; the CLI's default is auto). */
  biasCorrection?: 'auto' | 'on' | 'off';
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface SensitivityEntry {
  node: string;
  op: string;
  /** Accuracy drop in points with only this layer quantized (labelled data), else null. */
  dropPoints: number | null;
  /** Output SQNR with only this layer quantized. */
  sqnrDb: number;
}

export interface GateReport {
  maxDrop: number;
  met: boolean;
  floatNodes: string[];
  finalDropPoints: number;
  attempts: number;
}

export interface StaticPipelineResult {
  result: StaticResult;
  /** The quantized model (a copy; the input model is unchanged). */
  model: OnnxModel;
  evaluation: EvalReport | null;
  sensitivity: SensitivityEntry[] | null;
  gate: GateReport | null;
  biasCorrection: BiasCorrectionReport | null;
}

async function calibrateOnce(model: OnnxModel, o: StaticPipelineOptions): Promise<CollectResult> {
  const dataset = await openDataset(o.calibrationData, modelInput(model), o.preprocess);
  return collectActivationStats(model, activationTensors(model, {}), {
    dataset, samples: o.samples ?? 256, seed: o.seed, scheduler: o.scheduler, rangesOnly: (o.method ?? 'percentile') === 'minmax',
    onProgress: (d, t) => o.onProgress?.('calibration samples', d, t),
  });
}

/** A copy of `model` (never modified) quantized with the given node choice. */
async function quantizedCopy(model: OnnxModel, o: StaticPipelineOptions, calib: CollectResult, nodes: { floatNodes?: Set<string>; onlyNodes?: Set<string> }): Promise<{ model: OnnxModel; result: StaticResult }> {
  const copy = OnnxModel.fromBytes(model.toBytes(), model.baseDir, model.sourcePath ?? '<in-memory model>');
  const dataset = await openDataset(o.calibrationData, modelInput(copy), o.preprocess);
  const result = await quantizeStatic(copy, {
    dataset, calibration: calib, method: o.method, percentile: o.percentile, activations: o.activations,
    symmetricActivations: o.symmetricActivations, scheduler: o.scheduler, ...nodes,
  });
  return { model: copy, result };
}

const asModel = (m: OnnxModel | string) => (typeof m === 'string' ? OnnxModel.read(m) : m);

/**
 * Accuracy drop with one layer quantized at a time, most damaging first. `baseline` is what the
 * drop is measured against (the original model when earlier passes changed `model`).
 */
export async function sensitivityAnalysis(input: OnnxModel | string, o: StaticPipelineOptions, calib?: CollectResult, baseline?: ModelRef): Promise<SensitivityEntry[]> {
  const model = asModel(input);
  const c = calib ?? (await calibrateOnce(model, o));
  const nodes = quantizableNodes(model);
  const out: SensitivityEntry[] = [];
  for (const [i, n] of nodes.entries()) {
    let one: OnnxModel;
    try {
      one = (await quantizedCopy(model, o, c, { onlyNodes: new Set([n.name!]) })).model;
    } catch (err) {
      if (err instanceof ModelpressError) continue; // nothing to quantize for this node alone
      throw err;
    }
    const e = await evaluateModels(one, baseline ?? model, { data: o.evalData, samples: o.evalSamples, latencyRuns: 0 });
    out.push({ node: n.name!, op: n.opType ?? '', dropPoints: e.accuracy?.dropPoints ?? null, sqnrDb: e.outputs[0].sqnrDb });
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
  let biasReport: BiasCorrectionReport | null = null;
  // Each candidate is bias-corrected before it is judged: the gate sees the model it would keep.
  const candidate = async (floatNodes: Set<string>) => {
    const q = await quantizedCopy(input, o, calib, { floatNodes });
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
    ({ result: current.result, model: current.model, evaluation, sensitivity, gate, biasCorrection: biasReport });
  if (!o.evalData) return done(null, null, null);
  let evaluation = await evaluateModels(current.model, base, { data: o.evalData, samples: o.evalSamples });
  if (o.maxDrop === undefined || !evaluation.accuracy) return done(evaluation, null, null);
  if (evaluation.accuracy.dropPoints <= o.maxDrop) {
    return done(evaluation, null, { maxDrop: o.maxDrop, met: true, floatNodes: [], finalDropPoints: evaluation.accuracy.dropPoints, attempts: 1 });
  }
  const ranking = await sensitivityAnalysis(input, o, calib, base);
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
    evaluation = await evaluateModels(current.model, base, { data: o.evalData, samples: o.evalSamples });
    o.onProgress?.('accuracy gate', floatNodes.size, ranking.length);
    if (evaluation.accuracy!.dropPoints <= o.maxDrop) {
      return done(evaluation, ranking, { maxDrop: o.maxDrop, met: true, floatNodes: [...floatNodes], finalDropPoints: evaluation.accuracy!.dropPoints, attempts });
    }
  }
  return done(evaluation, ranking, { maxDrop: o.maxDrop, met: false, floatNodes: [...floatNodes], finalDropPoints: evaluation.accuracy!.dropPoints, attempts });
}
