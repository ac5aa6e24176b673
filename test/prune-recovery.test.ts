// Pruning trained models and recovering accuracy from unlabelled calibration samples, measured on
// real data (the Fashion-MNIST test subset), with recovery none / bn / lsq side by side.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compressModel } from '../src/pipeline/compress.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import type { RecoverMethod } from '../src/passes/prune/recover.ts';
import { gpuScheduler } from './helpers/gpu.ts';

const DATA = 'test/assets/fashion-mnist';
const TRAIN = `${DATA}/train-images-idx3-ubyte.gz`;
const dir = mkdtempSync(join(tmpdir(), 'modelpress-recover-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
const gpu = await gpuScheduler();
afterAll(() => {
  cpu.dispose();
  gpu.scheduler?.dispose();
});

/** Pruned with the defaults a user gets with --calibration (energy scores), recovery as given. */
async function pruned(model: string, macs: number, recover: RecoverMethod, scheduler = cpu, round?: number, allocation?: 'sensitivity' | 'threshold', steps?: number) {
  const out = join(dir, `${model.replace(/\W/g, '_')}-${macs}-${recover}-${allocation ?? 'default'}-${steps ?? 1}-${scheduler === cpu ? 'cpu' : 'gpu'}.onnx`);
  const report = await compressModel(model, out, {
    scheduler, force: true, passes: [{ pass: 'prune', options: { macs, recover, round, allocation, steps } }],
    calibration: { data: TRAIN, samples: 512, seed: 1 },
  });
  const e = await evaluateModels(out, model, { data: DATA, latencyRuns: 0 });
  return { report, accuracy: e.accuracy?.model ?? NaN, drop: e.accuracy?.dropPoints ?? NaN, sqnrDb: e.outputs[0].sqnrDb };
}

// Bounds: the targets (30 % fewer MACs: ≤ 1 point; 50 %: ≤ 3) where they are met; the
// small MobileNetV3-style model measures -1.7 points at 30 % (the note records it as not met).
describe.each([
  ['test/assets/fashion-cnn.onnx', 0.5, 3],
  ['test/assets/fashion-residual.onnx', 0.3, 1],
  ['test/assets/fashion-residual.onnx', 0.5, 3],
  ['test/assets/fashion-inverted-residual.onnx', 0.3, 2],
])('%s, %s fewer MACs', (model, macs, bound) => {
  it(`lsq beats bn and none; the drop with lsq is at most ${bound} points`, async () => {
    const none = await pruned(model, macs, 'none');
    const bn = await pruned(model, macs, 'bn');
    const lsq = await pruned(model, macs, 'lsq');
    console.log(`${model} -${macs * 100}% MACs: none ${none.accuracy.toFixed(2)}, bn ${bn.accuracy.toFixed(2)}, lsq ${lsq.accuracy.toFixed(2)} (drop ${lsq.drop.toFixed(2)})`);
    expect(1 - lsq.report.totals.macsAfter / lsq.report.totals.macsBefore).toBeGreaterThanOrEqual(macs);
    expect(lsq.accuracy).toBeGreaterThan(bn.accuracy);
    expect(lsq.accuracy).toBeGreaterThan(none.accuracy);
    expect(lsq.drop).toBeLessThanOrEqual(bound);
    const layers = lsq.report.prune!.recovery!.layers;
    expect(layers.length).toBeGreaterThan(0);
    for (const l of layers.filter((x) => x.accepted)) expect(l.errorAfter).toBeLessThanOrEqual(l.errorBefore);
  }, 120_000);
});

it('sensitivity allocation measured after recovery: the inverted residual at 30 % fewer MACs within 1 point, better than the threshold allocation', async () => {
  const model = 'test/assets/fashion-inverted-residual.onnx';
  const threshold = await pruned(model, 0.3, 'lsq');
  const sensitive = await pruned(model, 0.3, 'lsq', cpu, undefined, 'sensitivity');
  console.log(`inverted residual -30% MACs, lsq: threshold allocation drop ${threshold.drop.toFixed(2)}, sensitivity (recovered) drop ${sensitive.drop.toFixed(2)}`);
  expect(sensitive.report.prune!.options.allocation).toBe('sensitivity');
  expect(1 - sensitive.report.totals.macsAfter / sensitive.report.totals.macsBefore).toBeGreaterThanOrEqual(0.3);
  expect(sensitive.drop).toBeLessThanOrEqual(1);
  expect(sensitive.accuracy).toBeGreaterThan(threshold.accuracy);
}, 180_000);

it('pruning in two steps, each recovered against the original model: the inverted residual at 50 % fewer MACs loses less than in one shot', async () => {
  const model = 'test/assets/fashion-inverted-residual.onnx';
  const once = await pruned(model, 0.5, 'lsq');
  const twice = await pruned(model, 0.5, 'lsq', cpu, undefined, undefined, 2);
  console.log(`inverted residual -50% MACs, lsq: one step drop ${once.drop.toFixed(2)}, two steps drop ${twice.drop.toFixed(2)}`);
  const p = twice.report.prune!;
  expect(p.options.steps).toBe(2);
  expect(p.options.macs).toBe(0.5);
  expect(1 - twice.report.totals.macsAfter / twice.report.totals.macsBefore).toBeGreaterThanOrEqual(0.5);
  expect(p.macsAfter / p.macsBefore).toBeLessThanOrEqual(0.5);
  expect(twice.accuracy).toBeGreaterThan(once.accuracy);
  // Layers re-fitted in the first step are re-fitted again (against the original): none made worse.
  for (const l of p.recovery!.layers.filter((x) => x.accepted)) expect(l.errorAfter).toBeLessThanOrEqual(l.errorBefore);
}, 180_000);

it('the sensitivity probe: no channel removed is no error; recovery lowers a candidate\'s error', async () => {
  const { OnnxModel } = await import('../src/onnx/model.ts');
  const { outputErrorProbe } = await import('../src/passes/prune/sensitivity.ts');
  const { buildChannelGraph } = await import('../src/analysis/channel-groups.ts');
  const model = OnnxModel.fromBytes(readFileSync('test/assets/fashion-inverted-residual.onnx'), 'test/assets');
  const calibration = { data: TRAIN, samples: 128, seed: 1 };
  const plain = await outputErrorProbe(model, calibration, undefined);
  const recovered = await outputErrorProbe(model, calibration, undefined, 64, { method: 'lsq', scheduler: cpu });
  expect(await plain.errorOf(new Set())).toBe(0);
  // A valid candidate: 30 % of every group's channels by weight norm, as the uniform ratio selects them.
  const { groupScores } = await import('../src/passes/prune/scores.ts');
  const { selectChannels } = await import('../src/passes/prune/select.ts');
  const { layerCosts } = await import('../src/analysis/macs.ts');
  const cg = buildChannelGraph(model);
  const candidate = selectChannels(cg, await groupScores(model, cg, cpu, 'l2'), layerCosts(model, cg.shapes).layers, { ratio: 0.3, round: 8, maxRatio: 0.9 }).removed;
  expect(candidate.size).toBeGreaterThan(0);
  const [e0, e1] = [await plain.errorOf(candidate), await recovered.errorOf(candidate)];
  console.log(`sensitivity probe: output error ${e0.toFixed(4)} unrecovered, ${e1.toFixed(4)} after lsq`);
  expect(e0).toBeGreaterThan(0);
  expect(e1).toBeLessThan(e0);
}, 120_000);

it('U-Net segmentation, 30 % fewer MACs (round 4): lsq output agreement beats bn and none', async () => {
  const model = 'test/assets/fashion-unet.onnx';
  const [none, bn, lsq] = [await pruned(model, 0.3, 'none', cpu, 4), await pruned(model, 0.3, 'bn', cpu, 4), await pruned(model, 0.3, 'lsq', cpu, 4)];
  console.log(`U-Net -30% MACs output SQNR: none ${none.sqnrDb.toFixed(1)} dB, bn ${bn.sqnrDb.toFixed(1)} dB, lsq ${lsq.sqnrDb.toFixed(1)} dB`);
  expect(lsq.sqnrDb).toBeGreaterThan(bn.sqnrDb);
  expect(lsq.sqnrDb).toBeGreaterThan(none.sqnrDb);
}, 120_000);

it('recovery on the GPU scheduler (gram kernel) agrees with the CPU path', async (ctx) => {
  if (!gpu.scheduler) return ctx.skip(gpu.reason);
  const a = await pruned('test/assets/fashion-cnn.onnx', 0.5, 'lsq', cpu);
  const b = await pruned('test/assets/fashion-cnn.onnx', 0.5, 'lsq', gpu.scheduler);
  expect(Math.abs(a.accuracy - b.accuracy)).toBeLessThanOrEqual(0.2);
  const la = a.report.prune!.recovery!.layers;
  const lb = b.report.prune!.recovery!.layers;
  la.forEach((l, i) => expect(Math.abs(l.errorAfter - lb[i].errorAfter)).toBeLessThan(1e-3 + 1e-2 * l.errorAfter));
  expect(b.report.stats.dispatches).toBeGreaterThan(0);
}, 120_000);
