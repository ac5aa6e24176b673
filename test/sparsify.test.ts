// Sparsity: SparseGPT against magnitude pruning on generated layers (layer objective), the masks'
// semantics (threshold order, N:M along the input-channel axis), the compact storage forms that
// ONNX Runtime folds or densifies at load (outputs equal the dense model's), zeros that stay zero
// through quantize and palettize, and the pass on a trained model with real data.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { encodeModel, type ModelMsg } from '../src/onnx/proto.ts';
import { seededRandom } from '../src/random.ts';
import { correlatedLayer } from './helpers/layers.ts';
import { sparsegpt } from '../src/linalg/sparsegpt.ts';
import { sparseGptDepthwise } from '../src/passes/sparsify/sparsify.ts';
import { layerObjective } from '../src/linalg/gptq.ts';
import { sparsityKernel } from '../src/kernels/sparsity.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import type { SparsifyReport } from '../src/passes/sparsify/pass.ts';
import type { PassSpec } from '../src/passes/registry.ts';
import { summarizeEncodings } from '../src/analysis/encodings.ts';
import { gaussSolve } from './helpers/gauss-solve.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-sparse-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => {
  cpu.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function gaussian(n: number, seed: number, sd = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * sd);
}

const layer = correlatedLayer;

describe('SparseGPT', () => {
  it('unstructured 50 %: the mask has the asked sparsity and a lower layer objective than magnitude pruning', () => {
    for (const seed of [1, 2, 3]) {
      const { w, h } = layer(24, 40, 400, seed);
      const res = sparsegpt({ w, rows: 24, cols: 40, h, sparsity: 0.5 });
      const zeros = res.w.filter((x) => x === 0).length;
      expect(zeros).toBe(24 * 40 / 2);
      const sorted = Array.from(w, Math.abs).sort((a, b) => a - b);
      const t = sorted[w.length / 2 - 1];
      const magnitude = Float64Array.from(w, (x) => (Math.abs(x) > t ? x : 0));
      expect(layerObjective(w, res.w, h, 24, 40)).toBeLessThan(0.8 * layerObjective(w, magnitude, h, 24, 40));
    }
  });

  it('2:4 in a given column order: every group of every row keeps exactly 2 weights', () => {
    const { w, h } = layer(8, 24, 300, 4);
    // Groups of 4 columns taken with stride 3 (a convolution's channels at one kernel position).
    const order: number[] = [];
    const groups: number[][] = [];
    for (let p = 0; p < 3; p++) for (let c0 = 0; c0 < 8; c0 += 4) {
      const g = [0, 1, 2, 3].map((j) => (c0 + j) * 3 + p);
      groups.push(g);
      order.push(...g);
    }
    const res = sparsegpt({ w, rows: 8, cols: 24, h, nm: { n: 2, groups }, order });
    for (let r = 0; r < 8; r++) for (const g of groups) expect(g.filter((c) => res.w[r * 24 + c] !== 0).length).toBe(2);
  });
});

describe('SparseGPT on a depthwise convolution (a Gram block per channel)', () => {
  it('the layer gets exactly its fraction, masks follow the per-channel saliency, and the objective beats magnitude', () => {
    const channels = 24;
    const taps = 9;
    const w = new Float32Array(channels * taps);
    const h = new Float64Array(channels * taps * taps);
    for (let c = 0; c < channels; c++) {
      const l = correlatedLayer(1, taps, 64, 100 + c);
      // Channels see inputs of very different energy: a fixed per-layer threshold ignores that.
      const energy = c < channels / 2 ? 1 : 100;
      w.set(Float32Array.from(l.w), c * taps);
      for (let k = 0; k < taps * taps; k++) h[c * taps * taps + k] = l.h[k] * energy;
    }
    const m = { h, rows: channels, cols: taps, depthwise: true, flat: (r: number, c: number) => r * taps + c };
    const magnitudeKeep = Uint8Array.from(w, (x) => (Math.abs(x) > 0.5 ? 1 : 0));
    const r = sparseGptDepthwise({ name: 'dw', data: w, shape: [channels, 1, 3, 3], inputAxis: 1 }, m, 0.5, magnitudeKeep);
    const zeros = r.keep.reduce((a, k) => a + (k ? 0 : 1), 0);
    expect(zeros).toBe(Math.round(channels * taps * 0.5));
    for (let i = 0; i < w.length; i++) if (!r.keep[i]) expect(r.data[i]).toBe(0);
    // The high-energy channels (second half) keep more of their weights.
    const kept = (c0: number, c1: number) => r.keep.subarray(c0 * taps, c1 * taps).reduce((a, k) => a + k, 0);
    expect(kept(channels / 2, channels)).toBeGreaterThan(kept(0, channels / 2));
    expect(r.objectiveSparseGpt).toBeLessThan(r.objectiveMagnitude);
    // Each channel's objective equals ‖(W − Ŵ)X‖² under its own Gram block.
    let sum = 0;
    for (let c = 0; c < channels; c++) {
      sum += layerObjective(Float64Array.from(w.subarray(c * taps, (c + 1) * taps)), Float64Array.from(r.data.subarray(c * taps, (c + 1) * taps)), h.subarray(c * taps * taps, (c + 1) * taps * taps), 1, taps);
    }
    expect(r.objectiveSparseGpt).toBeCloseTo(sum, 6);
  });
});

describe('sparsity masks (CPU reference semantics)', () => {
  it('threshold keeps exactly the magnitudes above it; N:M keeps the N largest of each group along the axis', () => {
    const data = gaussian(8 * 8 * 9, 5);
    const { keep } = sparsityKernel.cpu({ kind: 'threshold', data, threshold: 0.5 });
    data.forEach((x, i) => expect(keep[i]).toBe(Math.abs(x) > 0.5 ? 1 : 0));
    const nm = sparsityKernel.cpu({ kind: 'nm', data, outer: 8, dim: 8, inner: 9, n: 2, m: 4 }).keep;
    for (let o = 0; o < 8; o++) for (let b = 0; b < 2; b++) for (let i = 0; i < 9; i++) {
      const idx = [0, 1, 2, 3].map((j) => (o * 8 + b * 4 + j) * 9 + i);
      const kept = idx.filter((q) => nm[q]);
      expect(kept.length).toBe(2);
      const minKept = Math.min(...kept.map((q) => Math.abs(data[q])));
      for (const q of idx) if (!nm[q]) expect(Math.abs(data[q])).toBeLessThanOrEqual(minKept);
    }
  });
});

/** x -> Conv(W[8,8,3,3]) -> Reshape -> MatMul(W[288,40]) -> Gemm(W[12,40], transB) -> y. */
function testModel(opset = 13): ModelMsg {
  const b = new GraphBuilder('sp');
  const x = b.input('x', [2, 8, 6, 6]);
  const c = b.op('Conv', [x, b.init('conv.weight', [8, 8, 3, 3], gaussian(576, 11, 0.3))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv');
  const p = b.op('MaxPool', [c], { kernel_shape: [2, 2], strides: [2, 2] });
  const flat = b.op('Reshape', [p, b.int64s('shape', [2, 72])]);
  const h = b.op('MatMul', [flat, b.init('proj.weight', [72, 40], gaussian(72 * 40, 12, 0.1))], {}, 'proj');
  b.node('Gemm', [h, b.init('gemm.weight', [12, 40], gaussian(12 * 40, 13, 0.2)), b.init('gemm.bias', [12], gaussian(12, 14, 0.1))], { transB: 1 }, { outputs: ['y'], name: 'gemm' });
  b.output('y', [2, 12]);
  return b.build(opset);
}

const input = { x: new ort.Tensor('float32', gaussian(2 * 8 * 36, 15), [2, 8, 6, 6]) };
async function run(path: string, level: 'disabled' | 'all' = 'all'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: level, intraOpNumThreads: 1 });
  const y = (await s.run(input)).y.data as Float32Array;
  await s.release();
  return y;
}

/** The weights ONNX Runtime holds after folding decode chains at load. */
async function foldedWeights(path: string): Promise<OnnxModel> {
  const opt = `${path}.opt.onnx`;
  const s = await ort.InferenceSession.create(path, { optimizedModelFilePath: opt, graphOptimizationLevel: 'basic' });
  await s.release();
  return OnnxModel.read(opt);
}

const src = join(dir, 'model.onnx');
writeFileSync(src, encodeModel(testModel()));
const sparsify = (options: Record<string, unknown>): PassSpec => ({ pass: 'sparsify', options: { minElements: 0, ...options } as never });

describe('the sparsify pass', () => {
  it('magnitude, per layer: each layer at the asked sparsity, kept weights untouched and all larger than the pruned', async () => {
    const out = join(dir, 'mag.onnx');
    const r = await compressModel(src, out, { passes: [sparsify({ sparsity: 0.5 })], scheduler: cpu, force: true });
    const rep = r.passes[0].report as SparsifyReport;
    const [a, b] = [OnnxModel.read(src), OnnxModel.read(out)];
    for (const t of rep.tensors) {
      expect(t.sparsity).toBeCloseTo(0.5, 2);
      const x = a.tensorFloat32(a.graph.weights.get(t.name)!.tensor);
      const y = b.tensorFloat32(b.graph.weights.get(t.name)!.tensor);
      let maxPruned = 0;
      let minKept = Infinity;
      x.forEach((v, i) => (y[i] === 0 ? (maxPruned = Math.max(maxPruned, Math.abs(v))) : (expect(y[i]).toBe(v), (minKept = Math.min(minKept, Math.abs(v))))));
      expect(maxPruned).toBeLessThanOrEqual(minKept);
    }
  });

  it('global scope: one threshold over every layer (layers get different sparsities)', async () => {
    const r = await compressModel(src, join(dir, 'glob.onnx'), { passes: [sparsify({ sparsity: 0.5, scope: 'global' })], scheduler: cpu, force: true });
    const rep = r.passes[0].report as SparsifyReport;
    expect(rep.sparsity).toBeCloseTo(0.5, 2);
    const by = Object.fromEntries(rep.tensors.map((t) => [t.name, t.sparsity]));
    expect(by['proj.weight']).toBeGreaterThan(0.55); // the smallest weights (sd 0.1) lose most
    expect(by['conv.weight']).toBeLessThan(0.45);
  });

  it('2:4 along the input-channel axis: conv groups run over input channels at each kernel position', async () => {
    const out = join(dir, 'nm.onnx');
    await compressModel(src, out, { passes: [sparsify({ nm: { n: 2, m: 4 } })], scheduler: cpu, force: true });
    const m = OnnxModel.read(out);
    const conv = m.tensorFloat32(m.graph.weights.get('conv.weight')!.tensor);
    for (let o = 0; o < 8; o++) for (let c0 = 0; c0 < 8; c0 += 4) for (let p = 0; p < 9; p++) {
      expect([0, 1, 2, 3].filter((j) => conv[(o * 8 + c0 + j) * 9 + p] !== 0).length).toBe(2);
    }
    const proj = m.tensorFloat32(m.graph.weights.get('proj.weight')!.tensor); // MatMul [K, N]: groups along K
    for (let k0 = 0; k0 < 72; k0 += 4) for (let n = 0; n < 40; n++) expect([0, 1, 2, 3].filter((j) => proj[(k0 + j) * 40 + n] !== 0).length).toBe(2);
  });

  it('compact storage (bitmask + values; sparse_initializer at low density) computes what dense zeros compute and is smaller', async () => {
    for (const sparsity of [0.5, 0.99]) {
      const dense = join(dir, `dense-${sparsity}.onnx`);
      const compact = join(dir, `compact-${sparsity}.onnx`);
      await compressModel(src, dense, { passes: [sparsify({ sparsity })], scheduler: cpu, force: true });
      const r = await compressModel(src, compact, { passes: [sparsify({ sparsity, format: 'compact' })], scheduler: cpu, force: true });
      const rep = r.passes[0].report as SparsifyReport;
      expect(new Set(rep.tensors.map((t) => t.format))).toEqual(new Set([sparsity === 0.5 ? 'bitmask' : 'sparse_initializer']));
      expect(summarizeEncodings(OnnxModel.read(compact))).toMatchObject(sparsity === 0.5 ? { sparseBitmask: 3, palettized: 0, folded: 0 } : { sparseInitializers: 3, sparseBitmask: 0 });
      // Stored weight bytes: bitmask n/8 + 4 (nnz + 1) ~ 53 % of dense at 50 %; 12 nnz at 1 %.
      const stored = rep.tensors.reduce((a, t) => a + t.bytesAfter, 0) / rep.tensors.reduce((a, t) => a + t.bytesDense, 0);
      expect(stored).toBeLessThan(sparsity === 0.5 ? 0.56 : 0.04);
      expect(statSync(compact).size).toBeLessThan(statSync(dense).size);
      for (const level of ['disabled', 'all'] as const) expect(Array.from(await run(compact, level))).toEqual(Array.from(await run(dense, level)));
      if (sparsity === 0.5) expect((await foldedWeights(compact)).msg.graph!.node.map((n) => n.opType).sort()).toEqual(['Conv', 'Gemm', 'MatMul', 'MaxPool', 'Reshape']);
    }
  });

  it('compact below opset 11 (no CumSum / BitShift): sparse_initializer where it is smaller, else dense', async () => {
    const old = join(dir, 'opset9.onnx');
    writeFileSync(old, encodeModel(testModel(9)));
    for (const [sparsity, format] of [[0.5, 'dense'], [0.95, 'sparse_initializer']] as const) {
      const out = join(dir, `opset9-${sparsity}.onnx`);
      const r = await compressModel(old, out, { passes: [sparsify({ sparsity, format: 'compact' })], scheduler: cpu, force: true });
      expect(new Set((r.passes[0].report as SparsifyReport).tensors.map((t) => t.format))).toEqual(new Set([format]));
      const dense = join(dir, `opset9-${sparsity}-dense.onnx`);
      await compressModel(old, dense, { passes: [sparsify({ sparsity })], scheduler: cpu, force: true });
      expect(Array.from(await run(out))).toEqual(Array.from(await run(dense)));
    }
  });

  it('sparsify then quantize (int8, int4) or palettize keeps every zero exactly zero', async () => {
    const cases: Array<[string, PassSpec]> = [
      ['int8', { pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ minElements: 0 }) } }],
      ['int4 asymmetric', { pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ minElements: 0, weights: 'uint4', symmetric: false, granularity: 'channel' }) } }],
      ['palettize 4-bit', { pass: 'palettize', options: { bits: 4, minElements: 0 } }],
      ['palettize 2-bit grouped', { pass: 'palettize', options: { bits: 2, groupSize: 4, minElements: 0 } }],
    ];
    const sparse = OnnxModel.read((await compressModel(src, join(dir, 'base.onnx'), { passes: [sparsify({ sparsity: 0.3 })], scheduler: cpu, force: true }), join(dir, 'base.onnx')));
    for (const [label, second] of cases) {
      const out = join(dir, `then-${label.replace(/\W+/g, '-')}.onnx`);
      await compressModel(src, out, { passes: [sparsify({ sparsity: 0.3 }), second], scheduler: cpu, force: true });
      const folded = await foldedWeights(out);
      for (const name of ['conv.weight', 'proj.weight', 'gemm.weight']) {
        const before = sparse.tensorFloat32(sparse.graph.weights.get(name)!.tensor);
        const after = folded.tensorFloat32(folded.graph.weights.get(name)!.tensor);
        before.forEach((v, i) => { if (v === 0) expect(after[i], `${label} ${name}[${i}]`).toBe(0); });
      }
    }
  });

  it('bad options: sparsity outside [0, 1), N:M outside 1 <= N < M <= 32, global N:M, SparseGPT without data', async () => {
    const go = (o: Record<string, unknown>) => compressModel(src, join(dir, 'bad.onnx'), { passes: [sparsify(o)], scheduler: cpu, force: true });
    await expect(go({ sparsity: 1.2 })).rejects.toThrow('sparsify: sparsity 1.2 is not allowed (a fraction in [0, 1): 0.5 zeroes half the weights)');
    await expect(go({ nm: { n: 4, m: 4 } })).rejects.toThrow('sparsify: N:M 4:4 is not allowed (integers with 1 <= N < M <= 32, e.g. 2:4)');
    await expect(go({ nm: { n: 2, m: 4 }, scope: 'global' })).rejects.toThrow('scope global applies to unstructured sparsity');
    await expect(go({ sparsity: 0.5, nm: { n: 2, m: 4 } })).rejects.toThrow('give exactly one of sparsity');
    await expect(go({ sparsity: 0.5, method: 'sparsegpt' })).rejects.toThrow('method sparsegpt needs --calibration data');
  });
});

describe('SparseGPT on a trained model (Fashion-MNIST CNN, real test images)', () => {
  it('50 % unstructured: SparseGPT loses less accuracy than magnitude pruning and every layer objective is lower', async () => {
    const MODEL = 'test/assets/fashion-cnn.onnx';
    const acc: Record<string, number> = {};
    for (const method of ['magnitude', 'sparsegpt'] as const) {
      const out = join(dir, `fashion-${method}.onnx`);
      const r = await compressModel(MODEL, out, {
        passes: [sparsify({ sparsity: 0.5, method, reconstruct: 'none', minElements: 1024 })], scheduler: cpu, force: true,
        calibration: method === 'sparsegpt' ? { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 128, seed: 1 } : undefined,
      });
      const e = await evaluateModels(out, MODEL, { data: 'test/assets/fashion-mnist', latencyRuns: 0 });
      acc[method] = e.accuracy!.model;
      acc.float = e.accuracy!.baseline;
      if (method === 'sparsegpt') for (const t of (r.passes[0].report as SparsifyReport).tensors) if (t.objectiveSparseGpt !== null) expect(t.objectiveSparseGpt).toBeLessThan(t.objectiveMagnitude!);
    }
    console.log(`Fashion CNN 50 % sparse top-1: float ${acc.float}, magnitude ${acc.magnitude}, sparsegpt ${acc.sparsegpt}`);
    expect(acc.sparsegpt).toBeGreaterThan(acc.magnitude);
    expect(acc.float - acc.sparsegpt).toBeLessThan(1);
  });

  it('bias correction after SparseGPT (inverted-residual CNN): held-out outputs closer to float and fewer points lost', async () => {
    const MODEL = 'test/assets/fashion-inverted-residual.onnx';
    const calibration = { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 256, seed: 1 };
    const drop: Record<string, number> = {};
    for (const biasCorrection of ['off', 'auto'] as const) {
      const out = join(dir, `inv-bias-${biasCorrection}.onnx`);
      const r = await compressModel(MODEL, out, { passes: [sparsify({ sparsity: 0.5, method: 'sparsegpt', biasCorrection, reconstruct: 'none', minElements: 1024 })], scheduler: cpu, force: true, calibration });
      const bc = (r.passes[0].report as SparsifyReport).biasCorrection;
      if (biasCorrection === 'auto') {
        expect(bc!.kept).toBe(true);
        expect(bc!.heldOut!.after.sqnrDb).toBeGreaterThan(bc!.heldOut!.before.sqnrDb);
      } else expect(bc).toBeNull();
      drop[biasCorrection] = (await evaluateModels(out, MODEL, { data: 'test/assets/fashion-mnist', latencyRuns: 0 })).accuracy!.dropPoints;
    }
    console.log(`Fashion inverted residual 50 % SparseGPT: drop ${drop.off.toFixed(2)} -> ${drop.auto.toFixed(2)} points with bias correction`);
    expect(drop.auto).toBeLessThan(drop.off);
  });
});

describe('least-squares reconstruction after sparsity (reconstruct: lsq, --recover lsq)', () => {
  it('one Gemm at 2:4: each output re-fitted over its kept inputs (the normal equations, solved here), zeros stay zero, output error lower', async () => {
    const { encodeNpyFloat32 } = await import('../src/data/npy.ts');
    const { seededSample } = await import('../src/data/dataset.ts');
    const K = 8;
    const M = 3;
    const N = 60;
    // Correlated inputs: a pruned input's contribution is partly recoverable from the kept ones.
    const z = gaussian(N * 3, 21);
    const mix = gaussian(3 * K, 22);
    const own = gaussian(N * K, 24, 0.5);
    const x = new Float32Array(N * K);
    for (let s = 0; s < N; s++) for (let k = 0; k < K; k++) x[s * K + k] = z[s * 3] * mix[k] + z[s * 3 + 1] * mix[K + k] + z[s * 3 + 2] * mix[2 * K + k] + own[s * K + k];
    const W = gaussian(M * K, 23);
    const bias = Float32Array.of(0.5, -0.25, 0.1);
    const b = new GraphBuilder('lsq-gemm');
    const input = b.input('x', ['batch', K]);
    b.output(b.op('Gemm', [input, b.init('w', [M, K], W), b.init('b', [M], bias)], { transB: 1 }, 'fc'), ['batch', M]);
    const model = join(dir, 'lsq-gemm.onnx');
    const data = join(dir, 'lsq-gemm.npy');
    writeFileSync(model, encodeModel(b.build(13)));
    writeFileSync(data, encodeNpyFloat32([N, K], x));
    const run = async (reconstruct: 'none' | 'lsq') => {
      const out = join(dir, `lsq-gemm-${reconstruct}.onnx`);
      const r = await compressModel(model, out, { scheduler: cpu, force: true, calibration: { data, samples: N, seed: 1 }, passes: [sparsify({ nm: { n: 2, m: 4 }, method: 'magnitude', reconstruct })] });
      const m = OnnxModel.read(out);
      return { r, w: m.tensorFloat32(m.graph.weights.get('w')!.tensor), b: m.tensorFloat32(m.graph.weights.get(m.msg.graph!.node.find((n) => n.opType === 'Gemm')!.input[2])!.tensor), out };
    };
    const plain = await run('none');
    const fitted = await run('lsq');
    const rec = (fitted.r.passes[0].report as SparsifyReport).reconstruction!;
    expect(rec.layers).toHaveLength(1);
    expect(rec.layers[0].accepted).toBe(true);
    // The fit rows: the seeded draw of the calibration samples less every fifth (held out).
    const fit = seededSample(N, N, 1).filter((_, i) => i % 5 !== 4);
    for (let o = 0; o < M; o++) {
      const row = Array.from(W.subarray(o * K, (o + 1) * K));
      const kept: number[] = [];
      for (let g = 0; g < K; g += 4) kept.push(...[g, g + 1, g + 2, g + 3].sort((p, q) => Math.abs(row[q]) - Math.abs(row[p]) || p - q).slice(0, 2));
      kept.sort((p, q) => p - q);
      // Unknowns: the kept weights and the bias; targets: the float layer's outputs.
      const feats = (s: number) => [...kept.map((k) => x[s * K + k]), 1];
      const target = (s: number) => row.reduce((acc, w, k) => acc + w * x[s * K + k], bias[o]);
      const n = kept.length + 1;
      const A = Array.from({ length: n }, () => new Array<number>(n).fill(0));
      const rhs = new Array<number>(n).fill(0);
      for (const s of fit) {
        const f = feats(s);
        const y = target(s);
        for (let i = 0; i < n; i++) {
          rhs[i] += f[i] * y;
          for (let j = 0; j < n; j++) A[i][j] += f[i] * f[j];
        }
      }
      const sol = gaussSolve(A, rhs);
      const scale = Math.max(...sol.map(Math.abs));
      for (let k = 0; k < K; k++) {
        const at = kept.indexOf(k);
        if (at < 0) expect(fitted.w[o * K + k]).toBe(0);
        // The library adds a ridge of 1e-3 × mean(diag) toward the magnitude weights: close, not equal.
        else expect(Math.abs(fitted.w[o * K + k] - sol[at])).toBeLessThan(0.02 * scale);
      }
      expect(Math.abs(fitted.b[o] - sol[kept.length])).toBeLessThan(0.02 * scale);
      // The refit moved the kept weights (a test that cannot pass by leaving them alone).
      expect(Math.max(...kept.map((k) => Math.abs(fitted.w[o * K + k] - plain.w[o * K + k])))).toBeGreaterThan(0.05);
    }
    // Measured by ONNX Runtime on every calibration sample: closer to the float layer than magnitude alone.
    const outputs = async (path: string) => {
      const s = await ort.InferenceSession.create(path);
      const y = (await s.run({ x: new ort.Tensor('float32', x, [N, K]) }))[s.outputNames[0]].data as Float32Array;
      await s.release();
      return y;
    };
    const ref = await outputs(model);
    const err = async (path: string) => (await outputs(path)).reduce((e, v, i) => e + (v - ref[i]) ** 2, 0);
    expect(await err(fitted.out)).toBeLessThan(0.5 * (await err(plain.out)));

    // A layer over the least-squares limit is left as sparsified, with the reason, before any Gram.
    const { recoverPruned } = await import('../src/passes/prune/recover.ts');
    const sparse = OnnxModel.read(plain.out);
    const node = sparse.msg.graph!.node.find((n) => n.opType === 'Gemm')!;
    const keep = Uint8Array.from(plain.w, (v) => (v !== 0 ? 1 : 0));
    const rec2 = await recoverPruned(readFileSync(model), sparse, [{ node, kind: 'consumer', keptOut: null, keep }], { method: 'lsq', calibration: { data, samples: N, seed: 1 }, scheduler: cpu, maxFeatures: K });
    expect(rec2.layers).toEqual([expect.objectContaining({ solve: 'none', accepted: false, note: expect.stringMatching(/9 input features exceed the least-squares limit of 8: left as sparsified/) })]);
    expect(Array.from(sparse.tensorFloat32(sparse.graph.weights.get('w')!.tensor))).toEqual(Array.from(plain.w));
  });

  it('2:4 on the trained inverted-residual CNN: SparseGPT + lsq keeps the 2:4 pattern and loses fewer points than SparseGPT alone', async () => {
    const MODEL = 'test/assets/fashion-inverted-residual.onnx';
    const calibration = { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 256, seed: 1 };
    const drop: Record<string, number> = {};
    for (const reconstruct of ['none', 'lsq'] as const) {
      const out = join(dir, `inv-24-${reconstruct}.onnx`);
      const r = await compressModel(MODEL, out, { passes: [sparsify({ nm: { n: 2, m: 4 }, method: 'sparsegpt', reconstruct, minElements: 1024 })], scheduler: cpu, force: true, calibration });
      const rep = r.passes[0].report as SparsifyReport;
      const m = OnnxModel.read(out);
      for (const t of rep.tensors) {
        // Every run of 4 along the input channels (at each kernel position) holds at least 2 zeros.
        const w = m.tensorFloat32(m.graph.weights.get(t.name)!.tensor);
        const [rows, cin] = t.op === 'Gemm' ? [t.shape[0], t.shape[1]] : [t.shape[0], t.shape[1]];
        const positions = t.shape.slice(2).reduce((a, b) => a * b, 1);
        for (let o = 0; o < rows; o++) {
          for (let p = 0; p < positions; p++) {
            for (let c0 = 0; c0 < cin; c0 += 4) {
              let zeros = 0;
              for (let c = c0; c < Math.min(cin, c0 + 4); c++) zeros += w[(o * cin + c) * positions + p] === 0 ? 1 : 0;
              expect(zeros, `${reconstruct}: ${t.name} ${t.op} [${t.shape}] row ${o} position ${p} channels ${c0}..`).toBeGreaterThanOrEqual(Math.max(0, Math.min(4, cin - c0) - 2)); // a last group of 2 keeps both
            }
          }
        }
      }
      if (reconstruct === 'lsq') {
        expect(rep.reconstruction!.layers.filter((l) => l.accepted).length).toBeGreaterThan(rep.reconstruction!.layers.length / 2);
        for (const l of rep.reconstruction!.layers) expect(l.errorAfter).toBeLessThanOrEqual(l.errorBefore);
        // Fitted downstream after upstream: the classifier last, after the head convolution feeding it
        // (weights are listed by name, fc.weight first: the classifier used to be fitted in wave 2).
        const order = rep.reconstruction!.layers.map((l) => l.node);
        expect(order[order.length - 1]).toBe('/fc/Gemm');
        expect(order.indexOf('/head/head.0/Conv')).toBeGreaterThan(order.indexOf('/blocks/blocks.3/project/project.0/Conv'));
      } else expect(rep.reconstruction).toBeNull();
      drop[reconstruct] = (await evaluateModels(out, MODEL, { data: 'test/assets/fashion-mnist', latencyRuns: 0 })).accuracy!.dropPoints;
    }
    console.log(`Fashion inverted residual 2:4 SparseGPT: drop ${drop.none.toFixed(2)} -> ${drop.lsq.toFixed(2)} points with lsq reconstruction`);
    expect(drop.lsq).toBeLessThan(drop.none - 1);
    // The 2:4 target (≤ 1.5 points) on this draw of 256 samples (bench: mean of four draws of 512).
    expect(drop.lsq).toBeLessThan(1.5);
  });

  it('bad options: reconstruct without data, with compact storage; --recover bn names pruning, lsq goes to sparsify', async () => {
    const go = (o: Record<string, unknown>, calibration?: { data: string }) => compressModel(src, join(dir, 'bad-lsq.onnx'), { passes: [sparsify(o)], scheduler: cpu, force: true, calibration });
    await expect(go({ nm: { n: 2, m: 4 }, method: 'magnitude', reconstruct: 'lsq' })).rejects.toThrow('sparsify: reconstruct lsq needs --calibration data');
    await expect(go({ nm: { n: 2, m: 4 }, method: 'magnitude', reconstruct: 'lsq', format: 'compact' }, { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz' })).rejects.toThrow('reconstruct lsq re-fits dense weights; use format dense');
    const { planCompress } = await import('../src/cli/compress-plan.ts');
    const flags = { output: join(dir, 'plan.onnx'), nm: '2:4', calibration: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', backend: 'cpu' };
    await expect(planCompress({ ...flags, recover: 'bn' } as never, 'test/assets/fashion-cnn.onnx', false)).rejects.toThrow('--recover bn applies to pruning (lsq also to sparsity: --sparsity / --nm)');
    const plan = await planCompress({ ...flags, recover: 'lsq,bias' } as never, 'test/assets/fashion-cnn.onnx', false);
    const sp = plan.passes.find((p) => p.pass === 'sparsify')!;
    expect(sp.options).toMatchObject({ reconstruct: 'lsq', biasCorrection: 'auto' });
    const off = await planCompress({ ...flags, recover: 'none' } as never, 'test/assets/fashion-cnn.onnx', false);
    expect(off.passes.find((p) => p.pass === 'sparsify')!.options).toMatchObject({ reconstruct: 'none' });
  });

  it('a grouped convolution is left as sparsified, with the reason (its rows would mix groups); the others are re-fitted', async () => {
    const { stoppingNet } = await import('./helpers/prune-graphs.ts');
    const { encodeNpyFloat32 } = await import('../src/data/npy.ts');
    const model = join(dir, 'stops.onnx');
    const data = join(dir, 'stops.npy');
    writeFileSync(model, encodeModel(stoppingNet()));
    writeFileSync(data, encodeNpyFloat32([40, 3, 8, 8], gaussian(40 * 3 * 64, 31)));
    const run = async (reconstruct: 'none' | 'lsq') => {
      const out = join(dir, `stops-${reconstruct}.onnx`);
      const r = await compressModel(model, out, { passes: [sparsify({ sparsity: 0.5, method: 'magnitude', reconstruct })], scheduler: cpu, force: true, calibration: { data, samples: 40, seed: 1 } });
      const m = OnnxModel.read(out);
      return { rep: r.passes[0].report as SparsifyReport, w: (name: string) => m.tensorFloat32(m.graph.weights.get(name)!.tensor) };
    };
    const plain = await run('none');
    const fitted = await run('lsq');
    const grouped = fitted.rep.reconstruction!.layers.find((l) => l.node === 'grouped')!;
    expect(grouped.solve).toBe('none');
    expect(grouped.note).toMatch(/grouped convolution \(group 4\)/);
    expect(Array.from(fitted.w('grouped.weight'))).toEqual(Array.from(plain.w('grouped.weight')));
    expect(fitted.rep.reconstruction!.layers.filter((l) => l.accepted).map((l) => l.node)).toContain('b');
  });

  it('on by default with calibration data (dense storage), off without data or with compact storage', async () => {
    const calibration = { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 64, seed: 1 };
    const run = async (o: Record<string, unknown>, data = true) => (await compressModel('test/assets/fashion-cnn.onnx', join(dir, 'lsq-default.onnx'), { passes: [sparsify({ nm: { n: 2, m: 4 }, minElements: 1024, ...o })], scheduler: cpu, force: true, calibration: data ? calibration : undefined })).passes[0].report as SparsifyReport;
    const on = await run({});
    expect(on.options.reconstruct).toBe('lsq');
    expect(on.reconstruction!.layers.length).toBeGreaterThan(0);
    expect((await run({}, false)).options.reconstruct).toBe('none');
    const compact = await run({ format: 'compact' });
    expect(compact.options.reconstruct).toBe('none');
    expect(compact.reconstruction).toBeNull();
  });
});
