// ONNX I/O: round-trip identity, unknown fields, external data, shared and Constant-node weights.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { OnnxModel, writeModel } from '../src/onnx/model.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { RecipeError } from '../src/errors.ts';
import { MNIST, OCR, modelBytes, sharedWeightModel } from './helpers/models.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-onnx-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function outputs(path: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path);
  const r = await s.run(feeds);
  const d = r[s.outputNames[0]].data as Float32Array;
  await s.release();
  return d;
}

const mnistInput = () => ({ image: new ort.Tensor('float32', Float32Array.from({ length: 2 * 784 }, (_, i) => (i % 29) / 29), [2, 1, 28, 28]) });

describe('round trip', () => {
  it.each([MNIST, `${OCR}ch_ppocr_mobile_v2.0_cls_infer.onnx`, `${OCR}ch_PP-OCRv4_rec_infer.onnx`])('reading and writing %s changes no byte', (path) => {
    const out = join(dir, 'roundtrip.onnx');
    writeModel(OnnxModel.read(path), out);
    expect(Buffer.compare(readFileSync(out), readFileSync(path))).toBe(0);
  });

  it('ONNX Runtime outputs of the rewritten model are bit-identical', async () => {
    const out = join(dir, 'roundtrip-mnist.onnx');
    writeModel(OnnxModel.read(MNIST), out);
    expect(Array.from(await outputs(out, mnistInput()))).toEqual(Array.from(await outputs(MNIST, mnistInput())));
  });

  it('keeps fields the schema does not know (written back as they were)', () => {
    // Field 99, varint 7, appended to a real model: unknown to modelpress's schema.
    const bytes = Buffer.concat([readFileSync(MNIST), Buffer.from([0x98, 0x06, 0x07])]);
    const src = join(dir, 'unknown.onnx');
    writeFileSync(src, bytes);
    const out = join(dir, 'unknown-out.onnx');
    writeModel(OnnxModel.read(src), out);
    expect(Buffer.compare(readFileSync(out), bytes)).toBe(0);
  });
});

describe('generated protobuf code', () => {
  it('src/onnx/generated/onnx-pb.ts is what scripts/gen-proto.mjs writes from schema/onnx.proto', () => {
    const fresh = join(dir, 'onnx-pb.ts');
    execFileSync(process.execPath, [join('scripts', 'gen-proto.mjs'), fresh]);
    const committed = readFileSync(join('src', 'onnx', 'generated', 'onnx-pb.ts'), 'utf8');
    // A stale file would decode or encode a schema other than the one in schema/.
    expect(readFileSync(fresh, 'utf8') === committed, 'run npm run build:proto and commit the result').toBe(true);
  });
});

describe('external data', () => {
  it('writes big tensors to <model>.data and reads them back tensor by tensor, same outputs in ONNX Runtime', async () => {
    const out = join(dir, 'ext.onnx');
    const w = writeModel(OnnxModel.read(MNIST), out, { externalData: 'always' });
    expect(w.externalFile).toBe(join(dir, 'ext.onnx.data'));
    expect(readFileSync(out).length).toBeLessThan(10_000);
    const back = OnnxModel.read(out);
    const fc1 = back.graph.weights.get('fc1.weight')!;
    expect(fc1.tensor.dataLocation).toBe(1);
    expect(Array.from(back.tensorFloat32(fc1.tensor).subarray(0, 8))).toEqual(Array.from(OnnxModel.read(MNIST).tensorFloat32(OnnxModel.read(MNIST).graph.weights.get('fc1.weight')!.tensor).subarray(0, 8)));
    expect(Array.from(await outputs(out, mnistInput()))).toEqual(Array.from(await outputs(MNIST, mnistInput())));
  });

  it('switches to external data automatically past the protobuf limit (limit lowered for the test)', () => {
    const out = join(dir, 'auto.onnx');
    const w = writeModel(OnnxModel.read(MNIST), out, { protobufLimit: 100_000 });
    expect(w.externalFile).not.toBeNull();
    expect(w.externalBytes).toBeGreaterThan(800_000);
  });

  it('compresses a model whose weights are external, writing a self-contained model', async () => {
    const ext = join(dir, 'ext2.onnx');
    writeModel(OnnxModel.read(MNIST), ext, { externalData: 'always' });
    const out = join(dir, 'ext2-int8.onnx');
    const r = await compressModel(ext, out, { scheduler: cpu, force: true });
    expect(r.totals.tensorsQuantized).toBe(3);
    const a = await outputs(out, mnistInput());
    const b = await outputs(MNIST, mnistInput());
    expect(a.every((v, i) => Math.abs(v - b[i]) < 0.2)).toBe(true);
  });

  it('a failed write leaves no partial files', () => {
    const m = OnnxModel.read(MNIST);
    const before = readdirSync(dir).length;
    expect(() => writeModel(m, join(dir, 'missing-folder', 'x.onnx'))).toThrow();
    expect(readdirSync(dir).length).toBe(before);
  });
});

describe('weights', () => {
  it('a weight shared by two nodes is quantized once and both nodes read it', async () => {
    const src = join(dir, 'shared.onnx');
    writeFileSync(src, modelBytes(sharedWeightModel()));
    const out = join(dir, 'shared-int8.onnx');
    const r = await compressModel(src, out, { scheduler: cpu, force: true });
    expect(r.tensors.map((t) => [t.name, t.nodes])).toEqual([['W', ['mm1', 'mm2']]]);
    const g = OnnxModel.read(out).msg.graph!;
    // One decode chain (folded format: Cast -> Mul) produces W for both consumers.
    expect(g.node.filter((n) => n.opType === 'Cast')).toHaveLength(1);
    expect(g.node.filter((n) => n.opType === 'Mul' && n.output[0] === 'W')).toHaveLength(1);
    expect(g.node.filter((n) => n.opType === 'MatMul').every((n) => n.input[1] === 'W')).toBe(true);
    const x = { x: new ort.Tensor('float32', Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), [1, 64]) };
    const a = await outputs(out, x);
    const b = await outputs(src, x);
    const cos = a.reduce((s, v, i) => s + v * b[i], 0) / Math.sqrt(a.reduce((s, v) => s + v * v, 0) * b.reduce((s, v) => s + v * v, 0));
    expect(cos).toBeGreaterThan(0.999);
  });

  it('two configs meeting on one shared weight is an error naming both nodes', async () => {
    const src = join(dir, 'shared2.onnx');
    writeFileSync(src, modelBytes(sharedWeightModel()));
    const recipe = parseRecipe({ nodes: { mm2: { weights: 'uint8' } } });
    await expect(compressModel(src, join(dir, 'x.onnx'), { recipe, scheduler: cpu, force: true })).rejects.toThrow(RecipeError);
    await expect(compressModel(src, join(dir, 'x.onnx'), { recipe, scheduler: cpu, force: true })).rejects.toThrow(
      /weight 'W' is shared by nodes 'mm1' \(MatMul\) and 'mm2' \(MatMul\), which the recipe configures differently/,
    );
    expect(existsSync(join(dir, 'x.onnx'))).toBe(false);
  });

  it('Constant-node weights are compressed like initializers (PaddleOCR cls)', async () => {
    const src = `${OCR}ch_ppocr_mobile_v2.0_cls_infer.onnx`;
    const m = OnnxModel.read(src);
    const constants = [...m.graph.weights.values()].filter((w) => w.source === 'constant').length;
    expect(m.msg.graph!.initializer).toHaveLength(0);
    expect(constants).toBeGreaterThan(100);
    const r = await compressModel(src, join(dir, 'cls.onnx'), { scheduler: cpu, force: true });
    expect(r.totals.tensorsQuantized).toBe(27);
    expect(r.skipped.some((s) => s.reason.startsWith('bias'))).toBe(true);
  });

  it('skips are reported with reasons: biases, small tensors, non-weight uses', async () => {
    const r = await compressModel(MNIST, join(dir, 'm.onnx'), { scheduler: cpu, force: true });
    const reasons = Object.fromEntries(r.skipped.map((s) => [s.name, s.reason]));
    expect(reasons['conv1.bias']).toMatch(/^bias/);
    expect(reasons['conv1.weight']).toBe('small (144 elements < minElements 1024)');
  });

  it('NaN in a weight is a typed error naming the tensor, or a reported skip with onNonFinite: skip', async () => {
    const m = OnnxModel.read(MNIST);
    const w = m.graph.weights.get('fc2.weight')!;
    const raw = new Uint8Array(m.tensorBytes(w.tensor));
    new Float32Array(raw.buffer)[7] = NaN;
    w.tensor.rawData = raw;
    const src = join(dir, 'nan.onnx');
    writeModel(m, src);
    await expect(compressModel(src, join(dir, 'nan-out.onnx'), { scheduler: cpu, force: true })).rejects.toThrow(
      "weight 'fc2.weight' holds 1 NaN and 0 infinite values; fix the model, or use onNonFinite: skip to leave it in float",
    );
    const r = await compressModel(src, join(dir, 'nan-out.onnx'), { recipe: parseRecipe({ onNonFinite: 'skip' }), scheduler: cpu, force: true });
    expect(r.skipped.find((s) => s.name === 'fc2.weight')?.reason).toBe('holds 1 NaN / 0 Inf values (onNonFinite: skip)');
  });

  it('fp16 weights: NaN and Inf counted apart in the error, and in the skip', async () => {
    const m = OnnxModel.read(MNIST);
    const w = m.graph.weights.get('fc2.weight')!;
    const raw = new Uint8Array(m.tensorBytes(w.tensor));
    const f = new Float32Array(raw.buffer);
    f[3] = NaN;
    f[5] = -Infinity;
    f[9] = Infinity;
    w.tensor.rawData = raw;
    const src = join(dir, 'nonfinite-fp16.onnx');
    writeModel(m, src);
    await expect(compressModel(src, join(dir, 'nonfinite-fp16-out.onnx'), { recipe: parseRecipe({ weights: 'fp16' }), scheduler: cpu, force: true })).rejects.toThrow(
      "weight 'fc2.weight' holds 1 NaN and 2 infinite values",
    );
    const r = await compressModel(src, join(dir, 'nonfinite-fp16-out.onnx'), { recipe: parseRecipe({ weights: 'fp16', onNonFinite: 'skip' }), scheduler: cpu, force: true });
    expect(r.skipped.find((s) => s.name === 'fc2.weight')?.reason).toBe('holds 1 NaN / 2 Inf values (onNonFinite: skip)');
    expect(r.tensors.find((t) => t.name === 'fc1.weight')?.encoding).toBe('fp16-cast');
  });

  it('the GPU and CPU backends write byte-identical models', async (ctx) => {
    const gpu = await Scheduler.create({ backend: 'auto', allowSoftwareAdapter: true, cpuThreshold: 0 });
    try {
      if (gpu.info.active !== 'gpu') return ctx.skip(`no GPU: ${gpu.info.reason}`);
      for (const recipe of [{}, { weights: 'int4', format: 'matmulnbits' }, { weights: 'uint8', symmetric: false, granularity: 'tensor' }] as const) {
        await compressModel(MNIST, join(dir, 'g.onnx'), { recipe: parseRecipe(recipe), scheduler: gpu, force: true });
        await compressModel(MNIST, join(dir, 'c.onnx'), { recipe: parseRecipe(recipe), scheduler: cpu, force: true });
        expect(Buffer.compare(readFileSync(join(dir, 'g.onnx')), readFileSync(join(dir, 'c.onnx')))).toBe(0);
      }
      expect(gpu.stats.submits).toBeGreaterThan(0);
    } finally {
      gpu.dispose();
    }
  });
});

describe('streamed encoding', () => {
  it.each([MNIST, `${OCR}ch_PP-OCRv4_rec_infer.onnx`])('%s: the chunks concatenate to the plain encoding; large payloads are passed by reference', async (path) => {
    const { encodeModelChunks } = await import('../src/onnx/stream-encode.ts');
    const { encodeModel } = await import('../src/onnx/proto.ts');
    const { allTensors } = await import('../src/onnx/model.ts');
    const m = OnnxModel.read(path);
    const tensors = allTensors(m.msg);
    const { chunks, length } = encodeModelChunks(m.msg, tensors);
    const joined = Buffer.concat(chunks as Uint8Array[]);
    expect(length).toBe(joined.length);
    expect(Buffer.compare(joined, Buffer.from(encodeModel(m.msg)))).toBe(0);
    const big = tensors.filter((t) => (t.rawData?.length ?? 0) >= 1 << 16);
    expect(big.length).toBeGreaterThan(0);
    for (const t of big) expect(chunks).toContain(t.rawData);
  });
});
