/** Graph edits that keep a model's meaning and make constants visible as weights to the passes. */
import type { OnnxModel } from './model.ts';
import { bytesOf, makeTensor, tensorDims } from './tensor.ts';
import { DataType } from './dtypes.ts';

/**
 * Exporters route shared constants through Identity nodes (PyTorch does for de-duplicated biases):
 * consumers read the constant directly instead, so it is seen as a weight.
 */
export function foldConstantIdentities(model: OnnxModel): number {
  const g = model.msg.graph!;
  let folded = 0;
  for (const n of [...g.node]) {
    if (n.opType !== 'Identity' || (n.domain ?? '') !== '' || !model.graph.weights.has(n.input[0]) || model.graph.isGraphOutput(n.output[0])) continue;
    for (const u of model.graph.uses(n.output[0])) u.node.input[u.index] = n.input[0];
    g.node.splice(g.node.indexOf(n), 1);
    model.reindex();
    folded++;
  }
  return folded;
}

/**
 * Gives every node its own copy of a constant it shares with other nodes at `inputs` (exporters
 * de-duplicate identical tensors, e.g. zero-initialized biases), so slicing one node's copy leaves
 * the others alone. Returns the number of copies made.
 */
export function unshareConstants(model: OnnxModel, inputs: (opType: string) => readonly number[]): number {
  const g = model.msg.graph!;
  let copies = 0;
  for (const n of g.node) {
    for (const i of inputs(n.opType ?? '')) {
      const name = n.input[i];
      if (!name) continue;
      const w = model.graph.weights.get(name);
      if (!w || model.graph.uses(name).length < 2) continue;
      const copy = makeTensor(model.graph.uniqueName(`${name}_${n.name || n.output[0]}`), w.tensor.dataType ?? DataType.FLOAT, tensorDims(w.tensor), new Uint8Array(model.tensorBytes(w.tensor)));
      g.initializer.push(copy);
      n.input[i] = copy.name!;
      model.reindex();
      copies++;
    }
  }
  return copies;
}

/**
 * Writes a FLOAT weight under `name`: the Constant node's value, the initializer of that name, or
 * a new initializer. An initializer also listed as a graph input (older models) gets its declared
 * dims updated. The graph index keeps pointing at the new tensor.
 */
export function replaceFloatWeight(model: OnnxModel, name: string, dims: readonly number[], data: Float32Array): void {
  const g = model.msg.graph!;
  const tensor = makeTensor(name, DataType.FLOAT, dims, bytesOf(data));
  const w = model.graph.weights.get(name);
  if (w?.source === 'constant') {
    w.node!.attribute.find((a) => a.name === 'value')!.t = tensor;
  } else {
    const i = g.initializer.findIndex((t) => t.name === name);
    if (i >= 0) g.initializer[i] = tensor;
    else g.initializer.push(tensor);
    const declared = g.input.find((x) => x.name === name)?.type?.tensorType?.shape?.dim;
    if (declared) dims.forEach((d, k) => { if (declared[k]) declared[k] = { dimValue: d } as never; });
  }
  if (w) w.tensor = tensor;
}

/**
 * Replaces the constant value `name` — a weight computed by a decode chain (DequantizeLinear,
 * Cast/Mul, ...) from initializers — by a FLOAT initializer holding `data`. The chain's nodes and
 * the initializers only it read are removed. Returns false when `name` is not such a value.
 */
export function replaceDecodedWeight(model: OnnxModel, name: string, dims: readonly number[], data: Float32Array): boolean {
  const g = model.msg.graph!;
  const ir = model.graph;
  if (ir.weights.has(name)) {
    replaceFloatWeight(model, name, dims, data);
    return true;
  }
  const chain = new Set<(typeof g.node)[number]>();
  const visit = (value: string): boolean => {
    const p = ir.producers.get(value);
    if (!p) return ir.weights.has(value);
    if (chain.has(p)) return true;
    chain.add(p);
    return p.input.every((i) => !i || visit(i));
  };
  if (!visit(name)) return false;
  // Every intermediate value must feed the chain only (the weight's own name feeds the model).
  for (const n of chain) for (const o of n.output) if (o !== name && ir.uses(o).some((u) => !chain.has(u.node))) return false;
  const read = new Set([...chain].flatMap((n) => n.input).filter((i) => i && ir.weights.has(i) && ir.uses(i).every((u) => chain.has(u.node))));
  g.node.splice(0, g.node.length, ...g.node.filter((n) => !chain.has(n)));
  g.initializer.splice(0, g.initializer.length, ...g.initializer.filter((t) => !read.has(t.name ?? '')));
  g.initializer.push(makeTensor(name, DataType.FLOAT, dims, bytesOf(data)));
  model.reindex();
  return true;
}
