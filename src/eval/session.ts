/**
 * ONNX Runtime sessions on in-memory models: from the model's bytes, or — when tensors live in
 * external data files, whose paths are relative to the model's folder — from a temporary file in
 * that folder, removed as soon as the session is open.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { OnnxModel } from '../onnx/model.ts';
import { create, type NodeMsg, type TensorProtoMsg, type ValueInfoMsg } from '../onnx/proto.ts';
import { DataType } from '../onnx/dtypes.ts';
import type { Dataset } from '../data/dataset.ts';

export async function sessionFromBytes(model: OnnxModel, bytes: Uint8Array, opts: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  const external = model.msg.graph!.initializer.some((t) => t.dataLocation === 1);
  if (!external) return ort.InferenceSession.create(bytes, opts);
  const tmp = join(model.baseDir, `.modelpress-session-${process.pid}-${Math.random().toString(36).slice(2)}.onnx`);
  writeFileSync(tmp, bytes);
  try {
    return await ort.InferenceSession.create(tmp, opts);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export function modelSession(model: OnnxModel, opts: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  return sessionFromBytes(model, model.toBytes(), opts);
}

/** A float graph output declaration (shape left to ONNX Runtime). */
export function floatOutput(name: string): ValueInfoMsg {
  return create<ValueInfoMsg>('ValueInfoProto', { name, type: { tensorType: { elemType: DataType.FLOAT } } as never });
}

/**
 * The model's bytes with extra nodes appended and extra graph outputs (and, optionally, extra
 * graph inputs and initializers); the model itself is left as it was.
 */
export function bytesWithExtras(model: OnnxModel, nodes: readonly NodeMsg[], outputs: readonly ValueInfoMsg[], extra: { inputs?: readonly ValueInfoMsg[]; initializers?: readonly TensorProtoMsg[] } = {}): Uint8Array {
  const g = model.msg.graph!;
  const originalNodes = g.node.slice();
  const inputs = extra.inputs ?? [];
  const inits = extra.initializers ?? [];
  g.node.push(...nodes);
  g.output.push(...outputs);
  g.input.push(...inputs);
  g.initializer.push(...inits);
  try {
    return model.toBytes();
  } finally {
    g.initializer.splice(g.initializer.length - inits.length, inits.length);
    g.input.splice(g.input.length - inputs.length, inputs.length);
    g.output.splice(g.output.length - outputs.length, outputs.length);
    g.node.splice(0, g.node.length, ...originalNodes);
  }
}

/** A session on `model` with `names` (intermediate values) added as graph outputs; the model is left as it was. */
export async function sessionWithOutputs(model: OnnxModel, names: readonly string[], opts: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  const existing = new Set(model.msg.graph!.output.map((o) => o.name));
  const added = [...new Set(names)].filter((n) => !existing.has(n)).map(floatOutput);
  return sessionFromBytes(model, bytesWithExtras(model, [], added), opts);
}

/**
 * Runs the calibration samples `indices` of `ds` through a session exposing `names`, batch by batch
 * (the model's own batch size when its batch dim is fixed — whole batches only — else `batch`),
 * and hands each batch's outputs to `visit`; the session is released after.
 */
export async function forEachBatch(
  model: OnnxModel, names: readonly string[],
  source: { ds: Pick<Dataset, 'load' | 'sampleDims'>; input: { name: string; batch: number | null }; indices: readonly number[]; batch?: number },
  visit: (out: ort.InferenceSession.ReturnType, idx: number[]) => Promise<void> | void,
): Promise<void> {
  const { ds, input, indices } = source;
  const batch = input.batch ?? source.batch ?? 16;
  const session = await sessionWithOutputs(model, names);
  try {
    for (let i = 0; i < indices.length; i += batch) {
      const idx = indices.slice(i, i + batch);
      if (input.batch !== null && idx.length !== input.batch) break;
      const out = await session.run({ [input.name]: new ort.Tensor('float32', await ds.load(idx), [idx.length, ...ds.sampleDims]) });
      await visit(out, idx);
    }
  } finally {
    await session.release();
  }
}
