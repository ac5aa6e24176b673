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
import { create } from '../../onnx/proto.ts';
import { DecodeChain } from '../../onnx/chain.ts';
import { intAttr } from '../../onnx/attributes.ts';
import { bytesOf, makeTensor } from '../../onnx/tensor.ts';
import { packPlane } from '../palettize/encode.ts';

export type SparseFormat = 'dense' | 'bitmask' | 'sparse_initializer';

/** Small constants of the bitmask chain: shift amounts, the CumSum axis, shapes and Slice bounds (about 48 bytes). */
const BITMASK_CONSTANT_BYTES = 48;

/** Bytes each compact form takes for n weights of which nnz are kept (f32 values; INT64 indices). */
export function compactBytes(n: number, nnz: number): { bitmask: number; sparse_initializer: number } {
  return { bitmask: Math.ceil(n / 8) + 4 * (nnz + 1) + BITMASK_CONSTANT_BYTES, sparse_initializer: 12 * nnz };
}

export function encodeBitmask(model: OnnxModel, name: string, shape: number[], data: Float32Array, keep: Uint8Array): number {
  const c = new DecodeChain(model, name);
  let nnz = 0;
  for (const k of keep) nnz += k;
  const values = new Float32Array(nnz + 1);
  for (let i = 0, at = 1; i < data.length; i++) if (keep[i]) values[at++] = data[i];
  const mask = c.cast('mask', c.unpackFields('keep_bits', packPlane(keep, 0, 1), 1, data.length).value, DataType.INT32);
  // Position of each kept weight in the values (1-based; 0 = the leading zero for pruned ones).
  const position = c.op('position', 'Mul', [c.op('rank', 'CumSum', [mask, c.tensor('axis', DataType.INT32, [], bytesOf(Int32Array.of(0)))]), mask]);
  const v = c.op('values', 'Gather', [c.f32('kept', [nnz + 1], values), position], [intAttr('axis', 0)]);
  c.op('decoded', 'Reshape', [v, c.i64('shape', shape)], [], name);
  return c.commit();
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
