/** One measured end-to-end run in a fresh process (so peak RSS is this run's alone). */
import { OnnxModel, writeModel } from '../src/onnx/model.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { createLogger } from '../src/log.ts';

const [mode, input, output] = process.argv.slice(2);
const t0 = performance.now();
let submits = 0;
let dispatches = 0;
let backend = 'none';
if (mode === 'baseline') {
  // Only the modules loaded: the process's own footprint.
} else if (mode === 'copy') {
  writeModel(OnnxModel.read(input), output);
} else {
  const r = await compressModel(input, output, { backend: mode as 'gpu' | 'cpu', force: true, logger: createLogger('error') });
  submits = r.stats.submits;
  dispatches = r.stats.dispatches;
  backend = r.manifest.backend.active;
}
const wallMs = performance.now() - t0;
process.stdout.write(JSON.stringify({ mode, wallMs, maxRssBytes: process.resourceUsage().maxRSS * 1024, submits, dispatches, backend }) + '\n');
