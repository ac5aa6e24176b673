/**
 * GPTQ's cost on ResNet-18 (torchvision architecture, seeded weights: a timing, not an accuracy,
 * figure): every Conv and Gemm weight, int4 per channel, 128 calibration images at 224x224, on the
 * CPU path and on the GPU backend (lavapipe here, a real GPU when one is lent; `GPTQ_SAMPLES=16` for a
 * shorter run), split into ONNX
 * Runtime / Gram / factorization / column sweep, with the process's peak RSS. One backend per
 * child process, so each peak RSS is its own. `npm run build && node dist/bench/gptq-resnet.js [out.md]`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import { seededRandom } from '../src/random.ts';
import type { QuantizeReport } from '../src/passes/quantize/pass.ts';
import { benchTmp, resnet18Path } from './models.ts';

const root = packageRoot();
const backend = process.argv[2];
/** Calibration images (default 128; `GPTQ_SAMPLES` for a shorter run on a software GPU). */
const SAMPLES = Number(process.env.GPTQ_SAMPLES ?? 128);
if (backend === 'cpu' || backend === 'gpu') {
  // Child: one backend, one JSON line.
  const calib = join(benchTmp, 'resnet18-calibration.npy');
  const scheduler = await Scheduler.create({ backend, logger: createLogger('error') });
  const t0 = performance.now();
  const r = await compressModel(resnet18Path(), join(benchTmp, `resnet18-gptq-${backend}.onnx`), {
    scheduler, force: true, calibration: { data: calib, samples: SAMPLES, seed: 1 },
    passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: 'gptq' } }],
  });
  const q = r.passes[0].report as QuantizeReport;
  process.stdout.write(JSON.stringify({ adapter: scheduler.info.adapter?.description ?? scheduler.info.active, seconds: (performance.now() - t0) / 1000, timing: q.gptqTiming, layers: q.gptq?.length, maxRssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
  scheduler.dispose();
  process.exit(0);
}

// Parent: calibration images (smooth seeded patterns, 128 x 3 x 224 x 224), then one child per backend.
const calib = join(benchTmp, 'resnet18-calibration.npy');
if (!existsSync(calib)) {
  const r = seededRandom(3);
  const per = 3 * 224 * 224;
  const data = new Float32Array(128 * per);
  for (let n = 0; n < 128; n++) {
    const [fx, fy, ph] = [r() * 0.2, r() * 0.2, r() * 6];
    for (let c = 0; c < 3; c++) for (let y = 0; y < 224; y++) for (let x = 0; x < 224; x++) data[n * per + (c * 224 + y) * 224 + x] = Math.sin(fx * x + ph + c) * Math.cos(fy * y) + 0.3 * (r() - 0.5);
  }
  writeFileSync(calib, encodeNpyFloat32([128, 3, 224, 224], data));
}
resnet18Path();
const rows: string[][] = [];
for (const b of (process.env.GPTQ_BACKENDS ?? 'cpu,gpu').split(',')) {
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), b], { encoding: 'utf8', timeout: 1_200_000 });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  if (child.status !== 0 || !line.startsWith('{')) {
    const why = child.error?.message.includes('ETIMEDOUT') ? 'stopped after 20 min' : `failed: ${(child.stderr || child.stdout).trim().split('\n').slice(-1)[0]}`;
    rows.push([b, why, '', '', '', '', '', '']);
    continue;
  }
  const j = JSON.parse(line) as { adapter: string; seconds: number; timing: Record<string, number>; layers: number; maxRssMb: number };
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  rows.push([b, j.adapter, `${j.seconds.toFixed(0)} s`, s(j.timing.ortMs), s(j.timing.gramMs), s(j.timing.solveMs), s(j.timing.sweepMs), `${j.maxRssMb.toFixed(0)} MB`]);
}
const text = `# GPTQ on ResNet-18 — ${new Date().toISOString().slice(0, 10)}\n\nEvery Conv and Gemm weight (21 layers), int4 per channel, ${SAMPLES} calibration images 224x224 (64 sampled positions per image for convolutions), Hessians from the float model (one ONNX Runtime pass). Seeded weights: time and memory only. This machine: 2-core AMD EPYC; "gpu" is Mesa lavapipe unless a device is named.\n\n`
  + formatTable(['backend', 'adapter', 'total', 'ONNX Runtime', 'Gram', 'factorization', 'column sweep', 'peak RSS'], rows) + '\n';
process.stdout.write(text);
const file = process.argv[2] ?? join(root, 'bench/results', `${new Date().toISOString().slice(0, 10)}-gptq-resnet18.md`);
writeFileSync(file, text);
console.log(`written to ${file}`);
