// Empirical bias correction: the bias edit in every form a compressed layer's bias takes (checked
// by running ONNX Runtime before and after), the correction on a trained CNN (layer means restored,
// held-out outputs closer to float), and the flags that ask for it.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { DataType } from '../src/onnx/dtypes.ts';
import { shiftBias } from '../src/onnx/bias.ts';
import { seededRandom } from '../src/random.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { compressWeights } from '../src/passes/quantize/weight-only.ts';
import { correctBiases } from '../src/passes/quantize/bias-correction.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { parseRecover } from '../src/cli/compress-plan.ts';
import { RecipeError } from '../src/errors.ts';
import { openDataset, seededSample } from '../src/data/dataset.ts';
import { modelInput } from '../src/calibrate/calibrate.ts';
import { modelSession, sessionWithOutputs } from '../src/eval/session.ts';

const FASHION = 'test/assets/fashion-cnn.onnx';
const DATA = 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz';
const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'modelpress-bias-'));

function values(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

/** x[2, 3, 6, 6] -> layer -> y, one layer of the given kind. */
function oneLayer(kind: 'conv-bias' | 'conv-nobias' | 'conv-shared' | 'matmul' | 'gemm' | 'conv-int32'): OnnxModel {
  const b = new GraphBuilder(kind);
  if (kind === 'matmul') {
    b.input('x', [2, 5, 8]);
    b.node('MatMul', ['x', b.init('W', [8, 4], values(32, 1))], {}, { outputs: ['y'], name: 'layer' });
    b.output('y', [2, 5, 4]);
  } else if (kind === 'gemm') {
    b.input('x', [2, 8]);
    b.node('Gemm', ['x', b.init('W', [4, 8], values(32, 1))], { transB: 1 }, { outputs: ['y'], name: 'layer' });
    b.output('y', [2, 4]);
  } else {
    b.input('x', [2, 3, 6, 6]);
    const W = b.init('W', [4, 3, 3, 3], values(108, 2));
    const inputs = ['x', W];
    if (kind === 'conv-int32') {
      // Static W8A8's form: the bias as int32 codes behind a DequantizeLinear (scale 0.01).
      const q = b.init('B_q', [4], Int32Array.from([100, -50, 0, 7]), DataType.INT32);
      const s = b.init('B_s', [4], Float32Array.from([0.01, 0.01, 0.01, 0.01]));
      inputs.push(b.node('DequantizeLinear', [q, s], { axis: 0 }, { name: 'bias_dq' })[0]);
    } else if (kind !== 'conv-nobias') {
      inputs.push(b.init('B', [4], values(4, 3)));
    }
    b.node('Conv', inputs, { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { outputs: ['y'], name: 'layer' });
    if (kind === 'conv-shared') b.node('Conv', ['x', W, inputs[2]], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { outputs: ['z'], name: 'other' });
    b.output('y', [2, 4, 6, 6]);
    if (kind === 'conv-shared') b.output('z', [2, 4, 6, 6]);
  }
  const bytes = encodeModel(b.build(13));
  return OnnxModel.fromBytes(bytes, '.', kind);
}

async function run(model: OnnxModel, x: Float32Array, dims: number[]): Promise<Record<string, Float32Array>> {
  const s = await modelSession(model);
  try {
    const out = await s.run({ x: new ort.Tensor('float32', x, dims) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await s.release();
  }
}

describe('shiftBias: the bias edit in each form, checked in ONNX Runtime', () => {
  const delta = Float32Array.from([0.5, -0.25, 1.5, -2]);
  const cases = [
    { kind: 'conv-bias', dims: [2, 3, 6, 6], channelOf: (i: number) => Math.floor(i / 36) % 4, tol: 1e-5 },
    { kind: 'conv-nobias', dims: [2, 3, 6, 6], channelOf: (i: number) => Math.floor(i / 36) % 4, tol: 1e-5 },
    { kind: 'conv-shared', dims: [2, 3, 6, 6], channelOf: (i: number) => Math.floor(i / 36) % 4, tol: 1e-5 },
    // int32 codes move by round(delta / 0.01): exact for these deltas.
    { kind: 'conv-int32', dims: [2, 3, 6, 6], channelOf: (i: number) => Math.floor(i / 36) % 4, tol: 1e-5 },
    { kind: 'gemm', dims: [2, 8], channelOf: (i: number) => i % 4, tol: 1e-5 },
    { kind: 'matmul', dims: [2, 5, 8], channelOf: (i: number) => i % 4, tol: 1e-5 },
  ] as const;
  for (const c of cases) {
    it(`${c.kind}: every output moves by its channel's shift${c.kind === 'conv-shared' ? '; the other node sharing the bias does not' : ''}`, async () => {
      const m = oneLayer(c.kind);
      const x = values(c.dims.reduce((a, b) => a * b, 1), 9);
      const before = await run(m, x, [...c.dims]);
      const why = shiftBias(m, m.msg.graph!.node.find((n) => n.name === 'layer')!, delta, { allowAdd: true });
      expect(why).toBeNull();
      const after = await run(OnnxModel.fromBytes(m.toBytes(), '.', 'shifted'), x, [...c.dims]);
      for (let i = 0; i < before.y.length; i++) expect(Math.abs(after.y[i] - before.y[i] - delta[c.channelOf(i)])).toBeLessThan(c.tol);
      if (c.kind === 'conv-shared') expect(Array.from(after.z)).toEqual(Array.from(before.z));
    });
  }
  it('a MatMul gets no Add when that would break integer fusion (static W8A8): the reason is given', () => {
    const m = oneLayer('matmul');
    const why = shiftBias(m, m.msg.graph!.node[0], delta, { allowAdd: false });
    expect(why).toMatch(/MatMul has no bias input/);
    expect(m.msg.graph!.node).toHaveLength(1);
  });
});

describe('bias correction on the trained Fashion-MNIST CNN (int4 per channel, weight-only)', () => {
  it('restores every corrected layer\'s per-channel output means on the fit samples and brings held-out outputs closer to float', async () => {
    const scheduler = await Scheduler.create({ backend: 'cpu' });
    try {
      const reference = OnnxModel.read(FASHION);
      const quantized = OnnxModel.read(FASHION);
      const w = await compressWeights(quantized, { recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), scheduler });
      const layers = w.tensors.flatMap((t) => reference.graph.uses(t.name).filter((u) => u.index === 1).map((u) => u.node.name!));
      const calibration = { data: DATA, samples: 128, seed: 3 };
      const { model, report } = await correctBiases(reference, quantized, layers, { calibration, mode: 'on', allowAdd: true });
      expect(report.kept).toBe(true);
      expect(report.layers.length).toBe(layers.length);
      expect(report.fitSamples).toBe(96);
      expect(report.heldOut!.after.sqnrDb).toBeGreaterThan(report.heldOut!.before.sqnrDb + 1);

      // Independently of the code under test: layer outputs read through ONNX Runtime, averaged here.
      const ds = await openDataset(DATA, modelInput(reference), {});
      const fit = seededSample(ds.count, 128, 3).filter((_, i) => i % 4 !== 3);
      const outputs = layers.map((n) => reference.msg.graph!.node.find((x) => x.name === n)!.output[0]);
      const means = async (m: OnnxModel) => {
        const s = await sessionWithOutputs(m, outputs);
        const x = await ds.load(fit);
        const out = await s.run({ [modelInput(m).name]: new ort.Tensor('float32', x, [fit.length, ...ds.sampleDims]) });
        await s.release();
        return outputs.map((o) => {
          const t = out[o];
          const C = Number(t.dims[1]);
          const per = (t.data as Float32Array).length / Number(t.dims[0]) / C;
          const acc = new Float64Array(C);
          (t.data as Float32Array).forEach((v, i) => { acc[Math.floor(i / per) % C] += v; });
          return Array.from(acc, (v) => v / (fit.length * per));
        });
      };
      const [mf, mq, mc] = [await means(reference), await means(quantized), await means(model)];
      for (let l = 0; l < layers.length; l++) {
        const gap = (a: number[]) => Math.max(...a.map((v, c) => Math.abs(v - mf[l][c])));
        const scale = Math.max(...mf[l].map(Math.abs));
        expect(gap(mc[l]), layers[l]).toBeLessThan(1e-4 * scale + 1e-6);
        expect(gap(mq[l]), layers[l]).toBeGreaterThan(100 * gap(mc[l]));
      }
    } finally {
      scheduler.dispose();
    }
  }, 120_000);
});

describe('--recover', () => {
  it('parses a comma list of a pruning recovery and bias', () => {
    expect(parseRecover('lsq,bias')).toEqual({ prune: 'lsq', bias: 'auto' });
    expect(parseRecover('bias')).toEqual({ prune: undefined, bias: 'auto' });
    expect(parseRecover('none')).toEqual({ prune: 'none', bias: 'off' });
    expect(() => parseRecover('lsq,bn')).toThrow(/one pruning recovery/);
    expect(() => parseRecover('none,bias')).toThrow(/none contradicts bias/);
    expect(parseRecover('none,kd')).toEqual({ prune: 'none', bias: 'off', kd: true });
    expect(parseRecover('lsq,kd')).toEqual({ prune: 'lsq', bias: undefined, kd: true });
    expect(() => parseRecover('kd2')).toThrow(RecipeError);
    expect(() => parseRecover('kd2')).toThrow(/unknown method kd2/);
  });

  const cli = (args: string[]) => spawnSync(process.execPath, [bin, 'compress', FASHION, ...args, '--backend', 'cpu', '-q', '--force'], { encoding: 'utf8', timeout: 300_000 });
  it('--recover bias without --calibration is refused with the fix', () => {
    const r = cli(['-o', join(dir, 'x.onnx'), '--weights', 'int4', '--recover', 'bias']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--recover bias needs --calibration/);
  });
  it('--weights int4 --calibration --recover bias: weight-only int4, corrected, with held-out figures in the report', () => {
    const report = join(dir, 'int4.json');
    const r = cli(['-o', join(dir, 'int4.onnx'), '--weights', 'int4', '--granularity', 'channel', '--calibration', DATA, '--calib-samples', '64', '--recover', 'bias', '--report', report]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^bias correction \(auto\): 3 layers on 48 samples: held-out output SQNR/m);
    const j = JSON.parse(readFileSync(report, 'utf8'));
    expect(j.mode).toBe('weight-only');
    const bc = j.passes[0].report.biasCorrection;
    expect(bc.kept).toBe(true);
    expect(bc.heldOut.after.sqnrDb).toBeGreaterThan(bc.heldOut.before.sqnrDb);
  }, 120_000);
  it('static W8A8: no correction by default (measured: it does not help W8A8 here); --recover bias checks each round on held-out samples; a recipe\'s on keeps every layer', () => {
    const plain = cli(['-o', join(dir, 'w8a8-none.onnx'), '--calibration', DATA, '--calib-samples', '64', '--json']);
    expect(plain.status, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout).passes[0].report.biasCorrection).toBeNull();
    const auto = cli(['-o', join(dir, 'w8a8-auto.onnx'), '--calibration', DATA, '--calib-samples', '64', '--recover', 'bias', '--json']);
    expect(auto.status, auto.stderr).toBe(0);
    const a = JSON.parse(auto.stdout).passes[0].report.biasCorrection;
    expect(a.mode).toBe('auto');
    // Every layer is either corrected or its round was undone; the correction is kept only when it helps.
    expect(a.layers.length + a.skipped.length).toBe(4);
    for (const sk of a.skipped) expect(sk.reason).toMatch(/lowered the held-out output SQNR .*: undone/);
    expect(a.kept).toBe(a.layers.length > 0 && a.heldOut.after.sqnrDb > a.heldOut.before.sqnrDb);
    const recipe = join(dir, 'on.yaml');
    writeFileSync(recipe, 'passes:\n  - quantize: { activations: uint8, biasCorrection: on }\n');
    const on = cli(['-o', join(dir, 'w8a8-on.onnx'), '--calibration', DATA, '--calib-samples', '64', '--recipe', recipe, '--json']);
    expect(on.status, on.stderr).toBe(0);
    const bc = JSON.parse(on.stdout).passes[0].report.biasCorrection;
    // Only layers are corrected (no pooling or Add), all of them through their int32 biases.
    expect(bc).toMatchObject({ mode: 'on', kept: true, skipped: [] });
    expect(bc.layers).toHaveLength(4);
  }, 120_000);
});
