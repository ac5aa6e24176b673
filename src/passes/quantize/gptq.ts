/**
 * GPTQ in the quantize pass (`--weight-method gptq`): the Gram matrix H = XXᵀ of every eligible
 * layer's inputs is accumulated over calibration samples run through ONNX Runtime (im2col rows of
 * 2-D convolutions at sampled positions, Gemm / MatMul rows), then each weight is rounded column by
 * column with linalg/gptq.ts on the grid the round-to-nearest path would use (same scales and zero
 * points), so the output format is unchanged. Eligible: Conv (2-D; grouped and depthwise ones get
 * a Hessian per group), Gemm, MatMul with a 2-D constant weight used by one node; the others stay
 * round-to-nearest.
 */
import * as ort from 'onnxruntime-node';
import { DataError, InvalidArgumentError } from '../../errors.ts';
import type { NodeMsg } from '../../onnx/proto.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import type { GramJob } from '../../kernels/gram.ts';
import { groupOf, groupView, type Granularity } from '../../kernels/layout.ts';
import { schemeRange, type Bits, type QuantParams } from '../../kernels/qparams.ts';
import { quantizeValue } from '../../kernels/quantize.ts';
import { ortBatchedGram, releaseOrtGram } from '../../cpu/ort-gram.ts';
import { grams } from '../grams.ts';
import { tensorDims } from '../../onnx/tensor.ts';
import { replaceFloatWeight } from '../../onnx/model-edits.ts';
import { OnnxModel } from '../../onnx/model.ts';
import { rtnPlan } from './weight-only.ts';
import type { Target } from './targets.ts';
import { openDataset, seededSample } from '../../data/dataset.ts';
import { modelInput } from '../../calibrate/calibrate.ts';
import { sessionWithOutputs } from '../../eval/session.ts';
import { attrInt, ints } from '../../analysis/shapes.ts';
import { gptq, gptqPrepare, layerObjective, visitingOrder } from '../../linalg/gptq.ts';
import { releaseF64 } from '../../linalg/pool.ts';
import { gptqSweepKernel, type GptqSweepJob } from '../../kernels/gptq-sweep.ts';
import { choleskyKernel, upperFactor, upperFactorJob } from '../../kernels/cholesky.ts';
import { permuteLayer, type ObsLayer } from '../../linalg/obs.ts';
import { inputRows, layerGeometry, layerWaves, positionsFor, type Geometry } from '../layer-rows.ts';
import type { CalibrationSource } from '../pass.ts';

export interface GptqOptions {
  calibration: CalibrationSource;
  scheduler: Scheduler;
  /** Calibration samples (default: the calibration source's, else 128). */
  samples?: number;
  /** Convolution output positions sampled per image (default 64). */
  positions?: number;
  actOrder?: boolean;
  damping?: number;
  /**
   * Keep the Hessians after rounding and remember each result by weight and grid: for callers
   * that quantize the same weights several times at different widths (the weight-only gate).
   */
  reuse?: boolean;
  onProgress?: (stage: string, done: number, total: number) => void;
  /**
   * With a GPU backend: factor layers of at least this many inputs on the GPU (f32 `cholesky`
   * kernel) instead of in f64 on the CPU. Default: MODELPRESS_GPU_FACTOR_MIN_COLS when set, else
   * GPU_FACTOR_MIN_COLS (off until measured on a real GPU).
   */
  gpuFactorMinCols?: number;
}

/**
 * Size from which GPTQ factors on the GPU by default: none yet. The `cholesky` kernel is one
 * workgroup per matrix (one multiprocessor); on lavapipe it is 4–20× slower than the CPU path's
 * threaded f64 code (bench/factor.ts), and it has not been measured on a real GPU — a default that
 * could make GPU users' runs slower waits for that measurement (bench/device.sh).
 */
export const GPU_FACTOR_MIN_COLS = Infinity;

export interface GptqLayerReport {
  weight: string;
  /** Layer objective ‖(W − Ŵ)X‖² on the calibration inputs, round-to-nearest vs GPTQ. */
  objectiveRtn: number;
  objectiveGptq: number;
  damping: number;
  /** Where the column sweep ran: f64 on the CPU, or the f32 gptq_sweep kernel on the GPU. */
  sweep: 'cpu' | 'gpu';
}

interface Layer {
  weight: string;
  node: NodeMsg;
  g: Geometry;
  /** Weight [K, N] (MatMul, Gemm without transB): inputs are rows of the tensor. */
  inputsFirst: boolean;
  /**
   * Convolution groups: each group's M/G filters read only its C/G input channels, so it has a
   * Hessian of its own (G blocks of g.k × g.k, g.k = C/G·kh·kw). Depthwise: G = M, g.k = kh·kw.
   */
  groups: number;
  /**
   * ConvTranspose (group 1): W is [C_in, C_out, kh, kw]; row = output channel, features (c_in, i, j)
   * read x[c_in, (oh + top − i·dh) / sh, …] where that divides (else 0), the col2im of the input.
   */
  transposed?: { outputPadding: number[] };
}

/** Where element (row r, feature c) of a layer's weight sits in the tensor, for `rows` rows. */
function flatOf(layer: Layer, rows: number): (r: number, c: number) => number {
  const cols = layer.g.k;
  if (layer.transposed) {
    const kk = layer.g.conv!.kh * layer.g.conv!.kw;
    return (r, c) => Math.floor(c / kk) * rows * kk + r * kk + (c % kk);
  }
  return layer.inputsFirst ? (r, c) => c * rows + r : (r, c) => r * cols + c;
}

/** A ConvTranspose the row builder handles (2-D, group 1, explicit pads), as a geometry; else null. */
function transposedGeometry(node: NodeMsg, wDims: number[]): { g: Geometry; outputPadding: number[] } | null {
  if (wDims.length !== 4 || attrInt(node, 'group', 1) !== 1) return null;
  if (node.attribute.some((a) => a.name === 'output_shape')) return null;
  const autoPad = node.attribute.find((a) => a.name === 'auto_pad');
  if (autoPad?.s && new TextDecoder().decode(autoPad.s) !== 'NOTSET') return null;
  const strides = ints(node, 'strides') ?? [1, 1];
  const dil = ints(node, 'dilations') ?? [1, 1];
  return {
    g: { op: 'Conv', k: wDims[0] * wDims[2] * wDims[3], m: wDims[1], bias: false, conv: { kh: wDims[2], kw: wDims[3], sh: strides[0], sw: strides[1], dh: dil[0], dw: dil[1], pads: ints(node, 'pads') ?? [0, 0, 0, 0], autoPad: 'NOTSET' } },
    outputPadding: ints(node, 'output_padding') ?? [0, 0],
  };
}

/** Output dims of a ConvTranspose from its input (explicit pads, no output_shape). */
function transposedOutDims(l: Layer, x: ort.Tensor): number[] {
  const [n, , H, W] = x.dims as number[];
  const c = l.g.conv!;
  const op = l.transposed!.outputPadding;
  return [n, l.g.m, (H - 1) * c.sh - c.pads[0] - c.pads[2] + c.dh * (c.kh - 1) + op[0] + 1, (W - 1) * c.sw - c.pads[1] - c.pads[3] + c.dw * (c.kw - 1) + op[1] + 1];
}

/** Feature rows of a ConvTranspose at the given output positions of image n (features c_in-major, then i, j). */
function transposedRows(l: Layer, x: ort.Tensor, n: number, positions: number[], outDims: readonly number[], into: Float32Array, at: number): number {
  const [, C, H, W] = x.dims as number[];
  const c = l.g.conv!;
  const OW = outDims[3];
  const data = x.data as Float32Array;
  for (const p of positions) {
    const oh = Math.floor(p / OW);
    const ow = p % OW;
    let f = at * l.g.k;
    for (let ch = 0; ch < C; ch++) {
      const plane = (n * C + ch) * H * W;
      for (let i = 0; i < c.kh; i++) {
        const th = oh + c.pads[0] - i * c.dh;
        const ih = th / c.sh;
        for (let j = 0; j < c.kw; j++) {
          const tw = ow + c.pads[1] - j * c.dw;
          const iw = tw / c.sw;
          into[f++] = th >= 0 && tw >= 0 && Number.isInteger(ih) && Number.isInteger(iw) && ih < H && iw < W ? data[plane + ih * W + iw] : 0;
        }
      }
    }
    at++;
  }
  return at;
}

/** Layers whose weight GPTQ can round: one consumer, a 2-D input feature view. */
function eligible(model: OnnxModel, weights: readonly string[]): Map<string, Layer> {
  const out = new Map<string, Layer>();
  for (const weight of weights) {
    const uses = model.graph.uses(weight);
    if (uses.length !== 1 || uses[0].index !== 1) continue;
    const node = uses[0].node;
    const group = node.opType === 'Conv' ? attrInt(node, 'group', 1) : 1;
    const wDims = model.graph.weights.get(weight) ? tensorDims(model.graph.weights.get(weight)!.tensor) : [];
    if (group > 1 && !(wDims.length === 4 && wDims[0] % group === 0)) continue;
    if (node.opType === 'Gemm' && attrInt(node, 'transA', 0) !== 0) continue;
    if (node.opType === 'ConvTranspose') {
      const t = transposedGeometry(node, wDims);
      if (t) out.set(weight, { weight, node, g: t.g, groups: 1, inputsFirst: false, transposed: { outputPadding: t.outputPadding } });
      continue;
    }
    if (!['Conv', 'Gemm', 'MatMul'].includes(node.opType ?? '')) continue;
    const g = layerGeometry(node, model);
    if (typeof g === 'string') continue;
    out.set(weight, { weight, node, g: { ...g, bias: false }, groups: group, inputsFirst: node.opType === 'MatMul' || (node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 0) });
  }
  return out;
}

/** Where GPTQ's time goes, ms: ONNX Runtime runs, Gram accumulation, factorizations, column sweeps. */
export interface GptqTiming {
  ortMs: number;
  gramMs: number;
  solveMs: number;
  sweepMs: number;
}

export class GptqRounder {
  readonly reports: GptqLayerReport[] = [];
  readonly timing: GptqTiming = { ortMs: 0, gramMs: 0, solveMs: 0, sweepMs: 0 };
  private constructor(private readonly layers: Map<string, Layer>, private readonly hessians: Map<string, Float64Array>, private readonly dims: Map<string, number[]>, private readonly o: GptqOptions) {}

  /** Accumulates the Hessians of every eligible layer among `weights` over the calibration data. */
  /**
   * Accumulates the Hessians of every eligible layer among `weights` over the calibration data.
   * Sequential (with `targets`): layers in waves, each wave's inputs read from a copy of the model
   * whose earlier layers already hold their GPTQ-rounded values (Frantar et al.'s order), the
   * rounding done here with the grid the weight-only pass will use.
   */
  static async collect(model: OnnxModel, weights: readonly string[], o: GptqOptions, sequential?: { targets: readonly Target[] } | { transform: (weight: string, rounder: GptqRounder) => Float32Array | null }): Promise<GptqRounder> {
    const layers = eligible(model, weights);
    const hessians = new Map<string, Float64Array>();
    const input = modelInput(model);
    const ds = await openDataset(o.calibration.data, input, o.calibration.preprocess);
    const indices = seededSample(ds.count, o.samples ?? o.calibration.samples ?? 128, o.calibration.seed ?? 1);
    if (!indices.length) throw new DataError(`GPTQ needs calibration samples; ${ds.description} has none`);
    const positions = o.positions ?? 64;
    const batch = input.batch ?? 16;
    // Layers in chunks whose Hessians fit 512 MiB together: one ONNX Runtime pass per chunk.
    const chunks: Layer[][] = [];
    let cur: Layer[] = [];
    let bytes = 0;
    for (const l of layers.values()) {
      const b = 8 * l.g.k * l.g.k * l.groups;
      if (cur.length && bytes + b > 2 ** 29) { chunks.push(cur); cur = []; bytes = 0; }
      cur.push(l);
      bytes += b;
    }
    if (cur.length) chunks.push(cur);
    let done = 0;
    const order = new Map(model.msg.graph!.node.map((n, i) => [n, i]));
    const waves = sequential ? layerWaves(model, [...layers.values()].sort((a, b) => order.get(a.node)! - order.get(b.node)!)) : chunks;
    const total = waves.length * indices.length;
    const accumulate = async (source: OnnxModel, chunk: Layer[]) => {
      for (const l of chunk) hessians.set(l.weight, new Float64Array(l.g.k * l.g.k * l.groups));
      const reads = chunk.map((l) => l.node.input[0]);
      const session = await sessionWithOutputs(source, reads);
      try {
        for (let i = 0; i < indices.length; i += batch) {
          const idx = indices.slice(i, i + batch);
          if (input.batch !== null && idx.length !== input.batch) break;
          const tOrt = performance.now();
          const out = await session.run({ [input.name]: new ort.Tensor('float32', await ds.load(idx), [idx.length, ...ds.sampleDims]) });
          const tGram = performance.now();
          rounder.timing.ortMs += tGram - tOrt;
          const jobs: GramJob[] = [];
          const owners: Array<{ weight: string; offset: number }> = [];
          for (const [k, l] of chunk.entries()) {
            const x = out[reads[k]];
            const conv = l.g.op === 'Conv';
            const outDims = l.transposed ? transposedOutDims(l, x) : conv ? convOutDims(l, x) : [];
            const pos = idx.map((s, n) => (conv ? positionsFor(k, s, positions, outDims[2] * outDims[3], o.calibration.seed ?? 1) : null));
            // Grouped (depthwise too): im2col rows over every channel, then one Gram per group's block.
            const width = l.groups * l.g.k;
            const perImage = conv ? 0 : (x.data as Float32Array).length / Number(x.dims[0]) / width;
            const rows = pos.reduce((t, p) => t + (p ? p.length : perImage), 0);
            const X = new Float32Array(rows * width);
            let at = 0;
            idx.forEach((_, n) => { at = l.transposed ? transposedRows(l, x, n, pos[n]!, outDims, X, at) : inputRows({ ...l.g, k: width }, x, n, pos[n], outDims, X, at); });
            if (l.groups === 1) {
              jobs.push({ a: X, rows, fa: l.g.k });
              owners.push({ weight: l.weight, offset: 0 });
              continue;
            }
            const kk = l.g.k;
            const G = l.groups;
            const perGroup = new Float32Array(G * rows * kk);
            for (let r = 0; r < rows; r++) for (let c = 0; c < G; c++) perGroup.set(X.subarray(r * width + c * kk, r * width + (c + 1) * kk), (c * rows + r) * kk);
            if (o.scheduler.info.active === 'gpu') {
              for (let c = 0; c < G; c++) {
                jobs.push({ a: perGroup.subarray(c * rows * kk, (c + 1) * rows * kk), rows, fa: kk });
                owners.push({ weight: l.weight, offset: c * kk * kk });
              }
            } else {
              const g = await ortBatchedGram(perGroup, G, rows, kk);
              const h = hessians.get(l.weight)!;
              for (let q = 0; q < h.length; q++) h[q] += g[q];
            }
          }
          const results = await grams(o.scheduler, jobs);
          results.forEach((r, k) => {
            const h = hessians.get(owners[k].weight)!;
            const off = owners[k].offset;
            for (let q = 0; q < r.gram.length; q++) h[off + q] += r.gram[q];
          });
          rounder.timing.gramMs += performance.now() - tGram;
          done += idx.length;
          o.onProgress?.('GPTQ: layer inputs', done, total);
        }
      } finally {
        await session.release();
      }
    };
    const dims = new Map([...layers.keys()].map((w) => [w, tensorDims(model.graph.weights.get(w)!.tensor)]));
    const rounder = new GptqRounder(layers, hessians, dims, o);
    if (!sequential) {
      for (const chunk of chunks) await accumulate(model, chunk);
    } else {
      const targets = new Map('targets' in sequential ? sequential.targets.map((t) => [t.weight.name, t]) : []);
      const work = OnnxModel.fromBytes(model.toBytes(), model.baseDir, model.sourcePath ?? '<gptq>');
      for (const wave of waves) {
        await accumulate(work, wave);
        if ('transform' in sequential) {
          // Another data-aware method (SparseGPT): it rewrites each layer; later waves read its output.
          for (const l of wave) {
            const data = sequential.transform(l.weight, rounder);
            if (data) replaceFloatWeight(work, l.weight, dims.get(l.weight)!, data);
          }
          work.reindex();
          continue;
        }
        for (const l of wave) {
          const t = targets.get(l.weight);
          // A copy: tensorFloat32 may return a view of the model's own bytes.
          const plan = t ? rtnPlan(model, t, Float32Array.from(model.tensorFloat32(model.graph.weights.get(l.weight)!.tensor))) : null;
          if (!plan || plan.kind === 'matmulnbits' || !(await rounder.round({ name: l.weight, ...plan }))) {
            hessians.delete(l.weight);
            continue;
          }
          rounder.final.set(l.weight, plan.data);
          replaceFloatWeight(work, l.weight, dims.get(l.weight)!, Float32Array.from(plan.data));
        }
        work.reindex();
      }
    }
    await releaseOrtGram();
    return rounder;
  }

  /** Sequential mode: the rounded values, computed ahead of the weight-only pass. */
  readonly final = new Map<string, Float32Array>();

  has(weight: string): boolean {
    return this.hessians.has(weight);
  }

  /**
   * The collected Gram matrix of `weight`'s layer inputs and how the weight maps onto it: element
   * (row r = output, column c = input feature) sits at flat index `flat(r, c)` of the weight tensor.
   * Grouped convolutions hold one cols x cols block per group of rows / groups rows (depthwise: per
   * row). Null when the layer was not collected.
   */
  layerMatrix(weight: string): { h: Float64Array; rows: number; cols: number; groups: number; flat: (r: number, c: number) => number } | null {
    const layer = this.layers.get(weight);
    const h = this.hessians.get(weight);
    const dims = this.dims.get(weight);
    if (!layer || !h || !dims) return null;
    const cols = layer.g.k;
    const rows = dims.reduce((a, b) => a * b, 1) / cols;
    const flat = flatOf(layer, rows);
    return { h, rows, cols, groups: layer.groups, flat };
  }

  /** Frees a layer's Gram matrix once its user is done with it. */
  release(weight: string): void {
    this.hessians.delete(weight);
  }

  /**
   * Rewrites `data` (the weight tensor, f32, flat) to GPTQ's grid values under `params`; the
   * round-to-nearest quantizer then reproduces GPTQ's codes exactly. Returns false when the weight
   * is not an eligible layer.
   */
  async round(w: { name: string; data: Float32Array; shape: readonly number[]; granularity: Granularity; params: QuantParams; bits: Bits; gridBits?: number; signed: boolean }): Promise<boolean> {
    const key = this.o.reuse ? gridKey(w) : null;
    const done = this.final.get(w.name) ?? (key ? this.memo.get(key) : undefined);
    if (done) {
      if (done.length !== w.data.length) return false;
      w.data.set(done);
      return true;
    }
    const layer = this.layers.get(w.name);
    const h = this.hessians.get(w.name);
    if (!layer || !h) return false;
    const cols = layer.g.k;
    const dims = this.dims.get(w.name)!;
    let rows: number;
    let flat: (r: number, c: number) => number;
    if (w.shape.length === dims.length && w.shape.every((d, i) => d === dims[i])) {
      rows = w.data.length / cols;
      flat = flatOf(layer, rows);
    } else if (layer.groups === 1 && w.shape.length === 2 && w.shape[1] >= cols && w.shape[0] * cols === dims.reduce((a, b) => a * b, 1)) {
      // MatMulNBits stores the weight transposed, [N, K padded to the block]: pads stay zero.
      rows = w.shape[0];
      const stride = w.shape[1];
      flat = (r, c) => r * stride + c;
    } else {
      return false;
    }
    const view = groupView(w.shape, w.granularity);
    // The grid's own range: a 3-bit grid stored in 4-bit codes must not borrow the spare codes.
    const { qmin, qmax } = schemeRange({ bits: w.bits, gridBits: w.gridBits, signed: w.signed });
    const { scale, inverse, zeroPoint } = w.params;
    const gridGroup = (r: number, c: number) => groupOf(view, flat(r, c));
    const grid = (value: number, r: number, c: number) => {
      const g = gridGroup(r, c);
      const q = quantizeValue(value, inverse[g], zeroPoint[g], qmin, qmax);
      return Math.fround((q - zeroPoint[g]) * scale[g]);
    };
    // Each group's filters see only its own input channels: a GPTQ sweep per group (depthwise:
    // per channel). Conv weights are [M, C/G, kh, kw]: group g holds rows g·M/G .. (g+1)·M/G.
    const per = rows / layer.groups;
    const parts = Array.from({ length: layer.groups }, (_, gi) => {
      const r0 = gi * per;
      const W = new Float64Array(per * cols);
      for (let r = 0; r < per; r++) for (let c = 0; c < cols; c++) W[r * cols + c] = w.data[flat(r0 + r, c)];
      return { r0, W, h: layer.groups > 1 ? h.subarray(gi * cols * cols, (gi + 1) * cols * cols) : h };
    });
    const gridOf = (r0: number) => (v: number, r: number, c: number) => grid(v, r0 + r, c);
    // On the GPU when its factor U (cols² f32) fits one binding: otherwise the kernel would run as
    // its f32 JavaScript reference, far slower than the threaded f64 path.
    const onGpu = this.o.scheduler.info.active === 'gpu' && 4 * cols * cols <= this.o.scheduler.gpuWindowBytes();
    const results = onGpu
      ? await this.sweepOnGpu(parts, per, cols, { gridGroup, params: w.params, qmin, qmax })
      : parts.map((p) => {
        const res = gptq({ w: p.W, rows: per, cols, h: p.h, grid: gridOf(p.r0), damping: this.o.damping, actOrder: this.o.actOrder });
        this.timing.solveMs += res.timeMs.solve;
        this.timing.sweepMs += res.timeMs.sweep;
        return res;
      });
    let objRtn = 0;
    let objGptq = 0;
    let damping = 0;
    parts.forEach((p, i) => {
      const g = gridOf(p.r0);
      objRtn += layerObjective(p.W, Float64Array.from(p.W, (v, k) => g(v, Math.floor(k / cols), k % cols)), p.h, per, cols);
      objGptq += layerObjective(p.W, results[i].q, p.h, per, cols);
      damping = Math.max(damping, results[i].damping);
      const q = results[i].q;
      for (let r = 0; r < per; r++) for (let c = 0; c < cols; c++) w.data[flat(p.r0 + r, c)] = q[r * cols + c];
    });
    this.reports.push({ weight: w.name, objectiveRtn: objRtn, objectiveGptq: objGptq, damping, sweep: onGpu ? 'gpu' : 'cpu' });
    return this.rounded(w, key);
  }

  /**
   * The GPU route: each part factored on the CPU (f64, as gptq() does), every part's column sweep
   * in one pass of the gptq_sweep kernel (f32; a grouped convolution's groups batched). Grid values
   * in the original column order, as gptq() returns them.
   */
  private async sweepOnGpu(
    parts: Array<{ r0: number; W: Float64Array; h: Float64Array }>, rows: number, cols: number,
    grid: { gridGroup: (r: number, c: number) => number; params: QuantParams; qmin: number; qmax: number },
  ): Promise<Array<{ q: Float64Array; damping: number }>> {
    const { scale, inverse, zeroPoint } = grid.params;
    const tSolve = performance.now();
    const factored = cols >= this.gpuFactorMinCols() ? await this.factorOnGpu(parts, rows, cols) : null;
    if (factored) this.timing.solveMs += performance.now() - tSolve;
    const prepared = parts.map((p, i) => {
      const { layer, perm, solveMs } = factored ? factored[i] : gptqPrepare({ w: p.W, rows, cols, h: p.h, damping: this.o.damping, actOrder: this.o.actOrder });
      if (!factored) this.timing.solveMs += solveMs;
      const job: GptqSweepJob = {
        w: Float32Array.from(layer.w), u: Float32Array.from(layer.u), rows, cols,
        group: Uint32Array.from({ length: rows * cols }, (_, k) => grid.gridGroup(p.r0 + Math.floor(k / cols), perm[k % cols])),
        inverse, scale, zeroPoint, qmin: grid.qmin, qmax: grid.qmax,
      };
      releaseF64(layer.w, layer.u);
      return { job, perm, damping: layer.damping };
    });
    const t0 = performance.now();
    const swept = await this.o.scheduler.run(gptqSweepKernel, prepared.map((p) => p.job));
    this.timing.sweepMs += performance.now() - t0;
    return prepared.map((p, i) => {
      const q = new Float64Array(rows * cols);
      const codes = swept[i].codes;
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < cols; k++) {
          const g = p.job.group[r * cols + k];
          q[r * cols + p.perm[k]] = Math.fround((codes[r * cols + k] - zeroPoint[g]) * scale[g]);
        }
      }
      return { q, damping: p.damping };
    });
  }

  /**
   * Inputs from which a layer's factorization runs on the GPU (f32 `cholesky` kernel) when the
   * sweep does: the option, else MODELPRESS_GPU_FACTOR_MIN_COLS, else GPU_FACTOR_MIN_COLS.
   */
  private gpuFactorMinCols(): number {
    if (this.o.gpuFactorMinCols !== undefined) return this.o.gpuFactorMinCols;
    // A knob for measuring the crossover on a device (benchmarks, tests): 0 = every layer.
    const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.MODELPRESS_GPU_FACTOR_MIN_COLS;
    if (env !== undefined && env !== '' && Number.isFinite(Number(env))) return Number(env);
    return GPU_FACTOR_MIN_COLS;
  }

  /**
   * GPTQ's factorization on the GPU: each part's H permuted (act-order), dead inputs set aside,
   * damped, reversed and factored by the `cholesky` kernel (all parts in one pass); a part whose
   * pivot fails is retried with ten times the damping, as on the CPU. U = the reversal of L⁻¹.
   */
  private async factorOnGpu(parts: Array<{ W: Float64Array; h: Float64Array }>, rows: number, cols: number): Promise<Array<{ layer: ObsLayer; perm: number[]; solveMs: number }>> {
    const states = parts.map((p) => {
      const perm = visitingOrder(p.h, cols, this.o.actOrder);
      return { perm, ...permuteLayer('gptq', p.W, p.h, rows, cols, perm), damping: this.o.damping ?? 0.01, u: null as Float64Array | null };
    });
    for (let attempt = 0; attempt < 8; attempt++) {
      const todo = states.filter((st) => !st.u);
      if (!todo.length) break;
      const jobs = todo.map((st) => upperFactorJob(st.h, cols, st.damping * st.mean));
      const results = await this.o.scheduler.run(choleskyKernel, jobs);
      todo.forEach((st, k) => {
        const x = results[k].inverse;
        if (!x) { st.damping *= 10; return; }
        st.u = upperFactor(x);
      });
    }
    return states.map((st) => {
      if (!st.u) throw new InvalidArgumentError(`gptq: the Hessian of ${cols} inputs is not positive definite even with damping ${st.damping / 10} x mean(diag) (f32 on the GPU)`);
      return { layer: { w: st.w, u: st.u, damping: st.damping, dead: st.dead }, perm: st.perm, solveMs: 0 };
    });
  }

  private readonly memo = new Map<string, Float32Array>();

  /** After rounding: the Hessian is freed, or (reuse) kept and the result remembered. */
  private rounded(w: { name: string; data: Float32Array }, key: string | null): true {
    if (key) this.memo.set(key, Float32Array.from(w.data));
    else this.hessians.delete(w.name);
    return true;
  }
}

/** A weight's name and grid (type, granularity, scales, zero points): equal keys round equally. */
function gridKey(w: { name: string; granularity: Granularity; params: QuantParams; bits: Bits; gridBits?: number; signed: boolean }): string {
  let h = 0;
  const { scale, zeroPoint } = w.params;
  const bits = new Uint32Array(scale.buffer, scale.byteOffset, scale.length);
  for (let i = 0; i < scale.length; i++) h = (Math.imul(h, 31) + bits[i] + Math.imul(zeroPoint[i], 0x9e3779b1)) | 0;
  return `${w.name}|${w.bits}|${w.gridBits ?? w.bits}|${w.signed}|${JSON.stringify(w.granularity)}|${scale.length}|${h}`;
}

/** Output dims of a convolution for sampling positions (from its input shape and attributes). */
function convOutDims(l: Layer, x: ort.Tensor): number[] {
  const [n, , H, W] = x.dims as number[];
  const c = l.g.conv!;
  const out = (d: number, k: number, s: number, dl: number, p0: number, p1: number) =>
    c.autoPad === 'SAME_UPPER' || c.autoPad === 'SAME_LOWER' ? Math.ceil(d / s) : Math.floor((d + (c.autoPad === 'VALID' ? 0 : p0 + p1) - dl * (k - 1) - 1) / s) + 1;
  return [n, l.g.m, out(H, c.kh, c.sh, c.dh, c.pads[0], c.pads[2]), out(W, c.kw, c.sw, c.dw, c.pads[1], c.pads[3])];
}
