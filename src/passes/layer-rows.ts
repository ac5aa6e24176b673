/**
 * Rows of a layer's input features for the data-aware methods (pruning recovery, GPTQ): im2col of
 * a 2-D convolution's input at chosen output positions, or a Gemm / MatMul's input rows; a bias
 * column of ones where the layer has a bias.
 */
import type * as ort from 'onnxruntime-node';
import type { OnnxModel } from '../onnx/model.ts';
import type { NodeMsg } from '../onnx/proto.ts';
import { tensorDims } from '../onnx/tensor.ts';
import { seededRandom } from '../random.ts';
import { attrInt, ints } from '../analysis/shapes.ts';

export interface Geometry {
  op: 'Conv' | 'Gemm' | 'MatMul' | 'depthwise';
  /** Input features per row (without the bias column). */
  k: number;
  /** Output channels (kept). */
  m: number;
  bias: boolean;
  conv?: { kh: number; kw: number; sh: number; sw: number; dh: number; dw: number; pads: number[]; autoPad: string };
}

/** How a layer's input becomes rows of features (im2col for 2-D convolutions), or why it cannot. */
export function layerGeometry(node: NodeMsg, model: OnnxModel, depthwise = false): Geometry | string {
  const w = model.graph.weights.get(node.input[1]);
  if (!w) return 'weight is not a constant';
  const dims = tensorDims(w.tensor);
  if (depthwise) return { op: 'depthwise', k: 1, m: dims[0], bias: true };
  switch (node.opType) {
    case 'Conv': {
      if (dims.length !== 4) return 'least squares handles 2-D convolutions only';
      const autoPad = (() => {
        const a = node.attribute.find((x) => x.name === 'auto_pad');
        return a?.s ? new TextDecoder().decode(a.s) : 'NOTSET';
      })();
      const strides = ints(node, 'strides') ?? [1, 1];
      const dil = ints(node, 'dilations') ?? [1, 1];
      return {
        op: 'Conv', k: dims[1] * dims[2] * dims[3], m: dims[0], bias: true,
        conv: { kh: dims[2], kw: dims[3], sh: strides[0], sw: strides[1], dh: dil[0], dw: dil[1], pads: ints(node, 'pads') ?? [0, 0, 0, 0], autoPad },
      };
    }
    case 'Gemm': {
      const transB = attrInt(node, 'transB', 0) === 1;
      return { op: 'Gemm', k: transB ? dims[1] : dims[0], m: transB ? dims[0] : dims[1], bias: true };
    }
    case 'MatMul':
      return { op: 'MatMul', k: dims[0], m: dims[1], bias: false };
    default:
      return `${node.opType} is not reconstructed`;
  }
}

/** Output positions (flat oh·OW+ow) sampled for image `sample` of target `t`: the same in both models. */
export function positionsFor(t: number, sample: number, count: number, outSpatial: number, seed: number): number[] {
  if (outSpatial <= count) return Array.from({ length: outSpatial }, (_, i) => i);
  const r = seededRandom((seed * 1000003 + t * 7919 + sample * 104729) >>> 0);
  return Array.from({ length: count }, () => Math.floor(r() * outSpatial));
}

/** Rows of X (features + optional 1) for one image of a batch, at the given output positions. */
export function inputRows(g: Geometry, x: ort.Tensor, n: number, positions: number[] | null, outDims: readonly number[], into: Float32Array, at: number): number {
  const F = g.k + (g.bias ? 1 : 0);
  const data = x.data as Float32Array;
  if (g.op === 'Conv') {
    const [, C, H, W] = x.dims as number[];
    const c = g.conv!;
    const OW = outDims[3];
    let top = c.pads[0];
    let left = c.pads[1];
    if (c.autoPad === 'SAME_UPPER' || c.autoPad === 'SAME_LOWER') {
      const total = (d: number, o: number, s: number, k: number, dl: number) => Math.max(0, (o - 1) * s + (k - 1) * dl + 1 - d);
      const th = total(H, outDims[2], c.sh, c.kh, c.dh);
      const tw = total(W, OW, c.sw, c.kw, c.dw);
      top = c.autoPad === 'SAME_UPPER' ? Math.floor(th / 2) : Math.ceil(th / 2);
      left = c.autoPad === 'SAME_UPPER' ? Math.floor(tw / 2) : Math.ceil(tw / 2);
    } else if (c.autoPad === 'VALID') {
      top = 0;
      left = 0;
    }
    for (const p of positions!) {
      const oh = Math.floor(p / OW);
      const ow = p % OW;
      let f = at * F;
      for (let ch = 0; ch < C; ch++) {
        const plane = (n * C + ch) * H * W;
        for (let i = 0; i < c.kh; i++) {
          const ih = oh * c.sh - top + i * c.dh;
          for (let j = 0; j < c.kw; j++) {
            const iw = ow * c.sw - left + j * c.dw;
            into[f++] = ih >= 0 && ih < H && iw >= 0 && iw < W ? data[plane + ih * W + iw] : 0;
          }
        }
      }
      if (g.bias) into[f] = 1;
      at++;
    }
    return at;
  }
  // Gemm / MatMul: the rows of this image (all of them, or the sampled ones).
  const K = g.k;
  const perImage = data.length / Number(x.dims[0]) / K;
  const rows = positions ?? Array.from({ length: perImage }, (_, i) => i);
  for (const r of rows) {
    const src = (n * perImage + r) * K;
    into.set(data.subarray(src, src + K), at * F);
    if (g.bias) into[at * F + K] = 1;
    at++;
  }
  return at;
}


/**
 * Layers in waves: a layer's wave is one more than the highest wave among layers upstream of its
 * input, so a wave's inputs can be read once every earlier wave is done (sequential methods).
 * `items` may come in any order: waves are assigned in graph (topological) order, since a layer's
 * wave reads those of the layers upstream of it (in the order given, a layer listed before an
 * upstream one read that one's wave as 0: the sparsify pass lists weights by name, and its
 * reconstruction fitted the classifier before the convolutions feeding it).
 */
export function layerWaves<T extends { node: NodeMsg }>(model: OnnxModel, items: readonly T[]): T[][] {
  const index = new Map(items.map((t, i) => [t.node, i]));
  const wave = new Array<number>(items.length).fill(0);
  const memo = new Map<string, number>();
  const upstream = (v: string): number => {
    const hit = memo.get(v);
    if (hit !== undefined) return hit;
    memo.set(v, -1);
    const p = model.graph.producers.get(v);
    let best = -1;
    if (p) {
      const ti = index.get(p);
      if (ti !== undefined) best = wave[ti];
      for (const i of p.input) if (i && !model.graph.weights.has(i)) best = Math.max(best, upstream(i));
    }
    memo.set(v, best);
    return best;
  };
  const position = new Map(model.msg.graph!.node.map((n, i) => [n, i]));
  const topological = items.map((_, i) => i).sort((a, b) => (position.get(items[a].node) ?? 0) - (position.get(items[b].node) ?? 0));
  for (const i of topological) wave[i] = upstream(items[i].node.input[0]) + 1;
  const out: T[][] = [];
  items.forEach((t, i) => (out[wave[i]] ??= []).push(t));
  return out.filter(Boolean);
}
