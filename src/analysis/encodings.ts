/**
 * What a model's weights and activations are stored as, read back from the graph: folded decode
 * chains, DequantizeLinear weights, static QDQ activations, MatMulNBits, dynamic quantization,
 * fp16 casts. Inspect shows it; evaluation uses it to name why a model is slower than its baseline.
 */
import type { OnnxModel } from '../onnx/model.ts';
import { FLOAT_TYPES } from '../onnx/dtypes.ts';

export interface EncodingSummary {
  /** Weights recomputed by a Cast/Mul chain from integer initializers (ORT folds them at load). */
  folded: number;
  /** DequantizeLinear nodes whose input is an initializer (weights dequantized at every run unless fused). */
  dequantizedWeights: number;
  /** QuantizeLinear nodes on activations (static W8A8). */
  quantizedActivations: number;
  matMulNBits: number;
  /** DynamicQuantizeLinear / DynamicQuantizeMatMul nodes. */
  dynamic: number;
  /** FLOAT16 initializers cast to float. */
  fp16Casts: number;
  /** Palettized weights: a look-up table initializer gathered by constant indices (folded at load). */
  palettized: number;
  /** Sparse weights as a keep-bitmask + values chain (CumSum -> Gather, folded at load). */
  sparseBitmask: number;
  /** ONNX sparse_initializer entries (densified by ONNX Runtime at load). */
  sparseInitializers: number;
}

const DECODE_OPS = new Set(['Cast', 'Sub', 'Mul', 'Gather', 'Floor', 'Concat', 'Slice', 'Reshape', 'BitShift', 'Add', 'CumSum', 'Transpose']);

export function summarizeEncodings(model: OnnxModel): EncodingSummary {
  const g = model.graph;
  const nodes = model.msg.graph!.node;
  const isInit = (name: string) => g.weights.has(name);
  // A value is constant when every input of its producer is (the chains modelpress writes).
  const constant = new Set<string>();
  for (const n of nodes) {
    if (n.input.length && n.input.every((i) => !i || isInit(i) || constant.has(i)) && DECODE_OPS.has(n.opType ?? '')) for (const o of n.output) constant.add(o);
  }
  const s: EncodingSummary = { folded: 0, dequantizedWeights: 0, quantizedActivations: 0, matMulNBits: 0, dynamic: 0, fp16Casts: 0, palettized: 0, sparseBitmask: 0, sparseInitializers: (model.msg.graph!.sparseInitializer ?? []).length };
  // Values whose chain ends in the indices of a Gather from an initializer table (palettes, sparse values).
  const gatherIndices = new Set<string>();
  const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
  for (const n of nodes) {
    if (n.opType !== 'Gather' || !isInit(n.input[0]) || !constant.has(n.input[1])) continue;
    const cumsum = (name: string, depth = 0): boolean => {
      const p = producer.get(name);
      return !!p && depth < 8 && (p.opType === 'CumSum' || p.input.some((i) => constant.has(i) && cumsum(i, depth + 1)));
    };
    if (cumsum(n.input[1])) s.sparseBitmask++;
    else s.palettized++;
    const stack = [n.input[1]];
    while (stack.length) {
      const v = stack.pop()!;
      if (gatherIndices.has(v)) continue;
      gatherIndices.add(v);
      const p = producer.get(v);
      if (p) stack.push(...p.input.filter((i) => constant.has(i)));
    }
  }
  for (const n of nodes) {
    const op = n.opType ?? '';
    if (op === 'DequantizeLinear' && isInit(n.input[0])) s.dequantizedWeights++;
    else if (op === 'QuantizeLinear' && !isInit(n.input[0]) && !constant.has(n.input[0])) s.quantizedActivations++;
    else if (op === 'MatMulNBits') s.matMulNBits++;
    else if (op === 'DynamicQuantizeLinear' || op === 'DynamicQuantizeMatMul') s.dynamic++;
    else if (op === 'Cast' && isInit(n.input[0])) {
      const t = g.weights.get(n.input[0])!.tensor.dataType ?? 0;
      if (t === 10) s.fp16Casts++;
      else if (!FLOAT_TYPES.has(t) && !gatherIndices.has(n.output[0])) {
        // The head of a folded chain: count the weight once, where the chain ends in a float consumer.
        s.folded++;
      }
    }
  }
  return s;
}

/**
 * Why a compressed model runs slower than its baseline in ONNX Runtime CPU, and the flag that
 * fixes it; null when nothing in the graph explains it.
 */
export function slowdownCause(s: EncodingSummary): string | null {
  if (s.dequantizedWeights > 0 && s.quantizedActivations === 0) {
    return `${s.dequantizedWeights} weights are stored as DequantizeLinear, which ONNX Runtime keeps in the graph and runs at every inference; compress with --format folded (the default for --target ort-cpu) for float speed`;
  }
  if (s.quantizedActivations > 0) {
    return 'static W8A8: the QuantizeLinear/DequantizeLinear pairs at layer edges cost more than the integer kernels save on this model and CPU (common for small models); compress weight-only (drop --calibration) for float speed';
  }
  if (s.matMulNBits > 0) {
    return `${s.matMulNBits} MatMulNBits nodes: ONNX Runtime's 4-bit GEMM is slower than float GEMM here (it saves run-time memory); use --format folded for float speed`;
  }
  if (s.dynamic > 0) {
    return 'dynamic quantization: quantizing activations at run time costs more than the int8 products save on this model; drop --activations dynamic';
  }
  return null;
}
