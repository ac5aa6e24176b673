/**
 * The quantize pass: weight-only (int8/int4/fp16, any format), dynamic (int8 MatMul with run-time
 * activation ranges) or static W8A8 (activation ranges from calibration data, accuracy gate).
 */
import { DataError } from '../../errors.ts';
import { configFor, type Recipe } from '../../recipe/recipe.ts';
import type { PassContext, PassDescriptor, PassOutcome } from '../pass.ts';
import { compressWeights, type TensorReport } from './weight-only.ts';
import { quantizeDynamic } from './dynamic.ts';
import type { Skip } from './targets.ts';
import type { GateReport, SensitivityEntry, StaticPipelineOptions } from './static-pipeline.ts';
import type { ActivationReport } from './static.ts';
import type { EvalReport } from '../../eval/evaluate.ts';
import type { GptqLayerReport, GptqRounder, GptqTiming } from './gptq.ts';
import { findTargets } from './targets.ts';
import type { BiasCorrectionReport } from './bias-correction.ts';
import { correctAfter } from '../bias-after.ts';
import type { WeightGateReport } from './weight-gate.ts';
import { OnnxModel } from '../../onnx/model.ts';

export type QuantizeMode = 'weight-only' | 'dynamic' | 'static-w8a8';

export interface QuantizePassOptions {
  mode: QuantizeMode;
  /** Weight-only and dynamic: what to do to which weight. */
  recipe: Recipe;
  /** Dynamic: 7-bit weights for x86 without VNNI. */
  reduceRange?: boolean;
  /** Round-to-nearest (default) or GPTQ (needs calibration data): weight-only, dynamic and static W8A8's int8 weights. */
  weightMethod?: 'rtn' | 'gptq';
  /** GPTQ: quantize inputs in order of decreasing Hessian diagonal. */
  actOrder?: boolean;
  /** GPTQ: each layer's inputs taken from the model whose earlier layers are already rounded. */
  sequential?: boolean;
  /**
   * Empirical bias correction from calibration data: 'on' keeps it, 'auto' keeps it only when the
   * outputs on held-out samples get closer to the float model's, 'off' (the default).
   */
  biasCorrection?: 'auto' | 'on' | 'off';
  /**
   * Weight-only label-free gate: the lowest output cosine / SQNR (dB) against the float model on
   * calibration samples; the most damaging layers get 8 bits (from 4) or stay float until it holds.
   */
  gate?: { minCosine?: number; minSqnrDb?: number };
  /** Static W8A8 (the calibration data comes from the pipeline). */
  static?: Omit<StaticPipelineOptions, 'scheduler' | 'calibrationData' | 'preprocess' | 'samples' | 'seed' | 'onProgress'>;
}

export interface QuantizeReport {
  mode: QuantizeMode;
  activations?: ActivationReport[];
  calibration?: { samples: number; method: string; ortMs: number; statsMs: number; biases: number };
  evaluation?: EvalReport | null;
  sensitivity?: SensitivityEntry[] | null;
  gate?: GateReport | null;
  /** GPTQ: per weight, the layer objective of round-to-nearest vs GPTQ on the calibration inputs. */
  gptq?: GptqLayerReport[];
  gptqTiming?: GptqTiming;
  biasCorrection?: BiasCorrectionReport | null;
  /** Static W8A8's gate, or the weight-only gate (with the layers given 8 bits). */
  weightGate?: WeightGateReport;
}

async function runQuantize(ctx: PassContext, o: QuantizePassOptions): Promise<PassOutcome<QuantizeReport>> {
  const { model, scheduler } = ctx;
  if (o.mode === 'static-w8a8') {
    if (!ctx.calibration) throw new DataError('static W8A8 (--activations int8|uint8) needs --calibration data');
    // Loaded on demand: it brings ONNX Runtime, which weight-only runs never need.
    const { staticPipeline } = await import('./static-pipeline.ts');
    const c = ctx.calibration;
    const sp = await staticPipeline(model, {
      ...o.static, biasCorrection: o.biasCorrection ?? 'off', weightMethod: o.weightMethod, actOrder: o.actOrder, scheduler, calibrationData: c.data, preprocess: c.preprocess, samples: c.samples, seed: c.seed,
      onProgress: (stage, d, t) => ctx.onProgress?.(stage, d, t),
    }, ctx.inputPath);
    return {
      model: sp.model, tensors: sp.result.weights, skipped: sp.result.skipped, usedCalibration: true,
      report: {
        mode: o.mode, activations: sp.result.activations, calibration: { ...sp.result.calibration, biases: sp.result.biases },
        evaluation: sp.evaluation, sensitivity: sp.sensitivity, gate: sp.gate, biasCorrection: sp.biasCorrection,
        ...(sp.gptq ? { gptq: sp.gptq.layers, gptqTiming: sp.gptq.timing } : {}),
      },
    };
  }
  const tensors: TensorReport[] = [];
  let skipped: Skip[] = [];
  const created = new Set<string>();
  if (o.mode === 'dynamic') {
    const floatNodes = new Set(model.msg.graph!.node.filter((n) => configFor(o.recipe, n) === null).map((n) => n.name ?? ''));
    const d = await quantizeDynamic(model, { scheduler, floatNodes, reduceRange: o.reduceRange, minElements: o.recipe.minElements });
    tensors.push(...d.tensors);
    skipped.push(...d.skipped);
    for (const c of d.created) created.add(c);
  }
  const correct = (o.biasCorrection ?? 'off') !== 'off';
  const gated = o.mode === 'weight-only' && o.gate && (o.gate.minCosine !== undefined || o.gate.minSqnrDb !== undefined);
  if (gated && !ctx.calibration) throw new DataError('the weight-only gate (--min-cosine / --min-sqnr) needs --calibration data to judge the outputs on');
  if (correct && o.mode === 'dynamic') throw new DataError('bias correction applies to weight-only and static W8A8 quantization, not dynamic');
  if (correct && !ctx.calibration) throw new DataError('bias correction (--recover bias) needs --calibration data');
  let rounder: GptqRounder | undefined;
  if (o.weightMethod === 'gptq') {
    if (!ctx.calibration) throw new DataError('--weight-method gptq needs --calibration data (the layer inputs it minimizes the error on)');
    const targets = findTargets(model.graph, o.recipe).targets.filter((t) => t.config.weights !== 'fp16');
    // The gate quantizes the weights once per candidate, some at 8 bits: Hessians are kept.
    if (gated && o.sequential) throw new DataError('the weight-only gate (--min-cosine / --min-sqnr) with --sequential GPTQ is not supported: the gate re-quantizes layers at other widths than the sequential pass rounded');
    const { GptqRounder: Rounder } = await import('./gptq.ts');
    rounder = await Rounder.collect(model, targets.map((t) => t.weight.name), { calibration: ctx.calibration, scheduler, actOrder: o.actOrder, reuse: gated, onProgress: ctx.onProgress },
      o.sequential ? { targets } : undefined);
  }
  // The float model, kept for bias correction's reference means and the gate.
  const reference = correct || gated ? OnnxModel.fromBytes(model.toBytes(), model.baseDir, model.sourcePath ?? '<float model>') : null;
  let weightGate: WeightGateReport | undefined;
  let gatedModel: OnnxModel | null = null;
  const w = gated
    ? await (await import('./weight-gate.ts')).gatedWeightOnly(reference!, o.recipe, { calibration: ctx.calibration!, scheduler, rounder, minCosine: o.gate!.minCosine, minSqnrDb: o.gate!.minSqnrDb, onProgress: ctx.onProgress }).then((g) => {
      weightGate = g.gate;
      gatedModel = g.model;
      return g.result;
    })
    : await compressWeights(model, { recipe: o.recipe, scheduler, rounder, onProgress: (d, t, name) => ctx.onProgress?.(name, d, t) });
  tensors.push(...w.tensors);
  // A weight the dynamic pass skipped may still be compressed weight-only: report it once.
  const compressed = new Set(tensors.map((t) => t.name));
  skipped = [...skipped, ...w.skipped].filter((sk, i, all) => !compressed.has(sk.name) && !created.has(sk.name) && all.findIndex((x) => x.name === sk.name) === i);
  let corrected: { model: OnnxModel; report: BiasCorrectionReport } | null = null;
  if (reference && correct) {
    corrected = await correctAfter(ctx, reference, gatedModel ?? model, w.tensors.map((t) => t.name), o.biasCorrection as 'on' | 'auto');
  }
  const finalModel = corrected?.model ?? gatedModel;
  return {
    ...(finalModel ? { model: finalModel } : {}),
    tensors, skipped, usedCalibration: Boolean(rounder) || Boolean(corrected) || Boolean(weightGate),
    report: { mode: o.mode, ...(rounder ? { gptq: rounder.reports, gptqTiming: rounder.timing } : {}), ...(corrected ? { biasCorrection: corrected.report } : {}), ...(weightGate ? { weightGate } : {}) },
  };
}

export const quantizePassDescriptor: PassDescriptor<QuantizePassOptions, QuantizeReport> = {
  name: 'quantize',
  rank: 30,
  summary: 'weights to int8/int4/fp16 (weight-only), int8 MatMul (dynamic) or static W8A8',
  calibrationUse: 'static W8A8 activation ranges (--activations int8|uint8), GPTQ layer inputs (--weight-method gptq), layer output means for bias correction (--recover bias)',
  run: runQuantize,
};
