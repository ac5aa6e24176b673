/**
 * Channel criteria side by side on the trained Fashion-MNIST models, with `--recover lsq`:
 * energy vs obs (the error least squares cannot recover), 30 % and 50 % fewer MACs.
 * `npm run bench:prune-criteria [-- out.md]` (CRITERIA, RECOVER, MODELS select what runs; ALLOC=sensitivity
 * uses the measured-error allocation instead of the threshold).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import type { PrunePassOptions } from '../src/passes/prune/pass.ts';
import { benchTmp, FASHION_SUBSET, fashionMiou as miou, markdownReport } from './models.ts';

const root = packageRoot();
mkdirSync(benchTmp, { recursive: true });
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('pruning-criteria');
const TRAIN = join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz');
const criteria = (process.env.CRITERIA ?? 'energy,obs').split(',') as Array<NonNullable<PrunePassOptions['criterion']>>;
const recovers = (process.env.RECOVER ?? 'lsq').split(',') as Array<'none' | 'bn' | 'lsq'>;
const models = (process.env.MODELS ?? 'fashion-cnn,fashion-residual,fashion-inverted-residual,fashion-unet').split(',');

say(`# Pruning criteria with recovery — ${new Date().toISOString().slice(0, 10)}\n\n512 calibration samples (training subset), top-1 on the 3000-image test subset (mIoU for the U-Net); allocation: threshold.\n\n`);
const rows: string[][] = [];
for (const f of models) {
  const src = join(root, 'test/assets', `${f}.onnx`);
  if (!existsSync(src)) continue;
  const seg = f.endsWith('unet');
  const metric = async (p: string) => (seg ? miou(p) : (await evaluateModels(p, src, { data: FASHION_SUBSET, latencyRuns: 0 })).accuracy!.model);
  const base = await metric(src);
  for (const target of [0.3, 0.5]) {
    for (const recover of recovers) {
      const cells: string[] = [];
      for (const criterion of criteria) {
        const path = join(benchTmp, `crit-${f}-${target}-${recover}-${criterion}.onnx`);
        const t0 = performance.now();
        await compressModel(src, path, {
          scheduler, force: true, passes: [{ pass: 'prune', options: { macs: target, recover, criterion, round: seg ? 4 : undefined, ...(process.env.ALLOC ? { allocation: process.env.ALLOC as 'sensitivity' } : {}) } }],
          calibration: { data: TRAIN, samples: 512, seed: 1 },
        });
        const s = (performance.now() - t0) / 1000;
        const m = await metric(path);
        cells.push(`${m.toFixed(2)} (${m - base >= 0 ? '+' : ''}${(m - base).toFixed(2)}) ${s.toFixed(1)} s`);
      }
      rows.push([f, seg ? 'mIoU' : 'top-1', base.toFixed(2), `${target}`, recover, ...cells]);
      console.error(rows[rows.length - 1].join(' | '));
    }
  }
}
say(formatTable(['model', 'metric', 'float', 'MACs removed', 'recover', ...criteria], rows) + '\n');
scheduler.dispose();
write();
