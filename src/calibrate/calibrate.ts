/**
 * Calibration: the float model runs in ONNX Runtime with the chosen activations added as outputs,
 * batch by batch; after each batch the scheduler reduces them (range + histogram passes). Only one
 * batch of activations is alive at a time, so memory does not grow with the number of samples.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataError } from '../errors.ts';
import type { OnnxModel } from '../onnx/model.ts';
import { create, int64, type ValueInfoMsg } from '../onnx/proto.ts';
import { DataType } from '../onnx/dtypes.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { seededSample, type Dataset } from '../data/dataset.ts';
import { addBatch, TensorStats } from './stats.ts';

export interface CollectOptions {
  dataset: Dataset;
  samples: number;
  seed?: number;
  batchSize?: number;
  scheduler: Scheduler;
  onProgress?: (done: number, total: number) => void;
}

export interface CollectResult {
  /** Stats of the float activations, by tensor name (non-float tensors are left out). */
  stats: Map<string, TensorStats>;
  samples: number;
  ortMs: number;
  statsMs: number;
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

/** An ONNX Runtime session on the model with `tensors` added as graph outputs. */
async function augmentedSession(model: OnnxModel, tensors: string[]): Promise<ort.InferenceSession> {
  const g = model.msg.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  const added = tensors.filter((t) => !existing.has(t)).map((name) => create<ValueInfoMsg>('ValueInfoProto', { name, type: { tensorType: { elemType: DataType.FLOAT } } as never }));
  g.output.push(...added);
  let bytes: Uint8Array;
  try {
    bytes = model.toBytes();
  } finally {
    g.output.splice(g.output.length - added.length, added.length);
  }
  const external = g.initializer.some((t) => t.dataLocation === 1);
  if (!external) return ort.InferenceSession.create(bytes);
  // External data paths are relative to the model's folder: the session must be opened from there.
  const tmp = join(model.baseDir, `.modelpress-calibrate-${process.pid}.onnx`);
  writeFileSync(tmp, bytes);
  try {
    return await ort.InferenceSession.create(tmp);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export async function collectActivationStats(model: OnnxModel, tensors: string[], opts: CollectOptions): Promise<CollectResult> {
  const input = modelInput(model);
  const ds = opts.dataset;
  const indices = seededSample(ds.count, opts.samples, opts.seed ?? 1);
  if (indices.length === 0) throw new DataError(`calibration data ${ds.description} has no samples`);
  const session = await augmentedSession(model, tensors);
  const batch = input.batch ?? opts.batchSize ?? 32;
  const stats = new Map<string, TensorStats>();
  let ortMs = 0;
  let statsMs = 0;
  let done = 0;
  let floatNames: string[] | null = null;
  try {
    for (let i = 0; i < indices.length; i += batch) {
      const idx = indices.slice(i, i + batch);
      if (input.batch !== null && idx.length !== input.batch) break; // a fixed batch dim takes whole batches only
      const data = await ds.load(idx);
      const t0 = performance.now();
      const out = await session.run({ [input.name]: new ort.Tensor('float32', data, [idx.length, ...ds.sampleDims]) }, tensors);
      ortMs += performance.now() - t0;
      // Tensors that turn out not to be float (shape arithmetic) are left out of quantization.
      floatNames ??= tensors.filter((t) => out[t]?.type === 'float32');
      for (const n of floatNames) if (!stats.has(n)) stats.set(n, new TensorStats());
      const t1 = performance.now();
      await addBatch(opts.scheduler, floatNames.map((n) => stats.get(n)!), floatNames.map((n) => out[n].data as Float32Array));
      statsMs += performance.now() - t1;
      done += idx.length;
      opts.onProgress?.(done, indices.length);
    }
  } finally {
    await session.release();
  }
  if (done === 0) throw new DataError(`no complete batch of ${batch} samples in ${ds.description} (the model's batch dim is fixed at ${input.batch})`);
  return { stats, samples: done, ortMs, statsMs };
}
