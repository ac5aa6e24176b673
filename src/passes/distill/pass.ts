/**
 * The distill pass (`--recover kd`): after pruning and quantization, the model's head is re-fitted
 * to the input model's logits on calibration data (fit.ts). The teacher is the input model. A
 * weight-only or static W8A8 quantized head is decoded, fitted in float and encoded again the way
 * the quantize pass encoded it (run.ts, loaded when the pass runs).
 */
import type { Recipe } from '../../recipe/recipe.ts';
import type { PassDescriptor } from '../pass.ts';
import type { DistillOptions, DistillReport } from './fit.ts';

export interface DistillPassOptions extends Omit<DistillOptions, 'data' | 'preprocess' | 'scheduler' | 'onProgress' | 'samples' | 'seed'> {
  /** The graph output whose head is fitted (default: the first float output that has one). */
  output?: string;
  /** Weight-only quantization the head was encoded with: the fitted head is encoded again so. */
  requantize?: Recipe;
  /** Static W8A8 ran before: the fitted head is encoded again as it did (int8 QDQ weight, int32 bias). */
  staticW8A8?: { reduceRange?: boolean };
  /** Samples (default: the calibration source's count, else 1024). */
  samples?: number;
}

export const distillPassDescriptor: PassDescriptor<DistillPassOptions, DistillReport & { requantized: boolean }> = {
  name: 'distill',
  rank: 40,
  summary: 'knowledge distillation of the head: re-fitted to the input model\'s logits (KL, + CE with labels) with Adam on fixed features',
  calibrationUse: 'the inputs on which the student\'s features and the teacher\'s logits are read (--recover kd)',
  run: async (ctx, o) => (await import('./run.ts')).runDistill(ctx, o),
};
