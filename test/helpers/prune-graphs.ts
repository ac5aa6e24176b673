/**
 * Small graphs, one per channel-dependency rule, built in TypeScript with seeded weights: residual
 * blocks with a strided 1x1 shortcut and BatchNormalization, an inverted residual with depthwise +
 * squeeze-excitation + HardSwish, a U-Net skip (Concat after Resize), a YOLO-style Split -> Concat
 * block, Flatten -> Gemm, a grouped convolution and a Transpose (both stop propagation).
 */
import { GraphBuilder, float } from '../../src/onnx/builder.ts';
import type { ModelMsg } from '../../src/onnx/proto.ts';
import { seededRandom } from '../../src/random.ts';

export class Net {
  readonly b: GraphBuilder;
  private readonly r: () => number;
  constructor(name: string, seed = 7) {
    this.b = new GraphBuilder(name);
    this.r = seededRandom(seed);
  }
  values(n: number, scale: number): Float32Array {
    return Float32Array.from({ length: n }, () => (this.r() * 2 - 1) * scale);
  }
  conv(x: string, cin: number, cout: number, k: number, name: string, o: { stride?: number; group?: number; bias?: boolean } = {}): string {
    const group = o.group ?? 1;
    const fan = (cin / group) * k * k;
    const W = this.b.init(`${name}.weight`, [cout, cin / group, k, k], this.values(cout * fan, Math.sqrt(3 / fan)));
    const inputs = [x, W];
    if (o.bias !== false) inputs.push(this.b.init(`${name}.bias`, [cout], this.values(cout, 0.1)));
    const p = Math.floor(k / 2);
    const s = o.stride ?? 1;
    return this.b.op('Conv', inputs, { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], group }, name);
  }
  bn(x: string, c: number, name: string): string {
    const pos = () => Float32Array.from({ length: c }, () => 0.5 + this.r());
    return this.b.op('BatchNormalization', [x, this.b.init(`${name}.scale`, [c], pos()), this.b.init(`${name}.bias`, [c], this.values(c, 0.1)),
      this.b.init(`${name}.mean`, [c], this.values(c, 0.1)), this.b.init(`${name}.var`, [c], pos())], { epsilon: float(1e-5) }, name);
  }
  relu(x: string): string {
    return this.b.op('Relu', [x]);
  }
  gap(x: string): string {
    return this.b.op('GlobalAveragePool', [x]);
  }
  fc(x: string, cin: number, cout: number, name: string): string {
    return this.b.op('Gemm', [x, this.b.init(`${name}.weight`, [cout, cin], this.values(cout * cin, Math.sqrt(3 / cin))), this.b.init(`${name}.bias`, [cout], this.values(cout, 0.1))],
      { alpha: float(1), beta: float(1), transB: 1 }, name);
  }
  logits(x: string, cin: number, classes: number): void {
    const flat = this.b.op('Flatten', [this.gap(x)], { axis: 1 });
    const W = this.b.init('head.weight', [classes, cin], this.values(classes * cin, Math.sqrt(3 / cin)));
    this.b.node('Gemm', [flat, W, this.b.init('head.bias', [classes], this.values(classes, 0.1))], { transB: 1 }, { outputs: ['logits'], name: 'head' });
    this.b.output('logits', ['batch', classes]);
  }
}

/** Two residual blocks: identity, then stride 2 with a 1x1 strided shortcut; BatchNormalization kept as nodes. */
export function residualNet(): ModelMsg {
  const n = new Net('residual');
  let x = n.b.input('input', ['batch', 3, 16, 16]);
  x = n.relu(n.bn(n.conv(x, 3, 16, 3, 'stem', { bias: false }), 16, 'stem.bn'));
  let y = n.relu(n.bn(n.conv(x, 16, 16, 3, 'b1.conv1', { bias: false }), 16, 'b1.bn1'));
  y = n.bn(n.conv(y, 16, 16, 3, 'b1.conv2', { bias: false }), 16, 'b1.bn2');
  x = n.relu(n.b.op('Add', [y, x]));
  y = n.relu(n.conv(x, 16, 32, 3, 'b2.conv1', { stride: 2 }));
  y = n.conv(y, 32, 32, 3, 'b2.conv2');
  const short = n.conv(x, 16, 32, 1, 'b2.shortcut', { stride: 2 });
  x = n.relu(n.b.op('Add', [y, short]));
  n.logits(x, 32, 10);
  return n.b.build(13);
}

/** Inverted residual: 1x1 expand, depthwise 3x3, squeeze-excitation, HardSwish (opset 14), 1x1 project, residual Add. */
export function invertedResidualNet(): ModelMsg {
  const n = new Net('inverted');
  const hs = (v: string) => n.b.op('HardSwish', [v]);
  let x = n.b.input('input', ['batch', 3, 16, 16]);
  x = hs(n.conv(x, 3, 16, 3, 'stem'));
  let y = hs(n.conv(x, 16, 48, 1, 'ir.expand'));
  y = hs(n.conv(y, 48, 48, 3, 'ir.dw', { group: 48 }));
  const s = n.relu(n.conv(n.gap(y), 48, 16, 1, 'ir.se.reduce'));
  const gate = n.b.op('HardSigmoid', [n.conv(s, 16, 48, 1, 'ir.se.expand')], { alpha: float(1 / 6), beta: float(0.5) });
  y = n.b.op('Mul', [y, gate]);
  y = n.conv(y, 48, 16, 1, 'ir.project');
  x = n.b.op('Add', [x, y]);
  // A per-channel constant broadcast along the channels (sliced with them).
  x = n.b.op('Mul', [x, n.b.init('channel_gain', [1, 16, 1, 1], Float32Array.from({ length: 16 }, (_, i) => 1 + i / 16))]);
  n.logits(x, 16, 10);
  return n.b.build(14);
}

/** U-Net skip: encoder, MaxPool, decoder Resize x2, Concat with the encoder features, 1x1 head (segmentation logits). */
export function unetNet(): ModelMsg {
  const n = new Net('unet');
  const x = n.b.input('input', ['batch', 1, 16, 16]);
  const e1 = n.relu(n.conv(x, 1, 16, 3, 'enc1'));
  const e2 = n.relu(n.conv(n.b.op('MaxPool', [e1], { kernel_shape: [2, 2], strides: [2, 2] }), 16, 32, 3, 'enc2'));
  const up = n.b.op('Resize', [e2, '', n.b.init('scales', [4], Float32Array.of(1, 1, 2, 2))], { mode: 'nearest' });
  const cat = n.b.op('Concat', [up, e1], { axis: 1 });
  const d1 = n.relu(n.conv(cat, 48, 16, 3, 'dec1'));
  const W = n.b.init('seg.weight', [5, 16, 1, 1], n.values(80, 0.4));
  n.b.node('Conv', [d1, W, n.b.init('seg.bias', [5], n.values(5, 0.1))], { kernel_shape: [1, 1] }, { outputs: ['logits'], name: 'seg' });
  n.b.output('logits', ['batch', 5, 16, 16]);
  return n.b.build(13);
}

/** YOLO-style C2f block: 1x1 conv, Split in two, a residual bottleneck on one half, Concat of all parts, 1x1 conv. */
export function splitConcatNet(): ModelMsg {
  const n = new Net('c2f');
  const silu = (v: string) => n.b.op('Mul', [v, n.b.op('Sigmoid', [v])]);
  let x = n.b.input('input', ['batch', 3, 16, 16]);
  x = silu(n.conv(x, 3, 32, 3, 'stem'));
  const [a, c] = n.b.node('Split', [n.b.op('Identity', [x]), n.b.int64s('split', [16, 16])], { axis: 1 }, { outputs: 2, name: 'split' });
  let m = silu(n.conv(c, 16, 16, 3, 'm.conv1'));
  m = silu(n.conv(m, 16, 16, 3, 'm.conv2'));
  const m2 = n.b.op('Add', [c, m]);
  const cat = n.b.op('Concat', [a, c, m2], { axis: 1 });
  x = silu(n.conv(cat, 48, 32, 1, 'cv2'));
  // Slice on the channel axis (starts/ends rewritten after pruning).
  const sl = n.b.op('Slice', [x, n.b.int64s('starts', [8]), n.b.int64s('ends', [32]), n.b.int64s('axes', [1])]);
  n.logits(sl, 24, 10);
  return n.b.build(13);
}

/** Flatten of a [N, 16, 4, 4] feature map into a Gemm (each channel is 16 features), then a Reshape variant. */
export function flattenGemmNet(reshape = false, hidden = true): ModelMsg {
  const n = new Net('flatten');
  let x = n.b.input('input', ['batch', 1, 8, 8]);
  x = n.relu(n.conv(x, 1, 16, 3, 'conv'));
  x = n.b.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
  const flat = reshape ? n.b.op('Reshape', [x, n.b.int64s('shape', [-1, 256])]) : n.b.op('Flatten', [x], { axis: 1 });
  const h = hidden ? n.relu(n.fc(flat, 256, 32, 'fc1')) : flat;
  const k = hidden ? 32 : 256;
  const W = n.b.init('fc2.weight', [10, k], n.values(10 * k, 0.3));
  n.b.node('Gemm', [h, W, n.b.init('fc2.bias', [10], n.values(10, 0.1))], { transB: 1 }, { outputs: ['logits'], name: 'fc2' });
  n.b.output('logits', ['batch', 10]);
  return n.b.build(13);
}

/** A grouped convolution (group 4, not depthwise) and a Transpose: both stop propagation; the rest prunes. */
export function stoppingNet(): ModelMsg {
  const n = new Net('stops');
  let x = n.b.input('input', ['batch', 3, 8, 8]);
  x = n.relu(n.conv(x, 3, 16, 3, 'a'));
  x = n.relu(n.conv(x, 16, 16, 3, 'grouped', { group: 4 }));
  x = n.relu(n.conv(x, 16, 16, 3, 'b'));
  x = n.conv(x, 16, 16, 3, 'c');
  const t = n.b.op('Transpose', [x], { perm: [0, 2, 3, 1] }, 'to_nhwc');
  const W = n.b.init('proj.weight', [16, 4], n.values(64, 0.3));
  n.b.node('MatMul', [t, W], {}, { outputs: ['features'], name: 'proj' });
  n.b.output('features', ['batch', 8, 8, 4]);
  return n.b.build(13);
}

/** Only graph-output producers and a Transpose: nothing can be pruned. */
export function unprunableNet(): ModelMsg {
  const n = new Net('unprunable');
  const x = n.b.input('input', ['batch', 3, 8, 8]);
  const t = n.b.op('Transpose', [n.conv(x, 3, 8, 3, 'a')], { perm: [0, 2, 3, 1] }, 'transpose');
  n.b.node('Relu', [t], {}, { outputs: ['out'] });
  n.b.output('out', ['batch', 8, 8, 8]);
  return n.b.build(13);
}

/** A decoder: Pad (spatial only), InstanceNormalization, PRelu with per-channel slopes, ConvTranspose upsampling. */
export function decoderNet(): ModelMsg {
  const n = new Net('decoder');
  let x = n.b.input('input', ['batch', 2, 8, 8]);
  x = n.conv(x, 2, 16, 3, 'enc');
  x = n.b.op('Pad', [x, n.b.int64s('pads', [0, 0, 1, 1, 0, 0, 1, 1])], { mode: 'reflect' });
  x = n.b.op('InstanceNormalization', [x, n.b.init('in.scale', [16], n.values(16, 1).map((v) => 1 + v / 2)), n.b.init('in.bias', [16], n.values(16, 0.1))], { epsilon: float(1e-5) });
  x = n.b.op('PRelu', [x, n.b.init('slope', [16, 1, 1], n.values(16, 0.25))]);
  const W = n.b.init('up.weight', [16, 8, 2, 2], n.values(16 * 8 * 4, 0.3));
  x = n.b.op('ConvTranspose', [x, W, n.b.init('up.bias', [8], n.values(8, 0.1))], { kernel_shape: [2, 2], strides: [2, 2] }, 'up');
  x = n.relu(x);
  const W2 = n.b.init('out.weight', [3, 8, 3, 3], n.values(3 * 8 * 9, 0.3));
  n.b.node('Conv', [x, W2], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { outputs: ['image'], name: 'out' });
  n.b.output('image', ['batch', 3, 20, 20]);
  return n.b.build(13);
}

/**
 * Shapes read from feature maps: `a`'s shape feeds Slice [2:4] and Gather [2, 3] (the spatial
 * sizes), and `a` is upsampled by a Resize whose sizes are Concat(Slice(Shape(a), 0, 2), [16, 16])
 * (PyTorch's interpolate export, as in LRASPP); `b`'s shape feeds Gather [1] (its channel count).
 * The shape reads are graph outputs of their own. `a` stays prunable; `b` does not.
 */
export function shapeReaderNet(): ModelMsg {
  const n = new Net('shape-readers');
  const x = n.b.input('input', ['batch', 3, 8, 8]);
  const a = n.relu(n.conv(x, 3, 16, 3, 'a'));
  const hw = n.b.op('Slice', [n.b.op('Shape', [a], {}, 'shape_a'), n.b.int64s('s', [2]), n.b.int64s('e', [4]), n.b.int64s('ax', [0])], {}, 'slice_hw');
  n.b.node('Identity', [hw], {}, { outputs: ['hw'] });
  n.b.output('hw', [2], 7);
  const hw2 = n.b.op('Gather', [n.b.op('Shape', [a], {}, 'shape_a2'), n.b.int64s('idx', [2, 3])], { axis: 0 }, 'gather_hw');
  n.b.node('Identity', [hw2], {}, { outputs: ['hw2'] });
  n.b.output('hw2', [2], 7);
  const nc = n.b.op('Slice', [n.b.op('Shape', [a], {}, 'shape_a3'), n.b.int64s('s0', [0]), n.b.int64s('e2', [2]), n.b.int64s('ax0', [0])], {}, 'slice_nc');
  const sizes = n.b.op('Concat', [nc, n.b.int64s('hw16', [16, 16])], { axis: 0 }, 'sizes');
  const up = n.b.op('Resize', [a, '', '', sizes], { mode: 'nearest' }, 'up');
  const b = n.relu(n.conv(up, 16, 16, 3, 'b'));
  const c = n.b.op('Gather', [n.b.op('Shape', [b], {}, 'shape_b'), n.b.int64s('one', [1])], { axis: 0 }, 'gather_c');
  n.b.node('Identity', [c], {}, { outputs: ['channels'] });
  n.b.output('channels', [1], 7);
  n.logits(n.conv(b, 16, 8, 1, 'c'), 8, 4);
  return n.b.build();
}
