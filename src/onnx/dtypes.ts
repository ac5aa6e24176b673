/** ONNX tensor element types: names, storage sizes, and what modelpress can read as f32. */
export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
  FLOAT8E4M3FN: 17, FLOAT8E4M3FNUZ: 18, FLOAT8E5M2: 19, FLOAT8E5M2FNUZ: 20, UINT4: 21, INT4: 22, FLOAT4E2M1: 23, FLOAT8E8M0: 24,
} as const;

export type DataTypeName = keyof typeof DataType;

const names = new Map<number, DataTypeName>(Object.entries(DataType).map(([k, v]) => [v, k as DataTypeName]));

export function dataTypeName(t: number | undefined): string {
  return names.get(t ?? 0) ?? `unknown(${t})`;
}

/** Bits per element in raw_data (strings have no fixed size: 0). */
export function elementBits(t: number): number {
  switch (t) {
    case DataType.DOUBLE: case DataType.INT64: case DataType.UINT64: case DataType.COMPLEX64: return 64;
    case DataType.COMPLEX128: return 128;
    case DataType.FLOAT: case DataType.INT32: case DataType.UINT32: return 32;
    case DataType.FLOAT16: case DataType.BFLOAT16: case DataType.INT16: case DataType.UINT16: return 16;
    case DataType.UINT4: case DataType.INT4: case DataType.FLOAT4E2M1: return 4;
    case DataType.STRING: case DataType.UNDEFINED: return 0;
    default: return 8;
  }
}

export function rawByteLength(t: number, elements: number): number {
  return Math.ceil((elements * elementBits(t)) / 8);
}

export const FLOAT_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);
