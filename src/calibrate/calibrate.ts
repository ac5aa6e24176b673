/**
 * Calibration: the float model runs in ONNX Runtime with the chosen activations added as outputs,
 * batch by batch; after each batch the scheduler reduces them (range + histogram passes). Only one
 * batch of activations is alive at a time, so memory does not grow with the number of samples, and
 * the batch is sized from the activation bytes one sample produces (a budget, 1 GiB by default),
 * so it does not grow with the model either. When only ranges are needed (minmax), ONNX Runtime
 * reduces each activation itself (ReduceMin / ReduceMax outputs): nothing is copied out and no
 * activation outlives its consumers. Percentile calibration needs only the ranges and the few
 * largest magnitudes beyond the percentile: ONNX Runtime also returns each activation's top
 * magnitudes (Abs → TopK), merged across batches into the exact order statistic.
 */
import * as ort from 'onnxruntime-node';
import { bytesWithExtras, floatOutput, sessionFromBytes } from '../eval/session.ts';
import { DataError } from '../errors.ts';
import type { OnnxModel } from '../onnx/model.ts';
import { create, int64, type NodeMsg, type TensorProtoMsg, type ValueInfoMsg } from '../onnx/proto.ts';
import { bytesOf, makeTensor } from '../onnx/tensor.ts';
import { intAttr } from '../onnx/attributes.ts';
import { DataType } from '../onnx/dtypes.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { seededSample, type Dataset } from '../data/dataset.ts';
import { addBatch, TensorStats } from './stats.ts';
import { HistogramHelper } from './histogram-helper.ts';

export interface CollectOptions {
  dataset: Dataset;
  samples: number;
  seed?: number;
  /** Samples per ONNX Runtime run; default: what fits the activation budget (at most 32). */
  batchSize?: number;
  /** Bytes of activations alive per batch when batchSize is not given (default 1 GiB). */
  activationBudgetBytes?: number;
  /** Only min / max are needed (minmax): reduce inside ONNX Runtime, copy nothing out. */
  rangesOnly?: boolean;
  /**
   * Only min / max and the |x| percentile are needed (percentile calibration, this percentile):
   * ONNX Runtime reduces each activation to its range and its largest magnitudes, copies nothing
   * large out. Models below opset 10 (TopK without a K input) fall back to copied-out histograms.
   */
  percentile?: number;
  scheduler: Scheduler;
  onProgress?: (done: number, total: number) => void;
}

export interface CollectResult {
  /** Stats of the float activations, by tensor name (non-float tensors are left out). */
  stats: Map<string, TensorStats>;
  samples: number;
  ortMs: number;
  statsMs: number;
  /** Samples per run after the one-sample probe, and the activation bytes one sample produced. */
  batch: number;
  activationBytesPerSample: number;
  /**
   * 'outputs': activations copied out and reduced by the scheduler; 'ort-reduce': ReduceMin /
   * ReduceMax in the graph; 'ort-topk': those and each activation's largest magnitudes (TopK).
   */
  mode: 'outputs' | 'ort-reduce' | 'ort-topk';
}

export const DEFAULT_ACTIVATION_BUDGET = 2 ** 30;
const MAX_BATCH = 32;

/** Samples per batch so that a batch's activations fit the budget (at least 1, at most 32). */
export function batchForBudget(bytesPerSample: number, budget: number): number {
  if (bytesPerSample <= 0) return MAX_BATCH;
  return Math.max(1, Math.min(MAX_BATCH, Math.floor(budget / bytesPerSample)));
}

/** The model's single input: name and dims without the batch dim (symbolic dims are null). */
export function modelInput(model: OnnxModel): { name: string; dims: Array<number | null>; batch: number | null } {
  const g = model.msg.graph!;
  const inits = new Set(g.initializer.map((t) => t.name));
  const inputs = g.input.filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) throw new DataError(`calibration feeds models with one input; this one has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const t = inputs[0].type?.tensorType;
  if ((t?.elemType ?? DataType.FLOAT) !== DataType.FLOAT) throw new DataError(`model input '${inputs[0].name}' is not float32`);
  const dims = (t?.shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && int64(d.dimValue) > 0 && !d.dimParam ? int64(d.dimValue) : null));
  return { name: inputs[0].name ?? '', dims: dims.slice(1), batch: dims[0] ?? null };
}

/** TopK takes K as an input from opset 10 (an attribute before). */
const TOPK_OPSET = 10;
/** Graph input of the top-magnitude variant: K = floor(size · fraction) + 2, fed per run. */
const FRACTION_INPUT = 'modelpress_calibrate::fraction';

/**
 * An ONNX Runtime session on the model with `tensors` added as graph outputs, or (ranges) with a
 * ReduceMin and a ReduceMax of each as outputs `<t>::min` / `<t>::max`, or (top) those and the
 * largest magnitudes of each, `<t>::top` (sorted, largest first): K = min(size, floor(size ·
 * fraction) + 2) computed in the graph in f64 from the activation's size and the `fraction` input,
 * so the per-batch count follows the batch without knowing shapes beforehand.
 */
async function augmentedSession(model: OnnxModel, tensors: string[], kind: 'outputs' | 'ranges' | 'top'): Promise<ort.InferenceSession> {
  const g = model.msg.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  const added: ValueInfoMsg[] = [];
  const nodes: NodeMsg[] = [];
  const inputs: ValueInfoMsg[] = [];
  const initializers: TensorProtoMsg[] = [];
  const node = (opType: string, input: string[], output: string[], attribute = [] as NodeMsg['attribute']) =>
    nodes.push(create<NodeMsg>('NodeProto', { name: `modelpress_calibrate_${output[0]}`, opType, input, output, attribute }));
  if (kind !== 'outputs') {
    for (const t of tensors) {
      for (const op of ['Min', 'Max']) {
        const name = `${t}::${op.toLowerCase()}`;
        node(`Reduce${op}`, [t], [name], [intAttr('keepdims', 0)]);
        added.push(floatOutput(name));
      }
      // The activation's shape (a few int64s): its size per sample, without copying it out.
      const shape = `${t}::shape`;
      node('Shape', [t], [shape]);
      added.push(create<ValueInfoMsg>('ValueInfoProto', { name: shape, type: { tensorType: { elemType: DataType.INT64 } } as never }));
    }
  } else {
    added.push(...tensors.filter((t) => !existing.has(t)).map(floatOutput));
  }
  if (kind === 'top') {
    const c = (name: string, type: number, dims: number[], data: BigInt64Array | Float64Array) => initializers.push(makeTensor(`modelpress_calibrate::${name}`, type, dims, bytesOf(data)));
    c('flat', DataType.INT64, [1], BigInt64Array.of(-1n));
    c('one', DataType.INT64, [1], BigInt64Array.of(1n));
    c('two', DataType.DOUBLE, [], Float64Array.of(2));
    inputs.push(create<ValueInfoMsg>('ValueInfoProto', { name: FRACTION_INPUT, type: { tensorType: { elemType: DataType.DOUBLE, shape: { dim: [] } } } as never }));
    for (const t of tensors) {
      const v = (x: string) => `${t}::${x}`;
      node('Abs', [t], [v('abs')]);
      node('Reshape', [v('abs'), 'modelpress_calibrate::flat'], [v('flat')]);
      node('Size', [t], [v('size')]);
      node('Cast', [v('size')], [v('sized')], [intAttr('to', DataType.DOUBLE)]);
      node('Mul', [v('sized'), FRACTION_INPUT], [v('kd')]);
      node('Floor', [v('kd')], [v('kf')]);
      node('Add', [v('kf'), 'modelpress_calibrate::two'], [v('kp')]);
      node('Min', [v('kp'), v('sized')], [v('km')]);
      node('Cast', [v('km')], [v('kl')], [intAttr('to', DataType.INT64)]);
      node('Reshape', [v('kl'), 'modelpress_calibrate::one'], [v('k')]);
      node('TopK', [v('flat'), v('k')], [v('top'), v('topi')]);
      added.push(floatOutput(v('top')));
    }
  }
  // Reductions are appended (their inputs exist already). Placing each right after its producer
  // was measured: ONNX Runtime's peak memory did not change, so the simpler order stays.
  return sessionFromBytes(model, bytesWithExtras(model, nodes, added, { inputs, initializers }));
}

export async function collectActivationStats(model: OnnxModel, tensors: string[], opts: CollectOptions): Promise<CollectResult> {
  const input = modelInput(model);
  const ds = opts.dataset;
  const indices = seededSample(ds.count, opts.samples, opts.seed ?? 1);
  if (indices.length === 0) throw new DataError(`calibration data ${ds.description} has no samples`);
  const stats = new Map<string, TensorStats>();
  let ortMs = 0;
  let statsMs = 0;
  let done = 0;
  let floatNames: string[] | null = null as string[] | null;
  const feeds = async (idx: number[]): Promise<Record<string, ort.Tensor>> => ({ [input.name]: new ort.Tensor('float32', await ds.load(idx), [idx.length, ...ds.sampleDims]) });

  // The first run (one sample, or the model's fixed batch) tells how many activation bytes one
  // sample produces, which sizes the batch. With activations copied out it also tells which are
  // float; with ranges reduced in the graph (minmax) the activations' Shape outputs give the sizes
  // and nothing large ever leaves ONNX Runtime.
  const probeSize = input.batch ?? 1;
  if (indices.length < probeSize) throw new DataError(`no complete batch of ${input.batch} samples in ${ds.description} (the model's batch dim is fixed at ${input.batch})`);
  const p = opts.percentile;
  if (p !== undefined && !(p > 0 && p <= 100)) throw new DataError(`percentile must be in (0, 100], got ${p}`);
  const mode: CollectResult['mode'] = opts.rangesOnly ? 'ort-reduce' : p !== undefined && model.opset('') >= TOPK_OPSET ? 'ort-topk' : 'outputs';
  const session = await augmentedSession(model, tensors, mode === 'ort-reduce' ? 'ranges' : mode === 'ort-topk' ? 'top' : 'outputs');
  // The largest magnitudes kept per tensor: enough for the percentile over every planned sample.
  const keep = (perSample: number) => Math.floor((1 - p! / 100) * perSample * indices.length) + 2;
  // A second core counts half of each batch's histograms (CPU path; statistics were ~25 % of ORT time).
  const helper = mode === 'outputs' && opts.scheduler.info.active !== 'gpu' ? HistogramHelper.start() : null;
  let bytesPerSample = 0;
  let batch = input.batch ?? opts.batchSize ?? MAX_BATCH;
  const elementsPerSample = new Map<string, number>();
  const runBatch = async (idx: number[]) => {
    const t0 = performance.now();
    if (mode !== 'outputs') {
      const feed = await feeds(idx);
      // K per batch: (1 − p/100) of the planned samples' values, spread over this batch's share.
      if (mode === 'ort-topk') feed[FRACTION_INPUT] = new ort.Tensor('float64', Float64Array.of(((1 - p! / 100) * indices.length) / idx.length), []);
      const r = await session.run(feed);
      ortMs += performance.now() - t0;
      if (!floatNames) {
        floatNames = tensors.filter((t) => r[`${t}::min`]?.type === 'float32');
        for (const n of floatNames) {
          const dims = Array.from(r[`${n}::shape`].data as BigInt64Array, Number);
          elementsPerSample.set(n, dims.reduce((a, b) => a * b, 1) / idx.length);
          stats.set(n, new TensorStats());
        }
      }
      for (const n of floatNames) {
        const s = stats.get(n)!;
        const min = (r[`${n}::min`].data as Float32Array)[0];
        const max = (r[`${n}::max`].data as Float32Array)[0];
        s.addRange(min, max, elementsPerSample.get(n)! * idx.length);
        // A batch with NaN / Inf is left out of the counts (addRange), so of the magnitudes too.
        if (mode === 'ort-topk' && Number.isFinite(min) && Number.isFinite(max)) s.addTop(r[`${n}::top`].data as Float32Array, keep(elementsPerSample.get(n)!), p!);
      }
    } else {
      const o = await session.run(await feeds(idx), floatNames ?? tensors);
      ortMs += performance.now() - t0;
      if (!floatNames) {
        // Tensors that turn out not to be float (shape arithmetic) are left out of quantization.
        floatNames = tensors.filter((t) => o[t]?.type === 'float32');
        for (const n of floatNames) {
          elementsPerSample.set(n, (o[n].data as Float32Array).length / idx.length);
          stats.set(n, new TensorStats());
        }
      }
      const t1 = performance.now();
      await addBatch(opts.scheduler, floatNames.map((n) => stats.get(n)!), floatNames.map((n) => o[n].data as Float32Array), helper);
      statsMs += performance.now() - t1;
    }
    done += idx.length;
    opts.onProgress?.(done, indices.length);
  };
  try {
    await runBatch(indices.slice(0, probeSize));
    for (const n of floatNames!) bytesPerSample += 4 * elementsPerSample.get(n)!;
    if (input.batch === null && opts.batchSize === undefined) batch = batchForBudget(bytesPerSample, opts.activationBudgetBytes ?? DEFAULT_ACTIVATION_BUDGET);
    for (let i = done; i < indices.length; i += batch) {
      const idx = indices.slice(i, i + batch);
      if (input.batch !== null && idx.length !== input.batch) break; // a fixed batch dim takes whole batches only
      await runBatch(idx);
    }
  } finally {
    await session.release();
    await helper?.close();
  }
  return { stats, samples: done, ortMs, statsMs, batch, activationBytesPerSample: bytesPerSample, mode };
}
