/**
 * Dynamic-range quantization (TensorFlow Lite's "dynamic range", ONNX Runtime's quantize_dynamic):
 * MatMul / Gemm weights become int8 per output column, activations are quantized at run time.
 *
 *   x -> DynamicQuantizeLinear -> (xq, x_scale, x_zp)         (once per activation tensor)
 *   MatMulInteger(xq, Wq, x_zp) -> Cast(float) -> Mul(Mul(x_scale, W_scale)) [-> Add bias]
 *
 * exactly the pattern ONNX Runtime fuses into MatMulIntegerToFloat (and DynamicQuantizeMatMul when
 * the activation feeds one product only). Convolutions keep float kernels: weight-only int8 runs
 * on them afterwards (ConvInteger measured slower than float Conv in ORT CPU: bench/dynamic.ts).
 */
import { ModelError } from '../../errors.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { DataType } from '../../onnx/dtypes.ts';
import { elemTypes } from '../../onnx/types.ts';
import { create, type NodeMsg, type TensorProtoMsg } from '../../onnx/proto.ts';
import { bytesOf, makeTensor, tensorDims } from '../../onnx/tensor.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { rangeKernel } from '../../kernels/range.ts';
import { quantizeKernel } from '../../kernels/quantize.ts';
import { dequantizeKernel, type ErrorStats } from '../../kernels/dequantize.ts';
import { paramsFromScales, type QuantParams } from '../../kernels/qparams.ts';
import type { Granularity } from '../../kernels/layout.ts';
import { defaultGroupBytes, groupsByBytes } from '../weight-groups.ts';
import type { Skip } from './targets.ts';
import type { TensorReport } from './weight-only.ts';
import { intAttr, numberAttr } from '../../onnx/attributes.ts';

export interface DynamicOptions {
  scheduler: Scheduler;
  /** Node names left in float. */
  floatNodes?: ReadonlySet<string>;
  /**
   * Weights in 7 bits ([-63, 63]) instead of 8: ORT's u8 x s8 kernels on x86 without VNNI
   * (VPMADDUBSW) saturate int16 pair sums with full-range weights; 7-bit weights cannot.
   */
  reduceRange?: boolean;
  /** Weights with fewer elements stay float (default 1024). */
  minElements?: number;
  /** Bytes of f32 weights read and quantized at a time (default 4 MiB on the CPU path, 256 MiB on a GPU). */
  groupBytes?: number;
}

export interface DynamicResult {
  tensors: TensorReport[];
  skipped: Skip[];
  /** Nodes rewritten to integer products. */
  nodes: string[];
  /** Initializers this pass created (int8 weights, scales): not candidates for later passes. */
  created: string[];
}

interface Candidate {
  node: NodeMsg;
  weight: string;
  transB: boolean;
}


/** Why this node cannot take the dynamic pattern, or null. */
function refusal(model: OnnxModel, node: NodeMsg, types: Map<string, number>): string | null {
  const g = model.graph;
  const w = g.weights.get(node.input[1]);
  if (!w) return 'its weight input is not a constant';
  if (w.tensor.dataType !== DataType.FLOAT) return 'its weight is not FLOAT';
  if (tensorDims(w.tensor).length !== 2) return `MatMulInteger needs a 2-D weight (rank ${tensorDims(w.tensor).length})`;
  if (g.weights.has(node.input[0])) return 'input A is a constant';
  if (types.get(node.input[0]) !== DataType.FLOAT) return 'input A is not a FLOAT activation (DynamicQuantizeLinear takes float)';
  if (node.opType === 'Gemm') {
    if (numberAttr(node, 'transA', 0) !== 0 || numberAttr(node, 'alpha', 1) !== 1 || numberAttr(node, 'beta', 1) !== 1) return 'Gemm with transA, alpha or beta other than 0, 1, 1';
    const c = node.input[2];
    if (c && !g.weights.has(c)) return 'Gemm bias is not a constant';
  }
  return null;
}

export async function quantizeDynamic(model: OnnxModel, opts: DynamicOptions): Promise<DynamicResult> {
  // DynamicQuantizeLinear is ai.onnx opset 11; older models get ORT's fused contrib op directly.
  const contrib = model.opset('') < 11;
  const g = model.graph;
  const msg = model.msg.graph!;
  const skipped: Skip[] = [];
  const minElements = opts.minElements ?? 1024;
  const types = elemTypes(msg);
  const byWeight = new Map<string, Candidate[]>();
  for (const node of msg.node) {
    if ((node.opType !== 'MatMul' && node.opType !== 'Gemm') || (node.domain ?? '') !== '') continue;
    if (opts.floatNodes?.has(node.name ?? '')) continue;
    const why = refusal(model, node, types);
    const w = node.input[1];
    if (why) {
      if (g.weights.has(w)) skipped.push({ name: w, opType: node.opType, shape: tensorDims(g.weights.get(w)!.tensor), reason: `${node.name}: ${why}` });
      continue;
    }
    const list = byWeight.get(w) ?? [];
    list.push({ node, weight: w, transB: node.opType === 'Gemm' && numberAttr(node, 'transB', 0) === 1 });
    byWeight.set(w, list);
  }
  // A weight is rewritten only when every consumer takes the integer product in the same layout.
  const plans: Array<{ name: string; K: number; N: number; uses: Candidate[] }> = [];
  for (const [name, uses] of byWeight) {
    const ref = g.weights.get(name)!;
    const dims = tensorDims(ref.tensor);
    const skip = (reason: string) => skipped.push({ name, opType: uses[0].node.opType ?? '', shape: dims, reason });
    if (g.uses(name).length !== uses.length) {
      skip('shared with a node that does not take the integer product');
      continue;
    }
    if (new Set(uses.map((u) => u.transB)).size > 1) {
      skip('used both transposed and not');
      continue;
    }
    if (dims[0] * dims[1] < minElements) {
      skip(`small (${dims[0] * dims[1]} elements < minElements ${minElements})`);
      continue;
    }
    const [K, N] = uses[0].transB ? [dims[1], dims[0]] : dims;
    plans.push({ name, K, N, uses });
  }

  const granularity: Granularity = { kind: 'channel', axis: 1 };
  const qmax = opts.reduceRange ? 63 : 127;
  // On the CPU path the quantize pass also measures the round-trip error (one pass over the
  // weights); a GPU runs the dequantize kernel against the original.
  const onCpu = opts.scheduler.info.active === 'cpu';
  const quantized: Array<{ codes: Uint8Array; params: QuantParams; error: ErrorStats }> = [];
  // Groups of weights bound peak memory: each group's f32 data is read (on the CPU path straight
  // into the engine's memory), quantized and dropped before the next group is read.
  const groups = groupsByBytes(plans, (p) => 4 * p.K * p.N, opts.groupBytes ?? defaultGroupBytes(opts.scheduler));
  opts.scheduler.prepareCpuThreads(plans.reduce((a, p) => a + 4 * p.K * p.N, 0));
  for (const group of groups) await opts.scheduler.withHostArrays(group.reduce((a, p) => a + 4 * p.K * p.N, 0), async (alloc) => {
    const data = group.map((p) => {
      const ref = g.weights.get(p.name)!;
      if (!p.uses[0].transB) return model.tensorFloat32(ref.tensor, alloc(p.K * p.N));
      // MatMulInteger takes B as [K, N].
      const raw = model.tensorFloat32(ref.tensor);
      const t = alloc(p.K * p.N);
      for (let n = 0; n < p.N; n++) for (let k = 0; k < p.K; k++) t[k * p.N + n] = raw[n * p.K + k];
      return t;
    });
    const ranges = await opts.scheduler.run(rangeKernel, group.map((p, i) => ({ data: data[i], shape: [p.K, p.N], granularity, moments: false })));
    const params = ranges.map((r, i) => {
      if (r.nanCount.some((c) => c > 0) || r.infCount.some((c) => c > 0)) {
        throw new ModelError('NON_FINITE_WEIGHT', `weight '${group[i].name}' holds NaN or infinite values; fix the model or exclude its node`, { tensor: group[i].name });
      }
      const scales = Array.from(r.absmax, (a) => (a > 0 ? a / qmax : 1));
      return paramsFromScales(scales, new Array(scales.length).fill(0));
    });
    const codes = await opts.scheduler.run(quantizeKernel, group.map((p, i) => ({ data: data[i], shape: [p.K, p.N], granularity, bits: 8 as const, signed: true, params: params[i], errorStats: onCpu })));
    const errors = onCpu ? codes.map((c) => c.error!)
      : (await opts.scheduler.run(dequantizeKernel, group.map((p, i) => ({
        codes: codes[i].codes, shape: [p.K, p.N], granularity, bits: 8 as const, signed: true, params: params[i], original: data[i], values: false, statsAxis: null,
      })))).map((d) => d.tensor!);
    group.forEach((_, i) => quantized.push({ codes: codes[i].codes, params: params[i], error: errors[i] }));
  });

  const dql = new Map<string, [string, string, string]>();
  const tensors: TensorReport[] = [];
  const rewritten: string[] = [];
  const newInits: TensorProtoMsg[] = [];
  for (const [i, p] of plans.entries()) {
    const wq = makeTensor(g.uniqueName(`${p.name}_quantized`), DataType.INT8, [p.K, p.N], quantized[i].codes);
    const ws = makeTensor(g.uniqueName(`${p.name}_scale`), DataType.FLOAT, [p.N], bytesOf(Float32Array.from(quantized[i].params.scale)));
    newInits.push(wq, ws);
    for (const u of p.uses) {
      const node = u.node;
      const x = node.input[0];
      const mk = (opType: string, input: string[], output: string, attribute = [] as NodeMsg['attribute']) =>
        create<NodeMsg>('NodeProto', { name: g.uniqueName(`${node.name || p.name}_${opType}`), opType, input, output: [output], attribute });
      if (contrib) {
        const bias = node.opType === 'Gemm' && node.input[2] ? [node.input[2]] : [];
        model.ensureOpset('com.microsoft', 1);
        msg.node.splice(msg.node.indexOf(node), 1, create<NodeMsg>('NodeProto', {
          name: g.uniqueName(`${node.name || p.name}_DynamicQuantizeMatMul`), opType: 'DynamicQuantizeMatMul', domain: 'com.microsoft',
          input: [x, wq.name!, ws.name!, ...(bias.length ? ['', ...bias] : [])], output: [node.output[0]], attribute: [],
        }));
        rewritten.push(node.name ?? '');
        continue;
      }
      const out: NodeMsg[] = [];
      let q = dql.get(x);
      if (!q) {
        // Quantized once per activation tensor, right after it is produced (before every consumer).
        q = [g.uniqueName(`${x}_quantized`), g.uniqueName(`${x}_scale`), g.uniqueName(`${x}_zero_point`)];
        const quantize = create<NodeMsg>('NodeProto', { name: g.uniqueName(`${x}_DynamicQuantizeLinear`), opType: 'DynamicQuantizeLinear', input: [x], output: q, attribute: [] });
        msg.node.splice(msg.node.findIndex((n) => n.output.includes(x)) + 1, 0, quantize);
        dql.set(x, q);
      }
      const mi = g.uniqueName(`${node.name || p.name}_int32`);
      const mc = g.uniqueName(`${node.name || p.name}_int32_float`);
      const ms = g.uniqueName(`${node.name || p.name}_scales`);
      const bias = node.opType === 'Gemm' ? node.input[2] : '';
      const y = node.output[0];
      out.push(
        mk('MatMulInteger', [q[0], wq.name!, q[2]], mi),
        mk('Mul', [q[1], ws.name!], ms),
        mk('Cast', [mi], mc, [intAttr('to', DataType.FLOAT)]),
      );
      if (bias) {
        const scaled = g.uniqueName(`${node.name || p.name}_scaled`);
        out.push(mk('Mul', [mc, ms], scaled), mk('Add', [scaled, bias], y));
      } else {
        out.push(mk('Mul', [mc, ms], y));
      }
      msg.node.splice(msg.node.indexOf(node), 1, ...out);
      rewritten.push(node.name ?? '');
    }
    const ref = g.weights.get(p.name)!;
    if (ref.source === 'initializer') msg.initializer.splice(msg.initializer.indexOf(ref.tensor), 1);
    else msg.node.splice(msg.node.indexOf(ref.node!), 1);
    const e = quantized[i].error;
    tensors.push({
      name: p.name, op: p.uses[0].node.opType ?? '', nodes: p.uses.map((u) => u.node.name ?? ''), shape: tensorDims(ref.tensor),
      scheme: `int8${opts.reduceRange ? ' (7-bit range)' : ''} per-column symmetric, ${contrib ? 'com.microsoft.DynamicQuantizeMatMul' : 'MatMulInteger'} with dynamic uint8 activations`,
      encoding: 'dynamic', encodingReason: 'activations quantized at run time (DynamicQuantizeLinear); ONNX Runtime fuses the integer product and rescale into MatMulIntegerToFloat',
      bytesBefore: p.K * p.N * 4, bytesAfter: p.K * p.N + p.N * 4, mse: e.mse, sqnrDb: e.sqnrDb, maxAbsError: e.maxAbsError, cosine: e.cosine,
    });
  }
  msg.initializer.push(...newInits);
  model.reindex();
  return { tensors, skipped, nodes: rewritten, created: newInits.map((t) => t.name!) };
}
