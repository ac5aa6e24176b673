// Knowledge distillation of the head: the head finder, the fit on heads of every shape (checked
// in ONNX Runtime against the teacher), the trained Fashion-MNIST model pruned and distilled (top-1
// on the real test images), a quantized head encoded again, and the errors users meet.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import { seededRandom } from '../src/random.ts';
import { findHead } from '../src/passes/distill/head.ts';
import { distillModel } from '../src/pipeline/distill.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import { summarizeEncodings } from '../src/analysis/encodings.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-distill-'));
const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const RESIDUAL = 'test/assets/fashion-residual.onnx';
const TRAIN = 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz';
const TEST = 'test/assets/fashion-mnist';

function values(n: number, r: () => number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

type Kind = 'gemm' | 'matmul-add' | 'conv-classes' | 'conv-map';

/** x[N, 3, 8, 8] -> Conv 3x3 (8) -> Relu -> head. The teacher's head is `noise` away from the student's. */
function headModel(kind: Kind, noise: number): Uint8Array {
  const r = seededRandom(5);
  const b = new GraphBuilder(kind);
  b.input('x', ['N', 3, 8, 8]);
  const body = b.op('Relu', [b.op('Conv', ['x', b.init('body.w', [8, 3, 3, 3], values(216, r, 0.4)), b.init('body.b', [8], values(8, r, 0.1))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
  // The head, drawn from its own stream so student and teacher bodies are identical.
  const h = seededRandom(9);
  const n = seededRandom(77);
  const w = (count: number, scale: number) => Float32Array.from(values(count, h, scale), (v) => v + (n() * 2 - 1) * noise);
  if (kind === 'gemm') {
    const f = b.op('Flatten', [b.op('GlobalAveragePool', [body])], { axis: 1 });
    b.node('Gemm', [f, b.init('head.w', [5, 8], w(40, 0.8)), b.init('head.b', [5], w(5, 0.2))], { transB: 1 }, { outputs: ['y'], name: 'head' });
    b.output('y', ['N', 5]);
  } else if (kind === 'matmul-add') {
    const f = b.op('Transpose', [b.op('Reshape', [body, b.int64s('shape', [0, 8, 64])])], { perm: [0, 2, 1] });
    const mm = b.node('MatMul', [f, b.init('head.w', [8, 6], w(48, 0.8))], {}, { name: 'head' })[0];
    b.node('Softmax', [b.op('Add', [mm, b.init('head.b', [6], w(6, 0.2))])], { axis: -1 }, { outputs: ['y'] });
    b.output('y', ['N', 64, 6]);
  } else {
    const c = kind === 'conv-classes' ? 4 : 1;
    const head = b.node('Conv', [body, b.init('head.w', [c, 8, 1, 1], w(c * 8, 0.8)), b.init('head.b', [c], w(c, 0.2))], { kernel_shape: [1, 1] }, { name: 'head' })[0];
    b.node(c === 1 ? 'Sigmoid' : 'Identity', [head], {}, { outputs: ['y'] });
    b.output('y', ['N', c, 8, 8]);
  }
  return encodeModel(b.build(13));
}

describe('findHead', () => {
  it('finds the last Gemm / MatMul(+Add) / 1x1 Conv behind an output, through ops that keep channels apart', () => {
    const cases: Array<[Kind, string, number, number, string]> = [['gemm', 'cf', 5, 8, 'input'], ['matmul-add', 'fc', 6, 8, 'add'], ['conv-classes', 'conv', 4, 8, 'input'], ['conv-map', 'conv', 1, 8, 'input']];
    for (const [kind, layout, classes, features, bias] of cases) {
      const h = findHead(OnnxModel.fromBytes(headModel(kind, 0), '.', kind));
      if (typeof h === 'string') throw new Error(h);
      expect({ node: h.node.name, layout: h.layout, classes: h.classes, features: h.features_, bias: h.bias.kind }, kind).toEqual({ node: 'head', layout, classes, features, bias });
    }
    const lraspp = findHead(OnnxModel.fromBytes(encodeModel((() => {
      const b = new GraphBuilder('resize');
      b.input('x', [1, 4, 4, 4]);
      const c = b.op('Conv', ['x', b.init('w', [2, 4, 1, 1], new Float32Array(8))], { kernel_shape: [1, 1] });
      b.node('Resize', [c, '', b.init('scales', [4], Float32Array.from([1, 1, 2, 2]))], { mode: 'linear' }, { outputs: ['y'] });
      b.output('y', [1, 2, 8, 8]);
      return b.build(13);
    })()), '.', 'resize'));
    expect(lraspp).toMatch(/y: produced through Resize .*not a Gemm, MatMul, MatMulNBits or 1x1 Conv head/);
  });
});

describe('distillation on heads of every shape (student head perturbed from the teacher\'s)', () => {
  const data = join(dir, 'x.npy');
  const r = seededRandom(3);
  writeFileSync(data, encodeNpyFloat32([200, 3, 8, 8], values(200 * 192, r, 1)));
  for (const kind of ['gemm', 'matmul-add', 'conv-classes', 'conv-map'] as const) {
    it(`${kind}: the student's outputs move towards the teacher's (ONNX Runtime on other inputs)`, async () => {
      const teacher = join(dir, `${kind}-teacher.onnx`);
      const student = join(dir, `${kind}-student.onnx`);
      writeFileSync(teacher, headModel(kind, 0));
      writeFileSync(student, headModel(kind, 0.5));
      const out = join(dir, `${kind}-distilled.onnx`);
      const report = await distillModel(student, out, { teacher, data, samples: 200, epochs: 200, backend: 'cpu', force: true, temperature: 1 });
      expect(report.kept).toBe(true);
      expect(report.loss).toBe(kind === 'conv-map' ? 'mse' : 'kl');
      const score = (m: typeof report.before) => m.mse ?? m.kl!;
      expect(score(report.after)).toBeLessThan(score(report.before) / 4);
      // Independent check, on inputs the fit never saw: outputs through ONNX Runtime. Logits are
      // compared as class distributions (KL is blind to a shift shared by all classes), the
      // softmax / sigmoid outputs directly.
      const x = new ort.Tensor('float32', values(32 * 192, seededRandom(11), 1), [32, 3, 8, 8]);
      const outputs = async (p: string) => {
        const s = await ort.InferenceSession.create(p);
        const y = (await s.run({ x })).y;
        await s.release();
        return y.data as Float32Array;
      };
      const [yt, ys, yd] = [await outputs(teacher), await outputs(student), await outputs(out)];
      if (kind === 'gemm' || kind === 'conv-classes') {
        const C = kind === 'gemm' ? 5 : 4;
        const stride = kind === 'gemm' ? 1 : 64;
        const kl = (y: Float32Array) => {
          let total = 0;
          let rows = 0;
          for (let base = 0; base < y.length; base += C * stride) {
            for (let p = 0; p < stride; p++) {
              const at = (c: number) => base + c * stride + p;
              const soft = (v: Float32Array) => {
                const m = Math.max(...Array.from({ length: C }, (_, c) => v[at(c)]));
                const e = Array.from({ length: C }, (_, c) => Math.exp(v[at(c)] - m));
                const z = e.reduce((a, b) => a + b, 0);
                return e.map((v2) => v2 / z);
              };
              const [pt, ps] = [soft(yt), soft(y)];
              total += pt.reduce((a, pv, c) => a + pv * Math.log(pv / ps[c]), 0);
              rows++;
            }
          }
          return total / rows;
        };
        expect(kl(yd)).toBeLessThan(kl(ys) / 4);
      } else {
        const err = (y: Float32Array) => y.reduce((a, v, i) => a + (v - yt[i]) ** 2, 0);
        expect(err(yd)).toBeLessThan(err(ys) / 4);
      }
      // Only the head changed: the body's weights are the student's own.
      const a = OnnxModel.read(out);
      const s = OnnxModel.read(student);
      expect(Array.from(a.tensorFloat32(a.graph.weights.get('body.w')!.tensor))).toEqual(Array.from(s.tensorFloat32(s.graph.weights.get('body.w')!.tensor)));
    }, 60_000);
  }
});

describe('the trained Fashion-MNIST residual CNN, pruned 50 % (top-1 on the 3000 real test images)', () => {
  it('distilling the head after bn recovery wins back most of the accuracy; the report\'s held-out figures say so too', async () => {
    const pruned = join(dir, 'residual-bn.onnx');
    await compressModel(RESIDUAL, pruned, { force: true, backend: 'cpu', passes: [{ pass: 'prune', options: { ratio: 0.5, recover: 'bn' } }], calibration: { data: TRAIN, samples: 256 } });
    const out = join(dir, 'residual-bn-kd.onnx');
    const r = await distillModel(pruned, out, { teacher: RESIDUAL, data: TRAIN, backend: 'cpu', force: true });
    expect(r.kept).toBe(true);
    expect(r.loss).toBe('kl+ce');
    expect(r.after.agreement!).toBeGreaterThan(r.before.agreement! + 30);
    const [eb, ea] = [await evaluateModels(pruned, RESIDUAL, { data: TEST, latencyRuns: 0 }), await evaluateModels(out, RESIDUAL, { data: TEST, latencyRuns: 0 })];
    console.log(`pruned 50 % + bn: top-1 ${eb.accuracy!.model.toFixed(2)} %; + distilled head: ${ea.accuracy!.model.toFixed(2)} % (float ${ea.accuracy!.baseline.toFixed(2)} %)`);
    expect(ea.accuracy!.model).toBeGreaterThan(eb.accuracy!.model + 30);
  }, 120_000);

  it('--recover kd after int4 weight-only: the head is fitted, encoded again as int4, and the model is closer to float than round-to-nearest', async () => {
    const rtn = join(dir, 'residual-int4.onnx');
    const kd = join(dir, 'residual-int4-kd.onnx');
    const recipe = parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 });
    const a = await compressModel(RESIDUAL, rtn, { force: true, backend: 'cpu', passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }] });
    const b = await compressModel(RESIDUAL, kd, {
      force: true, backend: 'cpu', calibration: { data: TRAIN },
      passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }, { pass: 'distill', options: { requantize: recipe } }],
    });
    const section = b.passes[1].report as { kept: boolean; requantized: boolean };
    expect(section).toMatchObject({ kept: true, requantized: true });
    const [ma, mb] = [OnnxModel.read(rtn), OnnxModel.read(kd)];
    expect(summarizeEncodings(mb)).toEqual(summarizeEncodings(ma));
    expect(mb.graph.weights.has('fc.weight')).toBe(false); // computed from int4 codes, not stored in float
    expect(b.totals.modelBytesAfter).toBe(a.totals.modelBytesAfter);
    const [ea, eb] = [await evaluateModels(rtn, RESIDUAL, { data: TEST, latencyRuns: 0 }), await evaluateModels(kd, RESIDUAL, { data: TEST, latencyRuns: 0 })];
    expect(eb.outputs[0].top1Agreement!).toBeGreaterThan(ea.outputs[0].top1Agreement!);
  }, 120_000);
});

describe('MatMulNBits heads (int4, --format matmulnbits)', () => {
  const recipe = parseRecipe({ weights: 'int4', granularity: 'block', blockSize: 32, format: 'matmulnbits', minElements: 0 });

  it('the decoded weight is what ONNX Runtime multiplies by: a float Gemm holding it gives the same logits', async () => {
    const { decodeMatMulNBits } = await import('../src/passes/quantize/weight-encodings.ts');
    const { makeTensor, bytesOf } = await import('../src/onnx/tensor.ts');
    const { DataType } = await import('../src/onnx/dtypes.ts');
    const q = join(dir, 'residual-mnb.onnx');
    await compressModel(RESIDUAL, q, { force: true, backend: 'cpu', passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }] });
    const m = OnnxModel.read(q);
    const node = m.msg.graph!.node.find((n) => n.opType === 'MatMulNBits')!;
    const w = decodeMatMulNBits(m, node)!;
    const K = Number(node.attribute.find((a) => a.name === 'K')!.i);
    const N = Number(node.attribute.find((a) => a.name === 'N')!.i);
    expect(w.length).toBe(K * N);
    // The same node as a float Gemm (C = its bias) over the decoded weight.
    const f = OnnxModel.read(q);
    const fn = f.msg.graph!.node.find((n) => n.name === node.name)!;
    f.msg.graph!.initializer.push(makeTensor('decoded_w', DataType.FLOAT, [K, N], bytesOf(w)));
    const packed = new Set(fn.input.slice(1, 4));
    f.msg.graph!.initializer = f.msg.graph!.initializer.filter((t) => !packed.has(t.name ?? ''));
    fn.input = [fn.input[0], 'decoded_w', ...(fn.input[5] ? [fn.input[5]] : [])];
    fn.opType = fn.input[2] ? 'Gemm' : 'MatMul';
    fn.domain = '';
    fn.attribute = [];
    const fp = join(dir, 'residual-mnb-decoded.onnx');
    writeFileSync(fp, f.toBytes());
    const [a, b] = [await evaluateModels(q, RESIDUAL, { data: TEST, latencyRuns: 0, samples: 300 }), await evaluateModels(fp, RESIDUAL, { data: TEST, latencyRuns: 0, samples: 300 })];
    expect(b.accuracy!.model).toBe(a.accuracy!.model);
    expect(Math.abs(b.outputs[0].cosine - a.outputs[0].cosine)).toBeLessThan(1e-6);
  }, 120_000);

  it('--recover kd after MatMulNBits int4: the head is fitted, encoded again as MatMulNBits, same size, closer to float', async () => {
    const rtn = join(dir, 'residual-mnb-rtn.onnx');
    const kd = join(dir, 'residual-mnb-kd.onnx');
    const a = await compressModel(RESIDUAL, rtn, { force: true, backend: 'cpu', passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }] });
    const b = await compressModel(RESIDUAL, kd, {
      force: true, backend: 'cpu', calibration: { data: TRAIN },
      passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe } }, { pass: 'distill', options: { requantize: recipe } }],
    });
    const section = b.passes[1].report as { kept: boolean; requantized: boolean; before: { agreement: number }; after: { agreement: number } };
    expect(section).toMatchObject({ kept: true, requantized: true });
    const [ma, mb] = [OnnxModel.read(rtn), OnnxModel.read(kd)];
    expect(summarizeEncodings(mb)).toEqual(summarizeEncodings(ma));
    expect(summarizeEncodings(mb).matMulNBits).toBeGreaterThan(0);
    expect(mb.msg.graph!.node.filter((n) => n.opType === 'MatMulNBits').map((n) => n.name)).toEqual(ma.msg.graph!.node.filter((n) => n.opType === 'MatMulNBits').map((n) => n.name));
    // Same tensors; only the re-encoded initializers' names are longer.
    expect(Math.abs(b.totals.modelBytesAfter - a.totals.modelBytesAfter)).toBeLessThan(100);
    const [ea, eb] = [await evaluateModels(rtn, RESIDUAL, { data: TEST, latencyRuns: 0 }), await evaluateModels(kd, RESIDUAL, { data: TEST, latencyRuns: 0 })];
    console.log(`residual CNN, MatMulNBits int4 block 32: top-1 RTN ${ea.accuracy!.model.toFixed(2)} %, + kd ${eb.accuracy!.model.toFixed(2)} % (float ${ea.accuracy!.baseline.toFixed(2)} %); agreement with float ${(100 * ea.outputs[0].top1Agreement!).toFixed(2)} -> ${(100 * eb.outputs[0].top1Agreement!).toFixed(2)} %; held-out agreement ${section.before.agreement.toFixed(2)} -> ${section.after.agreement.toFixed(2)} %`);
    expect(eb.outputs[0].top1Agreement!).toBeGreaterThanOrEqual(ea.outputs[0].top1Agreement!);
  }, 120_000);
});

describe('static W8A8 heads (quantized activations, int8 QDQ weight, int32 bias)', () => {
  it('prune 50 % (bn) + static W8A8 + kd: the head is fitted on the quantized features and encoded again as static W8A8 left it; far more accurate than without kd', async () => {
    const run = async (kd: boolean) => {
      const out = join(dir, `residual-static-${kd ? 'kd' : 'plain'}.onnx`);
      const { planCompress } = await import('../src/cli/compress-plan.ts');
      const plan = await planCompress({ output: out, prune: '0.5', recover: kd ? 'bn,kd' : 'bn', calibration: TRAIN, activations: 'uint8', reduceRange: true, backend: 'cpu' } as never, RESIDUAL, false);
      const r = await compressModel(RESIDUAL, out, { force: true, backend: 'cpu', passes: plan.passes, calibration: plan.calibration });
      return { r, out, e: await evaluateModels(out, RESIDUAL, { data: TEST, latencyRuns: 0 }) };
    };
    const plain = await run(false);
    const kd = await run(true);
    const section = kd.r.passes.find((p) => p.pass === 'distill')!.report as { kept: boolean; requantized: boolean };
    expect(section).toMatchObject({ kept: true, requantized: true });
    // The report's own evaluation would be stale after a later pass: left out, not wrong.
    expect(kd.r.evaluation ?? null).toBeNull();
    const [ma, mb] = [OnnxModel.read(plain.out), OnnxModel.read(kd.out)];
    expect(summarizeEncodings(mb)).toEqual(summarizeEncodings(ma));
    // The head still reads a DequantizeLinear weight and an int32 bias behind one.
    const fc = mb.msg.graph!.node.find((n) => n.name === '/fc/Gemm')!;
    expect(mb.graph.producers.get(fc.input[1])?.opType).toBe('DequantizeLinear');
    const bias = mb.graph.producers.get(fc.input[2])!;
    expect(bias.opType).toBe('DequantizeLinear');
    expect(mb.graph.weights.get(bias.input[0])!.tensor.dataType).toBe(6); // INT32
    console.log(`residual CNN pruned 50 % (bn) + static W8A8 (uint8, reduce-range): top-1 ${plain.e.accuracy!.model.toFixed(2)} % -> + kd ${kd.e.accuracy!.model.toFixed(2)} % (float ${kd.e.accuracy!.baseline.toFixed(2)} %)`);
    expect(kd.e.accuracy!.model).toBeGreaterThan(plain.e.accuracy!.model + 30);
  }, 180_000);
});

describe('errors', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args, '--backend', 'cpu', '-q'], { encoding: 'utf8', timeout: 120_000 });
  it('a quantized student head, a teacher without the output, kd without data or after dynamic quantization, kd flags without kd', () => {
    const int4 = join(dir, 'int4-student.onnx');
    expect(run(['compress', RESIDUAL, '-o', int4, '--weights', 'int4', '--min-elements', '0', '--force']).status).toBe(0);
    const q = run(['distill', int4, '--teacher', RESIDUAL, '--data', TRAIN, '-o', join(dir, 'e1.onnx')]);
    expect(q.status).toBe(1);
    expect(q.stderr).toMatch(/the head weight 'fc.weight' is quantized; distill fits float heads/);
    const other = join(dir, 'gemm-teacher-other.onnx');
    writeFileSync(other, headModel('conv-classes', 0));
    const t = run(['distill', RESIDUAL, '--teacher', other, '--data', TRAIN, '-o', join(dir, 'e2.onnx')]);
    expect(t.stderr).toMatch(/no head behind output 'logits' to read the teacher's logits from/);
    expect(run(['compress', RESIDUAL, '-o', join(dir, 'e3.onnx'), '--recover', 'kd']).stderr).toMatch(/--recover kd needs --calibration/);
    expect(run(['compress', RESIDUAL, '-o', join(dir, 'e4.onnx'), '--activations', 'dynamic', '--recover', 'kd', '--calibration', TRAIN]).stderr).toMatch(/after --activations dynamic it is not supported yet/);
    expect(run(['compress', RESIDUAL, '-o', join(dir, 'e5.onnx'), '--kd-epochs', '5']).stderr).toMatch(/--kd-epochs applies to distillation: add --recover kd/);
    const epochs = run(['distill', RESIDUAL, '--teacher', RESIDUAL, '--data', TRAIN, '-o', join(dir, 'e6.onnx'), '--epochs', '0']);
    expect(epochs.stderr).toMatch(/distillation epochs 0: must be an integer >= 1/);
    const same = run(['distill', RESIDUAL, '--teacher', RESIDUAL, '--data', TRAIN, '-o', RESIDUAL]);
    expect(same.stderr).toMatch(/is the input model/);
  }, 120_000);
});
