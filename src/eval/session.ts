/**
 * ONNX Runtime sessions on in-memory models: from the model's bytes, or — when tensors live in
 * external data files, whose paths are relative to the model's folder — from a temporary file in
 * that folder, removed as soon as the session is open.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { OnnxModel } from '../onnx/model.ts';
import { create, type NodeMsg, type ValueInfoMsg } from '../onnx/proto.ts';
import { DataType } from '../onnx/dtypes.ts';

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

/** The model's bytes with extra nodes appended and extra graph outputs; the model itself is left as it was. */
export function bytesWithExtras(model: OnnxModel, nodes: readonly NodeMsg[], outputs: readonly ValueInfoMsg[]): Uint8Array {
  const g = model.msg.graph!;
  const originalNodes = g.node.slice();
  g.node.push(...nodes);
  g.output.push(...outputs);
  try {
    return model.toBytes();
  } finally {
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
