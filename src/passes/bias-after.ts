/**
 * Empirical bias correction after a pass that changed weights (quantize, sparsify, palettize): the
 * layers whose weights changed get their per-channel output means restored on calibration data
 * (quantize/bias-correction.ts).
 */
import { RecipeError } from '../errors.ts';
import { OnnxModel } from '../onnx/model.ts';
import type { PassContext } from './pass.ts';
import type { BiasCorrectionReport } from './quantize/bias-correction.ts';

export type BiasAfter = 'off' | 'on' | 'auto';

/** The model as it was before the pass (sparsify, palettize): bias correction's reference means. */
export function referenceFor(ctx: PassContext, mode: BiasAfter | undefined, pass: string): OnnxModel | null {
  if (!mode || mode === 'off') return null;
  if (!ctx.calibration) throw new RecipeError(`${pass}: bias correction needs --calibration data (the layer output means it restores come from it; unlabelled samples are enough)`);
  return OnnxModel.fromBytes(ctx.model.toBytes(), ctx.model.baseDir, ctx.model.sourcePath ?? '<reference>');
}

export async function correctAfter(ctx: PassContext, reference: OnnxModel, model: OnnxModel, weights: readonly string[], mode: 'on' | 'auto'): Promise<{ model: OnnxModel; report: BiasCorrectionReport }> {
  const nodes = weights.flatMap((w) => reference.graph.uses(w).filter((u) => u.index === 1).map((u) => u.node.name ?? '')).filter(Boolean);
  // Loaded on demand: it runs ONNX Runtime.
  const { correctBiases } = await import('./quantize/bias-correction.ts');
  return correctBiases(reference, model, nodes, { calibration: ctx.calibration!, mode, allowAdd: true, onProgress: ctx.onProgress });
}
