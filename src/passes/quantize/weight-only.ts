/**
 * Weight-only compression: int8/uint8 per-tensor or per-channel, int4/uint4 per-channel or
 * block-wise, and fp16. Numerics run on the scheduler (range -> scales -> quantize -> round-trip
 * error), a few submits for the whole model; the graph is then rewritten so each weight's value is
 * recomputed under its original name, in the format the recipe's target runs fastest
 * (weight-encodings.ts: folded Cast/Mul chains, DequantizeLinear, MatMulNBits, fp16 Cast).
 */
import { ModelError } from '../../errors.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { rangeKernel } from '../../kernels/range.ts';
import { quantizeKernel } from '../../kernels/quantize.ts';
import { dequantizeKernel, type ErrorStats } from '../../kernels/dequantize.ts';
import { computeQuantParams, type Bits, type QuantParams } from '../../kernels/qparams.ts';
import type { Granularity } from '../../kernels/layout.ts';
import { DataType, dataTypeName } from '../../onnx/dtypes.ts';
import { floatsToHalves, halfValues } from '../../onnx/float16.ts';
import type { OnnxModel } from '../../onnx/model.ts';
import { numberAttr } from '../../onnx/attributes.ts';
import { defaultGroupBytes, groupsByBytes } from '../weight-groups.ts';
import { encodeFolded, encodeFp16, encodeMatMulNBits, encodeQdq, fourBitDecode, FOLD_LIMIT_BYTES, type EncodedWeight, type IntType } from './weight-encodings.ts';
import type { Recipe, WeightConfig } from '../../recipe/recipe.ts';
import { findTargets, type Skip, type Target } from './targets.ts';

export interface TensorReport {
  name: string;
  op: string;
  nodes: string[];
  shape: number[];
  /** e.g. "int8 per-channel(axis 0) symmetric, folded (Cast->Mul)". */
  scheme: string;
  /** How the weight is stored in the graph, and why (the target and format that chose it). */
  encoding: 'folded' | 'qdq' | 'matmulnbits' | 'fp16-cast' | 'dynamic' | 'palette' | 'sparse';
  encodingReason: string;
  bytesBefore: number;
  bytesAfter: number;
  mse: number;
  sqnrDb: number;
  maxAbsError: number;
  cosine: number;
}

export interface WeightOnlyResult {
  tensors: TensorReport[];
  skipped: Skip[];
}

export interface WeightOnlyOptions {
  recipe: Recipe;
  scheduler: Scheduler;
  /**
   * Weights are processed in groups of at most this many f32 bytes (bounds peak memory; a larger
   * tensor is a group of its own). Default: 4 MiB on the CPU path, 256 MiB on a GPU, where each
   * group costs a few submits.
   */
  groupBytes?: number;
  onProgress?: (done: number, total: number, name: string) => void;
  /** 8-bit weights from a 7-bit range (static W8A8 for CPUs without VNNI; see QuantScheme). */
  reduceRange?: boolean;
  /**
   * Data-aware rounding (GPTQ): rewrites a weight's data to grid values under the params the
   * round-to-nearest path computed (from the original weight); false leaves the weight to RTN.
   */
  rounder?: { round(w: { name: string; data: Float32Array; shape: readonly number[]; granularity: Granularity; params: QuantParams; bits: Bits; gridBits?: number; signed: boolean }): Promise<boolean> };
}

interface IntPlan {
  target: Target;
  kind: 'folded' | 'qdq' | 'matmulnbits';
  /** Storage bits (4 or 8). */
  bits: Bits;
  /** The grid's bits: 3 for int3 / uint3 (stored as 4-bit codes), else `bits`. */
  gridBits: number;
  signed: boolean;
  /** The values quantized: the weight as stored, or transposed and padded for MatMulNBits. */
  data: Float32Array;
  /** MatMulNBits: the [K, N] of the product. */
  logical?: [number, number];
  shape: number[];
  granularity: Granularity;
  domain: '' | 'com.microsoft';
  describe: string;
  /** Why this encoding (shown in the report and by inspect). */
  why: string;
}

function opsetNeeded(bits: Bits, granularity: Granularity['kind']): number {
  if (bits === 4 || granularity === 'block') return 21;
  return granularity === 'channel' ? 13 : 10;
}

function granularityText(g: Granularity): string {
  return g.kind === 'tensor' ? 'per-tensor' : g.kind === 'channel' ? `per-channel(axis ${g.axis})` : `block ${g.blockSize} (axis ${g.axis})`;
}

/**
 * The grid round-to-nearest would use for one weight (as compressWeights computes it: exact range
 * reduction, then computeQuantParams), with the data in the layout the encoder quantizes; null for
 * weights it would not quantize to integers. Sequential GPTQ rounds ahead of the pass with it.
 */
export function rtnPlan(model: OnnxModel, t: Target, data: Float32Array): { data: Float32Array; shape: number[]; granularity: Granularity; params: QuantParams; bits: Bits; gridBits: number; signed: boolean; kind: string } | null {
  const p = planTarget(model, t, data);
  if (typeof p === 'string') return null;
  const r = rangeKernel.cpu({ data: p.data, shape: p.shape, granularity: p.granularity, moments: false });
  if (r.nanCount.some((x) => x > 0) || r.infCount.some((x) => x > 0)) return null;
  const params = computeQuantParams(r.min, r.max, { bits: p.bits, gridBits: p.gridBits, signed: p.signed, symmetric: t.config.symmetric, granularity: p.granularity });
  return { data: p.data, shape: [...p.shape], granularity: p.granularity, params, bits: p.bits, gridBits: p.gridBits, signed: p.signed, kind: p.kind };
}

/** The ONNX integer type a weight type is stored as (3-bit grids in 4-bit types). */
function storageType(weights: string): IntType {
  return weights === 'int3' ? 'int4' : weights === 'uint3' ? 'uint4' : (weights as IntType);
}

/** Decides how one weight is stored, or why it cannot be. `data` null: plan only (inspect). */
function planTarget(model: OnnxModel, t: Target, data: Float32Array | null): IntPlan | string {
  const c = t.config as WeightConfig & { weights: IntType | 'int3' | 'uint3' };
  const target = t.deployment;
  const bits: Bits = c.weights === 'int8' || c.weights === 'uint8' ? 8 : 4;
  const gridBits = c.weights === 'int3' || c.weights === 'uint3' ? 3 : bits;
  const signed = c.weights === 'int8' || c.weights === 'int4' || c.weights === 'int3';
  const rank = t.shape.length;
  if (c.format === 'matmulnbits') {
    const why = matMulNBitsRefusal(model, t);
    if (why) return why;
    // B is stored transposed, [N, K] padded to whole blocks (padding quantizes to the zero point).
    const transposed = t.opType === 'Gemm' && numberAttr(t.nodes[0], 'transB', 0) === 1;
    const [K, N] = transposed ? [t.shape[1], t.shape[0]] : t.shape;
    const bs = c.blockSize;
    const kpad = Math.ceil(K / bs) * bs;
    const tr = new Float32Array(data ? N * kpad : 0);
    if (data && transposed) for (let n = 0; n < N; n++) tr.set(data.subarray(n * K, (n + 1) * K), n * kpad);
    else if (data) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) tr[n * kpad + k] = data[k * N + n];
    return {
      target: t, kind: 'matmulnbits', bits: 4, gridBits: 4, signed: false, data: tr, shape: [N, kpad], logical: [K, N],
      granularity: { kind: 'block', axis: 1, blockSize: bs }, domain: 'com.microsoft',
      describe: `${c.weights} block ${bs} ${c.symmetric ? 'symmetric' : 'asymmetric'}, MatMulNBits`,
      why: 'format matmulnbits: ONNX Runtime\'s 4-bit GEMM keeps the weight 4-bit in memory at run time',
    };
  }
  let granularity: Granularity;
  if (c.granularity === 'tensor' || t.axis < 0) granularity = { kind: 'tensor' };
  else if (c.granularity === 'channel') granularity = { kind: 'channel', axis: t.axis };
  else {
    // Blocks run along the reduction (input) dimension: the other axis of a 2-D weight.
    const axis = rank === 2 ? 1 - t.axis : rank - 2;
    granularity = { kind: 'block', axis, blockSize: c.blockSize };
  }
  const scheme = `${c.weights}${gridBits < bits ? ` (in ${signed ? 'INT4' : 'UINT4'})` : ''} ${granularityText(granularity)} ${c.symmetric ? 'symmetric' : 'asymmetric'}`;
  let fallback = '';
  const elements = t.shape.reduce((a, b) => a * b, 1);
  const values = data ?? new Float32Array(0);
  if (c.format === 'folded') {
    if (elements * 4 <= FOLD_LIMIT_BYTES) {
      const decode = bits === 4 && fourBitDecode(model) === 'unpack' ? ', nibbles unpacked (opset < 21 has no INT4 Cast)' : '';
      return {
        target: t, kind: 'folded', bits, gridBits, signed, data: values, shape: t.shape, granularity, domain: '',
        describe: `${scheme}, folded (Cast->Mul)${decode}`,
        why: `target ${target}: ONNX Runtime constant-folds the Cast/Mul chain into a float weight at load, so inference runs at float speed`,
      };
    }
    fallback = `; not folded: the decoded weight (${(elements * 4 / 2 ** 30).toFixed(2)} GiB) exceeds ONNX Runtime's 1 GiB constant-folding cap`;
  }
  const need = opsetNeeded(bits, granularity.kind);
  const have = model.opset('');
  let domain: '' | 'com.microsoft' = '';
  if (have < need) {
    if (granularity.kind === 'block') {
      return `block-wise DequantizeLinear needs ai.onnx opset 21 and the model imports ${have}; use format folded or matmulnbits (MatMul), or granularity channel`;
    }
    // ONNX Runtime's com.microsoft DequantizeLinear takes axis and 4-bit types at any opset.
    domain = 'com.microsoft';
  }
  return {
    target: t, kind: 'qdq', bits, gridBits, signed, data: values, shape: t.shape, granularity, domain,
    describe: `${scheme}, ${domain ? 'com.microsoft.' : ''}DequantizeLinear`,
    why: fallback
      ? `format folded${fallback}`
      : `target ${target}: runtimes that run integer kernels (TensorRT, QNN, OpenVINO) take QDQ weights; ONNX Runtime CPU dequantizes them at every run`,
  };
}


/** MatMulNBits computes A[M, K] x B[K, N] (+ bias[N]): MatMul with a 2-D weight, or a plain Gemm. */
function matMulNBitsRefusal(model: OnnxModel, t: Target): string | null {
  if (t.shape.length !== 2) return `MatMulNBits needs a 2-D weight; '${t.weight.name}' has rank ${t.shape.length}`;
  for (const n of t.nodes) {
    if (n.opType === 'MatMul') {
      if (n.input[1] !== t.weight.name) return 'MatMulNBits takes the weight as the second MatMul input';
      continue;
    }
    if (n.opType !== 'Gemm') return `MatMulNBits replaces MatMul or Gemm; this weight is used by ${n.opType}`;
    if (numberAttr(n, 'transA', 0) !== 0 || numberAttr(n, 'alpha', 1) !== 1 || numberAttr(n, 'beta', 1) !== 1) {
      return 'Gemm with transA, alpha or beta other than 0, 1, 1 has no MatMulNBits form';
    }
    const c = n.input[2];
    if (c) {
      const bias = model.graph.weights.get(c);
      const n_ = numberAttr(n, 'transB', 0) ? t.shape[0] : t.shape[1];
      if (!bias || bias.tensor.dims.length !== 1 || Number(bias.tensor.dims[0]) !== n_) return 'Gemm bias is not a constant 1-D [N] tensor';
    }
  }
  return null;
}

function fp16Stats(data: Float32Array, half: Uint16Array): ErrorStats {
  let e2 = 0, x2 = 0, h2 = 0, xh = 0, emax = 0, n = 0, bad = 0;
  const value = halfValues();
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (!Number.isFinite(x)) {
      bad++;
      continue;
    }
    const h = value[half[i]];
    const e = x - h;
    e2 += e * e; x2 += x * x; h2 += h * h; xh += x * h; emax = Math.max(emax, Math.abs(e)); n++;
  }
  const denom = Math.sqrt(x2 * h2);
  return {
    mse: n ? e2 / n : 0, sqnrDb: e2 === 0 ? Infinity : 10 * Math.log10(x2 / e2), maxAbsError: emax,
    cosine: denom === 0 ? 1 : xh / denom, count: n, nonFinite: bad,
  };
}

function nonFiniteMessage(name: string, nan: number, inf: number): string {
  return `weight '${name}' holds ${nan} NaN and ${inf} infinite values; fix the model, or use onNonFinite: skip to leave it in float`;
}

/** How each weight would be encoded and why, without reading its values (for inspect). */
export function plannedEncoding(model: OnnxModel, t: Target): { scheme: string; encoding: TensorReport['encoding']; why: string } | { skip: string } {
  if (t.config.weights === 'fp16') return { scheme: 'fp16, Cast', encoding: 'fp16-cast', why: 'FLOAT16 initializer + Cast: ONNX Runtime folds the Cast at load' };
  const p = planTarget(model, t, null);
  return typeof p === 'string' ? { skip: p } : { scheme: p.describe, encoding: p.kind, why: p.why };
}

export async function compressWeights(model: OnnxModel, opts: WeightOnlyOptions): Promise<WeightOnlyResult> {
  const { recipe, scheduler } = opts;
  const { targets, skipped } = findTargets(model.graph, recipe);
  const tensors: TensorReport[] = [];
  // Groups of weights bound peak memory: each group's f32 data is dropped once it is rewritten.
  const groups = groupsByBytes(targets, (t) => 4 * t.shape.reduce((a, x) => a * x, 1), opts.groupBytes ?? defaultGroupBytes(scheduler));
  scheduler.prepareCpuThreads(targets.reduce((a, t) => a + 4 * t.shape.reduce((x, y) => x * y, 1), 0));
  let done = 0;
  // One group at a time; on the CPU path its tensors are read straight into the engine's memory.
  for (const group of groups) await scheduler.withHostArrays(group.reduce((a, t) => a + 4 * t.shape.reduce((x, y) => x * y, 1), 0), async (alloc) => {
    const plans: IntPlan[] = [];
    for (const t of group) {
      const type = t.weight.tensor.dataType ?? 0;
      const report = (reason: string) => skipped.push({ name: t.weight.name, opType: t.opType, shape: t.shape, reason });
      if (type !== DataType.FLOAT) {
        report(`${dataTypeName(type)} weight: only FLOAT (f32) weights are compressed`);
        continue;
      }
      const data = model.tensorFloat32(t.weight.tensor, alloc(t.shape.reduce((a, b) => a * b, 1)));
      if (t.config.weights === 'fp16') {
        const half = floatsToHalves(data);
        const stats = fp16Stats(data, half);
        if (stats.nonFinite > 0) {
          // Rare: NaN and Inf counted apart only for the message.
          let nan = 0;
          for (let i = 0; i < data.length; i++) if (Number.isNaN(data[i])) nan++;
          const inf = stats.nonFinite - nan;
          if (recipe.onNonFinite === 'error') throw new ModelError('NON_FINITE_WEIGHT', nonFiniteMessage(t.weight.name, nan, inf), { tensor: t.weight.name });
          report(`holds ${nan} NaN / ${inf} Inf values (onNonFinite: skip)`);
          continue;
        }
        const before = data.length * 4;
        const bytes = encodeFp16(model, t.weight.name, t.shape, half);
        tensors.push({
          name: t.weight.name, op: t.opType, nodes: t.nodes.map((n) => n.name ?? ''), shape: t.shape, scheme: 'fp16, Cast', encoding: 'fp16-cast',
          encodingReason: 'FLOAT16 initializer + Cast: ONNX Runtime folds the Cast at load', bytesBefore: before, bytesAfter: bytes,
          mse: stats.mse, sqnrDb: stats.sqnrDb, maxAbsError: stats.maxAbsError, cosine: stats.cosine,
        });
        opts.onProgress?.(++done, targets.length, t.weight.name);
        continue;
      }
      const plan = planTarget(model, t, data);
      if (typeof plan === 'string') report(plan);
      else plans.push(plan);
    }
    if (!plans.length) return;
    const ranges = await scheduler.run(rangeKernel, plans.map((p) => ({ data: p.data, shape: p.shape, granularity: p.granularity, moments: false })));
    const ok: Array<{ plan: IntPlan; params: QuantParams }> = [];
    plans.forEach((p, i) => {
      const r = ranges[i];
      const nan = r.nanCount.reduce((a, b) => a + b, 0);
      const inf = r.infCount.reduce((a, b) => a + b, 0);
      if (nan + inf > 0) {
        if (recipe.onNonFinite === 'error') throw new ModelError('NON_FINITE_WEIGHT', nonFiniteMessage(p.target.weight.name, nan, inf), { tensor: p.target.weight.name });
        skipped.push({ name: p.target.weight.name, opType: p.target.opType, shape: p.target.shape, reason: `holds ${nan} NaN / ${inf} Inf values (onNonFinite: skip)` });
        return;
      }
      const params = computeQuantParams(r.min, r.max, { bits: p.bits, gridBits: p.gridBits, signed: p.signed, symmetric: p.target.config.symmetric, granularity: p.granularity, reduceRange: opts.reduceRange });
      if (opts.reduceRange && p.bits === 8) p.describe = p.describe.replace(/^(u?int8)/, '$1 (7-bit range)');
      ok.push({ plan: p, params });
    });
    // GPTQ rewrites the weight to its grid values; the original is kept for the error statistics.
    const originals = new Map<number, Float32Array>();
    for (const [i, { plan: p, params }] of ok.entries()) {
      const original = opts.rounder ? Float32Array.from(p.data) : null;
      if (original && (await opts.rounder!.round({ name: p.target.weight.name, data: p.data, shape: p.shape, granularity: p.granularity, params, bits: p.bits, gridBits: p.gridBits, signed: p.signed }))) {
        originals.set(i, original);
        p.describe += ', GPTQ';
      }
    }
    // On the CPU path the quantize pass also measures the round-trip error (one pass over the
    // data); a GPU, and GPTQ-rounded weights, run the dequantize kernel against the original.
    const onCpu = scheduler.info.active === 'cpu';
    const quantized = await scheduler.run(quantizeKernel, ok.map(({ plan: p, params }, i) => ({
      data: p.data, shape: p.shape, granularity: p.granularity, bits: p.bits, gridBits: p.gridBits, signed: p.signed, params, errorStats: onCpu && !originals.has(i),
    })));
    const separate = ok.map((_, i) => i).filter((i) => !onCpu || originals.has(i));
    const measured = await scheduler.run(dequantizeKernel, separate.map((i) => {
      const { plan: p, params } = ok[i];
      return { codes: quantized[i].codes, shape: p.shape, granularity: p.granularity, bits: p.bits, signed: p.signed, params, original: originals.get(i) ?? p.data, values: false, statsAxis: null };
    }));
    const errors = ok.map((_, i) => (separate.includes(i) ? measured[separate.indexOf(i)].tensor! : quantized[i].error!));
    ok.forEach(({ plan: p, params }, i) => {
      const w: EncodedWeight = {
        name: p.target.weight.name, type: storageType(p.target.config.weights), bits: p.bits, shape: p.shape, granularity: p.granularity, params, codes: quantized[i].codes,
      };
      const after = p.kind === 'matmulnbits' ? encodeMatMulNBits(model, w, p.target.nodes, p.logical!, p.target.config.symmetric)
        : p.kind === 'folded' ? encodeFolded(model, w).bytes : encodeQdq(model, w, p.domain);
      const e = errors[i];
      const t = p.target;
      tensors.push({
        name: t.weight.name, op: t.opType, nodes: t.nodes.map((n) => n.name ?? ''), shape: t.shape, scheme: p.describe, encoding: p.kind, encodingReason: p.why,
        bytesBefore: t.shape.reduce((a, b) => a * b, 4), bytesAfter: after, mse: e.mse, sqnrDb: e.sqnrDb, maxAbsError: e.maxAbsError, cosine: e.cosine,
      });
      opts.onProgress?.(++done, targets.length, t.weight.name);
    });
  });
  model.reindex();
  return { tensors, skipped };
}
