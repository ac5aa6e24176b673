/** Benchmark models, built in TypeScript (test/helpers/zoo.ts) and cached in bench/tmp. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { resnet18 } from '../test/helpers/zoo.ts';
import { readIdx } from '../src/data/idx.ts';

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

/**
 * mIoU of the Fashion-MNIST U-Net on the 3000-image test subset: 11 classes, background plus the
 * garment class on lit pixels (> 0.2), as scripts/train_prune_models.py labels them.
 */
export async function fashionMiou(path: string): Promise<number> {
  const labels = readIdx(join(FASHION_SUBSET, 't10k-labels-idx1-ubyte.gz')).data;
  const images = readIdx(join(FASHION_SUBSET, 't10k-images-idx3-ubyte.gz')).data;
  const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  const classes = 11;
  const inter = new Float64Array(classes);
  const union = new Float64Array(classes);
  const n = labels.length;
  for (let i = 0; i < n; i += 100) {
    const b = Math.min(100, n - i);
    const x = Float32Array.from(images.subarray(i * 784, (i + b) * 784), (v) => v / 255);
    const o = (await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, [b, 1, 28, 28]) }))[s.outputNames[0]].data as Float32Array;
    for (let k = 0; k < b; k++) {
      for (let p = 0; p < 784; p++) {
        const truth = x[k * 784 + p] > 0.2 ? labels[i + k] + 1 : 0;
        let best = 0;
        for (let c = 1; c < classes; c++) if (o[((k * classes + c) * 784) + p] > o[((k * classes + best) * 784) + p]) best = c;
        if (best === truth) inter[truth]++;
        union[truth]++;
        if (best !== truth) union[best]++;
      }
    }
  }
  await s.release();
  let sum = 0;
  let count = 0;
  for (let c = 0; c < classes; c++) if (union[c] > 0) { sum += inter[c] / union[c]; count++; }
  return (100 * sum) / count;
}

/** A markdown report printed as it grows and written to bench/results/<date>-<name>.md (or argv's path). */
export function markdownReport(name: string, path = process.argv[2]): { say: (s: string) => void; write: () => void } {
  const out: string[] = [];
  return {
    say: (s: string) => {
      process.stdout.write(s);
      out.push(s);
    },
    write: () => {
      const file = path ?? join(packageRoot(), 'bench/results', `${new Date().toISOString().slice(0, 10)}-${name}.md`);
      writeFileSync(file, out.join(''));
      console.log(`\nwritten to ${file}`);
    },
  };
}
