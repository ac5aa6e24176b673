/**
 * Reference architectures built in TypeScript (no Python, no exporter): torchvision's MobileNetV2
 * and ResNet-18 as PyTorch exports them after batch-norm folding (Conv with bias, Clip/Relu, Add,
 * GlobalAveragePool, Flatten, Gemm), and a small transformer encoder (MatMul-heavy). Weights are
 * seeded random (He-normal): these models serve structure, fusion and latency tests; accuracy
 * claims come from the trained MNIST / Fashion-MNIST CNNs.
 */
import { GraphBuilder, float } from '../../src/onnx/builder.ts';
import type { ModelMsg } from '../../src/onnx/proto.ts';
import { seededRandom } from '../../src/random.ts';

function normal(r: () => number): () => number {
  return () => {
    const u = Math.max(r(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  };
}

class Weights {
  private readonly n: () => number;
  constructor(seed: number) {
    this.n = normal(seededRandom(seed));
  }
  he(count: number, fanIn: number): Float32Array {
    const s = Math.sqrt(2 / fanIn);
    return Float32Array.from({ length: count }, () => this.n() * s);
  }
  small(count: number, scale = 0.05): Float32Array {
    return Float32Array.from({ length: count }, () => this.n() * scale);
  }
}

interface ConvSpec {
  cin: number;
  cout: number;
  k: number;
  stride?: number;
  group?: number;
}

function conv(b: GraphBuilder, w: Weights, x: string, s: ConvSpec, name: string, identityBias = false): string {
  const group = s.group ?? 1;
  const fanIn = (s.cin / group) * s.k * s.k;
  const W = b.init(`${name}.weight`, [s.cout, s.cin / group, s.k, s.k], w.he(s.cout * fanIn, fanIn));
  let B = b.init(`${name}.bias`, [s.cout], w.small(s.cout));
  // PyTorch routes de-duplicated constants through Identity nodes; static W8A8 must fold them.
  if (identityBias) B = b.op('Identity', [B], {}, `${name}.bias_identity`);
  const pad = Math.floor(s.k / 2);
  return b.op('Conv', [x, W, B], { kernel_shape: [s.k, s.k], strides: [s.stride ?? 1, s.stride ?? 1], pads: [pad, pad, pad, pad], group, dilations: [1, 1] }, name);
}

function head(b: GraphBuilder, w: Weights, x: string, cin: number, classes: number): void {
  const pooled = b.op('GlobalAveragePool', [x]);
  const flat = b.op('Flatten', [pooled], { axis: 1 });
  const W = b.init('fc.weight', [classes, cin], w.he(classes * cin, cin));
  const B = b.init('fc.bias', [classes], w.small(classes));
  b.node('Gemm', [flat, W, B], { alpha: float(1), beta: float(1), transB: 1 }, { outputs: ['logits'], name: 'fc' });
  b.output('logits', ['batch', classes]);
}

/** torchvision.models.mobilenet_v2(num_classes) as exported at opset 13 (Clip with min/max inputs). */
export function mobileNetV2(opts: { seed?: number; classes?: number; identityBiases?: boolean; size?: number } = {}): ModelMsg {
  const b = new GraphBuilder('mobilenet_v2');
  const w = new Weights(opts.seed ?? 0);
  const size = opts.size ?? 224;
  const lo = b.scalar('clip_min', 0);
  const hi = b.scalar('clip_max', 6);
  const relu6 = (x: string) => b.op('Clip', [x, lo, hi]);
  const idb = Boolean(opts.identityBiases);
  let x = b.input('input', ['batch', 3, size, size]);
  x = relu6(conv(b, w, x, { cin: 3, cout: 32, k: 3, stride: 2 }, 'features.0', idb));
  let cin = 32;
  const settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
  let block = 1;
  for (const [t, c, n, s] of settings) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const hidden = cin * t;
      const name = `features.${block++}`;
      let y = x;
      if (t !== 1) y = relu6(conv(b, w, y, { cin, cout: hidden, k: 1 }, `${name}.expand`, idb));
      y = relu6(conv(b, w, y, { cin: hidden, cout: hidden, k: 3, stride, group: hidden }, `${name}.dw`, idb));
      y = conv(b, w, y, { cin: hidden, cout: c, k: 1 }, `${name}.project`, idb);
      x = stride === 1 && cin === c ? b.op('Add', [x, y]) : y;
      cin = c;
    }
  }
  x = relu6(conv(b, w, x, { cin, cout: 1280, k: 1 }, `features.${block}`, idb));
  head(b, w, x, 1280, opts.classes ?? 1000);
  return b.build(13);
}

/** torchvision.models.resnet18(num_classes) as exported at opset 13 (batch norm folded into Conv). */
export function resnet18(opts: { seed?: number; classes?: number; size?: number } = {}): ModelMsg {
  const b = new GraphBuilder('resnet18');
  const w = new Weights(opts.seed ?? 0);
  const size = opts.size ?? 224;
  let x = b.input('input', ['batch', 3, size, size]);
  x = b.op('Relu', [conv(b, w, x, { cin: 3, cout: 64, k: 7, stride: 2 }, 'conv1')]);
  x = b.op('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let cin = 64;
  for (const [layer, cout] of [[1, 64], [2, 128], [3, 256], [4, 512]]) {
    for (let i = 0; i < 2; i++) {
      const stride = layer > 1 && i === 0 ? 2 : 1;
      const name = `layer${layer}.${i}`;
      let y = b.op('Relu', [conv(b, w, x, { cin, cout, k: 3, stride }, `${name}.conv1`)]);
      y = conv(b, w, y, { cin: cout, cout, k: 3 }, `${name}.conv2`);
      const identity = stride !== 1 || cin !== cout ? conv(b, w, x, { cin, cout, k: 1, stride }, `${name}.downsample`) : x;
      x = b.op('Relu', [b.op('Add', [y, identity])]);
      cin = cout;
    }
  }
  head(b, w, x, 512, opts.classes ?? 1000);
  return b.build(13);
}

/**
 * A small transformer encoder (BERT-like post-norm layers: attention + GELU MLP) on token
 * embeddings `[batch, seq, dim]`: nearly all of its weights feed MatMul, as in NLP models.
 */
export function transformerEncoder(opts: { seed?: number; layers?: number; dim?: number; heads?: number; seq?: number; classes?: number } = {}): ModelMsg {
  const b = new GraphBuilder('transformer');
  const w = new Weights(opts.seed ?? 0);
  const dim = opts.dim ?? 256;
  const heads = opts.heads ?? 4;
  const seq = opts.seq ?? 64;
  const hd = dim / heads;
  const linear = (x: string, cin: number, cout: number, name: string) => {
    const W = b.init(`${name}.weight`, [cin, cout], w.he(cin * cout, cin));
    const B = b.init(`${name}.bias`, [cout], w.small(cout));
    return b.op('Add', [b.op('MatMul', [x, W], {}, name), B]);
  };
  const layerNorm = (x: string, name: string) => {
    const g = b.init(`${name}.weight`, [dim], Float32Array.from({ length: dim }, () => 1));
    const be = b.init(`${name}.bias`, [dim], new Float32Array(dim));
    return b.op('LayerNormalization', [x, g, be], { axis: -1, epsilon: 1e-5 }, name);
  };
  const splitHeads = b.int64s('split_heads_shape', [0, seq, heads, hd]);
  const mergeHeads = b.int64s('merge_heads_shape', [0, seq, dim]);
  const scale = b.scalar('attn_scale', 1 / Math.sqrt(hd));
  const half = b.scalar('half', 0.5);
  const one = b.scalar('one', 1);
  const invSqrt2 = b.scalar('inv_sqrt2', Math.SQRT1_2);
  let x = b.input('input', ['batch', seq, dim]);
  for (let l = 0; l < (opts.layers ?? 4); l++) {
    const p = `layer${l}`;
    const heads4 = (t: string, perm: number[]) => b.op('Transpose', [b.op('Reshape', [t, splitHeads])], { perm });
    const q = heads4(linear(x, dim, dim, `${p}.q`), [0, 2, 1, 3]);
    const k = heads4(linear(x, dim, dim, `${p}.k`), [0, 2, 3, 1]);
    const v = heads4(linear(x, dim, dim, `${p}.v`), [0, 2, 1, 3]);
    const att = b.op('Softmax', [b.op('Mul', [b.op('MatMul', [q, k]), scale])], { axis: -1 });
    const ctx = b.op('Reshape', [b.op('Transpose', [b.op('MatMul', [att, v])], { perm: [0, 2, 1, 3] }), mergeHeads]);
    x = layerNorm(b.op('Add', [x, linear(ctx, dim, dim, `${p}.out`)]), `${p}.ln1`);
    const h = linear(x, dim, 4 * dim, `${p}.fc1`);
    const gelu = b.op('Mul', [b.op('Mul', [h, half]), b.op('Add', [b.op('Erf', [b.op('Mul', [h, invSqrt2])]), one])]);
    x = layerNorm(b.op('Add', [x, linear(gelu, 4 * dim, dim, `${p}.fc2`)]), `${p}.ln2`);
  }
  const pooled = b.op('ReduceMean', [x], { axes: [1], keepdims: 0 });
  const classes = opts.classes ?? 16;
  const W = b.init('classifier.weight', [dim, classes], w.he(dim * classes, dim));
  const B = b.init('classifier.bias', [classes], w.small(classes));
  b.node('Add', [b.op('MatMul', [pooled, W], {}, 'classifier'), B], {}, { outputs: ['logits'] });
  b.output('logits', ['batch', classes]);
  return b.build(17);
}
