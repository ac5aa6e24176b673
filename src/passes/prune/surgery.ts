/**
 * Physical channel removal: slices producer rows, consumer columns, depthwise filters, norm
 * parameters and per-channel constants, and rewrites Split sizes, Slice bounds, Reshape targets,
 * Resize sizes and depthwise `group` so the pruned model runs with unchanged output shapes.
 */
import type { OnnxModel } from '../../onnx/model.ts';
import { DataType } from '../../onnx/dtypes.ts';
import { intAttr, setAttr } from '../../onnx/attributes.ts';
import { replaceFloatWeight } from '../../onnx/model-edits.ts';
import { create, type AttributeMsg, type NodeMsg } from '../../onnx/proto.ts';
import { bytesOf, makeTensor } from '../../onnx/tensor.ts';
import type { ChannelGraph } from '../../analysis/channel-groups.ts';
import { constantValues } from '../../analysis/constants.ts';
import { sliceRange } from '../../analysis/shapes.ts';
import { readDense } from './scores.ts';
import { sliceAxis, type DenseTensor } from './tensor-slice.ts';

/** A layer whose output the pruning changed, to be recovered from calibration data. */
export interface RecoveryTarget {
  node: NodeMsg;
  /** consumer: its input channels were removed (least squares); depthwise: its channels were (scale + bias). */
  kind: 'consumer' | 'depthwise';
  /** The original output channels the layer still produces, in order. */
  keptOut: number[] | null;
  /**
   * Sparsity: which weights may be non-zero (1) in the weight's own layout; least squares then
   * re-fits each output over its kept inputs only, so zeros stay zero.
   */
  keep?: Uint8Array;
}

export interface SurgeryResult {
  /** Per producer: output channels before and after. */
  layers: Array<{ node: string; before: number; after: number }>;
  paramsRemoved: number;
  /** In graph order. */
  targets: RecoveryTarget[];
  /** Per producer and depthwise node: the indices (in the input model) of the output channels it keeps. */
  outputChannels: Map<NodeMsg, number[]>;
}

export function applyPruning(model: OnnxModel, cg: ChannelGraph, removed: ReadonlySet<number>): SurgeryResult {
  const ir = model.graph;
  const g = model.msg.graph!;
  const keptIds = (ids: Int32Array) => Array.from(ids, (id) => id < 0 || !removed.has(cg.root(id)));
  const keepIndex = (value: string) => keptIds(cg.labels.get(value)!.ids).flatMap((k, i) => (k ? [i] : []));
  const changed = (value: string) => keptIds(cg.labels.get(value)!.ids).some((k) => !k);

  // Every weight edit is collected first (a producer's weight loses rows and columns), then written once.
  const edits = new Map<string, DenseTensor>();
  /** Constants a node stopped reading (copied or rewritten): dropped below when nothing reads them. */
  const replaced = new Set<string>();
  const current = (name: string) => edits.get(name) ?? readDense(model, name);
  /** A constant used by several nodes is copied for this node before it is sliced. */
  const ownConstant = (node: NodeMsg, input: number): string => {
    const name = node.input[input];
    if (ir.uses(name).length <= 1) return name;
    const copy = ir.uniqueName(`${name}_pruned`);
    edits.set(copy, current(name));
    node.input[input] = copy;
    replaced.add(name);
    return copy;
  };
  let paramsRemoved = 0;
  const slice = (name: string, axis: number, keep: number[]) => {
    const t = current(name);
    if (keep.length === t.dims[axis]) return;
    const s = sliceAxis(t, axis, keep);
    paramsRemoved += t.data.length - s.data.length;
    edits.set(name, s);
  };

  const layers: SurgeryResult['layers'] = [];
  const producerOut = new Map<NodeMsg, number[]>();
  for (const p of cg.producers) producerOut.set(p.node, keepIndex(p.node.output[0]));
  const targets: RecoveryTarget[] = [];
  const outputChannels = new Map(producerOut);
  for (const s of cg.slices) if (s.role === 'depthwise' && s.input === 1) outputChannels.set(s.node, keepIndex(s.value));
  for (const s of cg.slices) {
    if (s.input !== 1 || !changed(s.value)) continue;
    if (s.role === 'consumer') targets.push({ node: s.node, kind: 'consumer', keptOut: producerOut.get(s.node) ?? null });
    if (s.role === 'depthwise') targets.push({ node: s.node, kind: 'depthwise', keptOut: keepIndex(s.value) });
  }
  const order = new Map(g.node.map((n, i) => [n, i]));
  targets.sort((a, b) => order.get(a.node)! - order.get(b.node)!);
  for (const p of cg.producers) {
    const out = p.node.output[0];
    const keep = keepIndex(out);
    layers.push({ node: p.node.name || out, before: p.channels, after: keep.length });
    if (keep.length === p.channels) continue;
    slice(p.weight, p.outAxis, keep);
    if (p.bias) {
      const b = current(p.bias);
      // Gemm's C may be [N] or [1, N]: the channel axis is its last.
      slice(p.bias, b.dims.length - 1, keep);
    }
  }
  for (const s of cg.slices) {
    if (!changed(s.value)) continue;
    const name = s.role === 'broadcast' || s.role === 'norm' ? ownConstant(s.node, s.input) : s.node.input[s.input];
    slice(name, s.axis, keepIndex(s.value));
  }

  const setInts = (node: NodeMsg, input: number, values: number[]) => {
    const name = ir.uniqueName(`${node.name || node.output[0]}_${['', 'starts', 'ends'][input] || 'shape'}_pruned`);
    g.initializer.push(makeTensor(name, DataType.INT64, [values.length], bytesOf(BigInt64Array.from(values, (v) => BigInt(v)))));
    if (node.input[input]) replaced.add(node.input[input]);
    node.input[input] = name;
  };
  for (const r of cg.rewrites) {
    if (!changed(r.value)) continue;
    const node = r.node;
    const kept = keptIds(cg.labels.get(r.value)!.ids);
    const keptBefore = (i: number) => kept.slice(0, i).filter(Boolean).length;
    switch (r.kind) {
      case 'depthwise-group':
        setAttr(node, intAttr('group', keepIndex(r.value).length));
        break;
      case 'split': {
        const sizes = node.output.map((o) => keepIndex(o).length);
        const attr = node.attribute.find((a) => a.name === 'split');
        if (attr) attr.ints = sizes;
        else {
          node.attribute = node.attribute.filter((a) => a.name !== 'num_outputs');
          if (model.opset() >= 13) {
            while (node.input.length < 2) node.input.push('');
            setInts(node, 1, sizes);
          } else setAttr(node, create<AttributeMsg>('AttributeProto', { name: 'split', type: 7, ints: sizes }));
        }
        break;
      }
      case 'slice': {
        const starts = constantValues(model, node.input[1])!;
        const ends = constantValues(model, node.input[2])!;
        const rr = sliceRange(starts[r.index!], ends[r.index!], 1, kept.length);
        const s2 = [...starts];
        const e2 = [...ends];
        s2[r.index!] = keptBefore(rr.start);
        e2[r.index!] = keptBefore(rr.start + rr.count);
        setInts(node, 1, s2);
        setInts(node, 2, e2);
        break;
      }
      case 'reshape': {
        const target = constantValues(model, node.input[1])!;
        if (target[1] !== -1) setInts(node, 1, [target[0], keepIndex(node.output[0]).length]);
        break;
      }
      case 'resize-sizes': {
        const sizes = constantValues(model, node.input[3])!;
        const axis = cg.labels.get(r.value)!.axis;
        const s2 = [...sizes];
        s2[axis] = keepIndex(r.value).length;
        setInts(node, 3, s2);
        break;
      }
    }
  }

  for (const [name, t] of edits) replaceFloatWeight(model, name, t.dims, t.data);
  // Declared shapes of pruned values are stale: drop them (ONNX Runtime infers its own).
  g.valueInfo = g.valueInfo.filter((v) => !(cg.labels.has(v.name ?? '') && changed(v.name ?? '')));
  // Constants no longer read by any node (replaced split/slice/reshape vectors, copied constants).
  const used = new Set(g.node.flatMap((n) => n.input));
  for (const o of g.output) used.add(o.name ?? '');
  const dead = (name: string | undefined) => replaced.has(name ?? '') && !used.has(name ?? '');
  g.initializer = g.initializer.filter((t) => !dead(t.name));
  g.node = g.node.filter((n) => !(n.opType === 'Constant' && dead(n.output[0])));
  g.input = g.input.filter((i) => !dead(i.name));
  model.reindex();
  return { layers, paramsRemoved, targets, outputChannels };
}
