/**
 * How a palettized weight is written into the graph, under its original name (consumers untouched):
 *
 *   indices -> Cast(INT32) [-> Add group offsets] -> Gather(LUT) [-> Cast(FLOAT) for an int8 LUT]
 *   [-> Mul per-channel scale] -> Reshape [-> Transpose back to the weight's layout]
 *
 * Indices are stored compactly: 8 bits as UINT8; 4 bits as UINT4 from opset 21; otherwise as bit
 * planes of 4, 2 or 1 bits packed into UINT8 bytes (3 bits = a 2-bit and a 1-bit plane, 6 bits =
 * 4 + 2), unpacked with two BitShifts (left, then right: no BitwiseAnd, which needs opset 18), or
 * below opset 11 (no BitShift) by Floor/Sub in float, exact for byte values.
 * Every input of the chain is an initializer and no node is a DequantizeLinear, so ONNX Runtime
 * constant-folds the whole chain at session creation: the session runs the float graph.
 * Grouped LUTs are one flat table; each row's indices are offset by its group's base (Gather, not
 * GatherElements: groups may differ in size when the channel count does not divide).
 */
import { RecipeError } from '../../errors.ts';
import { DataType } from '../../onnx/dtypes.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { intAttr } from '../../onnx/attributes.ts';
import { bytesOf } from '../../onnx/tensor.ts';
import { DecodeChain } from '../../onnx/chain.ts';
import type { PaletteBits, PaletteResult } from './palettize.ts';

/** Bit planes (most significant first) each index width is stored as, below 8 bits. */
export const PLANES: Record<PaletteBits, number[]> = { 1: [1], 2: [2], 3: [2, 1], 4: [4], 6: [4, 2], 8: [8] };

export interface PaletteLayout {
  /** The weight's own shape. */
  shape: number[];
  /** Rows = output channels moved to the front (the result's row layout) when set; else flat. */
  transposedFrom: number | null;
  rows: number;
  inner: number;
}

export interface EncodedPalette {
  bytes: number;
  /** How the indices are decoded (for the report). */
  decode: string;
}

/** Packs index bits [shift, shift + p) of every element, 8 / p per byte, element i at bits (i % per) * p. */
export function packPlane(indices: Uint8Array, shift: number, p: number): Uint8Array {
  const per = 8 / p;
  const out = new Uint8Array(Math.ceil(indices.length / per));
  const mask = (1 << p) - 1;
  // Whole bytes first, without division, modulo or read-modify-write (ResNet-18 at 4 bits: 45 -> 15 ms).
  const n = indices.length;
  const full = Math.floor(n / per);
  if (p === 4 && indices.byteOffset % 4 === 0) {
    // Four indices per 32-bit word to two bytes (little-endian views; 15 -> ~2 ms on ResNet-18).
    const words = Math.floor(n / 4);
    const w32 = new Uint32Array(indices.buffer, indices.byteOffset, words);
    const o16 = new Uint16Array(out.buffer, 0, words);
    for (let i = 0; i < words; i++) {
      const x = (w32[i] >>> shift) & 0x0f0f0f0f;
      const y = (x | (x >>> 4)) & 0x00ff00ff;
      o16[i] = y | (y >>> 8);
    }
    for (let b = 2 * words; b < full; b++) out[b] = ((indices[2 * b] >> shift) & 15) | (((indices[2 * b + 1] >> shift) & 15) << 4);
  } else if (p === 4) {
    for (let b = 0; b < full; b++) out[b] = ((indices[2 * b] >> shift) & 15) | (((indices[2 * b + 1] >> shift) & 15) << 4);
  } else {
    for (let b = 0, i = 0; b < full; b++) {
      let v = 0;
      for (let s = 0; s < 8; s += p) v |= ((indices[i++] >> shift) & mask) << s;
      out[b] = v;
    }
  }
  for (let i = full * per; i < n; i++) out[full] |= ((indices[i] >> shift) & mask) << ((i - full * per) * p);
  return out;
}

export function storedIndexBits(bits: PaletteBits, model: OnnxModel): string {
  if (bits === 8) return 'UINT8';
  if (bits === 4 && model.opset('') >= 21) return 'UINT4';
  return `bit planes ${PLANES[bits].join('+')} (UINT8, unpacked by ${model.opset('') >= 11 ? 'BitShift' : 'Floor/Sub in float: no BitShift below opset 11'})`;
}

export function encodePalette(model: OnnxModel, name: string, r: PaletteResult, bits: PaletteBits, layout: PaletteLayout): EncodedPalette {
  if (model.opset('') < 7) throw new RecipeError(`palettize: the model's ai.onnx opset ${model.opset('')} is too old for the decode chain (it needs opset >= 7); convert the model first`, { opset: model.opset('') });
  const c = new DecodeChain(model, name);
  const n = r.indices.length;
  const rowShape = layout.transposedFrom === null ? [n] : [layout.rows, layout.inner];
  let idx: string;
  let decode: string;
  if (bits === 8 || (bits === 4 && model.opset('') >= 21)) {
    const type = bits === 8 ? DataType.UINT8 : DataType.UINT4;
    idx = c.cast('idx', c.tensor('indices', type, rowShape, bits === 8 ? r.indices : packPlane(r.indices, 0, 4)), DataType.INT32);
    decode = bits === 8 ? 'UINT8 -> Cast' : 'UINT4 -> Cast (opset 21)';
  } else {
    // Bit planes, most significant first: index = Σ plane << shift.
    let shift = bits;
    let how = '';
    const parts: string[] = [];
    for (const p of PLANES[bits]) {
      shift -= p;
      const fields = c.unpackFields(`plane${p}`, packPlane(r.indices, shift, p), p, n);
      how = fields.how;
      let v = c.cast(`int${p}`, fields.value, DataType.INT32);
      if (shift > 0) v = c.op(`hi${p}`, 'Mul', [v, c.tensor(`weight${p}`, DataType.INT32, [], bytesOf(Int32Array.of(1 << shift)))]);
      parts.push(v);
    }
    idx = parts.length === 1 ? parts[0] : c.op('idx', 'Add', parts);
    if (layout.transposedFrom !== null) idx = c.op('idxrows', 'Reshape', [idx, c.i64('rowshape', rowShape)]);
    decode = `bit planes ${PLANES[bits].join('+')} (UINT8 -> ${how === 'BitShift' ? 'BitShift' : 'Floor/Sub in float, no BitShift below opset 11'} -> Cast)`;
  }
  if (r.groups > 1) {
    const offsets = Int32Array.from({ length: layout.rows }, (_, row) => Math.floor(row / r.rowsPerGroup) * r.k);
    idx = c.op('lutidx', 'Add', [idx, c.tensor('group_offsets', DataType.INT32, [layout.rows, 1], bytesOf(offsets))]);
  }
  const lut = r.lutInt8
    ? c.tensor('lut', DataType.INT8, [r.lutInt8.length], new Uint8Array(r.lutInt8.buffer, r.lutInt8.byteOffset, r.lutInt8.length))
    : c.f32('lut', [r.lut.length], r.lut);
  let v = c.op('values', 'Gather', [lut, idx], [intAttr('axis', 0)]);
  if (r.lutInt8) v = c.cast('valuesf', v, DataType.FLOAT);
  if (r.rowScale) {
    const flat = layout.transposedFrom === null;
    v = c.op('scaled', 'Mul', [v, c.f32('scale', flat ? [] : [layout.rows, 1], flat ? r.rowScale.subarray(0, 1) : r.rowScale)]);
  }
  const a = layout.transposedFrom;
  if (a === null || a === 0) {
    c.op('decoded', 'Reshape', [v, c.i64('shape', layout.shape)], [], name);
  } else {
    const moved = [layout.shape[a], ...layout.shape.filter((_, i) => i !== a)];
    // Inverse of moving axis a to the front.
    c.transpose('decoded', c.op('rows', 'Reshape', [v, c.i64('movedshape', moved)]), layout.shape.map((_, i) => (i === a ? 0 : i < a ? i + 1 : i)), name);
  }
  return { bytes: c.commit(), decode };
}
