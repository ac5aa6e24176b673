/**
 * Shape inference for the ops convolutional and MLP graphs are made of. `value_info`, graph inputs
 * and outputs win where they give a dimension; otherwise shapes are derived op by op. A dimension is
 * a number, a symbol (`batch`), or null (unknown); an unknown rank is a null shape.
 */
import type { OnnxModel } from '../onnx/model.ts';
import { int64, type NodeMsg, type ValueInfoMsg } from '../onnx/proto.ts';
import { tensorDims } from '../onnx/tensor.ts';
import { constantValues } from './constants.ts';

export type Dim = number | string | null;
export type Shape = Dim[] | null;

function declared(v: ValueInfoMsg): Shape {
  const dims = v.type?.tensorType?.shape?.dim;
  if (!v.type?.tensorType?.shape) return null;
  return (dims ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? int64(d.dimValue) : null));
}

export function ints(node: NodeMsg, name: string): number[] | null {
  const a = node.attribute.find((x) => x.name === name);
  return a ? a.ints.map(int64) : null;
}

export function attrInt(node: NodeMsg, name: string, dflt: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? int64(a.i) : dflt;
}

function attrString(node: NodeMsg, name: string, dflt: string): string {
  const a = node.attribute.find((x) => x.name === name);
  return a?.s ? new TextDecoder().decode(a.s) : dflt;
}

const known = (d: Dim): d is number => typeof d === 'number';

/** Product of dims, or null when one is not a number. */
export function numel(dims: readonly Dim[]): number | null {
  let p = 1;
  for (const d of dims) {
    if (!known(d)) return null;
    p *= d;
  }
  return p;
}

function broadcast(shapes: Shape[]): Shape {
  if (shapes.some((s) => s === null)) return null;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = s![s!.length - rank + i];
      if (x === undefined || x === 1) continue;
      if (d === 1 || d === null) d = x;
      else if (known(d) && known(x) && d !== x) return null;
    }
    out.push(d);
  }
  return out;
}

/** Spatial output size of a convolution or pooling window. */
function windowed(inDims: Dim[], kernel: number[], node: NodeMsg, dilationsDefault = 1): Dim[] {
  const n = kernel.length;
  const strides = ints(node, 'strides') ?? Array(n).fill(1);
  const dil = ints(node, 'dilations') ?? Array(n).fill(dilationsDefault);
  const pads = ints(node, 'pads') ?? Array(2 * n).fill(0);
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  return inDims.map((d, i) => {
    if (!known(d)) return null;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(d / strides[i]);
    const pad = autoPad === 'VALID' ? 0 : pads[i] + pads[i + n];
    const span = d + pad - dil[i] * (kernel[i] - 1) - 1;
    return (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
  });
}

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/**
 * Graph inputs with symbolic dims after the batch, made concrete for MAC counts: `given` dims per
 * input (e.g. the calibration samples'), else 224 for image-like inputs ([N, C, H, W]). MAC
 * *ratios* between layers barely depend on the size chosen; the value is reported.
 */
export function nominalInputShapes(model: OnnxModel, given?: ReadonlyMap<string, number[]>): Map<string, Dim[]> {
  const g = model.msg.graph!;
  const inits = new Set(g.initializer.map((t) => t.name));
  const out = new Map<string, Dim[]>();
  for (const v of g.input) {
    if (inits.has(v.name)) continue;
    const dims = declared(v);
    if (!dims || dims.slice(1).every((d) => typeof d === 'number')) continue;
    const sample = given?.get(v.name ?? '');
    if (sample && sample.length === dims.length - 1) out.set(v.name ?? '', [dims[0], ...sample]);
    else if (dims.length === 4) out.set(v.name ?? '', dims.map((d, i) => (i === 0 || typeof d === 'number' ? d : 224)));
  }
  return out;
}

/**
 * Shapes of every value the analysis can derive. Weights' shapes come from their tensors;
 * `inputs` overrides graph inputs' declared dims (see nominalInputShapes).
 */
export function inferShapes(model: OnnxModel, inputs?: ReadonlyMap<string, Dim[]>): Map<string, Shape> {
  const g = model.msg.graph!;
  const shapes = new Map<string, Shape>();
  for (const w of model.graph.weights.values()) shapes.set(w.name, tensorDims(w.tensor));
  const given = new Map<string, Shape>();
  for (const v of [...g.input, ...g.valueInfo, ...g.output]) {
    const s = declared(v);
    if (s) given.set(v.name ?? '', s);
  }
  for (const [k, v] of inputs ?? []) given.set(k, v);
  for (const [k, v] of given) if (!shapes.has(k)) shapes.set(k, v);
  const get = (name: string | undefined): Shape => (name ? shapes.get(name) ?? null : null);
  for (const node of g.node) {
    // Constant nodes' outputs are weights: their shapes come from their tensors (set above).
    if (node.opType === 'Constant' && node.output.every((o) => model.graph.weights.has(o))) continue;
    let outs: Shape[];
    try {
      outs = inferNode(model, node, get);
    } catch {
      outs = [];
    }
    node.output.forEach((o, i) => {
      const inferred = outs[i] ?? null;
      const decl = given.get(o);
      if (!decl) shapes.set(o, inferred);
      else if (inferred && inferred.length === decl.length) shapes.set(o, decl.map((d, j) => (d === null ? inferred[j] : d)));
      else shapes.set(o, decl);
    });
  }
  return shapes;
}

const UNARY = new Set([
  'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Identity', 'Dropout', 'Softmax', 'LogSoftmax',
  'Erf', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Cast', 'BatchNormalization', 'InstanceNormalization', 'LRN', 'Elu', 'Selu',
  'Softplus', 'Mish', 'Gelu', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Not', 'LayerNormalization', 'QuantizeLinear',
  'DequantizeLinear', 'Hardmax', 'Celu', 'ThresholdedRelu', 'Sin', 'Cos',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'PRelu', 'Where', 'Equal', 'Less', 'Greater', 'And', 'Or']);

function inferNode(model: OnnxModel, node: NodeMsg, get: (n: string | undefined) => Shape): Shape[] {
  const op = node.opType ?? '';
  if ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx') return [];
  const x = get(node.input[0]);
  if (UNARY.has(op)) return [x];
  if (BINARY.has(op)) return [broadcast(node.input.filter(Boolean).map(get))];
  switch (op) {
    case 'Conv':
    case 'ConvTranspose': {
      const w = get(node.input[1]);
      if (!x || !w) return [];
      const kernel = ints(node, 'kernel_shape') ?? (w.slice(2) as number[]);
      const group = attrInt(node, 'group', 1);
      if (op === 'Conv') return [[x[0], w[0], ...windowed(x.slice(2), kernel, node)]];
      const strides = ints(node, 'strides') ?? kernel.map(() => 1);
      const explicit = ints(node, 'output_shape');
      const pads = ints(node, 'pads') ?? Array(2 * kernel.length).fill(0);
      const outPad = ints(node, 'output_padding') ?? kernel.map(() => 0);
      const dil = ints(node, 'dilations') ?? kernel.map(() => 1);
      const cout = known(w[1]) ? w[1] * group : null;
      const spatial = explicit ?? x.slice(2).map((d, i) => (known(d) ? strides[i] * (d - 1) + outPad[i] + ((kernel[i] - 1) * dil[i] + 1) - pads[i] - pads[i + kernel.length] : null));
      return [[x[0], cout, ...spatial]];
    }
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      if (!x) return [];
      const out: Shape = [x[0], x[1], ...windowed(x.slice(2), ints(node, 'kernel_shape') ?? [], node)];
      return [out, out];
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
      return [x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : null];
    case 'Gemm': {
      const b = get(node.input[1]);
      if (!x || !b) return [];
      const m = attrInt(node, 'transA', 0) ? x[1] : x[0];
      const n = attrInt(node, 'transB', 0) ? b[0] : b[1];
      return [[m, n]];
    }
    case 'MatMul': {
      const b = get(node.input[1]);
      if (!x || !b) return [];
      if (b.length === 1) return [x.slice(0, -1)];
      const a = x.length === 1 ? [1, x[0]] : x;
      const batch = broadcast([a.slice(0, -2), b.slice(0, -2)]);
      if (!batch) return [];
      const out = [...batch, a[a.length - 2], b[b.length - 1]];
      return [x.length === 1 ? out.filter((_, i) => i !== out.length - 2) : out];
    }
    case 'Flatten': {
      if (!x) return [];
      const axis = normAxis(attrInt(node, 'axis', 1), x.length);
      return [[numel(x.slice(0, axis)) ?? (axis === 1 ? x[0] : null), numel(x.slice(axis))]];
    }
    case 'Reshape': {
      const target = constantValues(model, node.input[1]);
      if (!target) return [];
      const allowZero = attrInt(node, 'allowzero', 0) === 1;
      const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? (x ? x[i] ?? null : null) : d === -1 ? null : d));
      const minus = target.indexOf(-1);
      if (minus >= 0 && x) {
        const total = numel(x);
        const rest = numel(out.filter((_, i) => i !== minus));
        if (total !== null && rest) out[minus] = total / rest;
        else if (out.filter((_, i) => i !== minus).every((d, i) => d === x[i])) out[minus] = numel(x.slice(out.length - 1));
      }
      return [out];
    }
    case 'Concat': {
      const parts = node.input.map(get);
      if (parts.some((p) => !p)) return [];
      const rank = parts[0]!.length;
      const axis = normAxis(attrInt(node, 'axis', 0), rank);
      const out = [...parts[0]!];
      out[axis] = numel(parts.map((p) => p![axis]));
      return [out];
    }
    case 'Split': {
      if (!x) return [];
      const axis = normAxis(attrInt(node, 'axis', 0), x.length);
      const sizes = splitSizes(model, node, x[axis]);
      return sizes.map((s) => x.map((d, i) => (i === axis ? s : d)));
    }
    case 'Slice': {
      if (!x) return [];
      const starts = constantValues(model, node.input[1]);
      const ends = constantValues(model, node.input[2]);
      const axes = node.input[3] ? constantValues(model, node.input[3]) : starts?.map((_, i) => i) ?? null;
      const steps = node.input[4] ? constantValues(model, node.input[4]) : starts?.map(() => 1) ?? null;
      if (!starts || !ends || !axes || !steps) return [];
      const out = [...x];
      axes.forEach((a, i) => {
        const ax = normAxis(a, x.length);
        const d = x[ax];
        if (!known(d)) { out[ax] = null; return; }
        const r = sliceRange(starts[i], ends[i], steps[i], d);
        out[ax] = r.count;
      });
      return [out];
    }
    case 'Resize':
    case 'Upsample': {
      if (!x) return [];
      const sizes = op === 'Resize' && node.input[3] ? constantValues(model, node.input[3]) : null;
      if (sizes && sizes.length === x.length) return [sizes];
      const scales = constantValues(model, op === 'Resize' ? node.input[2] : node.input[1]);
      if (!scales || scales.length !== x.length) return [[x[0], x[1], ...x.slice(2).map(() => null)]];
      return [x.map((d, i) => (known(d) ? Math.floor(d * scales[i]) : d))];
    }
    case 'Pad': {
      if (!x) return [];
      const pads = constantValues(model, node.input[1]) ?? ints(node, 'pads');
      if (!pads || pads.length !== 2 * x.length) return [x.map(() => null)];
      return [x.map((d, i) => (known(d) ? d + pads[i] + pads[i + x.length] : d))];
    }
    case 'Transpose': {
      if (!x) return [];
      const perm = ints(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return [perm.map((p) => x[p])];
    }
    case 'ReduceMean':
    case 'ReduceSum':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceL2': {
      if (!x) return [];
      const axes = (ints(node, 'axes') ?? constantValues(model, node.input[1]) ?? x.map((_, i) => i)).map((a) => normAxis(a, x.length));
      const keep = attrInt(node, 'keepdims', 1) === 1;
      return [keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i))];
    }
    case 'Squeeze': {
      if (!x) return [];
      const axes = (ints(node, 'axes') ?? constantValues(model, node.input[1]) ?? x.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => normAxis(a, x.length));
      return [x.filter((_, i) => !axes.includes(i))];
    }
    case 'Unsqueeze': {
      if (!x) return [];
      const axes = ints(node, 'axes') ?? constantValues(model, node.input[1]);
      if (!axes) return [];
      const rank = x.length + axes.length;
      const at = new Set(axes.map((a) => normAxis(a, rank)));
      const out: Dim[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(at.has(i) ? 1 : x[j++]);
      return [out];
    }
    case 'Shape':
      return [x ? [x.length] : null];
    default:
      return [];
  }
}

/** The sizes a Split node produces along its axis. */
export function splitSizes(model: OnnxModel, node: NodeMsg, dim: Dim): Dim[] {
  const given = ints(node, 'split') ?? (node.input[1] ? constantValues(model, node.input[1]) : null);
  if (given) return given;
  const n = node.output.length;
  if (!known(dim)) return Array(n).fill(null);
  const each = Math.ceil(dim / n);
  return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(each, dim - i * each)));
}

/** ONNX Slice semantics along one axis of size d: first index, step and element count. */
export function sliceRange(start: number, end: number, step: number, d: number): { start: number; step: number; count: number } {
  const clampIdx = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
  const s = step > 0 ? clampIdx(start, 0, d) : clampIdx(start, -1, d - 1);
  const e = step > 0 ? clampIdx(end, 0, d) : clampIdx(end, -1, d - 1);
  const count = step > 0 ? Math.max(0, Math.ceil((e - s) / step)) : Math.max(0, Math.ceil((s - e) / -step));
  return { start: s, step, count };
}
