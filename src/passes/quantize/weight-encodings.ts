/**
 * How a compressed weight is written into the graph, so that its value is recomputed under its
 * original name (consumers untouched):
 *
 * - `folded`: integer codes -> Cast -> (Sub zero point) -> Mul scale. Every input is an
 *   initializer, so ONNX Runtime constant-folds the chain into a float initializer at session
 *   creation: the file is small and inference runs at float speed. Bit-exact with what
 *   DequantizeLinear computes, float(q - zp) * scale (q - zp is a small integer, exact in f32).
 * - `qdq`: DequantizeLinear, kept in the graph by ORT (its constant folding skips DQ so that QDQ
 *   fusion can see it): for runtimes that run integer kernels from QDQ (TensorRT, QNN, OpenVINO).
 * - `matmulnbits`: com.microsoft MatMulNBits, ORT's 4-bit GEMM (run-time memory stays 4-bit).
 * - fp16: FLOAT16 initializer -> Cast (folded by ORT too).
 */
import { DataType } from '../../onnx/dtypes.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { create, type AttributeMsg, type NodeMsg, type TensorProtoMsg } from '../../onnx/proto.ts';
import { intAttr } from '../../onnx/attributes.ts';
import { attrInt } from '../../analysis/shapes.ts';
import { bytesOf, makeTensor } from '../../onnx/tensor.ts';
import type { Bits, QuantParams } from '../../kernels/qparams.ts';
import type { Granularity } from '../../kernels/layout.ts';

export type IntType = 'int8' | 'uint8' | 'int4' | 'uint4';

/** What an encoder needs to know about one quantized weight. */
export interface EncodedWeight {
  name: string;
  type: IntType;
  bits: Bits;
  /** Shape the codes were computed over (the weight's own, or MatMulNBits' transposed [N, Kpad]). */
  shape: number[];
  granularity: Granularity;
  params: QuantParams;
  /** Packed codes as the quantize kernel returns them (4-bit: two per byte, low nibble first). */
  codes: Uint8Array;
}

const ONNX_TYPE: Record<IntType, number> = { int8: DataType.INT8, uint8: DataType.UINT8, int4: DataType.INT4, uint4: DataType.UINT4 };

/** ORT caps constant-folded outputs at 1 GiB (>= 1.27): a bigger decoded weight would stay a decode chain. */
export const FOLD_LIMIT_BYTES = 2 ** 30;


function node(model: OnnxModel, base: string, opType: string, input: string[], output: string, attribute: AttributeMsg[] = [], domain = ''): NodeMsg {
  return create<NodeMsg>('NodeProto', { name: model.graph.uniqueName(base), opType, domain, input, output: [output], attribute });
}

function scaleDims(shape: number[], g: Granularity): number[] {
  if (g.kind === 'tensor') return [];
  if (g.kind === 'channel') return [shape[g.axis]];
  return shape.map((d, i) => (i === g.axis ? Math.ceil(d / g.blockSize) : d));
}

function packedZeroPoints(zp: Int32Array, bits: Bits): Uint8Array {
  if (bits === 8) return Uint8Array.from(zp, (v) => v & 0xff);
  const out = new Uint8Array(Math.ceil(zp.length / 2));
  zp.forEach((v, i) => (out[i >> 1] |= (v & 0xf) << ((i & 1) * 4)));
  return out;
}

/** DequantizeLinear (ai.onnx, or com.microsoft on opsets without per-axis / 4-bit DQ). */
export function encodeQdq(model: OnnxModel, w: EncodedWeight, domain: '' | 'com.microsoft'): number {
  const g = model.graph;
  const type = ONNX_TYPE[w.type];
  const sdims = scaleDims(w.shape, w.granularity);
  const q = makeTensor(g.uniqueName(`${w.name}_quantized`), type, w.shape, w.codes);
  const s = makeTensor(g.uniqueName(`${w.name}_scale`), DataType.FLOAT, sdims, bytesOf(Float32Array.from(w.params.scale)));
  const z = makeTensor(g.uniqueName(`${w.name}_zero_point`), type, sdims, packedZeroPoints(w.params.zeroPoint, w.bits));
  const attrs: AttributeMsg[] = [];
  if (w.granularity.kind !== 'tensor') attrs.push(intAttr('axis', w.granularity.axis));
  if (w.granularity.kind === 'block') attrs.push(intAttr('block_size', w.granularity.blockSize));
  if (domain) model.ensureOpset(domain, 1);
  g.replaceWeight(w.name, [q, s, z], [node(model, `${w.name}_DequantizeLinear`, 'DequantizeLinear', [q.name!, s.name!, z.name!], w.name, attrs, domain)]);
  return w.codes.length + (s.rawData?.length ?? 0) + (z.rawData?.length ?? 0);
}

/** How 4-bit codes are decoded in a folded chain: Cast from INT4/UINT4 needs ai.onnx opset 21. */
export function fourBitDecode(model: OnnxModel): 'cast-int4' | 'unpack' {
  return model.opset('') >= 21 ? 'cast-int4' : 'unpack';
}

/**
 * Folded decode chain. Per-channel parameters are stored in broadcast shape; per-block parameters
 * are gathered to the full axis length by a constant index (D int64s), so partial last blocks need
 * no padding. Every node folds at load.
 */
export function encodeFolded(model: OnnxModel, w: EncodedWeight): { bytes: number; decode: string } {
  const g = model.graph;
  const inits: TensorProtoMsg[] = [];
  const nodes: NodeMsg[] = [];
  const n = w.shape.reduce((a, b) => a * b, 1);
  const rank = w.shape.length;
  const add = (t: TensorProtoMsg) => (inits.push(t), t.name!);
  const op = (base: string, opType: string, input: string[], attribute: AttributeMsg[] = [], output?: string) => {
    const out = output ?? g.uniqueName(`${w.name}_${base}`);
    nodes.push(node(model, `${w.name}_${opType}`, opType, input, out, attribute));
    return out;
  };
  const toFloat = (x: string, output?: string) => op('f32', 'Cast', [x], [intAttr('to', DataType.FLOAT)], output);

  let zeroShift = 0; // added to every zero point: 4-bit signed codes are stored biased by +8 when unpacked
  let values: string;
  let decode: string;
  if (w.bits === 8 || fourBitDecode(model) === 'cast-int4') {
    const q = add(makeTensor(g.uniqueName(`${w.name}_quantized`), ONNX_TYPE[w.type], w.shape, w.codes));
    values = toFloat(q);
    decode = `Cast(${w.type.toUpperCase()})`;
  } else {
    // Opset < 21 has no INT4 Cast: store bytes as UINT8 and split the nibbles in float, where
    // x/16, floor and x - 16*hi are exact. Signed codes c become c + 8 (flip bit 3 of each
    // nibble) with the zero point raised by 8, so (u - zp') = (c - zp) exactly.
    const m = Math.ceil(n / 2);
    const bytes = new Uint8Array(m);
    const flip = w.type === 'int4' ? 0x8 : 0;
    const nib = (i: number) => ((w.codes[i >> 1] >> ((i & 1) * 4)) & 0xf) ^ flip;
    // Element i < m in the low nibble of byte i, element m + i in its high nibble: the halves concatenate.
    for (let i = 0; i < m; i++) bytes[i] = nib(i) | (m + i < n ? nib(m + i) << 4 : 0);
    if (w.type === 'int4') zeroShift = 8;
    const packed = add(makeTensor(g.uniqueName(`${w.name}_packed`), DataType.UINT8, [m], bytes));
    const sixteenth = add(makeTensor(g.uniqueName(`${w.name}_sixteenth`), DataType.FLOAT, [], bytesOf(Float32Array.of(1 / 16))));
    const sixteen = add(makeTensor(g.uniqueName(`${w.name}_sixteen`), DataType.FLOAT, [], bytesOf(Float32Array.of(16))));
    const f = toFloat(packed);
    const hi = op('hi', 'Floor', [op('div16', 'Mul', [f, sixteenth])]);
    const lo = op('lo', 'Sub', [f, op('hi16', 'Mul', [hi, sixteen])]);
    let flat = op('nibbles', 'Concat', [lo, hi], [intAttr('axis', 0)]);
    if (2 * m !== n) {
      // One high nibble too many: keep the first n (Slice takes inputs from opset 10, attributes before).
      if (model.opset('') >= 10) {
        const i64 = (base: string, v: number) => add(makeTensor(g.uniqueName(`${w.name}_${base}`), DataType.INT64, [1], bytesOf(BigInt64Array.of(BigInt(v)))));
        flat = op('trimmed', 'Slice', [flat, i64('start', 0), i64('end', n), i64('axes', 0)]);
      } else {
        flat = op('trimmed', 'Slice', [flat], [create<AttributeMsg>('AttributeProto', { name: 'starts', type: 7, ints: [0] }), create<AttributeMsg>('AttributeProto', { name: 'ends', type: 7, ints: [n] })]);
      }
    }
    const shape = add(makeTensor(g.uniqueName(`${w.name}_shape`), DataType.INT64, [rank], bytesOf(BigInt64Array.from(w.shape.map(BigInt)))));
    values = op('codes', 'Reshape', [flat, shape]);
    decode = 'nibble unpacking (UINT8 -> Cast -> Floor/Sub, no INT4 Cast below opset 21)';
  }

  // Parameters in a shape that broadcasts against the weight.
  const gr = w.granularity;
  let pshape: number[];
  let gatherIndex: string | null = null;
  if (gr.kind === 'tensor') pshape = [];
  else if (gr.kind === 'channel') pshape = w.shape.map((d, i) => (i === gr.axis ? d : 1));
  else {
    pshape = scaleDims(w.shape, gr);
    const D = w.shape[gr.axis];
    const idx = BigInt64Array.from({ length: D }, (_, i) => BigInt(Math.floor(i / gr.blockSize)));
    gatherIndex = add(makeTensor(g.uniqueName(`${w.name}_block_index`), DataType.INT64, [D], bytesOf(idx)));
  }
  const expand = (x: string) => (gatherIndex && gr.kind === 'block' ? op('expanded', 'Gather', [x, gatherIndex], [intAttr('axis', gr.axis)]) : x);

  const zp = w.params.zeroPoint;
  if (zeroShift !== 0 || zp.some((z) => z !== 0)) {
    // Zero points in the codes' own compact type (unpacked 4-bit: UINT8 after the +8 shift), cast to float.
    const zTensor = zeroShift !== 0 || (w.bits === 4 && fourBitDecode(model) === 'unpack')
      ? makeTensor(g.uniqueName(`${w.name}_zero_point`), DataType.UINT8, pshape, Uint8Array.from(zp, (v) => v + zeroShift))
      : makeTensor(g.uniqueName(`${w.name}_zero_point`), ONNX_TYPE[w.type], pshape, packedZeroPoints(zp, w.bits));
    values = op('centered', 'Sub', [values, expand(toFloat(add(zTensor)))]);
  }
  const s = add(makeTensor(g.uniqueName(`${w.name}_scale`), DataType.FLOAT, pshape, bytesOf(Float32Array.from(w.params.scale))));
  op('decoded', 'Mul', [values, expand(s)], [], w.name);
  g.replaceWeight(w.name, inits, nodes);
  return { bytes: inits.reduce((a, t) => a + (t.rawData?.length ?? 0), 0), decode };
}

/** com.microsoft MatMulNBits in place of MatMul / Gemm: B stored transposed [N, k_blocks, block/2]. */
export function encodeMatMulNBits(model: OnnxModel, w: EncodedWeight, consumers: NodeMsg[], logical: [number, number], symmetric: boolean): number {
  const g = model.graph;
  const [K, N] = logical;
  const bs = (w.granularity as { blockSize: number }).blockSize;
  const kb = w.shape[1] / bs;
  const inits: TensorProtoMsg[] = [
    makeTensor(g.uniqueName(`${w.name}_B`), DataType.UINT8, [N, kb, bs / 2], w.codes),
    makeTensor(g.uniqueName(`${w.name}_scales`), DataType.FLOAT, [N * kb], bytesOf(Float32Array.from(w.params.scale))),
  ];
  if (!symmetric) {
    // Zero points: 4-bit, packed per row of N: ceil(k_blocks / 2) bytes each.
    const per = Math.ceil(kb / 2);
    const zp = new Uint8Array(N * per);
    for (let n = 0; n < N; n++) for (let b = 0; b < kb; b++) zp[n * per + (b >> 1)] |= (w.params.zeroPoint[n * kb + b] & 0xf) << ((b & 1) * 4);
    inits.push(makeTensor(g.uniqueName(`${w.name}_zero_points`), DataType.UINT8, [N * per], zp));
  }
  model.ensureOpset('com.microsoft', 1);
  for (const mm of consumers) {
    // Inputs: A, B, scales, zero_points, g_idx, bias (a Gemm's C becomes the bias).
    const bias = mm.opType === 'Gemm' ? mm.input[2] : undefined;
    const zp = inits[2]?.name ?? '';
    mm.input = [mm.input[0], inits[0].name!, inits[1].name!, ...(zp || bias ? [zp] : []), ...(bias ? ['', bias] : [])];
    mm.opType = 'MatMulNBits';
    mm.domain = 'com.microsoft';
    mm.attribute = [intAttr('K', K), intAttr('N', N), intAttr('bits', 4), intAttr('block_size', bs)];
  }
  g.replaceWeight(w.name, inits, []);
  return inits.reduce((s, t) => s + (t.rawData?.length ?? 0), 0);
}

/**
 * The float weight [K, N] a MatMulNBits node (4 bits, as encodeMatMulNBits writes it) multiplies
 * by: B [N, k_blocks, block/2] low nibble first, one scale per (n, block), zero points packed per
 * row of N (absent: 8, ONNX Runtime's default). Null when its inputs are not initializers or it is
 * not a 4-bit node without g_idx.
 */
export function decodeMatMulNBits(model: OnnxModel, node: NodeMsg): Float32Array | null {
  const g = model.graph;
  const K = attrInt(node, 'K', 0);
  const N = attrInt(node, 'N', 0);
  const bs = attrInt(node, 'block_size', 0);
  if (attrInt(node, 'bits', 4) !== 4 || !(K > 0 && N > 0 && bs > 0) || node.input[4]) return null;
  const b = g.weights.get(node.input[1]);
  const sc = g.weights.get(node.input[2]);
  const zpRef = node.input[3] ? g.weights.get(node.input[3]) : undefined;
  if (!b || !sc || (node.input[3] && !zpRef)) return null;
  // Packed 4-bit codes and zero points only (ORT also takes zero points in the scales' float type).
  if (b.tensor.dataType !== DataType.UINT8 || (zpRef && zpRef.tensor.dataType !== DataType.UINT8)) return null;
  const kb = Math.ceil(K / bs);
  const codes = model.tensorBytes(b.tensor);
  const scales = model.tensorFloat32(sc.tensor);
  const zp = zpRef ? model.tensorBytes(zpRef.tensor) : null;
  if (codes.length !== N * kb * (bs / 2) || scales.length !== N * kb) return null;
  const per = Math.ceil(kb / 2);
  const w = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < kb; blk++) {
      const z = zp ? (zp[n * per + (blk >> 1)] >> ((blk & 1) * 4)) & 0xf : 8;
      const s = scales[n * kb + blk];
      for (let j = 0; j < bs && blk * bs + j < K; j++) {
        const byte = codes[(n * kb + blk) * (bs / 2) + (j >> 1)];
        const q = (byte >> ((j & 1) * 4)) & 0xf;
        w[(blk * bs + j) * N + n] = Math.fround((q - z) * s);
      }
    }
  }
  return w;
}

/** FLOAT16 initializer + Cast: folded at load like the `folded` chain. */
export function encodeFp16(model: OnnxModel, name: string, shape: number[], half: Uint16Array): number {
  const g = model.graph;
  const init = makeTensor(g.uniqueName(`${name}_fp16`), DataType.FLOAT16, shape, bytesOf(half));
  g.replaceWeight(name, [init], [node(model, `${name}_Cast`, 'Cast', [init.name!], name, [intAttr('to', DataType.FLOAT)])]);
  return half.byteLength;
}
