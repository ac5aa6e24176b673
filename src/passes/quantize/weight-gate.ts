/**
 * The label-free gate for weight-only quantization: when the model's outputs on calibration
 * samples fall below `--min-cosine` / `--min-sqnr` against the float model, the layers that do the
 * most damage alone are promoted — to int8 when the recipe gave them 4 bits, else kept in float —
 * one at a time, most damaging first, until the bound holds.
 */
import { DataError } from '../../errors.ts';
import { OnnxModel } from '../../onnx/model.ts';
import { configFor, LOW_BIT_WEIGHTS, type PartialWeightConfig, type Recipe } from '../../recipe/recipe.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { evaluateModels, type EvalReport } from '../../eval/evaluate.ts';
import type { CalibrationSource } from '../pass.ts';
import { compressWeights, type WeightOnlyOptions, type WeightOnlyResult } from './weight-only.ts';
import { findTargets } from './targets.ts';
import { judgeSet, lowest, meetsBounds, type GateReport } from './static-pipeline.ts';

export interface WeightGateOptions {
  calibration: CalibrationSource;
  /** GPTQ rounding for every candidate (collected with `reuse`: each weight and width rounds once). */
  rounder?: WeightOnlyOptions['rounder'];
  minCosine?: number;
  minSqnrDb?: number;
  scheduler: Scheduler;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface WeightGateReport extends GateReport {
  /** Layers given 8 bits instead of 4 (floatNodes: kept in float). */
  int8Nodes: string[];
}


/**
 * Weight-only quantization of a copy of `reference` under `recipe`, with the gate. Returns the
 * quantized model, what compressWeights reported for it, and the gate's report.
 */
export async function gatedWeightOnly(reference: OnnxModel, recipe: Recipe, o: WeightGateOptions): Promise<{ model: OnnxModel; result: WeightOnlyResult; gate: WeightGateReport }> {
  const c = o.calibration;
  const judge = await judgeSet(reference, { calibrationData: c.data, preprocess: c.preprocess, samples: c.samples, seed: c.seed, scheduler: o.scheduler });
  const evaluate = (m: OnnxModel) => evaluateModels(m, reference, { data: judge.data, preprocess: judge.preprocess, indices: judge.indices, latencyRuns: 0, baselineCache: judge.cache });
  const build = async (nodes: Record<string, PartialWeightConfig | null>) => {
    const copy = OnnxModel.fromBytes(reference.toBytes(), reference.baseDir, reference.sourcePath ?? '<gated model>');
    const result = await compressWeights(copy, { recipe: { ...recipe, nodes: { ...recipe.nodes, ...nodes } }, scheduler: o.scheduler, rounder: o.rounder });
    return { model: copy, result };
  };
  const meets = (e: EvalReport) => meetsBounds(e, o);
  const report = (met: boolean, e: EvalReport, floatNodes: string[], int8Nodes: string[], attempts: number): WeightGateReport => ({
    maxDrop: null, minCosine: o.minCosine ?? null, minSqnrDb: o.minSqnrDb ?? null, met, floatNodes, int8Nodes, attempts, data: judge.description,
    finalDropPoints: null, finalCosine: lowest(e).cosine, finalSqnrDb: lowest(e).sqnrDb,
  });
  let current = await build({});
  let evaluation = await evaluate(current.model);
  if (meets(evaluation)) return { ...current, gate: report(true, evaluation, [], [], 1) };

  // Damage of each quantized layer alone (every other layer in float).
  const { targets } = findTargets(reference.graph, recipe);
  const layers = targets.filter((t) => t.config.weights !== 'fp16').flatMap((t) => t.nodes.map((n) => ({ node: n, bits: t.config.weights })));
  const names = layers.map((l) => l.node.name).filter((n): n is string => Boolean(n));
  if (names.length < layers.length) throw new DataError('the weight-only gate needs named nodes (it keeps layers apart by name)');
  const alone: Array<{ node: string; sqnrDb: number; fourBit: boolean }> = [];
  for (const [i, l] of layers.entries()) {
    const others = Object.fromEntries(names.filter((n) => n !== l.node.name).map((n) => [n, null]));
    const e = await evaluate((await build(others)).model);
    alone.push({ node: l.node.name!, sqnrDb: lowest(e).sqnrDb, fourBit: LOW_BIT_WEIGHTS.has(l.bits) });
    o.onProgress?.('gate: layer sensitivity', i + 1, layers.length);
  }
  alone.sort((a, b) => a.sqnrDb - b.sqnrDb);
  // Promotion steps: 4-bit layers to int8 first (most damaging first), then any layer to float.
  const steps = [...alone.filter((a) => a.fourBit).map((a) => ({ node: a.node, to: 'int8' as const })), ...alone.map((a) => ({ node: a.node, to: 'float' as const }))];
  const promoted = new Map<string, 'int8' | 'float'>();
  let attempts = 1;
  for (const step of steps) {
    promoted.set(step.node, step.to);
    attempts++;
    const eight = (n: string): PartialWeightConfig => {
      const cfg = configFor(recipe, reference.msg.graph!.node.find((x) => x.name === n)!)!;
      // MatMulNBits holds 4 bits only: an 8-bit layer is folded instead.
      return { ...cfg, weights: 'int8', granularity: 'channel', format: cfg.format === 'matmulnbits' ? 'folded' : cfg.format };
    };
    const overrides = Object.fromEntries([...promoted].map(([n, to]) => [n, to === 'float' ? null : eight(n)]));
    current = await build(overrides);
    evaluation = await evaluate(current.model);
    o.onProgress?.('gate: promoting layers', attempts - 1, steps.length);
    if (meets(evaluation)) break;
  }
  const floatNodes = [...promoted].filter(([, to]) => to === 'float').map(([n]) => n);
  const int8Nodes = [...promoted].filter(([, to]) => to === 'int8').map(([n]) => n).filter((n) => !floatNodes.includes(n));
  return { ...current, gate: report(meets(evaluation), evaluation, floatNodes, int8Nodes, attempts) };
}
