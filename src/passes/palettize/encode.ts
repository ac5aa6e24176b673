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
import { create, type AttributeMsg, type NodeMsg, type TensorProtoMsg } from '../../onnx/proto.ts';
import { intAttr } from '../../onnx/attributes.ts';
import { bytesOf, makeTensor } from '../../onnx/tensor.ts';
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

const direction = (d: 'LEFT' | 'RIGHT') => create<AttributeMsg>('AttributeProto', { name: 'direction', type: 3, s: new TextEncoder().encode(d) });

/** Packs index bits [shift, shift + p) of every element, 8 / p per byte, element i at bits (i % per) * p. */
export function packPlane(indices: Uint8Array, shift: number, p: number): Uint8Array {
  const per = 8 / p;
  const out = new Uint8Array(Math.ceil(indices.length / per));
  const mask = (1 << p) - 1;
  for (let i = 0; i < indices.length; i++) out[Math.floor(i / per)] |= ((indices[i] >> shift) & mask) << ((i % per) * p);
  return out;
}

export function storedIndexBits(bits: PaletteBits, model: OnnxModel): string {
  if (bits === 8) return 'UINT8';
  if (bits === 4 && model.opset('') >= 21) return 'UINT4';
  return `bit planes ${PLANES[bits].join('+')} (UINT8, unpacked by ${model.opset('') >= 11 ? 'BitShift' : 'Floor/Sub in float: no BitShift below opset 11'})`;
}

export function encodePalette(model: OnnxModel, name: string, r: PaletteResult, bits: PaletteBits, layout: PaletteLayout): EncodedPalette {
  const g = model.graph;
  if (model.opset('') < 7) throw new RecipeError(`palettize: the model's ai.onnx opset ${model.opset('')} is too old for the decode chain (it needs opset >= 7); convert the model first`, { opset: model.opset('') });
  // BitShift arrived in opset 11; older models unpack each field in float (exact below 256).
  const shifts = model.opset('') >= 11;
  const inits: TensorProtoMsg[] = [];
  const nodes: NodeMsg[] = [];
  const n = r.indices.length;
  const add = (t: TensorProtoMsg) => (inits.push(t), t.name!);
  const op = (base: string, opType: string, input: string[], attribute: AttributeMsg[] = [], output?: string) => {
    const out = output ?? g.uniqueName(`${name}_${base}`);
    nodes.push(create<NodeMsg>('NodeProto', { name: g.uniqueName(`${name}_${opType}`), opType, domain: '', input, output: [out], attribute }));
    return out;
  };
  const i64 = (base: string, v: number[]) => add(makeTensor(g.uniqueName(`${name}_${base}`), DataType.INT64, [v.length], bytesOf(BigInt64Array.from(v.map(BigInt)))));
  const rowShape = layout.transposedFrom === null ? [n] : [layout.rows, layout.inner];

  let idx: string;
  let decode: string;
  if (bits === 8 || (bits === 4 && model.opset('') >= 21)) {
    const type = bits === 8 ? DataType.UINT8 : DataType.UINT4;
    const data = bits === 8 ? r.indices : packPlane(r.indices, 0, 4);
    idx = op('idx', 'Cast', [add(makeTensor(g.uniqueName(`${name}_indices`), type, rowShape, data))], [intAttr('to', DataType.INT32)]);
    decode = bits === 8 ? 'UINT8 -> Cast' : 'UINT4 -> Cast (opset 21)';
  } else {
    let shift = bits;
    const parts: string[] = [];
    for (const p of PLANES[bits]) {
      shift -= p;
      const per = 8 / p;
      const bytes = packPlane(r.indices, shift, p);
      const packed = add(makeTensor(g.uniqueName(`${name}_plane${p}`), DataType.UINT8, [bytes.length, 1], bytes));
      let v: string;
      if (shifts) {
        // Field j of a byte: shift it to the top (left by 8 - p - j·p), then down to the bottom (right by 8 - p).
        const left = add(makeTensor(g.uniqueName(`${name}_lshift${p}`), DataType.UINT8, [1, per], Uint8Array.from({ length: per }, (_, j) => 8 - p - j * p)));
        const right = add(makeTensor(g.uniqueName(`${name}_rshift${p}`), DataType.UINT8, [], Uint8Array.of(8 - p)));
        const top = op(`top${p}`, 'BitShift', [packed, left], [direction('LEFT')]);
        v = op(`bits${p}`, 'BitShift', [top, right], [direction('RIGHT')]);
      } else {
        // q = floor(byte / 2^(j·p)); field = q - 2^p · floor(q / 2^p): exact in f32 for bytes.
        const f32 = (base: string, dims: number[], values: number[]) => add(makeTensor(g.uniqueName(`${name}_${base}`), DataType.FLOAT, dims, bytesOf(Float32Array.from(values))));
        const x = op(`float${p}`, 'Cast', [packed], [intAttr('to', DataType.FLOAT)]);
        const q = op(`down${p}`, 'Floor', [op(`scaled${p}`, 'Mul', [x, f32(`fieldscale${p}`, [1, per], Array.from({ length: per }, (_, j) => 2 ** (-j * p)))])]);
        const hi = op(`above${p}`, 'Floor', [op(`over${p}`, 'Mul', [q, f32(`inv${p}`, [], [2 ** -p])])]);
        v = op(`field${p}`, 'Sub', [q, op(`hi${p}x`, 'Mul', [hi, f32(`radix${p}`, [], [2 ** p])])]);
      }
      v = op(`flat${p}`, 'Reshape', [v, i64(`flatshape${p}`, [bytes.length * per])]);
      if (bytes.length * per !== n) {
        v = model.opset('') >= 10
          ? op(`trim${p}`, 'Slice', [v, i64(`start${p}`, [0]), i64(`end${p}`, [n]), i64(`axes${p}`, [0])])
          : op(`trim${p}`, 'Slice', [v], [create<AttributeMsg>('AttributeProto', { name: 'starts', type: 7, ints: [0] }), create<AttributeMsg>('AttributeProto', { name: 'ends', type: 7, ints: [n] })]);
      }
      v = op(`int${p}`, 'Cast', [v], [intAttr('to', DataType.INT32)]);
      if (shift > 0) v = op(`hi${p}`, 'Mul', [v, add(makeTensor(g.uniqueName(`${name}_weight${p}`), DataType.INT32, [], bytesOf(Int32Array.of(1 << shift))))]);
      parts.push(v);
    }
    idx = parts.length === 1 ? parts[0] : op('idx', 'Add', parts);
    if (layout.transposedFrom !== null) idx = op('idxrows', 'Reshape', [idx, i64('rowshape', rowShape)]);
    decode = `bit planes ${PLANES[bits].join('+')} (UINT8 -> ${shifts ? 'BitShift' : 'Floor/Sub in float, no BitShift below opset 11'} -> Cast)`;
  }
  if (r.groups > 1) {
    const offsets = Int32Array.from({ length: layout.rows }, (_, row) => Math.floor(row / r.rowsPerGroup) * r.k);
    idx = op('lutidx', 'Add', [idx, add(makeTensor(g.uniqueName(`${name}_group_offsets`), DataType.INT32, [layout.rows, 1], bytesOf(offsets)))]);
  }
  const lut = r.lutInt8
    ? add(makeTensor(g.uniqueName(`${name}_lut`), DataType.INT8, [r.lutInt8.length], new Uint8Array(r.lutInt8.buffer, r.lutInt8.byteOffset, r.lutInt8.length)))
    : add(makeTensor(g.uniqueName(`${name}_lut`), DataType.FLOAT, [r.lut.length], bytesOf(r.lut)));
  let v = op('values', 'Gather', [lut, idx], [intAttr('axis', 0)]);
  if (r.lutInt8) v = op('valuesf', 'Cast', [v], [intAttr('to', DataType.FLOAT)]);
  if (r.rowScale) {
    const scaleShape = layout.transposedFrom === null ? [] : [layout.rows, 1];
    const scale = layout.transposedFrom === null ? r.rowScale.subarray(0, 1) : r.rowScale;
    v = op('scaled', 'Mul', [v, add(makeTensor(g.uniqueName(`${name}_scale`), DataType.FLOAT, scaleShape, bytesOf(Float32Array.from(scale))))]);
  }
  const a = layout.transposedFrom;
  if (a === null || a === 0) {
    op('decoded', 'Reshape', [v, i64('shape', layout.shape)], [], name);
  } else {
    const moved = [layout.shape[a], ...layout.shape.filter((_, i) => i !== a)];
    const rows = op('rows', 'Reshape', [v, i64('movedshape', moved)]);
    // Inverse of moving axis a to the front.
    const perm = layout.shape.map((_, i) => (i === a ? 0 : i < a ? i + 1 : i));
    op('decoded', 'Transpose', [rows], [create<AttributeMsg>('AttributeProto', { name: 'perm', type: 7, ints: perm })], name);
  }
  g.replaceWeight(name, inits, nodes);
  return { bytes: inits.reduce((s, t) => s + (t.rawData?.length ?? 0), 0), decode };
}
