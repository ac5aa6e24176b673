/** Small constant values a graph analysis reads: shape vectors, axes, split sizes, scales. */
import type { OnnxModel } from '../onnx/model.ts';
import { DataType } from '../onnx/dtypes.ts';
import { tensorElements } from '../onnx/tensor.ts';

/** Constants above this many elements are weights, not shape vectors; they are never decoded here. */
const SMALL = 4096;

/** The values of a small constant (initializer or Constant node) as numbers, or null when it is not one. */
export function constantValues(model: OnnxModel, name: string | undefined): number[] | null {
  if (!name) return null;
  const w = model.graph.weights.get(name);
  if (!w) return null;
  const t = w.tensor;
  if (tensorElements(t) > SMALL) return null;
  const raw = model.tensorBytes(t);
  // Typed-array views need aligned offsets; Buffer.slice would be a view again, so copy explicitly.
  const view = (bytes: number) => (raw.byteOffset % bytes === 0 ? raw : new Uint8Array(raw));
  switch (t.dataType) {
    case DataType.INT64: {
      const r = view(8);
      return Array.from(new BigInt64Array(r.buffer, r.byteOffset, r.byteLength / 8), Number);
    }
    case DataType.INT32: {
      const r = view(4);
      return Array.from(new Int32Array(r.buffer, r.byteOffset, r.byteLength / 4));
    }
    case DataType.FLOAT:
      return Array.from(model.tensorFloat32(t));
    default:
      return null;
  }
}
