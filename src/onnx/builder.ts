/**
 * A small ONNX graph builder: models for tests and benchmarks are built in TypeScript, so nothing
 * needs Python or an exporter to exist on the machine. Nodes are appended in topological order.
 */
import { create, type AttributeMsg, type ModelMsg, type NodeMsg, type TensorProtoMsg, type ValueInfoMsg } from './proto.ts';
import { bytesOf, makeTensor } from './tensor.ts';
import { DataType } from './dtypes.ts';
import { intAttr } from './attributes.ts';

/** A float attribute whose value happens to be an integer (plain integers become INT attributes). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export const float = (v: number) => new FloatAttr(v);

export type AttrValue = number | FloatAttr | number[] | string | TensorProtoMsg;

const ATTR = { FLOAT: 1, STRING: 3, TENSOR: 4, INTS: 7 } as const;

function attribute(name: string, v: AttrValue): AttributeMsg {
  if (v instanceof FloatAttr) return create<AttributeMsg>('AttributeProto', { name, type: ATTR.FLOAT, f: v.value });
  if (typeof v === 'number') {
    return Number.isInteger(v) ? intAttr(name, v) : create<AttributeMsg>('AttributeProto', { name, type: ATTR.FLOAT, f: v });
  }
  if (typeof v === 'string') return create<AttributeMsg>('AttributeProto', { name, type: ATTR.STRING, s: new TextEncoder().encode(v) });
  if (Array.isArray(v)) return create<AttributeMsg>('AttributeProto', { name, type: ATTR.INTS, ints: v });
  return create<AttributeMsg>('AttributeProto', { name, type: ATTR.TENSOR, t: v });
}

export function valueInfo(name: string, dims: ReadonlyArray<number | string>, elemType: number = DataType.FLOAT): ValueInfoMsg {
  return create<ValueInfoMsg>('ValueInfoProto', {
    name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } as never,
  });
}

export class GraphBuilder {
  private readonly nodes: NodeMsg[] = [];
  private readonly initializers: TensorProtoMsg[] = [];
  private readonly inputs: ValueInfoMsg[] = [];
  private readonly outputs: ValueInfoMsg[] = [];
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();

  constructor(readonly name = 'graph') {}

  /** A fresh value or node name derived from `base`. */
  fresh(base: string): string {
    let n = this.counters.get(base) ?? 0;
    let name = n === 0 ? base : `${base}_${n}`;
    while (this.used.has(name)) name = `${base}_${++n}`;
    this.counters.set(base, n + 1);
    this.used.add(name);
    return name;
  }

  input(name: string, dims: ReadonlyArray<number | string>, elemType: number = DataType.FLOAT): string {
    this.used.add(name);
    this.inputs.push(valueInfo(name, dims, elemType));
    return name;
  }

  output(name: string, dims: ReadonlyArray<number | string>, elemType: number = DataType.FLOAT): void {
    this.outputs.push(valueInfo(name, dims, elemType));
  }

  /** An initializer from a typed array (FLOAT, INT64, INT32, INT8, UINT8 by the array's type unless given). */
  init(base: string, dims: readonly number[], data: Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array, dataType?: number): string {
    const name = this.fresh(base);
    const type = dataType ?? (data instanceof Float32Array ? DataType.FLOAT : data instanceof BigInt64Array ? DataType.INT64
      : data instanceof Int32Array ? DataType.INT32 : data instanceof Int8Array ? DataType.INT8 : DataType.UINT8);
    this.initializers.push(makeTensor(name, type, dims, bytesOf(data)));
    return name;
  }

  int64s(base: string, values: readonly number[]): string {
    return this.init(base, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  scalar(base: string, v: number): string {
    return this.init(base, [], Float32Array.of(v));
  }

  /** Appends a node; returns its outputs (one fresh name per output unless named). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: { outputs?: number | string[]; name?: string; domain?: string } = {}): string[] {
    const name = this.fresh(opts.name ?? opType.toLowerCase());
    const outputs = Array.isArray(opts.outputs)
      ? opts.outputs.map((o) => (this.used.add(o), o))
      : Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.fresh(`${name}_out${i === 0 ? '' : i}`));
    this.nodes.push(create<NodeMsg>('NodeProto', {
      opType, input: inputs, output: outputs, name, domain: opts.domain ?? '',
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    }));
    return outputs;
  }

  /** Single-output shorthand for `node`. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, attrs, { name })[0];
  }

  build(opset = 13, extraOpsets: Array<{ domain: string; version: number }> = [], irVersion = 8): ModelMsg {
    return create<ModelMsg>('ModelProto', {
      irVersion,
      producerName: 'modelpress-builder',
      opsetImport: [{ domain: '', version: opset }, ...extraOpsets],
      graph: { name: this.name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs } as never,
    });
  }
}
