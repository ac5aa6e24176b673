// Weight encodings: the folded Cast/Mul chain decodes exactly what DequantizeLinear decodes (every
// bit width, granularity, opset route, partial blocks, odd sizes), and ONNX Runtime folds it away at
// session creation, so the optimized graph is the float model's graph.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { compressModel } from '../src/pipeline/compress.ts';
import { parseRecipe, type RecipeInput } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { encodeModel, int64, type ModelMsg } from '../src/onnx/proto.ts';
import { DataType } from '../src/onnx/dtypes.ts';
import { tensorDims } from '../src/onnx/tensor.ts';
import { seededRandom } from '../src/random.ts';
import { MNIST } from './helpers/models.ts';
import { mobileNetV2 } from './helpers/zoo.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-enc-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => {
  cpu.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function randomF32(n: number, seed: number, offset = 0): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() - 0.5) * 2 + offset);
}

/** x -> Conv(W[5,3,3,3]: 135 elements, odd) -> MatMul(W[40, 24]: K=40 is not a multiple of 32) -> Gemm(transB) -> y. */
function testModel(opset: number): ModelMsg {
  const b = new GraphBuilder('enc');
  const x = b.input('x', [2, 3, 6, 6]);
  const cw = b.init('conv.weight', [5, 3, 3, 3], randomF32(135, 1, 0.3)); // offset: asymmetric ranges matter
  const c = b.op('Conv', [x, cw], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv');
  const flat = b.op('Reshape', [c, b.int64s('shape', [2, 5 * 36])]);
  const proj = b.init('proj.weight', [180, 40], randomF32(180 * 40, 2));
  const h = b.op('MatMul', [flat, proj], {}, 'proj');
  const mm = b.init('mm.weight', [40, 24], randomF32(40 * 24, 3, -0.2));
  const h2 = b.op('MatMul', [h, mm], {}, 'mm');
  const gw = b.init('gemm.weight', [7, 24], randomF32(7 * 24, 4));
  b.node('Gemm', [h2, gw], { transB: 1 }, { outputs: ['y'], name: 'gemm' });
  b.output('y', [2, 7]);
  return b.build(opset, [], opset >= 21 ? 10 : 8);
}

const input = { x: new ort.Tensor('float32', randomF32(2 * 3 * 36, 9), [2, 3, 6, 6]) };

async function run(path: string, level: 'disabled' | 'all'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: level, intraOpNumThreads: 1 });
  const y = (await s.run(input)).y.data as Float32Array;
  await s.release();
  return y;
}

/** Op types of the graph ONNX Runtime runs after its (basic) optimizations, constant folding included. */
async function optimizedOps(path: string): Promise<string[]> {
  const opt = `${path}.opt.onnx`;
  const s = await ort.InferenceSession.create(path, { optimizedModelFilePath: opt, graphOptimizationLevel: 'basic' });
  await s.release();
  return OnnxModel.read(opt).msg.graph!.node.map((n) => n.opType ?? '');
}

const cases: Array<[string, number, RecipeInput]> = [
  ['int8 per-channel symmetric', 13, { weights: 'int8' }],
  ['uint8 per-channel asymmetric', 13, { weights: 'uint8', symmetric: false }],
  ['int8 per-tensor asymmetric', 13, { weights: 'int8', granularity: 'tensor', symmetric: false }],
  ['int4 per-channel, opset 13 (nibble unpacking)', 13, { weights: 'int4', granularity: 'channel' }],
  ['uint4 per-channel asymmetric, opset 13 (nibble unpacking)', 13, { weights: 'uint4', granularity: 'channel', symmetric: false }],
  ['int4 per-channel, opset 21 (INT4 Cast)', 21, { weights: 'int4', granularity: 'channel' }],
  ['int4 block 32 asymmetric, opset 21 (partial last block)', 21, { weights: 'int4', blockSize: 32, symmetric: false }],
  ['uint4 block 16, opset 21', 21, { weights: 'uint4', blockSize: 16 }],
  ['int8 block 16 asymmetric, opset 21', 21, { weights: 'int8', granularity: 'block', blockSize: 16, symmetric: false }],
];

describe.each(cases)('folded vs DequantizeLinear: %s', (label, opset, recipe) => {
  const src = join(dir, `${label.replace(/\W+/g, '-')}.onnx`);
  const folded = src.replace('.onnx', '-folded.onnx');
  const qdq = src.replace('.onnx', '-qdq.onnx');
  it('both formats compress the same weights and ONNX Runtime computes identical outputs (no optimization)', async () => {
    writeFileSync(src, encodeModel(testModel(opset)));
    const rf = await compressModel(src, folded, { recipe: parseRecipe({ ...recipe, minElements: 0 }), scheduler: cpu, force: true });
    const rq = await compressModel(src, qdq, { recipe: parseRecipe({ ...recipe, minElements: 0, format: 'qdq' }), scheduler: cpu, force: true });
    expect(rf.tensors.map((t) => t.encoding)).toEqual(['folded', 'folded', 'folded', 'folded']);
    expect(rq.tensors.map((t) => t.encoding)).toEqual(['qdq', 'qdq', 'qdq', 'qdq']);
    expect(rf.tensors.map((t) => t.sqnrDb)).toEqual(rq.tensors.map((t) => t.sqnrDb));
    // Without graph optimization both decode at run time: the decode arithmetic itself is compared.
    const [a, b] = [await run(folded, 'disabled'), await run(qdq, 'disabled')];
    expect(Array.from(a)).toEqual(Array.from(b));
    // Storage stays compact: the initializer bytes of QDQ within 5 % (unpacking's shapes and unpacked
    // zero points, on these tiny weights), plus the block indices (an int64 per row of each blocked axis).
    const initBytes = (p: string) => OnnxModel.read(p).msg.graph!.initializer.reduce((a, t) => a + (t.rawData?.length ?? 0), 0);
    const blocked = recipe.granularity === 'block' || (recipe.weights?.endsWith('4') && !recipe.granularity);
    expect(initBytes(folded)).toBeLessThanOrEqual(initBytes(qdq) * 1.05 + (blocked ? 8 * (180 + 40 + 24) : 0));
  });
  it('ONNX Runtime folds every decode node: the optimized graph is the float graph', async () => {
    const ops = await optimizedOps(folded);
    expect(ops.sort()).toEqual(['Conv', 'Gemm', 'MatMul', 'MatMul', 'Reshape'].sort());
    // DequantizeLinear is kept by ORT (for QDQ fusion): it runs at every inference.
    expect((await optimizedOps(qdq)).filter((o) => o === 'DequantizeLinear').length).toBe(4);
  });
});

/** (q - zp) * scale in f32, read back from a QDQ model: the decoded weights by hand. */
function handDecoded(qdqPath: string): OnnxModel {
  const m = OnnxModel.read(qdqPath);
  const g = m.msg.graph!;
  const init = new Map(g.initializer.map((t) => [t.name!, t]));
  for (const n of g.node.filter((x) => x.opType === 'DequantizeLinear')) {
    const [q, s, z] = n.input.map((i) => init.get(i)!);
    const dims = tensorDims(q);
    const axis = int64(n.attribute.find((a) => a.name === 'axis')?.i ?? 1);
    const codes = q.dataType === DataType.INT8 ? new Int8Array(q.rawData!.buffer, q.rawData!.byteOffset, q.rawData!.length) : q.rawData!;
    const scale = new Float32Array(new Uint8Array(s.rawData!).buffer);
    const zp = z.dataType === DataType.INT8 ? new Int8Array(new Uint8Array(z.rawData!).buffer) : z.rawData!;
    const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const values = Float32Array.from(codes, (c, i) => {
      const ch = scale.length === 1 ? 0 : Math.floor(i / inner) % dims[axis];
      return Math.fround((c - zp[ch]) * scale[ch]);
    });
    g.initializer.push({ ...q, name: n.output[0], dataType: DataType.FLOAT, rawData: new Uint8Array(values.buffer) } as never);
    g.node.splice(g.node.indexOf(n), 1);
    for (const t of [q, s, z]) g.initializer.splice(g.initializer.indexOf(t), 1);
  }
  return m;
}

describe('a real model in the default format', () => {
  it('MNIST CNN: folded outputs equal those of the hand-decoded float weights, bit for bit, with all optimizations', async () => {
    const folded = join(dir, 'mnist-folded.onnx');
    const qdq = join(dir, 'mnist-qdq.onnx');
    const r = await compressModel(MNIST, folded, { scheduler: cpu, force: true });
    expect(r.tensors.every((t) => t.encoding === 'folded')).toBe(true);
    expect(r.manifest.recipe).toMatchObject({ target: 'ort-cpu', format: 'folded' });
    await compressModel(MNIST, qdq, { recipe: parseRecipe({ format: 'qdq' }), scheduler: cpu, force: true });
    const decoded = join(dir, 'mnist-decoded.onnx');
    writeFileSync(decoded, encodeModel(handDecoded(qdq).msg));
    const x = { image: new ort.Tensor('float32', randomF32(4 * 784, 5, 0.5), [4, 1, 28, 28]) };
    const out = async (p: string) => {
      const s = await ort.InferenceSession.create(p, { intraOpNumThreads: 1 });
      const y = (await s.run(x))[s.outputNames[0]].data as Float32Array;
      await s.release();
      return Array.from(y);
    };
    expect(await out(folded)).toEqual(await out(decoded));
    // The file is as small as the QDQ one.
    expect(Math.abs(readFileSync(folded).length - readFileSync(qdq).length) / readFileSync(qdq).length).toBeLessThan(0.02);
  });

  it('MobileNetV2 (int4 per-channel convolutions, opset 13): every decode chain folds; the optimized graph has the float model\'s ops', async () => {
    const src = join(dir, 'mnv2.onnx');
    writeFileSync(src, encodeModel(mobileNetV2({ size: 96 })));
    const out = join(dir, 'mnv2-int4.onnx');
    const r = await compressModel(src, out, { recipe: parseRecipe({ weights: 'int4', granularity: 'channel' }), scheduler: cpu, force: true });
    expect(r.tensors.length).toBeGreaterThan(40);
    expect(r.tensors[0].scheme).toMatch(/folded \(Cast->Mul\), nibbles unpacked/);
    const count = (ops: string[]) => ops.reduce<Record<string, number>>((acc, o) => ((acc[o] = (acc[o] ?? 0) + 1), acc), {});
    expect(count(await optimizedOps(out))).toEqual(count(await optimizedOps(src)));
  });

  it('fp16 weights (FLOAT16 + Cast) fold too', async () => {
    const out = join(dir, 'mnist-fp16.onnx');
    await compressModel(MNIST, out, { recipe: parseRecipe({ weights: 'fp16' }), scheduler: cpu, force: true });
    expect(await optimizedOps(out)).not.toContain('Cast');
  });
});

describe('deployment targets choose the format', () => {
  it('qdq and tensorrt targets store DequantizeLinear; tensorrt refuses asymmetric weights and ORT-only formats', async () => {
    for (const target of ['qdq', 'tensorrt'] as const) {
      const out = join(dir, `mnist-${target}.onnx`);
      const r = await compressModel(MNIST, out, { recipe: parseRecipe({ target }), scheduler: cpu, force: true });
      expect(r.tensors.every((t) => t.encoding === 'qdq')).toBe(true);
      expect(r.tensors[0].encodingReason).toMatch(new RegExp(`^target ${target}: runtimes that run integer kernels`));
    }
    expect(() => parseRecipe({ target: 'tensorrt', symmetric: false })).toThrow("recipe: target 'tensorrt' needs symmetric weights (TensorRT takes zero points of 0 only); drop asymmetric");
    expect(() => parseRecipe({ target: 'qdq', format: 'folded' })).toThrow("recipe: target 'qdq' consumes weights as DequantizeLinear (QDQ); format 'folded' is for ONNX Runtime (target ort-cpu)");
  });
});

describe('the constant-folding cap', () => {
  it('a weight that would decode to more than 1 GiB is stored as DequantizeLinear, and the report says why', async () => {
    const { plannedEncoding } = await import('../src/passes/quantize/weight-only.ts');
    const { findTargets } = await import('../src/passes/quantize/targets.ts');
    const model = OnnxModel.read(MNIST);
    const fc1 = findTargets(model.graph, parseRecipe({})).targets.find((t) => t.weight.name === 'fc1.weight')!;
    // Only the shape decides: 2^28 f32 elements is exactly the 1 GiB cap.
    expect(plannedEncoding(model, { ...fc1, shape: [1 << 14, 1 << 14] })).toMatchObject({ encoding: 'folded' });
    const big = plannedEncoding(model, { ...fc1, shape: [1 << 14, (1 << 14) + 1] });
    expect(big).toMatchObject({ encoding: 'qdq' });
    expect((big as { why: string }).why).toBe("format folded; not folded: the decoded weight (1.00 GiB) exceeds ONNX Runtime's 1 GiB constant-folding cap");
  });
});
