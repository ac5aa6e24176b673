/** Every kernel family in one table: name -> descriptor (WGSL + CPU reference). */
import { quantizeKernel } from './quantize.ts';
import { dequantizeKernel } from './dequantize.ts';
import { rangeKernel } from './range.ts';
import { histogramKernel } from './histogram.ts';
import { channelScoresKernel } from './channel-scores.ts';
import { distillLossKernel } from './distill-loss.ts';
import { thresholdSearchKernel } from './threshold-search.ts';
import { gramKernel } from './gram.ts';
import { paletteKernel } from './palette.ts';
import { sparsityKernel } from './sparsity.ts';
import { gptqSweepKernel } from './gptq-sweep.ts';
import { choleskyKernel } from './cholesky.ts';
import type { KernelDescriptor } from './kernel.ts';

export const kernels = {
  quantize: quantizeKernel,
  dequantize: dequantizeKernel,
  range: rangeKernel,
  histogram: histogramKernel,
  channel_scores: channelScoresKernel,
  distill_loss: distillLossKernel,
  threshold_search: thresholdSearchKernel,
  gram: gramKernel,
  palette: paletteKernel,
  sparsity: sparsityKernel,
  gptq_sweep: gptqSweepKernel,
  cholesky: choleskyKernel,
} as const satisfies Record<string, KernelDescriptor<never, unknown>>;

export type KernelName = keyof typeof kernels;
