/**
 * The value of a constant that nodes compute from initializers — a quantized weight's decode
 * chain (DequantizeLinear, Cast/Mul, ...) — evaluated by ONNX Runtime on a graph of just that chain.
 */
import * as ort from 'onnxruntime-node';
import type { OnnxModel } from '../onnx/model.ts';
import { create, encodeModel, type ModelMsg, type NodeMsg } from '../onnx/proto.ts';
import { floatOutput } from './session.ts';

export async function evaluateConstant(model: OnnxModel, name: string): Promise<{ data: Float32Array; dims: number[] } | null> {
  const g = model.graph;
  const chain = new Set<NodeMsg>();
  const visit = (value: string): boolean => {
    if (g.weights.has(value) && !g.producers.has(value)) return true;
    const p = g.producers.get(value);
    if (!p) return false;
    if (chain.has(p)) return true;
    chain.add(p);
    return p.input.every((i) => !i || visit(i));
  };
  if (!visit(name)) return null;
  const nodes = model.msg.graph!.node.filter((n) => chain.has(n));
  const reads = new Set(nodes.flatMap((n) => n.input));
  const msg = create<ModelMsg>('ModelProto', {
    irVersion: model.msg.irVersion, opsetImport: model.msg.opsetImport,
    graph: { name: 'constant', node: nodes, initializer: model.msg.graph!.initializer.filter((t) => reads.has(t.name ?? '')), input: [], output: [floatOutput(name)] } as never,
  });
  const s = await ort.InferenceSession.create(encodeModel(msg));
  try {
    const out = (await s.run({}))[name];
    return { data: Float32Array.from(out.data as Float32Array), dims: out.dims.map(Number) };
  } finally {
    await s.release();
  }
}
