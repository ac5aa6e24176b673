/**
 * Structured pruning, measured: ONNX Runtime CPU latency before/after (batch 1, one thread, runs of
 * all variants interleaved, medians) against the MAC reduction; the accuracy of trained models
 * pruned to 30 % and 50 % fewer MACs with recovery none / bn / lsq side by side (512 calibration
 * samples from the training subset, the 3000-image test subset); graph analysis time of a
 * 1000-node model. `npm run bench:prune [-- out.md]`; PRUNE_SECTIONS=latency,accuracy,analysis
 * picks sections, PRUNE_MODELS=fashion-unet-wide,... the trained models (default: all; when given,
 * the latency section leaves out the 224x224 random-weight models).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../src/package-root.ts';
import { formatTable } from '../src/cli/format.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createLogger } from '../src/log.ts';
import { encodeModel } from '../src/onnx/proto.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import { GraphBuilder } from '../src/onnx/builder.ts';
import { buildChannelGraph } from '../src/analysis/channel-groups.ts';
import { layerCosts } from '../src/analysis/macs.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import type { PrunePassOptions } from '../src/passes/prune/pass.ts';
import { seededRandom } from '../src/random.ts';
import { mobileNetV2 } from '../test/helpers/zoo.ts';
import { benchTmp, FASHION_SUBSET, fashionMiou as miou, interleavedLatencies, resnet18Path, markdownReport } from './models.ts';

const root = packageRoot();
mkdirSync(benchTmp, { recursive: true });
const scheduler = await Scheduler.create({ backend: 'cpu', logger: createLogger('error') });
const { say, write } = markdownReport('pruning');
const TRAIN = join(FASHION_SUBSET, 'train-images-idx3-ubyte.gz');
const sections = (process.env.PRUNE_SECTIONS ?? 'latency,accuracy,analysis').split(',');
const TRAINED = ['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual', 'fashion-unet', 'fashion-unet-wide'];
const trainedModels = (process.env.PRUNE_MODELS?.split(',') ?? TRAINED).filter((f) => TRAINED.includes(f) && existsSync(join(root, 'test/assets', `${f}.onnx`)));
// The narrow U-Net's groups hold 8-32 channels: kept counts rounded to 4 so they can shrink at all.
const roundFor = (f: string) => (f === 'fashion-unet' ? 4 : undefined);

async function prune(src: string, name: string, o: PrunePassOptions, calibrate = false): Promise<{ path: string; macs: [number, number]; ms: number; recoveryMs: number }> {
  const path = join(benchTmp, `${name}.onnx`);
  const t0 = performance.now();
  const r = await compressModel(src, path, {
    scheduler, force: true, passes: [{ pass: 'prune', options: o }],
    calibration: calibrate ? { data: TRAIN, samples: 512, seed: 1 } : undefined,
  });
  return { path, macs: [r.totals.macsBefore, r.totals.macsAfter], ms: performance.now() - t0, recoveryMs: r.prune?.recovery?.timeMs ?? 0 };
}

async function latencies(paths: string[], dims: number[], rounds: number): Promise<number[]> {
  const r = seededRandom(5);
  return interleavedLatencies(paths, new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => r()), dims), rounds);
}

say(`# Structured pruning — ${new Date().toISOString().slice(0, 10)}\n\n`);
say(`Machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores; ONNX Runtime ${ort.env.versions?.common ?? ''} CPU, batch 1 unless a row says otherwise, one thread, interleaved medians. Pruning on the CPU path.\n\n`);

// 1. Latency vs MACs.
if (sections.includes('latency')) {
  say('## Latency before/after (ONNX Runtime CPU)\n\n');
  const mbv2 = join(benchTmp, 'mobilenet_v2.onnx');
  if (!existsSync(mbv2)) writeFileSync(mbv2, encodeModel(mobileNetV2()));
  // PRUNE_MODELS picks trained models only: the 224x224 ones are left out then.
  const latencyModels: Array<[string, string, number[]]> = process.env.PRUNE_MODELS ? [] : [
    ['ResNet-18 (224, random weights)', resnet18Path(), [1, 3, 224, 224]],
    ['MobileNetV2 (224, random weights)', mbv2, [1, 3, 224, 224]],
  ];
  const latencyTrained = trainedModels.filter((f) => f !== 'fashion-cnn');
  for (const f of latencyTrained) latencyModels.push([`${f} (trained)`, join(root, 'test/assets', `${f}.onnx`), [1, 1, 28, 28]]);
  // At batch 1 a 28×28 model's latency is mostly ONNX Runtime's per-node overhead, which pruning
  // does not remove; at batch 64 the arithmetic dominates, as for the 224×224 models.
  for (const f of latencyTrained) latencyModels.push([`${f} (trained, batch 64)`, join(root, 'test/assets', `${f}.onnx`), [64, 1, 28, 28]]);
  const rows: string[][] = [];
  for (const [label, src, dims] of latencyModels) {
    const variants = [
      await prune(src, `${label.split(' ')[0]}-m30`, { macs: 0.3 }),
      await prune(src, `${label.split(' ')[0]}-m50`, { macs: 0.5 }),
      await prune(src, `${label.split(' ')[0]}-m50-round1`, { macs: 0.5, round: 1 }),
    ];
    const lat = await latencies([src, ...variants.map((v) => v.path)], dims, dims[2] > 100 ? 30 : 200);
    const names = ['--prune-macs 0.3', '--prune-macs 0.5', '--prune-macs 0.5 --prune-round 1'];
    variants.forEach((v, i) => {
      const macRatio = v.macs[0] / v.macs[1];
      const speedup = lat[0] / lat[i + 1];
      rows.push([label, names[i], `${(v.macs[0] / 1e6).toFixed(1)} -> ${(v.macs[1] / 1e6).toFixed(1)} M`, `${macRatio.toFixed(2)}x`,
        `${lat[0].toFixed(2)} -> ${lat[i + 1].toFixed(2)} ms`, `${speedup.toFixed(2)}x`, `${(speedup / macRatio).toFixed(2)}`, `${(v.ms / 1000).toFixed(2)} s`]);
    });
  }
  say(formatTable(['model', 'pruning', 'MACs', 'MAC ratio', 'latency', 'speed-up', 'speed-up / MAC ratio', 'prune time'], rows) + '\n');
  say('Target: speed-up ≥ 0.7 × the MAC ratio, never slower. `--prune-round 1` shows what off-multiple-of-8 channel counts cost.\n\n');
}

// 2. Accuracy with recovery, trained models.
if (sections.includes('accuracy')) {
  say('## Accuracy of trained Fashion-MNIST models: recovery none / bn / lsq\n\n');
  say('512 calibration samples drawn from the 1024-image training subset (channel scores: energy; allocation: threshold); top-1 on the 3000-image test subset (mIoU for the U-Net, on the same images, 11 classes: background + the garment class on lit pixels).\n\n');
  const accRows: string[][] = [];
  for (const f of trainedModels) {
    const src = join(root, 'test/assets', `${f}.onnx`);
    const seg = f.includes('unet');
    const metric = async (p: string) => (seg ? miou(p) : (await evaluateModels(p, src, { data: FASHION_SUBSET, latencyRuns: 0 })).accuracy!.model);
    const base = await metric(src);
    for (const target of [0.3, 0.5]) {
      const cells: string[] = [];
      let recMs = 0;
      for (const recover of ['none', 'bn', 'lsq'] as const) {
        const v = await prune(src, `${f}-${target}-${recover}`, { macs: target, recover, round: roundFor(f) }, true);
        const m = await metric(v.path);
        cells.push(`${m.toFixed(2)} (${(m - base >= 0 ? '+' : '')}${(m - base).toFixed(2)})`);
        if (recover === 'lsq') recMs = v.recoveryMs;
        if (recover === 'none') cells.unshift(`${(100 * (1 - v.macs[1] / v.macs[0])).toFixed(1)} %`);
      }
      // The allocation measured after recovery (--prune-allocation sensitivity with lsq).
      const sens = await prune(src, `${f}-${target}-lsq-sensitivity`, { macs: target, recover: 'lsq', allocation: 'sensitivity', round: roundFor(f) }, true);
      const ms = await metric(sens.path);
      cells.push(`${ms.toFixed(2)} (${(ms - base >= 0 ? '+' : '')}${(ms - base).toFixed(2)}), ${(100 * (1 - sens.macs[1] / sens.macs[0])).toFixed(1)} %`);
      accRows.push([f, seg ? 'mIoU' : 'top-1', base.toFixed(2), `--prune-macs ${target}`, ...cells, `${(recMs / 1000).toFixed(1)} s`, `${(sens.ms / 1000).toFixed(1)} s`]);
    }
  }
  say(formatTable(['model', 'metric', 'float', 'pruning', 'MACs removed', 'none', 'bn', 'lsq', 'lsq + sensitivity allocation (MACs removed)', 'lsq time', 'sensitivity: whole prune'], accRows) + '\n');
  say('Targets (lsq, 512 samples): 30 % fewer MACs ≤ 1.0 pt top-1 drop (≤ 2 pt mIoU); 50 % ≤ 3 pt; lsq better than none and bn. The none / bn / lsq columns use the default threshold allocation; the sensitivity column allocates per-group ratios from each group\'s output error measured after lsq recovery (128 samples per probe, 3 probes per group).\n\n');
}

// 3. Graph analysis time.
if (sections.includes('analysis')) {
  say('## Graph analysis time\n\n');
  function deepNet(blocks: number): Uint8Array {
    const b = new GraphBuilder('deep');
    const r = seededRandom(1);
    let x = b.input('input', ['batch', 16, 32, 32]);
    for (let i = 0; i < blocks; i++) {
      const w = (n: string) => b.init(n, [16, 16, 3, 3], Float32Array.from({ length: 2304 }, () => r() * 0.1 - 0.05));
      let y = b.op('Conv', [x, w(`b${i}.w1`)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
      y = b.op('Relu', [y]);
      y = b.op('Conv', [y, w(`b${i}.w2`)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
      x = b.op('Relu', [b.op('Add', [x, y])]);
    }
    b.node('GlobalAveragePool', [x], {}, { outputs: ['out'] });
    b.output('out', ['batch', 16, 1, 1]);
    return encodeModel(b.build(13));
  }
  const deep = OnnxModel.fromBytes(deepNet(200), '.');
  const nodes = deep.msg.graph!.node.length;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const cg = buildChannelGraph(deep);
    layerCosts(deep, cg.shapes);
    times.push(performance.now() - t0);
  }
  const med = [...times].sort((a, b) => a - b)[2];
  say(`${nodes}-node residual model (400 convolutions): dependency groups + shapes + MACs in ${med.toFixed(0)} ms (median of 5). Target ≤ 1 s.\n\n`);
}

scheduler.dispose();
write();
