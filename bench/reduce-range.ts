/**
 * Static W8A8 with full-range vs 7-bit (--reduce-range) weights on the trained Fashion-MNIST CNNs:
 * top-1 as ONNX Runtime runs the model (fused integer kernels: on x86 without VNNI they saturate
 * with full-range weights) and unfused (exact QDQ arithmetic, the same on every host), and the
 * latency against float (runs interleaved). `npm run build && node dist/bench/reduce-range.js [out.md]`.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compressModel } from '../src/pipeline/compress.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { formatTable } from '../src/cli/format.ts';
import { cpuHasVnni, environmentFingerprint } from '../src/benchmark/environment.ts';
import { packageRoot } from '../src/package-root.ts';
import { FASHION_SUBSET, benchTmp } from './models.ts';

const root = packageRoot();
mkdirSync(benchTmp, { recursive: true });
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const rows: string[][] = [];
for (const name of ['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual']) {
  const src = join(root, 'test/assets', `${name}.onnx`);
  for (const reduceRange of [false, true]) {
    const out = join(benchTmp, `${name}-w8a8${reduceRange ? '-rr' : ''}.onnx`);
    await compressModel(src, out, { scheduler, force: true, static: { calibrationData: join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz'), samples: 256, method: 'percentile', reduceRange } });
    const fused = await evaluateModels(out, src, { data: FASHION_SUBSET, latencyRuns: 50 });
    const unfused = await evaluateModels(out, src, { data: FASHION_SUBSET, latencyRuns: 0, optimization: 'disabled' });
    rows.push([name, reduceRange ? '7-bit (--reduce-range)' : 'full range', fused.accuracy!.baseline.toFixed(2), fused.accuracy!.dropPoints.toFixed(2), unfused.accuracy!.dropPoints.toFixed(2), `${(fused.latencyMs.baseline / fused.latencyMs.model).toFixed(2)}x`]);
    console.error(rows[rows.length - 1].join(' | '));
  }
}
scheduler.dispose();
const e = environmentFingerprint();
const table = formatTable(['model', 'weights', 'float top-1', 'drop fused (ORT)', 'drop unfused', 'speed vs float (batch 64)'], rows);
const md = `\n## Static W8A8: full-range vs 7-bit weights\n\n${e.cpu}, VNNI: ${cpuHasVnni()}; ONNX Runtime ${e.onnxruntime}, 256 percentile calibration samples, top-1 on the 3000-image Fashion-MNIST test subset, drops in points.\n\n\`\`\`\n${table}\`\`\`\n`;
process.stdout.write(md);
if (process.argv[2]) appendFileSync(process.argv[2], md);
