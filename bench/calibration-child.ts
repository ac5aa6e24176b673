/**
 * One calibration run in a fresh process: wall time split into ONNX Runtime and statistics, the
 * batch chosen, peak RSS. `plain` runs the float model alone over the same samples (batch 1), the
 * yardstick for calibration wall time.
 * Args: model data samples backend method   (data: a dataset path, 'synthetic' or 'pages').
 */
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../src/onnx/model.ts';
import { collectActivationStats, modelInput } from '../src/calibrate/calibrate.ts';
import { DEFAULT_PERCENTILE } from '../src/calibrate/methods.ts';
import { activationTensors } from '../src/passes/quantize/static.ts';
import { openDataset, type Dataset } from '../src/data/dataset.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { textLikeImage } from '../test/helpers/models.ts';

const [modelPath, data, samplesArg, backend, method] = process.argv.slice(2);
const samples = Number(samplesArg);
const model = OnnxModel.read(modelPath);
const input = modelInput(model);
const dims = input.dims.map((d, i) => d ?? (data === 'pages' ? [3, 640, 640][i] : 224)) as number[];
const per = dims.reduce((a, b) => a * b, 1);
let dataset: Dataset;
if (data === 'synthetic' || data === 'pages') {
  // Seeded noise images (ResNet-18) or text-like pages (PaddleOCR's detector) of the input shape.
  dataset = {
    description: data, count: samples, sampleDims: dims, labels: null,
    load: async (idx) => {
      const out = new Float32Array(idx.length * per);
      idx.forEach((s, k) => {
        if (data === 'pages') out.set(textLikeImage(dims[1], dims[2], s + 1), k * per);
        else {
          let a = s + 1;
          for (let i = k * per; i < (k + 1) * per; i++) {
            a = (a * 1664525 + 1013904223) >>> 0;
            out[i] = (a / 4294967296 - 0.5) * 4;
          }
        }
      });
      return out;
    },
  };
} else {
  dataset = await openDataset(data, input);
}
const t0 = performance.now();
if (method === 'plain') {
  const s = await ort.InferenceSession.create(modelPath);
  let ortMs = 0;
  for (let i = 0; i < samples; i++) {
    const x = new ort.Tensor('float32', await dataset.load([i]), [1, ...dims]);
    const t = performance.now();
    await s.run({ [input.name]: x });
    ortMs += performance.now() - t;
  }
  await s.release();
  process.stdout.write(JSON.stringify({ samples, wallMs: performance.now() - t0, ortMs, statsMs: 0, maxRssBytes: process.resourceUsage().maxRSS * 1024, batch: 1, mode: 'plain' }) + '\n');
} else {
  const scheduler = await Scheduler.create({ backend: backend as 'gpu' | 'cpu', cpuThreshold: 0, logger: createLogger('error') });
  const r = await collectActivationStats(model, activationTensors(model, {}), { dataset, samples, scheduler, rangesOnly: method === 'minmax', percentile: method === 'percentile' ? DEFAULT_PERCENTILE : undefined });
  const wallMs = performance.now() - t0;
  process.stdout.write(JSON.stringify({ samples: r.samples, tensors: r.stats.size, wallMs, ortMs: r.ortMs, statsMs: r.statsMs, maxRssBytes: process.resourceUsage().maxRSS * 1024, batch: r.batch, mode: r.mode, submits: scheduler.stats.submits }) + '\n');
  scheduler.dispose();
}
