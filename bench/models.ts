/** Benchmark models, built in TypeScript (test/helpers/zoo.ts) and cached in bench/tmp. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { resnet18 } from '../test/helpers/zoo.ts';

export const benchTmp = join(packageRoot(), 'bench', 'tmp');
export const FASHION_SUBSET = join(packageRoot(), 'test/assets/fashion-mnist');

/** ResNet-18 (torchvision architecture, batch norm folded, seeded random weights), 46.7 MB. */
export function resnet18Path(): string {
  mkdirSync(benchTmp, { recursive: true });
  const path = join(benchTmp, 'resnet18.onnx');
  if (!existsSync(path)) writeFileSync(path, encodeModel(resnet18()));
  return path;
}
