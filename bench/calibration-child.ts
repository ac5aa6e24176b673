/** One calibration run in a fresh process: ORT vs statistics time, peak RSS. */
import { OnnxModel } from '../src/onnx/model.ts';
import { collectActivationStats, modelInput } from '../src/calibrate/calibrate.ts';
import { activationTensors } from '../src/compress/static.ts';
import { openDataset, type Dataset } from '../src/data/dataset.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';

const [modelPath, data, samplesArg, backend] = process.argv.slice(2);
const samples = Number(samplesArg);
const model = OnnxModel.read(modelPath);
const input = modelInput(model);
let dataset: Dataset;
if (data === 'synthetic') {
  // Seeded noise images of the model's input shape (ResNet-18 has no bundled data set).
  const dims = input.dims.map((d) => d ?? 224) as number[];
  const per = dims.reduce((a, b) => a * b, 1);
  dataset = {
    description: 'synthetic', count: samples, sampleDims: dims, labels: null,
    load: async (idx) => {
      const out = new Float32Array(idx.length * per);
      let a = idx[0] + 1;
      for (let i = 0; i < out.length; i++) {
        a = (a * 1664525 + 1013904223) >>> 0;
        out[i] = (a / 4294967296 - 0.5) * 4;
      }
      return out;
    },
  };
} else {
  dataset = await openDataset(data, input);
}
const scheduler = await Scheduler.create({ backend: backend as 'gpu' | 'cpu', cpuThreshold: 0, logger: createLogger('error') });
const t0 = performance.now();
// With --expose-gc the child collects after every batch, so peak RSS shows what calibration
// retains rather than when V8 chose to collect the previous batch's activations.
const gc = (globalThis as { gc?: () => void }).gc;
const r = await collectActivationStats(model, activationTensors(model, {}), { dataset, samples, scheduler, batchSize: 16, onProgress: () => gc?.() });
const wallMs = performance.now() - t0;
process.stdout.write(JSON.stringify({ samples: r.samples, tensors: r.stats.size, wallMs, ortMs: r.ortMs, statsMs: r.statsMs, maxRssBytes: process.resourceUsage().maxRSS * 1024, submits: scheduler.stats.submits }) + '\n');
scheduler.dispose();
