/**
 * The static W8A8 pipeline: calibrate once, quantize, evaluate; optionally rank layers by
 * sensitivity (one layer quantized at a time) and keep the most sensitive in float until the
 * measured accuracy drop is within a bound (the accuracy gate).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, ModelpressError } from '../errors.ts';
import { OnnxModel, writeModel } from '../onnx/model.ts';
import { openDataset, type Preprocess } from '../data/dataset.ts';
import { collectActivationStats, modelInput, type CollectResult } from '../calibrate/calibrate.ts';
import { evaluateModels, type EvalReport } from '../eval/evaluate.ts';
import { activationTensors, quantizableNodes, quantizeStatic, type StaticOptions, type StaticResult } from './static.ts';

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
  evaluation: EvalReport | null;
  sensitivity: SensitivityEntry[] | null;
  gate: GateReport | null;
}

async function calibrateOnce(input: string, o: StaticPipelineOptions): Promise<CollectResult> {
  const model = OnnxModel.read(input);
  const dataset = await openDataset(o.calibrationData, modelInput(model), o.preprocess);
  return collectActivationStats(model, activationTensors(model, {}), {
    dataset, samples: o.samples ?? 256, seed: o.seed, scheduler: o.scheduler, rangesOnly: (o.method ?? 'percentile') === 'minmax',
    onProgress: (d, t) => o.onProgress?.('calibration samples', d, t),
  });
}

async function quantizeTo(input: string, out: string, o: StaticPipelineOptions, calib: CollectResult, nodes: { floatNodes?: Set<string>; onlyNodes?: Set<string> }): Promise<StaticResult> {
  const model = OnnxModel.read(input);
  const dataset = await openDataset(o.calibrationData, modelInput(model), o.preprocess);
  const result = await quantizeStatic(model, {
    dataset, calibration: calib, method: o.method, percentile: o.percentile, activations: o.activations,
    symmetricActivations: o.symmetricActivations, scheduler: o.scheduler, ...nodes,
  });
  writeModel(model, out);
  return result;
}

export async function sensitivityAnalysis(input: string, o: StaticPipelineOptions, calib?: CollectResult): Promise<SensitivityEntry[]> {
  const c = calib ?? (await calibrateOnce(input, o));
  const dir = mkdtempSync(join(tmpdir(), 'modelpress-sensitivity-'));
  try {
    const nodes = quantizableNodes(OnnxModel.read(input));
    const out: SensitivityEntry[] = [];
    for (const [i, n] of nodes.entries()) {
      const path = join(dir, 'one.onnx');
      try {
        await quantizeTo(input, path, o, c, { onlyNodes: new Set([n.name!]) });
      } catch (err) {
        if (err instanceof ModelpressError) continue; // nothing to quantize for this node alone
        throw err;
      }
      const e = await evaluateModels(path, input, { data: o.evalData, samples: o.evalSamples, latencyRuns: 0 });
      out.push({ node: n.name!, op: n.opType ?? '', dropPoints: e.accuracy?.dropPoints ?? null, sqnrDb: e.outputs[0].sqnrDb });
      o.onProgress?.('sensitivity layers', i + 1, nodes.length);
    }
    // Most damaging first: largest drop, then lowest SQNR.
    return out.sort((a, b) => (b.dropPoints ?? 0) - (a.dropPoints ?? 0) || a.sqnrDb - b.sqnrDb);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function staticPipeline(input: string, output: string, o: StaticPipelineOptions): Promise<StaticPipelineResult> {
  if (o.maxDrop !== undefined && !o.evalData) throw new DataError('--max-drop needs labelled evaluation data (--eval-data)');
  const calib = await calibrateOnce(input, o);
  const result = await quantizeTo(input, output, o, calib, { floatNodes: new Set(o.floatNodes ?? []) });
  if (!o.evalData) return { result, evaluation: null, sensitivity: null, gate: null };
  let evaluation = await evaluateModels(output, input, { data: o.evalData, samples: o.evalSamples });
  if (o.maxDrop === undefined || !evaluation.accuracy) return { result, evaluation, sensitivity: null, gate: null };
  if (evaluation.accuracy.dropPoints <= o.maxDrop) {
    return { result, evaluation, sensitivity: null, gate: { maxDrop: o.maxDrop, met: true, floatNodes: [], finalDropPoints: evaluation.accuracy.dropPoints, attempts: 1 } };
  }
  const ranking = await sensitivityAnalysis(input, o, calib);
  const floatNodes = new Set<string>(o.floatNodes ?? []);
  let attempts = 1;
  let last = result;
  for (const entry of ranking) {
    if (floatNodes.has(entry.node)) continue;
    floatNodes.add(entry.node);
    attempts++;
    try {
      last = await quantizeTo(input, output, o, calib, { floatNodes });
    } catch (err) {
      if (err instanceof ModelpressError) break; // every quantizable node is float now
      throw err;
    }
    evaluation = await evaluateModels(output, input, { data: o.evalData, samples: o.evalSamples });
    o.onProgress?.('accuracy gate', floatNodes.size, ranking.length);
    if (evaluation.accuracy!.dropPoints <= o.maxDrop) {
      return { result: last, evaluation, sensitivity: ranking, gate: { maxDrop: o.maxDrop, met: true, floatNodes: [...floatNodes], finalDropPoints: evaluation.accuracy!.dropPoints, attempts } };
    }
  }
  return { result: last, evaluation, sensitivity: ranking, gate: { maxDrop: o.maxDrop, met: false, floatNodes: [...floatNodes], finalDropPoints: evaluation.accuracy!.dropPoints, attempts } };
}
