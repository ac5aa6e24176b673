/** Benchmark models, built in TypeScript (test/helpers/zoo.ts) and cached in bench/tmp. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
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

/**
 * ONNX Runtime latency medians (ms) of several models on one input, one thread, warm-up excluded,
 * runs of the models interleaved so machine drift hits them alike.
 */
export async function interleavedLatencies(paths: readonly string[], x: ort.Tensor, rounds: number): Promise<number[]> {
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  const sessions = await Promise.all(paths.map((p) => ort.InferenceSession.create(p, opts)));
  for (const s of sessions) for (let i = 0; i < 3; i++) await s.run({ [s.inputNames[0]]: x });
  const times: number[][] = paths.map(() => []);
  for (let k = 0; k < rounds; k++) {
    for (const [i, s] of sessions.entries()) {
      const t0 = performance.now();
      await s.run({ [s.inputNames[0]]: x });
      times[i].push(performance.now() - t0);
    }
  }
  await Promise.all(sessions.map((s) => s.release()));
  return times.map((t) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]);
}
