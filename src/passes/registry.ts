/** Every pass in one table, in the order a pipeline runs them (as kernels/registry.ts lists kernels). */
import { prunePassDescriptor } from './prune/pass.ts';
import { quantizePassDescriptor } from './quantize/pass.ts';
import { distillPassDescriptor } from './distill/pass.ts';
import { palettizePassDescriptor } from './palettize/pass.ts';
import { sparsifyPassDescriptor } from './sparsify/pass.ts';

export const passes = {
  prune: prunePassDescriptor,
  sparsify: sparsifyPassDescriptor,
  palettize: palettizePassDescriptor,
  quantize: quantizePassDescriptor,
  distill: distillPassDescriptor,
} as const;

export type PassName = keyof typeof passes;
export type PassOptions<N extends PassName> = Parameters<(typeof passes)[N]['run']>[1];
export type PassSpec = { [N in PassName]: { pass: N; options: PassOptions<N> } }[PassName];
