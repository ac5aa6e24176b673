// The `obs` channel criterion: the error a consumer keeps after a least-squares refit without the
// channel, checked against a direct least-squares solve written here (normal equations, Gaussian
// elimination), and the property energy cannot see: a channel that is an affine copy of another
// costs nothing to remove when the consumer is refitted.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeNpyFloat32 } from '../src/data/npy.ts';
import { buildChannelGraph } from '../src/analysis/channel-groups.ts';
import { obsScores } from '../src/passes/prune/obs-scores.ts';
import { energyScores } from '../src/passes/prune/scores.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { seededRandom } from '../src/random.ts';
import { gaussSolve as solve } from './helpers/gauss-solve.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelpress-obs-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => cpu.dispose());

const N = 40; // images of [3, 3, 3]: 9 positions each, all sampled (≤ 10)
const r = seededRandom(7);
const x = Float32Array.from({ length: N * 27 }, () => r() * 2 - 1);
// conv1: 3 -> 4 channels (1x1); channel 3 = 2 · channel 0 + 0.5, an affine copy.
const w1 = Float32Array.from({ length: 12 }, () => r() * 2 - 1);
for (let i = 0; i < 3; i++) w1[9 + i] = 2 * w1[i];
const b1 = Float32Array.from([0.1, -0.2, 0.3, 0.7]);
// conv2 (the consumer): 4 -> 2 channels (1x1) with bias.
const w2 = Float32Array.from([0.9, -0.4, 0.6, 1.1, -0.7, 0.8, 0.2, -1.3]);
const b2 = Float32Array.from([0.05, -0.1]);

function model(): Uint8Array {
  const b = new GraphBuilder('obs');
  const input = b.input('x', ['batch', 3, 3, 3]);
  const h = b.op('Conv', [input, b.init('w1', [4, 3, 1, 1], w1), b.init('b1', [4], b1)], { kernel_shape: [1, 1] }, 'conv1');
  b.node('Conv', [h, b.init('w2', [2, 4, 1, 1], w2), b.init('b2', [2], b2)], { kernel_shape: [1, 1] }, { outputs: ['y'], name: 'conv2' });
  b.output('y', ['batch', 2, 3, 3]);
  return encodeModel(b.build(13));
}

describe('obs channel scores', () => {
  const path = join(dir, 'obs.onnx');
  const data = join(dir, 'x.npy');
  writeFileSync(path, model());
  writeFileSync(data, encodeNpyFloat32([N, 3, 3, 3], x));

  // conv1's output rows (one per image position): the consumer's input features.
  const rows: number[][] = [];
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < 9; p++) {
      rows.push([0, 1, 2, 3].map((o) => b1[o] + [0, 1, 2].reduce((s, c) => s + w1[o * 3 + c] * x[(n * 3 + c) * 9 + p], 0)));
    }
  }
  const y = rows.map((h) => [0, 1].map((o) => b2[o] + h.reduce((s, v, c) => s + w2[o * 4 + c] * v, 0)));
  const feats = rows.map((h) => [...h, 1]);
  const F = 5;
  const R = rows.length;
  const H = Array.from({ length: F }, (_, i) => Array.from({ length: F }, (_, j) => feats.reduce((s, f) => s + f[i] * f[j], 0) / R));
  // Recovery's ridge: 1e-3 of H's mean diagonal, pulling the refit toward the current weights.
  const lambda = (1e-3 * H.reduce((s, row, i) => s + row[i], 0)) / F;
  /**
   * min over refits z of conv2 with z[drop] = 0: ‖X z − y‖² / rows + λ ‖z − w‖² (y = X w: the
   * original output), solved directly from the normal equations of the free weights.
   */
  const refitError = (drop: number) => {
    const free = [0, 1, 2, 3, 4].filter((i) => i !== drop);
    let total = 0;
    for (let o = 0; o < 2; o++) {
      const w = [...[0, 1, 2, 3].map((c) => w2[o * 4 + c]), b2[o]];
      const A = free.map((i) => free.map((j) => H[i][j] + (i === j ? lambda : 0)));
      const v = free.map((i) => feats.reduce((s, f, k) => s + f[i] * y[k][o], 0) / R + lambda * w[i]);
      const zf = solve(A, v);
      const z = [0, 0, 0, 0, 0];
      free.forEach((i, k) => (z[i] = zf[k]));
      feats.forEach((f, k) => (total += (f.reduce((s, fi, i) => s + fi * z[i], 0) - y[k][o]) ** 2 / R));
      total += lambda * z.reduce((s, zi, i) => s + (zi - w[i]) ** 2, 0);
    }
    return total;
  };

  /** The same refit without the ridge, by the normal equations of the kept features. */
  const refitErrorWithoutRidge = (drop: number) => {
    const free = [0, 1, 2, 3, 4].filter((i) => i !== drop);
    let total = 0;
    for (let o = 0; o < 2; o++) {
      const z = solve(free.map((i) => free.map((j) => H[i][j])), free.map((i) => feats.reduce((s, f, k) => s + f[i] * y[k][o], 0) / R));
      feats.forEach((f, k) => (total += (free.reduce((s, i, q) => s + f[i] * z[q], 0) - y[k][o]) ** 2 / R));
    }
    return total;
  };

  it('scores each channel by the error a least-squares refit of its consumer cannot remove', async () => {
    const m = OnnxModel.fromBytes(model(), dir, path);
    const cg = buildChannelGraph(m);
    const { scores, consumers } = await obsScores(m, cg, cpu, { data, samples: N, seed: 1 });
    expect(consumers).toEqual([{ node: 'conv2', features: 5, method: 'obs' }]);
    const conv1 = cg.producers.find((p) => p.node.name === 'conv1')!;
    const got = [0, 1, 2, 3].map((c) => scores[cg.root(conv1.base + c)]);
    const want = [0, 1, 2, 3].map(refitError);
    // Agreement to f32 Gram accumulation (ONNX Runtime GEMM sums each chunk in f32).
    for (let c = 0; c < 4; c++) expect(Math.abs(got[c] / want[c] - 1)).toBeLessThan(1e-4);
    // Channels 0 and 3 are affine copies: either can go at no cost beyond the ridge's pull
    // (λ‖z − w‖²: the other copy's weight must move), so both rank below the informative ones.
    expect(refitErrorWithoutRidge(0)).toBeLessThan(1e-9);
    expect(Math.max(got[0], got[3])).toBeLessThan(Math.min(got[1], got[2]));
    // Energy ranks the copy (twice channel 0's size) among the most important.
    const energy = await energyScores(m, cg, cpu, { data, samples: N, seed: 1 });
    const e = [0, 1, 2, 3].map((c) => energy[cg.root(conv1.base + c)]);
    expect(e[3]).toBeGreaterThan(Math.min(e[1], e[2]));
  });

  it('--prune-criterion obs keeps the information: pruning one channel of four and refitting loses nothing', async () => {
    const out = join(dir, 'pruned.onnx');
    const report = await compressModel(path, out, { scheduler: cpu, force: true, passes: [{ pass: 'prune', options: { ratio: 0.25, round: 1, criterion: 'obs', recover: 'lsq' } }], calibration: { data, samples: N, seed: 1 } });
    expect(report.prune!.options.criterion).toBe('obs');
    expect(report.prune!.channelsRemoved).toBe(1);
    const lsq = report.prune!.recovery!.layers.find((l) => l.node === 'conv2')!;
    expect(lsq.errorAfter).toBeLessThan(1e-4);
  });

  it('refuses obs without calibration data', async () => {
    await expect(compressModel(path, join(dir, 'x.onnx'), { scheduler: cpu, force: true, passes: [{ pass: 'prune', options: { ratio: 0.25, criterion: 'obs' } }] })).rejects.toThrow(/--prune-criterion obs scores channels on calibration data/);
  });
});
