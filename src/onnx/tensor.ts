/**
 * Tensor contents: raw_data / typed fields / external data to f32 (for float weights), and new
 * TensorProtos from typed arrays. Raw bytes are views into the model buffer where possible.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { ModelError } from '../errors.ts';
import { DataType, dataTypeName, rawByteLength } from './dtypes.ts';
import { halfValues } from './float16.ts';
import { create, int64, type TensorProtoMsg } from './proto.ts';

export function tensorDims(t: TensorProtoMsg): number[] {
  return t.dims.map(int64);
}

export function tensorElements(t: TensorProtoMsg): number {
  return tensorDims(t).reduce((a, b) => a * b, 1);
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number | null;
}

export function isExternal(t: TensorProtoMsg): boolean {
  return t.dataLocation === 1;
}

export function externalRef(t: TensorProtoMsg): ExternalRef {
  const kv = new Map(t.externalData.map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) throw new ModelError('INVALID_MODEL', `tensor '${t.name}' has external data without a location`, { tensor: t.name });
  return { location, offset: Number(kv.get('offset') ?? 0), length: kv.has('length') ? Number(kv.get('length')) : null };
}

/** Reads one external tensor's bytes from disk (tensor by tensor: nothing else is loaded). */
export function readExternal(t: TensorProtoMsg, baseDir: string): Uint8Array {
  const ref = externalRef(t);
  if (isAbsolute(ref.location) || normalize(ref.location).startsWith('..')) {
    throw new ModelError('INVALID_MODEL', `tensor '${t.name}' points outside the model folder: ${ref.location}`, { tensor: t.name });
  }
  const file = join(baseDir, ref.location);
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new ModelError('FILE_NOT_FOUND', `external data file for tensor '${t.name}' not found: ${relative(process.cwd(), file) || file}`, { tensor: t.name, file });
  }
  const want = ref.length ?? rawByteLength(t.dataType ?? 0, tensorElements(t));
  if (ref.offset + want > size) {
    throw new ModelError('INVALID_MODEL', `tensor '${t.name}': external data [${ref.offset}, ${ref.offset + want}) is past the end of ${ref.location} (${size} bytes)`, { tensor: t.name });
  }
  const out = new Uint8Array(want);
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < want) done += readSync(fd, out, done, want - done, ref.offset + done);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** The tensor's little-endian raw bytes, whatever field holds them. */
export function tensorBytes(t: TensorProtoMsg, baseDir: string): Uint8Array {
  if (isExternal(t)) return readExternal(t, baseDir);
  const type = t.dataType ?? 0;
  const n = tensorElements(t);
  if (t.rawData && t.rawData.length) {
    const need = rawByteLength(type, n);
    if (t.rawData.length !== need) {
      throw new ModelError('INVALID_MODEL', `tensor '${t.name}' (${dataTypeName(type)} [${tensorDims(t).join(', ')}]) has ${t.rawData.length} bytes of raw_data, expected ${need}`, { tensor: t.name });
    }
    return t.rawData;
  }
  switch (type) {
    case DataType.FLOAT:
      return new Uint8Array(Float32Array.from(t.floatData).buffer);
    case DataType.DOUBLE:
      return new Uint8Array(Float64Array.from(t.doubleData).buffer);
    case DataType.INT64:
      return new Uint8Array(BigInt64Array.from(t.int64Data, (v) => BigInt(typeof v === 'number' ? v : v.toString())).buffer);
    case DataType.INT32:
      return new Uint8Array(Int32Array.from(t.int32Data).buffer);
    case DataType.FLOAT16: case DataType.BFLOAT16: case DataType.UINT16: case DataType.INT16:
      return new Uint8Array(Uint16Array.from(t.int32Data).buffer);
    case DataType.INT8: case DataType.UINT8: case DataType.BOOL:
      return Uint8Array.from(t.int32Data);
    default:
      if (n === 0) return new Uint8Array(0);
      throw new ModelError('UNSUPPORTED_MODEL', `tensor '${t.name}': reading ${dataTypeName(type)} from typed fields is not supported`, { tensor: t.name });
  }
}

/** A float tensor's values as f32 (FLOAT is a view when aligned; others are converted). */
export function tensorToFloat32(t: TensorProtoMsg, baseDir: string): Float32Array {
  const type = t.dataType ?? 0;
  const n = tensorElements(t);
  if (type === DataType.FLOAT && !isExternal(t) && !(t.rawData && t.rawData.length) && t.floatData.length === n) {
    return Float32Array.from(t.floatData);
  }
  const bytes = tensorBytes(t, baseDir);
  // Typed views need aligned offsets; misaligned raw_data is copied (new Uint8Array(view) copies,
  // while Buffer#slice would not).
  const aligned = (size: number) => (bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes));
  switch (type) {
    case DataType.FLOAT: {
      const b = aligned(4);
      return new Float32Array(b.buffer, b.byteOffset, n);
    }
    case DataType.DOUBLE: {
      const b = aligned(8);
      return Float32Array.from(new Float64Array(b.buffer, b.byteOffset, n));
    }
    case DataType.FLOAT16: case DataType.BFLOAT16: {
      const b = aligned(2);
      const h = new Uint16Array(b.buffer, b.byteOffset, n);
      const out = new Float32Array(n);
      if (type === DataType.FLOAT16) {
        const value = halfValues();
        for (let i = 0; i < n; i++) out[i] = value[h[i]];
      } else {
        // bfloat16 is the top half of an f32.
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) bits[i] = h[i] << 16;
      }
      return out;
    }
    default:
      throw new ModelError('UNSUPPORTED_MODEL', `tensor '${t.name}' is ${dataTypeName(type)}, not a float type`, { tensor: t.name });
  }
}

/** A new TensorProto with raw_data. */
export function makeTensor(name: string, dataType: number, dims: readonly number[], raw: Uint8Array): TensorProtoMsg {
  return create<TensorProtoMsg>('TensorProto', { name, dataType, dims: [...dims], rawData: raw });
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
