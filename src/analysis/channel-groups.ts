/**
 * The channel dependency graph for structured pruning. Every output channel of a prunable producer
 * (Conv / ConvTranspose / Gemm / MatMul with a constant FLOAT weight) gets an id; ids flow through
 * the graph as per-value labels (one id per channel along the value's channel axis, -1 for a
 * channel no producer owns). Ops that tie channels together (Add, Mul, ...) unite ids; Concat and
 * Split map offsets; Flatten repeats an id over its H·W features; an op the rules do not cover
 * blocks every id reaching it, with the reason. A group is the set of producers whose channels are
 * united; a coupled channel (a component) is kept or removed in every member at once.
 */
import type { OnnxModel } from '../onnx/model.ts';
import type { NodeMsg } from '../onnx/proto.ts';
import type { GraphIR } from '../onnx/graph.ts';
import { DataType } from '../onnx/dtypes.ts';
import { attrInt, ints, inferShapes, numel, sliceRange, splitSizes, type Dim, type Shape } from './shapes.ts';
import { constantValues } from './constants.ts';

/** A value's channels: the axis they run along and one id per channel (-1: owned by no producer). */
export interface ChannelLabel {
  axis: number;
  ids: Int32Array;
}

export interface Producer {
  node: NodeMsg;
  weight: string;
  /** Axis of the weight that indexes output channels. */
  outAxis: number;
  bias: string | null;
  /** First id of this producer's channels; ids are base..base+channels-1. */
  base: number;
  channels: number;
}

/** A weight whose input-channel axis follows the label of one of the node's inputs. */
export interface WeightSlice {
  node: NodeMsg;
  /** Input index of the node that holds the constant to slice. */
  input: number;
  /** Axis of that constant that runs along the channels. */
  axis: number;
  /** The value whose label gives the mask. */
  value: string;
  role: 'consumer' | 'depthwise' | 'norm' | 'broadcast';
}

/** A node attribute or shape constant rewritten after pruning. */
export interface Rewrite {
  node: NodeMsg;
  kind: 'split' | 'slice' | 'reshape' | 'resize-sizes' | 'depthwise-group';
  /** Split/Slice/Reshape: the labelled input. */
  value: string;
  /** Slice: the channel axis position in starts/ends (index into `axes`). */
  index?: number;
}

export interface ChannelGroup {
  id: number;
  producers: string[];
  /** Output channels of the group's producers, summed. */
  channels: number;
  /** Coupled channels (components): how many could be removed. */
  components: number;
  prunable: number;
  /** Why channels of this group cannot be removed (empty when all can). */
  reasons: string[];
}

export interface ChannelGraph {
  producers: Producer[];
  labels: Map<string, ChannelLabel>;
  slices: WeightSlice[];
  rewrites: Rewrite[];
  shapes: Map<string, Shape>;
  /** Union-find root of every id. */
  root: (id: number) => number;
  /** Block reason per root id (absent: removable). */
  blocked: Map<number, string>;
  /** Producer index of every id. */
  producerOf: Int32Array;
  groups: ChannelGroup[];
  /** Group index of every producer. */
  groupOf: Int32Array;
}

const PASS_THROUGH = new Set([
  'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Identity', 'Dropout', 'Elu', 'Selu',
  'Softplus', 'Mish', 'Gelu', 'Erf', 'Cast', 'Abs', 'Neg', 'Sqrt', 'Exp', 'Floor', 'Ceil', 'Round', 'Reciprocal',
  'MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool',
]);
const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum', 'Mean', 'PRelu']);

export interface ChannelGraphOptions {
  /** Nodes left untouched: they behave as unknown ops (they stop propagation). */
  exclude?: ReadonlySet<string>;
  /** Concrete dims for graph inputs with symbolic sizes (MAC counts; see nominalInputShapes). */
  inputShapes?: ReadonlyMap<string, Dim[]>;
}

/**
 * Whether a Resize's computed `sizes` take their leading dims, the channel axis included, from its
 * own input's shape: Concat(Slice(Shape(X), [0], [e]), ...) with e > axis, as PyTorch exports
 * `interpolate(x, size=...)`. Its output then has X's channels, whatever their number.
 */
function sizesFromOwnShape(resize: NodeMsg, axis: number, model: OnnxModel, ir: GraphIR): boolean {
  const producer = (v: string | undefined) => (v ? model.msg.graph!.node.find((n) => n.output.includes(v)) : undefined);
  const concat = producer(resize.input[3]);
  if (concat?.opType !== 'Concat' || attrInt(concat, 'axis', 0) !== 0) return false;
  const slice = producer(concat.input[0]);
  if (slice?.opType !== 'Slice' || ir.uses(slice.output[0]).length !== 1) return false;
  const shape = producer(slice.input[0]);
  if (shape?.opType !== 'Shape' || shape.input[0] !== resize.input[0] || attrInt(shape, 'start', 0) !== 0) return false;
  const starts = constantValues(model, slice.input[1]);
  const ends = constantValues(model, slice.input[2]);
  const axes = slice.input[3] ? constantValues(model, slice.input[3]) : [0];
  const steps = slice.input[4] ? constantValues(model, slice.input[4]) : [1];
  return starts?.length === 1 && starts[0] === 0 && ends?.length === 1 && ends[0] > axis && axes?.length === 1 && axes[0] === 0 && steps?.length === 1 && steps[0] === 1;
}

/**
 * Why a Shape of a tensor whose channels lie on `axis` exposes the channel count, or null when
 * every use of its output picks other dims (Gather / Slice on axis 0, step 1, constant indices
 * that leave the channel dim out), or feeds the sizes of a Resize of the same tensor
 * (sizesFromOwnShape: the channel count there follows the pruned tensor).
 */
function channelDimReader(shapeNode: NodeMsg, axis: number, model: OnnxModel, ir: GraphIR, rank: number | null): string | null {
  if (rank === null) return 'its shape is read (rank unknown)';
  const norm = (v: number, n: number) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
  const start = norm(attrInt(shapeNode, 'start', 0), rank);
  const end = norm(attrInt(shapeNode, 'end', rank), rank);
  if (axis < start || axis >= end) return null;
  const len = end - start;
  const channelIndex = axis - start;
  if (ir.isGraphOutput(shapeNode.output[0])) return 'its shape is a graph output';
  for (const { node: use, index } of ir.uses(shapeNode.output[0])) {
    const op = use.opType ?? '';
    if (op === 'Gather' && index === 0 && attrInt(use, 'axis', 0) === 0) {
      const idx = constantValues(model, use.input[1]);
      if (idx && !idx.some((i) => (i < 0 ? i + len : i) === channelIndex)) continue;
    }
    if (op === 'Slice' && index === 0) {
      const starts = constantValues(model, use.input[1]);
      const ends = constantValues(model, use.input[2]);
      const axes = use.input[3] ? constantValues(model, use.input[3]) : [0];
      const steps = use.input[4] ? constantValues(model, use.input[4]) : [1];
      if (starts?.length === 1 && ends?.length === 1 && axes?.length === 1 && axes[0] === 0 && steps?.length === 1 && steps[0] === 1) {
        const s0 = norm(starts[0], len);
        const e0 = norm(Math.min(ends[0], len), len);
        if (channelIndex < s0 || channelIndex >= e0) continue;
      }
      const feedsOwnResize = ir.uses(use.output[0]).every((c) => c.node.opType === 'Concat'
        && ir.uses(c.node.output[0]).every((r) => r.node.opType === 'Resize' && r.index === 3 && sizesFromOwnShape(r.node, axis, model, ir)));
      if (feedsOwnResize) continue;
    }
    return `its shape is read by ${op} '${use.name || use.output[0]}', which sees the channel count`;
  }
  return null;
}

export function buildChannelGraph(model: OnnxModel, opts: ChannelGraphOptions = {}): ChannelGraph {
  const g = model.msg.graph!;
  const ir = model.graph;
  const shapes = inferShapes(model, opts.inputShapes);
  const labels = new Map<string, ChannelLabel>();
  const producers: Producer[] = [];
  const slices: WeightSlice[] = [];
  const rewrites: Rewrite[] = [];
  const parent: number[] = [];
  const reasonOf = new Map<number, string>();
  const producerOfIds: number[] = [];

  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const unite = (a: number, b: number) => {
    if (a < 0 && b < 0) return;
    if (a < 0 || b < 0) {
      // A channel owned by no producer is tied to a prunable one: that one must stay.
      const id = a < 0 ? b : a;
      if (!reasonOf.has(id)) reasonOf.set(id, 'tied to a channel no prunable layer produces');
      return;
    }
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const block = (label: ChannelLabel | undefined, reason: string) => {
    if (!label) return;
    for (const id of label.ids) if (id >= 0 && !reasonOf.has(id)) reasonOf.set(id, reason);
  };
  const rankOf = (v: string) => shapes.get(v)?.length ?? null;
  const isWeight = (v: string | undefined) => Boolean(v && ir.weights.has(v));
  const usedOnce = (v: string) => ir.uses(v).length === 1 && !ir.isGraphOutput(v);
  const floatWeight = (v: string | undefined) => Boolean(v && ir.weights.get(v)?.tensor.dataType === DataType.FLOAT);
  const nodeLabel = (n: NodeMsg) => `${n.opType} '${n.name || n.output[0]}'`;

  const newIds = (producer: number, count: number): Int32Array => {
    const base = parent.length;
    for (let i = 0; i < count; i++) {
      parent.push(base + i);
      producerOfIds.push(producer);
    }
    return Int32Array.from({ length: count }, (_, i) => base + i);
  };

  for (const node of g.node) {
    const op = node.opType ?? '';
    const dataInputs = node.input.filter((i) => i && !isWeight(i));
    const inLabels = node.input.map((i) => (i ? labels.get(i) : undefined));
    const stop = (why: string) => {
      for (const l of inLabels) block(l, `${nodeLabel(node)}: ${why}`);
    };
    const passTo = (out: string, label: ChannelLabel | undefined) => {
      if (label) labels.set(out, label);
    };
    const known = (node.domain ?? '') === '' || node.domain === 'ai.onnx';
    if (!known) {
      stop(`custom-domain op ${node.domain}`);
      continue;
    }
    if (node.attribute.some((a) => a.g || a.graphs.length)) {
      stop('ops with subgraphs stop propagation');
      continue;
    }
    if (opts.exclude?.has(node.name ?? '')) {
      stop('excluded');
      continue;
    }
    const x = inLabels[0];
    switch (op) {
      case 'Conv':
      case 'ConvTranspose': {
        const w = node.input[1];
        const wShape = shapes.get(w);
        const group = attrInt(node, 'group', 1);
        if (!isWeight(w) || !wShape || !floatWeight(w)) {
          stop('weight is not a constant FLOAT tensor');
          break;
        }
        if (x && x.axis !== 1) {
          stop('channels do not run along axis 1');
          break;
        }
        if (node.input[2] && !isWeight(node.input[2])) {
          stop('bias is computed, not a constant');
          break;
        }
        const bias = node.input[2] ? node.input[2] : null;
        const cin = shapes.get(node.input[0])?.[1];
        if (op === 'Conv' && group > 1 && group === cin && wShape[0] === group && wShape[1] === 1) {
          // Depthwise: output channel c reads input channel c only, so they are one channel.
          if (!x || !usedOnce(w)) {
            if (x) stop('depthwise weight shared with another node');
            break;
          }
          slices.push({ node, input: 1, axis: 0, value: node.input[0], role: 'depthwise' });
          if (bias) slices.push({ node, input: 2, axis: 0, value: node.input[0], role: 'depthwise' });
          rewrites.push({ node, kind: 'depthwise-group', value: node.input[0] });
          labels.set(node.output[0], x);
          break;
        }
        if (group !== 1) {
          stop(`grouped ${op} (group ${group}): channels would have to leave every group equally`);
          break;
        }
        if (!usedOnce(w) || (bias && !usedOnce(bias))) {
          stop('weight shared with another node');
          break;
        }
        const inAxis = op === 'Conv' ? 1 : 0;
        const outAxis = op === 'Conv' ? 0 : 1;
        if (x) slices.push({ node, input: 1, axis: inAxis, value: node.input[0], role: 'consumer' });
        const p = producers.length;
        const channels = wShape[outAxis] as number;
        producers.push({ node, weight: w, outAxis, bias, base: parent.length, channels });
        labels.set(node.output[0], { axis: 1, ids: newIds(p, channels) });
        break;
      }
      case 'Gemm':
      case 'MatMul': {
        const w = node.input[1];
        const wShape = shapes.get(w);
        if (!isWeight(w) || !wShape || wShape.length !== 2 || !floatWeight(w) || (op === 'Gemm' && attrInt(node, 'transA', 0) !== 0)) {
          stop(isWeight(w) ? 'weight layout not handled (transA, rank ≠ 2 or not FLOAT)' : 'both operands are activations');
          break;
        }
        const rank = rankOf(node.input[0]);
        if (x && rank !== null && x.axis !== rank - 1) {
          stop('the features being multiplied are not the labelled channel axis');
          break;
        }
        let bias: string | null = null;
        if (op === 'Gemm' && node.input[2]) {
          const c = shapes.get(node.input[2]);
          const cElems = c ? numel(c) : null;
          if (!isWeight(node.input[2]) || cElems === null) {
            stop('bias is not a constant');
            break;
          }
          if (cElems !== 1) bias = node.input[2];
        }
        if (!usedOnce(w) || (bias && !usedOnce(bias))) {
          stop('weight shared with another node');
          break;
        }
        const transB = op === 'Gemm' && attrInt(node, 'transB', 0) === 1;
        if (x) slices.push({ node, input: 1, axis: transB ? 1 : 0, value: node.input[0], role: 'consumer' });
        const outAxis = transB ? 0 : 1;
        const p = producers.length;
        const channels = wShape[outAxis] as number;
        const outRank = rankOf(node.output[0]) ?? 2;
        producers.push({ node, weight: w, outAxis, bias, base: parent.length, channels });
        labels.set(node.output[0], { axis: outRank - 1, ids: newIds(p, channels) });
        break;
      }
      case 'BatchNormalization':
      case 'InstanceNormalization': {
        if (!x) break;
        if (x.axis !== 1) { stop('normalizes a different axis'); break; }
        const params = node.input.slice(1).filter(Boolean);
        if (!params.every((p) => isWeight(p) && floatWeight(p))) { stop('parameters are not constant FLOAT tensors'); break; }
        node.input.forEach((p, i) => { if (i > 0 && p) slices.push({ node, input: i, axis: 0, value: node.input[0], role: 'norm' }); });
        labels.set(node.output[0], x);
        if (node.output.length > 1 && node.output.slice(1).some(Boolean)) stop('training-mode outputs');
        break;
      }
      case 'Softmax':
      case 'LogSoftmax': {
        if (!x) break;
        const rank = rankOf(node.input[0]) ?? 0;
        const opsetAxisDefault = model.opset() >= 13 ? -1 : 1;
        let axis = attrInt(node, 'axis', opsetAxisDefault);
        if (axis < 0) axis += rank;
        // Before opset 13 the input is coerced to 2-D from `axis` on: it covers every later axis.
        const covers = model.opset() >= 13 ? axis === x.axis : axis <= x.axis;
        if (covers) stop('softmax over the channels');
        else passTo(node.output[0], x);
        break;
      }
      case 'Shape': {
        // Reading the spatial sizes (LRASPP: Shape -> Slice [2:4] -> Resize sizes) does not see the
        // channel count; reading the channel dim does, and the number would change under pruning.
        if (!x) break;
        const reader = channelDimReader(node, x.axis, model, ir, rankOf(node.input[0]));
        if (reader) stop(reader);
        break;
      }
      case 'Resize':
      case 'Upsample': {
        if (!x) break;
        const scales = constantValues(model, op === 'Resize' ? node.input[2] : node.input[1]);
        const sizes = op === 'Resize' ? constantValues(model, node.input[3]) : null;
        const inShape = shapes.get(node.input[0]);
        if (sizes && sizes.length && inShape && sizes[x.axis] !== inShape[x.axis]) { stop('resizes the channel axis'); break; }
        if (scales && scales.length && scales[x.axis] !== 1) { stop('resizes the channel axis'); break; }
        const ownSizes = op === 'Resize' && !scales?.length && !sizes?.length && sizesFromOwnShape(node, x.axis, model, ir);
        if (!scales?.length && !sizes?.length && !ownSizes) { stop('scales/sizes are not constants'); break; }
        if (sizes?.length) rewrites.push({ node, kind: 'resize-sizes', value: node.input[0] });
        passTo(node.output[0], x);
        break;
      }
      case 'Pad': {
        if (!x) break;
        const rank = rankOf(node.input[0]) ?? 0;
        const pads = constantValues(model, node.input[1]) ?? ints(node, 'pads');
        const axes = node.input[3] ? constantValues(model, node.input[3]) : null;
        if (!pads || axes) { stop('pads are not constants over all axes'); break; }
        if (pads[x.axis] !== 0 || pads[x.axis + rank] !== 0) { stop('pads the channel axis'); break; }
        passTo(node.output[0], x);
        break;
      }
      case 'ReduceMean':
      case 'ReduceMax':
      case 'ReduceSum':
      case 'ReduceMin': {
        if (!x) break;
        const rank = rankOf(node.input[0]) ?? 0;
        const axes = (ints(node, 'axes') ?? constantValues(model, node.input[1]) ?? []).map((a) => (a < 0 ? a + rank : a));
        if (!axes.length || axes.includes(x.axis)) { stop('reduces over the channels'); break; }
        const keep = attrInt(node, 'keepdims', 1) === 1;
        passTo(node.output[0], { axis: keep ? x.axis : x.axis - axes.filter((a) => a < x.axis).length, ids: x.ids });
        break;
      }
      case 'Concat': {
        const rank = rankOf(node.output[0]);
        let axis = attrInt(node, 'axis', 0);
        if (rank !== null && axis < 0) axis += rank;
        const labelled = inLabels.filter(Boolean) as ChannelLabel[];
        if (!labelled.length) break;
        if (labelled.every((l) => l.axis === axis)) {
          const parts: Int32Array[] = [];
          let ok = true;
          for (const [i, v] of node.input.entries()) {
            const l = inLabels[i];
            if (l) { parts.push(l.ids); continue; }
            const d = shapes.get(v)?.[axis];
            if (typeof d !== 'number') { ok = false; break; }
            parts.push(new Int32Array(d).fill(-1));
          }
          if (!ok) { stop('an input of unknown channel count'); break; }
          const ids = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
          let at = 0;
          for (const p of parts) { ids.set(p, at); at += p.length; }
          labels.set(node.output[0], { axis, ids });
        } else if (labelled.length === dataInputs.length && labelled.every((l) => l.axis === labelled[0].axis && l.ids.length === labelled[0].ids.length)) {
          for (const l of labelled.slice(1)) l.ids.forEach((id, i) => unite(labelled[0].ids[i], id));
          labels.set(node.output[0], labelled[0]);
        } else {
          stop('concatenates along another axis with inputs of other channels');
        }
        break;
      }
      case 'Split': {
        if (!x) break;
        const rank = rankOf(node.input[0]) ?? 0;
        let axis = attrInt(node, 'axis', 0);
        if (axis < 0) axis += rank;
        if (axis !== x.axis) { node.output.forEach((o) => passTo(o, x)); break; }
        const sizes = splitSizes(model, node, x.ids.length);
        if (sizes.some((s) => typeof s !== 'number') || sizes.reduce((a: number, b) => a + (b as number), 0) !== x.ids.length) { stop('split sizes unknown'); break; }
        let at = 0;
        node.output.forEach((o, i) => {
          const n = sizes[i] as number;
          labels.set(o, { axis, ids: x.ids.slice(at, at + n) });
          at += n;
        });
        rewrites.push({ node, kind: 'split', value: node.input[0] });
        break;
      }
      case 'Slice': {
        if (!x) break;
        const rank = rankOf(node.input[0]) ?? 0;
        const starts = constantValues(model, node.input[1]);
        const ends = constantValues(model, node.input[2]);
        const axes = node.input[3] ? constantValues(model, node.input[3]) : starts?.map((_, i) => i) ?? null;
        const steps = node.input[4] ? constantValues(model, node.input[4]) : starts?.map(() => 1) ?? null;
        if (!starts || !ends || !axes || !steps) { stop('starts/ends/axes/steps are not constants'); break; }
        const idx = axes.findIndex((a) => (a < 0 ? a + rank : a) === x.axis);
        if (idx < 0) { passTo(node.output[0], x); break; }
        if (steps[idx] !== 1) { stop('slices the channels with a step'); break; }
        const r = sliceRange(starts[idx], ends[idx], 1, x.ids.length);
        labels.set(node.output[0], { axis: x.axis, ids: x.ids.slice(r.start, r.start + r.count) });
        rewrites.push({ node, kind: 'slice', value: node.input[0], index: idx });
        break;
      }
      case 'Flatten':
      case 'Reshape': {
        if (!x) break;
        const inShape = shapes.get(node.input[0]);
        const outShape = shapes.get(node.output[0]);
        const spatial = inShape ? numel(inShape.slice(x.axis + 1)) : null;
        const flattensChannels = x.axis === 1 && spatial !== null && outShape?.length === 2 && (op === 'Flatten' ? attrInt(node, 'axis', 1) === 1 : true)
          && (outShape[1] === null || outShape[1] === x.ids.length * spatial);
        if (op === 'Reshape') {
          const target = constantValues(model, node.input[1]);
          // [N, C, H, W] -> [N, C·H·W] with the batch kept (0, -1 or the same value).
          const batchKept = target && target.length === 2 && (target[0] === 0 || target[0] === -1 || target[0] === inShape?.[0]);
          const featuresOk = target && (target[1] === -1 || target[1] === x.ids.length * (spatial ?? NaN));
          if (!flattensChannels || !batchKept || !featuresOk) { stop('reshape other than [N, C·H·W] flattening'); break; }
          rewrites.push({ node, kind: 'reshape', value: node.input[0], index: 1 });
        } else if (!flattensChannels) { stop('flatten other than axis 1 after the channels'); break; }
        const ids = new Int32Array(x.ids.length * spatial!);
        for (let c = 0; c < x.ids.length; c++) ids.fill(x.ids[c], c * spatial!, (c + 1) * spatial!);
        labels.set(node.output[0], { axis: 1, ids });
        break;
      }
      default: {
        if (PASS_THROUGH.has(op)) {
          passTo(node.output[0], x);
          if (op === 'Clip' || op === 'Dropout') {
            for (const l of inLabels.slice(1)) block(l, `${nodeLabel(node)}: a bound computed from channels`);
          }
          break;
        }
        if (ELEMENTWISE.has(op)) {
          const outRank = rankOf(node.output[0]);
          const labelled = node.input.map((v, i) => ({ v, i, l: inLabels[i] })).filter((e) => e.l);
          if (!labelled.length || outRank === null) { stop('shapes unknown'); break; }
          const outAxis = labelled[0].l!.axis + (outRank - (rankOf(labelled[0].v) ?? outRank));
          const C = labelled[0].l!.ids.length;
          let ok = true;
          for (const [i, v] of node.input.entries()) {
            if (!v || inLabels[i]) continue;
            const s = shapes.get(v);
            if (!s) { ok = false; break; }
            const pos = outAxis - (outRank - s.length);
            const d = pos >= 0 ? s[pos] : 1;
            if (d === 1) continue;
            if (isWeight(v) && d === C && floatWeight(v)) slices.push({ node, input: i, axis: pos, value: labelled[0].v, role: 'broadcast' });
            else { ok = false; break; }
          }
          const sameAxis = labelled.every((e) => e.l!.axis + (outRank - (rankOf(e.v) ?? outRank)) === outAxis && e.l!.ids.length === C);
          if (!ok || !sameAxis) { stop('an operand carries other channels'); break; }
          for (const e of labelled.slice(1)) e.l!.ids.forEach((id, k) => unite(labelled[0].l!.ids[k], id));
          labels.set(node.output[0], { axis: outAxis, ids: labelled[0].l!.ids });
          break;
        }
        stop(`${op} is not covered by the pruning rules`);
      }
    }
  }
  for (const o of g.output) block(labels.get(o.name ?? ''), `graph output '${o.name}'`);

  // Reasons move to the component roots.
  const blocked = new Map<number, string>();
  for (const [id, why] of reasonOf) {
    const r = find(id);
    if (!blocked.has(r)) blocked.set(r, why);
  }
  // Groups: producers whose channels share components.
  const pParent = producers.map((_, i) => i);
  const pFind = (i: number): number => (pParent[i] === i ? i : (pParent[i] = pFind(pParent[i])));
  const firstProducerOfRoot = new Map<number, number>();
  for (let id = 0; id < parent.length; id++) {
    const r = find(id);
    const p = producerOfIds[id];
    const q = firstProducerOfRoot.get(r);
    if (q === undefined) firstProducerOfRoot.set(r, p);
    else {
      const a = pFind(p);
      const b = pFind(q);
      if (a !== b) pParent[Math.max(a, b)] = Math.min(a, b);
    }
  }
  const groupIndex = new Map<number, number>();
  const groupOf = new Int32Array(producers.length);
  const groups: ChannelGroup[] = [];
  producers.forEach((p, i) => {
    const r = pFind(i);
    let gi = groupIndex.get(r);
    if (gi === undefined) {
      gi = groups.length;
      groupIndex.set(r, gi);
      groups.push({ id: gi, producers: [], channels: 0, components: 0, prunable: 0, reasons: [] });
    }
    groupOf[i] = gi;
    groups[gi].producers.push(p.node.name || p.node.output[0]);
    groups[gi].channels += p.channels;
  });
  const seenRoot = new Set<number>();
  for (let id = 0; id < parent.length; id++) {
    const r = find(id);
    if (seenRoot.has(r)) continue;
    seenRoot.add(r);
    const grp = groups[groupOf[producerOfIds[id]]];
    grp.components++;
    const why = blocked.get(r);
    if (why === undefined) grp.prunable++;
    else if (!grp.reasons.includes(why)) grp.reasons.push(why);
  }
  return { producers, labels, slices, rewrites, shapes, root: find, blocked, producerOf: Int32Array.from(producerOfIds), groups, groupOf };
}
