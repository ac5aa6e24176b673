/**
 * A decode chain under construction: initializers and nodes that recompute a weight under its
 * original name (consumers untouched), committed in one replaceWeight. Shared by the encoders whose
 * chains ONNX Runtime constant-folds at load (palettized indices, sparse bitmasks).
 */
import { DataType } from './dtypes.ts';
import type { OnnxModel } from './model.ts';
import { create, type AttributeMsg, type NodeMsg, type TensorProtoMsg } from './proto.ts';
import { intAttr } from './attributes.ts';
import { bytesOf, makeTensor } from './tensor.ts';

const stringAttr = (name: string, v: string) => create<AttributeMsg>('AttributeProto', { name, type: 3, s: new TextEncoder().encode(v) });
const intsAttr = (name: string, v: number[]) => create<AttributeMsg>('AttributeProto', { name, type: 7, ints: v });

export class DecodeChain {
  readonly inits: TensorProtoMsg[] = [];
  readonly nodes: NodeMsg[] = [];

  constructor(private readonly model: OnnxModel, readonly weight: string) {}

  /** A new initializer; returns its name. */
  tensor(base: string, type: number, dims: readonly number[], data: Uint8Array): string {
    const t = makeTensor(this.model.graph.uniqueName(`${this.weight}_${base}`), type, [...dims], data);
    this.inits.push(t);
    return t.name!;
  }

  i64(base: string, values: readonly number[]): string {
    return this.tensor(base, DataType.INT64, [values.length], bytesOf(BigInt64Array.from(values.map(BigInt))));
  }

  f32(base: string, dims: readonly number[], values: ArrayLike<number>): string {
    return this.tensor(base, DataType.FLOAT, dims, bytesOf(Float32Array.from(values)));
  }

  /** A node; returns its output (named `output`, or a fresh name). */
  op(base: string, opType: string, input: string[], attribute: AttributeMsg[] = [], output?: string): string {
    const g = this.model.graph;
    const out = output ?? g.uniqueName(`${this.weight}_${base}`);
    this.nodes.push(create<NodeMsg>('NodeProto', { name: g.uniqueName(`${this.weight}_${opType}`), opType, domain: '', input, output: [out], attribute }));
    return out;
  }

  cast(base: string, x: string, to: number): string {
    return this.op(base, 'Cast', [x], [intAttr('to', to)]);
  }

  /** The first n elements of a flat tensor (Slice takes inputs from opset 10, attributes before). */
  firstN(base: string, x: string, n: number): string {
    return this.model.opset('') >= 10
      ? this.op(base, 'Slice', [x, this.i64(`${base}_start`, [0]), this.i64(`${base}_end`, [n]), this.i64(`${base}_axes`, [0])])
      : this.op(base, 'Slice', [x], [intsAttr('starts', [0]), intsAttr('ends', [n])]);
  }

  transpose(base: string, x: string, perm: number[], output?: string): string {
    return this.op(base, 'Transpose', [x], [intsAttr('perm', perm)], output);
  }

  /**
   * Fields of p bits (p = 1, 2, 4), 8 / p per byte with field j at bits [j·p, (j + 1)·p), as a flat
   * tensor of the first n fields (UINT8 with BitShift from opset 11; FLOAT by Floor/Sub before it,
   * exact for byte values). Returns the value and how it was unpacked.
   */
  unpackFields(base: string, bytes: Uint8Array, p: number, n: number): { value: string; how: 'BitShift' | 'Floor/Sub' } {
    const per = 8 / p;
    const packed = this.tensor(base, DataType.UINT8, [bytes.length, 1], bytes);
    let v: string;
    let how: 'BitShift' | 'Floor/Sub';
    if (this.model.opset('') >= 11) {
      // Field j: shift it to the top (left by 8 - p - j·p), then down to the bottom (right by 8 - p).
      const left = this.tensor(`${base}_lshift`, DataType.UINT8, [1, per], Uint8Array.from({ length: per }, (_, j) => 8 - p - j * p));
      const right = this.tensor(`${base}_rshift`, DataType.UINT8, [], Uint8Array.of(8 - p));
      v = this.op(`${base}_bits`, 'BitShift', [this.op(`${base}_top`, 'BitShift', [packed, left], [stringAttr('direction', 'LEFT')]), right], [stringAttr('direction', 'RIGHT')]);
      how = 'BitShift';
    } else {
      // q = floor(byte / 2^(j·p)); field = q - 2^p · floor(q / 2^p).
      const x = this.cast(`${base}_float`, packed, DataType.FLOAT);
      const q = this.op(`${base}_down`, 'Floor', [this.op(`${base}_scaled`, 'Mul', [x, this.f32(`${base}_fieldscale`, [1, per], Array.from({ length: per }, (_, j) => 2 ** (-j * p)))])]);
      const hi = this.op(`${base}_above`, 'Floor', [this.op(`${base}_over`, 'Mul', [q, this.f32(`${base}_inv`, [], [2 ** -p])])]);
      v = this.op(`${base}_field`, 'Sub', [q, this.op(`${base}_hix`, 'Mul', [hi, this.f32(`${base}_radix`, [], [2 ** p])])]);
      how = 'Floor/Sub';
    }
    v = this.op(`${base}_flat`, 'Reshape', [v, this.i64(`${base}_flatshape`, [bytes.length * per])]);
    if (bytes.length * per !== n) v = this.firstN(`${base}_trim`, v, n);
    return { value: v, how };
  }

  /** Replaces the weight by the chain; returns the bytes of its initializers. */
  commit(): number {
    this.model.graph.replaceWeight(this.weight, this.inits, this.nodes);
    return this.inits.reduce((s, t) => s + (t.rawData?.length ?? 0), 0);
  }
}
