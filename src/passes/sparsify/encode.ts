/**
 * How a sparse weight is stored. `dense` (default): the float tensor with its zeros — any runtime,
 * any compressor, and zeros stay exactly zero through quantize / palettize. `compact`: the smaller
 * of two forms, measured per tensor:
 *
 * - bitmask: a keep-bit per weight (UINT8, 8 per byte) and the kept values, decoded by
 *   BitShift -> Cast(INT32) -> CumSum -> Mul(mask) -> Gather([0, values...]) -> Reshape: the k-th
 *   kept weight reads values[k], a pruned one reads the leading 0. All initializers, no
 *   DequantizeLinear: ONNX Runtime folds it at load.
 * - ONNX `sparse_initializer` (values + INT64 linear indices), densified by ONNX Runtime at load;
 *   12 bytes per kept fp32 weight, so it wins only at very low density.
 */
import { DataType } from '../../onnx/dtypes.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { create, type AttributeMsg, type NodeMsg, type TensorProtoMsg } from '../../onnx/proto.ts';
import { intAttr } from '../../onnx/attributes.ts';
import { bytesOf, makeTensor } from '../../onnx/tensor.ts';
import { packPlane } from '../palettize/encode.ts';

export type SparseFormat = 'dense' | 'bitmask' | 'sparse_initializer';

const direction = (d: 'LEFT' | 'RIGHT') => create<AttributeMsg>('AttributeProto', { name: 'direction', type: 3, s: new TextEncoder().encode(d) });

/** Bytes each compact form takes for n weights of which nnz are kept. */
export function compactBytes(n: number, nnz: number): { bitmask: number; sparse_initializer: number } {
  return { bitmask: Math.ceil(n / 8) + 4 * (nnz + 1) + 8 * 6, sparse_initializer: 12 * nnz };
}

export function encodeBitmask(model: OnnxModel, name: string, shape: number[], data: Float32Array, keep: Uint8Array): number {
  const g = model.graph;
  const n = data.length;
  const inits: TensorProtoMsg[] = [];
  const nodes: NodeMsg[] = [];
  const add = (t: TensorProtoMsg) => (inits.push(t), t.name!);
  const op = (base: string, opType: string, input: string[], attribute: AttributeMsg[] = [], output?: string) => {
    const out = output ?? g.uniqueName(`${name}_${base}`);
    nodes.push(create<NodeMsg>('NodeProto', { name: g.uniqueName(`${name}_${opType}`), opType, domain: '', input, output: [out], attribute }));
    return out;
  };
  const i64 = (base: string, v: number[]) => add(makeTensor(g.uniqueName(`${name}_${base}`), DataType.INT64, [v.length], bytesOf(BigInt64Array.from(v.map(BigInt)))));
  const bits = packPlane(keep, 0, 1);
  let nnz = 0;
  for (const k of keep) nnz += k;
  const values = new Float32Array(nnz + 1);
  for (let i = 0, at = 1; i < n; i++) if (keep[i]) values[at++] = data[i];
  const packed = add(makeTensor(g.uniqueName(`${name}_keep_bits`), DataType.UINT8, [bits.length, 1], bits));
  const left = add(makeTensor(g.uniqueName(`${name}_lshift`), DataType.UINT8, [1, 8], Uint8Array.from({ length: 8 }, (_, j) => 7 - j)));
  const right = add(makeTensor(g.uniqueName(`${name}_rshift`), DataType.UINT8, [], Uint8Array.of(7)));
  let m = op('bit', 'BitShift', [op('top', 'BitShift', [packed, left], [direction('LEFT')]), right], [direction('RIGHT')]);
  m = op('flat', 'Reshape', [m, i64('flatshape', [bits.length * 8])]);
  if (bits.length * 8 !== n) m = op('trim', 'Slice', [m, i64('start', [0]), i64('end', [n]), i64('axes', [0])]);
  m = op('mask', 'Cast', [m], [intAttr('to', DataType.INT32)]);
  const axis = add(makeTensor(g.uniqueName(`${name}_axis`), DataType.INT32, [], bytesOf(Int32Array.of(0))));
  const position = op('position', 'Mul', [op('rank', 'CumSum', [m, axis]), m]);
  const v = op('values', 'Gather', [add(makeTensor(g.uniqueName(`${name}_kept`), DataType.FLOAT, [nnz + 1], bytesOf(values))), position], [intAttr('axis', 0)]);
  op('decoded', 'Reshape', [v, i64('shape', shape)], [], name);
  g.replaceWeight(name, inits, nodes);
  return inits.reduce((s, t) => s + (t.rawData?.length ?? 0), 0);
}

export function encodeSparseInitializer(model: OnnxModel, name: string, shape: number[], data: Float32Array, keep: Uint8Array): number {
  const idx: bigint[] = [];
  const vals: number[] = [];
  for (let i = 0; i < data.length; i++) if (keep[i]) { idx.push(BigInt(i)); vals.push(data[i]); }
  const values = makeTensor(name, DataType.FLOAT, [vals.length], bytesOf(Float32Array.from(vals)));
  const indices = makeTensor(`${name}_indices`, DataType.INT64, [idx.length], bytesOf(BigInt64Array.from(idx)));
  model.graph.replaceWeight(name, [], []);
  (model.msg.graph!.sparseInitializer as unknown[]).push(create('SparseTensorProto', { values, indices, dims: shape }));
  return (values.rawData?.length ?? 0) + (indices.rawData?.length ?? 0);
}
