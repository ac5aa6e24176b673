/**
 * Knowledge distillation of the head (`--recover kd`), measured side by side with what it adds to:
 * the trained Fashion-MNIST models pruned by half (recovery none / bn / lsq, each without and with
 * kd) and quantized to int4 (round-to-nearest, + bias correction, each without and with kd); top-1
 * (mIoU for the U-Net) on the 3000 real test images. Calibration: the 1024 training images (their
 * labels add cross-entropy to classifiers; the U-Net's per-pixel head is fitted by KL alone).
 * `npm run build && node dist/bench/distill.js [out.md]`.
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
const rows: string[][] = [];
for (const f of ['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual', 'fashion-unet']) {
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
say(formatTable(['model', 'metric', 'float', 'compression', 'without kd', 'with kd', 'kd adds', 'kd: held-out agreement, epochs, time'], rows) + '\n');
scheduler.dispose();
write();
