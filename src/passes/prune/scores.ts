/**
 * Group importance (Torch-Pruning's group L-norm): every member's per-channel score — producer
 * rows, consumer columns, BatchNorm |γ| — normalized by its mean, summed over the members of each
 * coupled channel. Rows and columns are scored by the channel_scores kernel on the scheduler.
 * With calibration data, `energy` scores what a channel feeds its consumers instead.
 */
import type { OnnxModel } from '../../onnx/model.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { channelScoresKernel, type ChannelCriterion, type ChannelScoresJob } from '../../kernels/channel-scores.ts';
import type { ChannelGraph, WeightSlice } from '../../analysis/channel-groups.ts';
import { axisFirst, type DenseTensor } from './tensor-slice.ts';
import { rangeKernel, type RangeJob } from '../../kernels/range.ts';
import { openDataset, seededSample } from '../../data/dataset.ts';
import { modelInput } from '../../calibrate/calibrate.ts';
import { forEachBatch } from '../../eval/session.ts';
import type { CalibrationSource } from '../pass.ts';

export function readDense(model: OnnxModel, name: string): DenseTensor {
  const w = model.graph.weights.get(name)!;
  return { data: model.tensorFloat32(w.tensor), dims: tensorDims(w.tensor) };
}

function normalized(v: Float32Array): Float64Array {
  let sum = 0;
  for (const x of v) sum += x;
  const mean = v.length ? sum / v.length : 0;
  return Float64Array.from(v, (x) => (mean > 0 ? x / mean : 0));
}

/** Score per component root (index: root id). */
export async function groupScores(model: OnnxModel, cg: ChannelGraph, scheduler: Scheduler, criterion: ChannelCriterion): Promise<Float64Array> {
  const idCount = cg.producerOf.length;
  const score = new Float64Array(idCount);
  const jobs: ChannelScoresJob[] = [];
  const targets: Int32Array[] = [];
  for (const p of cg.producers) {
    const t = readDense(model, p.weight);
    jobs.push({ weights: axisFirst(t, p.outAxis), shape: [t.dims[p.outAxis], t.data.length / t.dims[p.outAxis]], criteria: [criterion] });
    targets.push(Int32Array.from({ length: p.channels }, (_, i) => p.base + i));
  }
  for (const s of cg.slices) {
    if (s.role !== 'consumer') continue;
    const label = cg.labels.get(s.value)!;
    const t = readDense(model, s.node.input[s.input]);
    jobs.push({ weights: axisFirst(t, s.axis), shape: [t.dims[s.axis], t.data.length / t.dims[s.axis]], criteria: [criterion] });
    targets.push(label.ids);
  }
  const results = await scheduler.run(channelScoresKernel, jobs);
  results.forEach((r, j) => {
    const v = normalized(r[criterion]!);
    const ids = targets[j];
    for (let i = 0; i < ids.length; i++) if (ids[i] >= 0) score[ids[i]] += v[i];
  });
  for (const s of cg.slices) {
    if (s.role !== 'norm' || s.node.opType !== 'BatchNormalization' || s.input !== 1) continue;
    const gamma = readDense(model, s.node.input[1]).data.map(Math.abs);
    const v = normalized(gamma);
    const ids = cg.labels.get(s.value)!.ids;
    for (let i = 0; i < ids.length; i++) if (ids[i] >= 0) score[ids[i]] += v[i];
  }
  const byRoot = new Float64Array(idCount);
  for (let id = 0; id < idCount; id++) byRoot[cg.root(id)] += score[id];
  return byRoot;
}

/** Each consumer slice's column L2 norms (the weight's values along the slice axis), by the channel_scores kernel. */
export async function columnNorms(model: OnnxModel, slices: readonly WeightSlice[], scheduler: Scheduler): Promise<Float32Array[]> {
  const jobs: ChannelScoresJob[] = slices.map((s) => {
    const t = readDense(model, s.node.input[s.input]);
    return { weights: axisFirst(t, s.axis), shape: [t.dims[s.axis], t.data.length / t.dims[s.axis]], criteria: ['l2'] };
  });
  return (await scheduler.run(channelScoresKernel, jobs)).map((r) => r.l2!);
}

/**
 * Data-aware importance: the output energy a channel feeds its consumers, E[x_c²] · ‖W[:, c]‖²
 * summed over the consumers' columns — what removing the channel takes from their outputs (to first
 * order, for uncorrelated channels). Activation energies come from the range kernel's per-channel
 * mean and variance over calibration samples run through ONNX Runtime.
 */
export async function energyScores(model: OnnxModel, cg: ChannelGraph, scheduler: Scheduler, calibration: CalibrationSource, samples = 128): Promise<Float64Array> {
  const consumers = cg.slices.filter((s) => s.role === 'consumer');
  const values = [...new Set(consumers.map((s) => s.value))];
  const input = modelInput(model);
  const ds = await openDataset(calibration.data, input, calibration.preprocess);
  const indices = seededSample(ds.count, Math.min(samples, calibration.samples ?? samples), calibration.seed ?? 1);
  const energy = new Map<string, { sum: Float64Array; n: number }>();
  await forEachBatch(model, values, { ds, input, indices }, async (out) => {
    const jobs: RangeJob[] = values.map((v) => ({ data: out[v].data as Float32Array, shape: out[v].dims as number[], granularity: { kind: 'channel', axis: cg.labels.get(v)!.axis } }));
    const r = await scheduler.run(rangeKernel, jobs);
    values.forEach((v, k) => {
      const e = energy.get(v) ?? { sum: new Float64Array(r[k].mean.length), n: 0 };
      for (let c = 0; c < e.sum.length; c++) e.sum[c] += (r[k].variance[c] + r[k].mean[c] ** 2) * r[k].count[c];
      e.n += r[k].count[0] ?? 0;
      energy.set(v, e);
    });
  });
  const score = new Float64Array(cg.producerOf.length);
  const norms = await columnNorms(model, consumers, scheduler);
  consumers.forEach((s, j) => {
    const ids = cg.labels.get(s.value)!.ids;
    const e = energy.get(s.value)!;
    const l2 = norms[j];
    for (let c = 0; c < ids.length; c++) if (ids[c] >= 0) score[ids[c]] += (e.n ? e.sum[c] / e.n : 0) * l2[c] * l2[c];
  });
  const byRoot = new Float64Array(score.length);
  for (let id = 0; id < score.length; id++) byRoot[cg.root(id)] += score[id];
  return byRoot;
}
