// GPTQ: the layer objective against round-to-nearest on generated layers, exact oracles, and the
// quantize pass on a trained model (real data) with RTN side by side.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gptq, inverseUpperFactor, layerObjective } from '../src/linalg/gptq.ts';
import { gramKernel } from '../src/kernels/gram.ts';
import { seededRandom } from '../src/random.ts';
import { correlatedLayer } from './helpers/layers.ts';
import { compressModel } from '../src/pipeline/compress.ts';
import { parseRecipe } from '../src/recipe/recipe.ts';
import { evaluateModels } from '../src/eval/evaluate.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { summarizeEncodings } from '../src/analysis/encodings.ts';
import { OnnxModel } from '../src/onnx/model.ts';
import type { QuantizeReport } from '../src/passes/quantize/pass.ts';
import { gptqSweepKernel, type GptqSweepJob } from '../src/kernels/gptq-sweep.ts';
import { gptqPrepare } from '../src/linalg/gptq.ts';
import { gpuScheduler } from './helpers/gpu.ts';

const layer = correlatedLayer;

/** int4 symmetric per-row grid with the scale from the row's absmax (what RTN uses). */
function rowGrid(w: Float64Array, rows: number, cols: number, bits = 4) {
  const qmax = (1 << (bits - 1)) - 1;
  const scale = Array.from({ length: rows }, (_, r) => {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    return m / qmax || 1;
  });
  return (v: number, r: number) => Math.max(-qmax - 1, Math.min(qmax, Math.round(v / scale[r]))) * scale[r];
}

describe('GPTQ column sweep', () => {
  it.each([[8, 48, 400, 1], [16, 130, 600, 2], [4, 300, 900, 3]])('rows %i, cols %i: the layer objective is at most round-to-nearest\'s (and far below it)', (rows, cols, samples, seed) => {
    const { w, h } = layer(rows, cols, samples, seed);
    const grid = rowGrid(w, rows, cols);
    const rtn = Float64Array.from(w, (v, i) => grid(v, Math.floor(i / cols)));
    const g = gptq({ w, rows, cols, h, grid });
    const ga = gptq({ w, rows, cols, h, grid, actOrder: true });
    const o = { rtn: layerObjective(w, rtn, h, rows, cols), gptq: layerObjective(w, g.q, h, rows, cols), act: layerObjective(w, ga.q, h, rows, cols) };
    expect(o.gptq).toBeLessThan(o.rtn);
    expect(o.act).toBeLessThan(o.rtn);
    expect(o.gptq / o.rtn).toBeLessThan(0.8);
    // Every output value is on the grid.
    g.q.forEach((v, i) => expect(grid(v, Math.floor(i / cols))).toBe(v));
  });

  it('the inverse factor: H · Uᵀ U = I to f64 rounding', () => {
    const n = 37;
    const { h } = layer(2, n, 200, 9);
    for (let i = 0; i < n; i++) h[i * n + i] += 1e-3;
    const u = inverseUpperFactor(h, n)!;
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) {
          let hinv = 0; // (Uᵀ U)[k][j]
          for (let m = 0; m <= Math.min(k, j); m++) hinv += u[m * n + k] * u[m * n + j];
          s += h[i * n + k] * hinv;
        }
        worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
      }
    }
    expect(worst).toBeLessThan(1e-8);
  });

  it('one column: exactly round-to-nearest', () => {
    const { w, h } = layer(10, 1, 50, 4);
    const grid = rowGrid(w, 10, 1);
    expect(Array.from(gptq({ w, rows: 10, cols: 1, h, grid }).q)).toEqual(Array.from(w, (v, i) => grid(v, i)));
  });

  it('a dead input (never non-zero) gets weight 0 and does not disturb the others; bad sizes are typed errors', () => {
    const rows = 6;
    const cols = 20;
    const { w, h } = layer(rows, cols, 300, 5);
    for (let j = 0; j < cols; j++) { h[3 * cols + j] = 0; h[j * cols + 3] = 0; }
    const res = gptq({ w, rows, cols, h, grid: rowGrid(w, rows, cols) });
    expect(res.dead).toBe(1);
    for (let r = 0; r < rows; r++) expect(res.q[r * cols + 3]).toBe(0);
    expect(res.q.every(Number.isFinite)).toBe(true);
    expect(() => gptq({ w, rows, cols: 19, h, grid: rowGrid(w, rows, cols) })).toThrow(/W has 120 entries/);
  });
});

/** A gptq_sweep job for `gptq()`'s inputs and the rowGrid grid (int4, per row), act-order optional. */
function sweepJob(w: Float64Array, h: Float64Array, rows: number, cols: number, actOrder = false): { job: GptqSweepJob; perm: number[] } {
  const { layer, perm } = gptqPrepare({ w, rows, cols, h, actOrder });
  const scale = Float32Array.from({ length: rows }, (_, r) => {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    return m / 7 || 1;
  });
  const job: GptqSweepJob = {
    w: Float32Array.from(layer.w), u: Float32Array.from(layer.u), rows, cols,
    group: Uint32Array.from({ length: rows * cols }, (_, k) => Math.floor(k / cols)),
    inverse: scale.map((s) => 1 / s), scale, zeroPoint: new Int32Array(rows), qmin: -8, qmax: 7,
  };
  return { job, perm };
}

/** Grid values of a sweep's codes, original column order. */
function sweptValues(job: GptqSweepJob, perm: number[], codes: Int32Array): Float64Array {
  const q = new Float64Array(job.rows * job.cols);
  for (let r = 0; r < job.rows; r++) for (let k = 0; k < job.cols; k++) q[r * job.cols + perm[k]] = Math.fround(codes[r * job.cols + k] * job.scale[r]);
  return q;
}

describe('the cholesky kernel (the f32 factorization the GPU runs)', () => {
  it.each([[48, 1], [130, 2], [300, 3]])('n %i: reversed, it gives the upper factor of H⁻¹ the f64 path computes (to f32 accuracy), and L⁻¹ A L⁻ᵀ = I', async (n, seed) => {
    const { choleskyKernel } = await import('../src/kernels/cholesky.ts');
    const { h } = layer(2, n, 3 * n, seed);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i] / n;
    for (let i = 0; i < n; i++) h[i * n + i] += 0.01 * mean;
    const a = new Float32Array(n * n);
    for (let k = 0; k < n * n; k++) a[n * n - 1 - k] = h[k];
    const { inverse, failedPivot } = choleskyKernel.cpu({ a, n });
    expect(failedPivot).toBe(-1);
    const u = Float64Array.from(inverse!).reverse();
    const want = inverseUpperFactor(h, n)!;
    let scale = 0;
    let worst = 0;
    for (let k = 0; k < n * n; k++) scale = Math.max(scale, Math.abs(want[k]));
    for (let k = 0; k < n * n; k++) worst = Math.max(worst, Math.abs(u[k] - want[k]));
    expect(worst / scale).toBeLessThan(1e-3);
    // X A Xᵀ = I for X = L⁻¹ (A the reversed, damped H), in f64 from the f32 X.
    const x = inverse!;
    let off = 0;
    for (let i = 0; i < n; i += 7) {
      for (let j = 0; j < n; j += 5) {
        let sum = 0;
        for (let p = 0; p <= i; p++) for (let q = 0; q <= j; q++) sum += x[i * n + p] * a[p * n + q] * x[j * n + q];
        off = Math.max(off, Math.abs(sum - (i === j ? 1 : 0)));
      }
    }
    expect(off).toBeLessThan(1e-3);
  });
});

describe('the gptq_sweep kernel (the f32 column sweep the GPU runs)', () => {
  it.each([[8, 48, 400, 1, false], [16, 130, 600, 2, true], [4, 300, 900, 3, false]] as const)('rows %i, cols %i: objective within 1 percent of the f64 sweep, far below round-to-nearest', (rows, cols, samples, seed, actOrder) => {
    const { w, h } = layer(rows, cols, samples, seed);
    const f64 = gptq({ w, rows, cols, h, grid: rowGrid(w, rows, cols), actOrder });
    const { job, perm } = sweepJob(w, h, rows, cols, actOrder);
    const q = sweptValues(job, perm, gptqSweepKernel.cpu(job).codes);
    const grid = rowGrid(w, rows, cols);
    const rtn = Float64Array.from(w, (v, i) => grid(v, Math.floor(i / cols)));
    const o = { rtn: layerObjective(w, rtn, h, rows, cols), f64: layerObjective(w, f64.q, h, rows, cols), f32: layerObjective(w, q, h, rows, cols) };
    expect(Math.abs(o.f32 - o.f64) / o.f64).toBeLessThan(0.01);
    expect(o.f32 / o.rtn).toBeLessThan(0.8);
  });

  it('one column: exactly round-to-nearest (half to even)', () => {
    const { w, h } = layer(10, 1, 50, 4);
    const { job } = sweepJob(w, h, 10, 1);
    const codes = gptqSweepKernel.cpu(job).codes;
    job.w.forEach((x, r) => {
      const v = Math.fround(x * job.inverse[r]);
      const even = Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v);
      expect(codes[r]).toBe(Math.max(-8, Math.min(7, even)));
    });
  });

  it('bad jobs are typed errors naming the field', () => {
    const { w, h } = layer(3, 4, 20, 6);
    const { job } = sweepJob(w, h, 3, 4);
    expect(() => gptqSweepKernel.validate({ ...job, cols: 5 })).toThrow(/W has 12 elements/);
    expect(() => gptqSweepKernel.validate({ ...job, group: job.group.map(() => 7) })).toThrow(/group 7 out of range/);
    expect(() => gptqSweepKernel.validate({ ...job, u: job.u.map((v, i) => (i === 5 ? -1 : v)) })).toThrow(/U\[1\]\[1\] = -1/);
    expect(() => gptqSweepKernel.validate({ ...job, w: job.w.map((v, i) => (i === 2 ? NaN : v)) })).toThrow(/weight 2 \(row 0, column 2\) is NaN/);
  });
});

const dir = mkdtempSync(join(tmpdir(), 'modelpress-gptq-'));
const cpu = await Scheduler.create({ backend: 'cpu' });
afterAll(() => cpu.dispose());

describe('--weight-method gptq in the quantize pass', () => {
  const MODEL = 'test/assets/fashion-cnn.onnx';
  const DATA = 'test/assets/fashion-mnist';

  it('int4 per-channel on the trained Fashion-MNIST CNN: GPTQ drop ≤ 0.3 points and below RTN\'s; same folded format', async () => {
    const recipe = parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 });
    const run = async (method: 'rtn' | 'gptq') => {
      const out = join(dir, `cnn-${method}.onnx`);
      const r = await compressModel(MODEL, out, {
        scheduler: cpu, force: true, passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe, weightMethod: method } }],
        calibration: method === 'gptq' ? { data: `${DATA}/train-images-idx3-ubyte.gz`, samples: 256, seed: 1 } : undefined,
      });
      const e = await evaluateModels(out, MODEL, { data: DATA, latencyRuns: 0 });
      return { r, e, out };
    };
    const rtn = await run('rtn');
    const g = await run('gptq');
    console.log(`Fashion CNN int4 per-channel: RTN drop ${rtn.e.accuracy!.dropPoints.toFixed(2)}, GPTQ drop ${g.e.accuracy!.dropPoints.toFixed(2)}`);
    expect(g.e.accuracy!.dropPoints).toBeLessThanOrEqual(0.3);
    expect(g.e.accuracy!.dropPoints).toBeLessThan(rtn.e.accuracy!.dropPoints);
    const report = g.r.passes[0].report as QuantizeReport;
    expect(report.gptq!.length).toBe(4);
    for (const l of report.gptq!) expect(l.objectiveGptq).toBeLessThan(l.objectiveRtn);
    expect(g.r.passes[0].usedCalibration).toBe(true);
    expect(g.r.tensors.every((t) => t.scheme.endsWith('GPTQ'))).toBe(true);
    expect(summarizeEncodings(OnnxModel.read(g.out)).folded).toBe(summarizeEncodings(OnnxModel.read(rtn.out)).folded);
  }, 120_000);
});

it('depthwise convolutions get one Hessian per channel: every layer of the inverted-residual model is GPTQ-rounded, none worse than RTN', async () => {
  const out = join(dir, 'ir-gptq.onnx');
  const r = await compressModel('test/assets/fashion-inverted-residual.onnx', out, {
    scheduler: cpu, force: true, calibration: { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 128, seed: 1 },
    passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: 'gptq' } }],
  });
  const report = (r.passes[0].report as QuantizeReport).gptq!;
  expect(report.length).toBe(r.totals.tensorsQuantized);
  for (const l of report) expect(l.objectiveGptq).toBeLessThanOrEqual(l.objectiveRtn * (1 + 1e-9));
  // 21 = every Conv/Gemm weight, the four depthwise convolutions included.
  expect(report.length).toBe(21);
  console.log(`inverted residual: ${report.length} weights GPTQ-rounded, objective ratio ${report.map((l) => (l.objectiveGptq / l.objectiveRtn).toFixed(2)).join(' ')}`);
}, 120_000);

it('--format matmulnbits (weights stored transposed and padded): GPTQ rounds them too and beats RTN', async () => {
  const run = async (method: 'rtn' | 'gptq') => {
    const out = join(dir, `mnb-${method}.onnx`);
    const r = await compressModel('test/assets/fashion-cnn.onnx', out, {
      scheduler: cpu, force: true, calibration: method === 'gptq' ? { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 128, seed: 1 } : undefined,
      passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'block', format: 'matmulnbits' }), weightMethod: method } }],
    });
    return { r, e: await evaluateModels(out, 'test/assets/fashion-cnn.onnx', { data: 'test/assets/fashion-mnist', latencyRuns: 0 }) };
  };
  const rtn = await run('rtn');
  const g = await run('gptq');
  const mnb = g.r.tensors.filter((t) => t.encoding === 'matmulnbits');
  expect(mnb.map((t) => t.name).sort()).toEqual(['fc1.weight', 'fc2.weight']);
  for (const t of mnb) expect(t.scheme.endsWith('GPTQ')).toBe(true);
  for (const l of (g.r.passes[0].report as QuantizeReport).gptq!) expect(l.objectiveGptq).toBeLessThan(l.objectiveRtn);
  expect(g.e.accuracy!.dropPoints).toBeLessThan(rtn.e.accuracy!.dropPoints);
}, 120_000);

it('--sequential: layers read their inputs from the partly rounded model; the trained CNN stays within 0.3 points and every layer is rounded', async () => {
  const out = join(dir, 'cnn-seq.onnx');
  const r = await compressModel('test/assets/fashion-cnn.onnx', out, {
    scheduler: cpu, force: true, calibration: { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 128, seed: 1 },
    passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: 'gptq', sequential: true } }],
  });
  const report = (r.passes[0].report as QuantizeReport).gptq!;
  expect(report.length).toBe(4);
  for (const l of report) expect(l.objectiveGptq).toBeLessThanOrEqual(l.objectiveRtn * (1 + 1e-9));
  expect(r.tensors.every((t) => t.scheme.endsWith('GPTQ'))).toBe(true);
  const e = await evaluateModels(out, 'test/assets/fashion-cnn.onnx', { data: 'test/assets/fashion-mnist', latencyRuns: 0 });
  expect(e.accuracy!.dropPoints).toBeLessThanOrEqual(0.3);
}, 120_000);

describe('int3 weights (a 3-bit grid stored as INT4)', () => {
  const DATA = 'test/assets/fashion-mnist';
  /**
   * The stored 4-bit codes of every weight. These models import opset 13, which has no INT4 Cast:
   * the encoder stores UINT8 bytes (`<weight>_packed`, element i < m in the low nibble of byte i,
   * element m + i in its high nibble; signed codes biased by +8) beside the shape (`<weight>_shape`).
   */
  const storedCodes = (path: string, signed: boolean) => {
    const inits = new Map(OnnxModel.read(path).msg.graph!.initializer.map((t) => [t.name, t]));
    const codes: number[] = [];
    for (const [name, t] of inits) {
      if (!name.endsWith('_packed')) continue;
      const shape = inits.get(name.replace(/_packed$/, '_shape'))!;
      const dims = new BigInt64Array(Uint8Array.from(shape.rawData).buffer);
      const n = dims.reduce((a, d) => a * Number(d), 1);
      const m = t.rawData.length;
      for (let i = 0; i < n; i++) {
        const nib = i < m ? t.rawData[i] & 0xf : t.rawData[i - m] >> 4;
        codes.push(signed ? nib - 8 : nib);
      }
    }
    return codes;
  };

  // Issue target: int3 per-channel within 1 point of float with GPTQ, on the trained CNNs, at the
  // product's defaults (weights under 1024 elements stay float: with every depthwise 3x3 at 3 bits
  // too, the inverted-residual model measured -1.07 with GPTQ, RTN -3.57).
  it.each(['fashion-cnn', 'fashion-residual', 'fashion-inverted-residual'])('%s, int3 per-channel symmetric: codes on the 3-bit grid; GPTQ within 1 point and better than RTN', async (name) => {
    const model = `test/assets/${name}.onnx`;
    const recipe = parseRecipe({ weights: 'int3', granularity: 'channel', symmetric: true });
    const run = async (method: 'rtn' | 'gptq') => {
      const out = join(dir, `${name}-int3-${method}.onnx`);
      const r = await compressModel(model, out, {
        scheduler: cpu, force: true, passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe, weightMethod: method } }],
        calibration: method === 'gptq' ? { data: `${DATA}/train-images-idx3-ubyte.gz`, samples: 256, seed: 1 } : undefined,
      });
      return { r, e: await evaluateModels(out, model, { data: DATA, latencyRuns: 0 }), out };
    };
    const rtn = await run('rtn');
    const g = await run('gptq');
    console.log(`${name} int3 per-channel: RTN drop ${rtn.e.accuracy!.dropPoints.toFixed(2)}, GPTQ drop ${g.e.accuracy!.dropPoints.toFixed(2)}`);
    const span = (codes: number[]) => [codes.reduce((a, c) => Math.min(a, c), Infinity), codes.reduce((a, c) => Math.max(a, c), -Infinity)];
    for (const x of [rtn, g]) {
      expect(storedCodes(x.out, true).length).toBeGreaterThan(1000);
      expect(x.r.tensors.every((t) => t.scheme.startsWith('int3 (in INT4) per-channel'))).toBe(true);
    }
    // Symmetric RTN: scale = absmax / 3, codes -3..3. GPTQ's error feedback may also reach -4, the
    // 3-bit grid's eighth level — never the spare INT4 codes -8..-5 and 4..7.
    expect(span(storedCodes(rtn.out, true))).toEqual([-3, 3]);
    const [lo, hi] = span(storedCodes(g.out, true));
    expect(lo).toBeGreaterThanOrEqual(-4);
    expect(hi).toBeLessThanOrEqual(3);
    expect(g.e.accuracy!.dropPoints).toBeLessThanOrEqual(1);
    expect(g.e.accuracy!.dropPoints).toBeLessThan(rtn.e.accuracy!.dropPoints);
  }, 120_000);

  it('uint3 asymmetric uses codes 0..7 only (the zero point\'s rounding can push the top value to 7.5: clamped to the grid, not to UINT4\'s 15)', async () => {
    const out = join(dir, 'cnn-uint3.onnx');
    const r = await compressModel('test/assets/fashion-cnn.onnx', out, {
      scheduler: cpu, force: true, passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'uint3', granularity: 'channel', minElements: 0 }) } }],
    });
    const codes = storedCodes(out, false);
    const [lo, hi] = [codes.reduce((a, c) => Math.min(a, c), Infinity), codes.reduce((a, c) => Math.max(a, c), -Infinity)];
    expect([lo, hi]).toEqual([0, 7]);
    expect(r.tensors.length).toBe(4);
  });

  it('refuses int3 with format matmulnbits, naming the allowed types', () => {
    expect(() => parseRecipe({ weights: 'int3', format: 'matmulnbits' })).toThrow(/format 'matmulnbits' needs weights int4 or uint4, got 'int3'/);
  });
});

describe('GPTQ under static W8A8', () => {
  it('--activations uint8 --weight-method gptq: the int8 QDQ weights are GPTQ-rounded, the output closer to float than with RTN', async () => {
    const model = 'test/assets/fashion-cnn.onnx';
    const DATA = 'test/assets/fashion-mnist';
    const run = async (method: 'rtn' | 'gptq') => {
      const out = join(dir, `cnn-w8a8-${method}.onnx`);
      const r = await compressModel(model, out, {
        scheduler: cpu, force: true, calibration: { data: `${DATA}/train-images-idx3-ubyte.gz`, samples: 256, seed: 1 },
        passes: [{ pass: 'quantize', options: { mode: 'static-w8a8', recipe: parseRecipe({}), weightMethod: method, static: { activations: 'uint8', reduceRange: true } } }],
      });
      return { r, e: await evaluateModels(out, model, { data: DATA, latencyRuns: 0 }), out };
    };
    const rtn = await run('rtn');
    const g = await run('gptq');
    const sqnr = (x: typeof rtn) => x.e.outputs[0].sqnrDb;
    console.log(`Fashion CNN static W8A8 (reduce-range): output SQNR RTN ${sqnr(rtn).toFixed(1)} dB, GPTQ ${sqnr(g).toFixed(1)} dB; top-1 ${rtn.e.accuracy!.model.toFixed(2)} / ${g.e.accuracy!.model.toFixed(2)}`);
    const report = g.r.passes[0].report as QuantizeReport;
    expect(report.gptq!.length).toBe(4);
    expect(g.r.tensors.every((t) => t.scheme.endsWith('GPTQ'))).toBe(true);
    expect(rtn.r.tensors.some((t) => t.scheme.endsWith('GPTQ'))).toBe(false);
    // Both are static W8A8: integer convolutions in the graph.
    for (const x of [rtn, g]) expect(OnnxModel.read(x.out).msg.graph!.node.filter((n) => n.opType === 'QuantizeLinear').length).toBeGreaterThan(2);
    expect(sqnr(g)).toBeGreaterThan(sqnr(rtn));
    expect(Math.abs(g.e.accuracy!.dropPoints)).toBeLessThanOrEqual(0.5);
  }, 120_000);
});

describe('planning GPTQ with static W8A8 (compress flags)', () => {
  const base = { calibration: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', activations: 'uint8', weightMethod: 'gptq', target: 'ort-cpu' } as const;
  it('--activations uint8 --weight-method gptq plans one static W8A8 quantize pass with GPTQ', async () => {
    const { planCompress } = await import('../src/cli/compress-plan.ts');
    const plan = await planCompress({ ...base, actOrder: true }, 'test/assets/fashion-cnn.onnx', false);
    expect(plan.staticMode).toBe(true);
    expect(plan.passes).toHaveLength(1);
    expect(plan.passes[0]).toMatchObject({ pass: 'quantize', options: { mode: 'static-w8a8', weightMethod: 'gptq', actOrder: true } });
  });
  it('refuses --sequential with static W8A8, naming the flag', async () => {
    const { planCompress } = await import('../src/cli/compress-plan.ts');
    await expect(planCompress({ ...base, sequential: true }, 'test/assets/fashion-cnn.onnx', false)).rejects.toThrow(/--sequential with static W8A8 is not supported yet/);
  });
});

describe('grouped and transposed convolutions', () => {
  /**
   * One-layer models over inputs with correlated channels. Every output position is sampled (at
   * most 64 per image), so GPTQ's layer objective ‖(W − Ŵ)X‖² summed over the calibration set must
   * equal the squared output error ONNX Runtime measures — an exact check of the feature rows —
   * and GPTQ must lower it against round-to-nearest.
   */
  async function oneLayer(name: string, C: number, H: number, build: (b: import('../src/onnx/builder.ts').GraphBuilder, input: string, n: () => number) => number[]) {
    const { GraphBuilder } = await import('../src/onnx/builder.ts');
    const { encodeModel } = await import('../src/onnx/proto.ts');
    const { encodeNpyFloat32 } = await import('../src/data/npy.ts');
    const { writeFileSync } = await import('node:fs');
    const ort = await import('onnxruntime-node');
    const r = seededRandom(11);
    const n = () => r() * 2 - 1;
    const N = 48;
    const mix = Float32Array.from({ length: 3 * C }, n);
    const x = new Float32Array(N * C * H * H);
    for (let s = 0; s < N; s++) {
      for (let p = 0; p < H * H; p++) {
        const z = [n(), n(), n()];
        for (let c = 0; c < C; c++) x[(s * C + c) * H * H + p] = Math.max(0, z[0] * mix[c] + z[1] * mix[C + c] + z[2] * mix[2 * C + c]);
      }
    }
    const b = new GraphBuilder(name);
    const outDims = build(b, b.input('x', ['batch', C, H, H]), n);
    const model = join(dir, `${name}.onnx`);
    const data = join(dir, `${name}.npy`);
    writeFileSync(model, encodeModel(b.build(13)));
    writeFileSync(data, encodeNpyFloat32([N, C, H, H], x));
    expect(outDims[0] * outDims[1]).toBeLessThanOrEqual(64);
    const outputs = async (path: string) => {
      const s = await ort.InferenceSession.create(path);
      const y = (await s.run({ x: new ort.Tensor('float32', x, [N, C, H, H]) })).y.data as Float32Array;
      await s.release();
      return y;
    };
    const ref = await outputs(model);
    const error = async (method: 'rtn' | 'gptq') => {
      const out = join(dir, `${name}-${method}.onnx`);
      const rep = await compressModel(model, out, {
        scheduler: cpu, force: true, calibration: { data, samples: N, seed: 1 },
        passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: method } }],
      });
      const y = await outputs(out);
      let e = 0;
      for (let i = 0; i < y.length; i++) e += (y[i] - ref[i]) ** 2;
      return { e, rep };
    };
    const rtn = await error('rtn');
    const g = await error('gptq');
    const layer = (g.rep.passes[0].report as QuantizeReport).gptq!;
    console.log(`${name} int4: output squared error RTN ${rtn.e.toFixed(3)} (objective ${layer[0].objectiveRtn.toFixed(3)}), GPTQ ${g.e.toFixed(3)} (objective ${layer[0].objectiveGptq.toFixed(3)})`);
    expect(layer.map((l) => l.weight)).toEqual(['w']);
    expect(g.rep.tensors[0].scheme).toMatch(/GPTQ$/);
    expect(Math.abs(layer[0].objectiveRtn / rtn.e - 1)).toBeLessThan(1e-3);
    expect(Math.abs(layer[0].objectiveGptq / g.e - 1)).toBeLessThan(1e-3);
    expect(g.e).toBeLessThan(0.8 * rtn.e);
  }

  it('a group-2 convolution gets one Hessian per group', async () => {
    await oneLayer('grouped', 8, 8, (b, input, n) => {
      b.node('Conv', [input, b.init('w', [6, 4, 3, 3], Float32Array.from({ length: 6 * 4 * 9 }, n))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], group: 2 }, { outputs: ['y'], name: 'gconv' });
      b.output('y', ['batch', 6, 8, 8]);
      return [8, 8];
    });
  }, 60_000);

  it('a ConvTranspose (stride 2, pads, output padding): rows are the col2im of its input', async () => {
    // 4x4 input -> (4 - 1) * 2 - 2 + 3 + 1 + 1 = 8 x 8 output; weight [C_in 6, C_out 5, 3, 3].
    await oneLayer('transposed', 6, 4, (b, input, n) => {
      b.node('ConvTranspose', [input, b.init('w', [6, 5, 3, 3], Float32Array.from({ length: 6 * 5 * 9 }, n))], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, { outputs: ['y'], name: 'deconv' });
      b.output('y', ['batch', 5, 8, 8]);
      return [8, 8];
    });
  }, 60_000);
});

describe('--weight-method gptq on the GPU backend: the column sweep runs in the gptq_sweep kernel', () => {
  it('trained Fashion CNN int4 per-channel and the inverted-residual model (depthwise: one job per channel): every sweep on the GPU, objectives within 1 % of the CPU path\'s', async (ctx) => {
    const gpu = await gpuScheduler();
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    try {
      for (const model of ['test/assets/fashion-cnn.onnx', 'test/assets/fashion-inverted-residual.onnx']) {
        const run = async (scheduler: Scheduler, tag: string) => {
          const out = join(dir, `gpu-sweep-${tag}.onnx`);
          const r = await compressModel(model, out, {
            scheduler, force: true, calibration: { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 128, seed: 1 },
            passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: 'gptq' } }],
          });
          return { r, report: (r.passes[0].report as QuantizeReport).gptq!, out };
        };
        gpu.scheduler.resetStats();
        const g = await run(gpu.scheduler, 'gpu');
        expect(gpu.scheduler.stats.fallbacks).toEqual([]);
        const c = await run(cpu, 'cpu');
        expect(g.report.map((l) => l.weight)).toEqual(c.report.map((l) => l.weight));
        expect(g.report.every((l) => l.sweep === 'gpu')).toBe(true);
        expect(c.report.every((l) => l.sweep === 'cpu')).toBe(true);
        g.report.forEach((l, i) => {
          // Same grid; the Hessians differ only by the GPU Gram's f32 partials.
          expect(Math.abs(l.objectiveRtn - c.report[i].objectiveRtn)).toBeLessThanOrEqual(1e-5 * c.report[i].objectiveRtn);
          expect(l.objectiveGptq).toBeLessThanOrEqual(l.objectiveRtn * (1 + 1e-9));
          expect(Math.abs(l.objectiveGptq - c.report[i].objectiveGptq)).toBeLessThanOrEqual(0.01 * c.report[i].objectiveGptq + 1e-9);
        });
        const e = await evaluateModels(g.out, model, { data: 'test/assets/fashion-mnist', latencyRuns: 0 });
        const ec = await evaluateModels(c.out, model, { data: 'test/assets/fashion-mnist', latencyRuns: 0 });
        console.log(`${model}: GPTQ int4 top-1 drop, GPU sweep ${e.accuracy!.dropPoints.toFixed(2)} vs CPU sweep ${ec.accuracy!.dropPoints.toFixed(2)}; objective GPU/CPU ${g.report.map((l, i) => (l.objectiveGptq / c.report[i].objectiveGptq).toFixed(4)).join(' ')}`);
        expect(Math.abs(e.accuracy!.dropPoints - ec.accuracy!.dropPoints)).toBeLessThanOrEqual(0.3);
      }
    } finally {
      gpu.scheduler.dispose();
    }
  }, 300_000);

  it('a layer whose factor U does not fit one GPU binding is swept by the f64 CPU path, not by the kernel\'s JavaScript reference', async (ctx) => {
    const gpu = await gpuScheduler({ bindingWindowBytes: 64 * 1024 });
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    try {
      const r = await compressModel('test/assets/fashion-cnn.onnx', join(dir, 'gpu-window.onnx'), {
        scheduler: gpu.scheduler, force: true, calibration: { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 64, seed: 1 },
        passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: 'gptq' } }],
      });
      const report = (r.passes[0].report as QuantizeReport).gptq!;
      // 64 KiB hold a U of up to 127 inputs: conv1 (9) on the GPU; conv2 (144), fc1 (1568) and fc2 (128) on the CPU.
      const windowCols = Math.floor(Math.sqrt(gpu.scheduler.gpuWindowBytes() / 4));
      const m = OnnxModel.read('test/assets/fashion-cnn.onnx');
      for (const l of report) {
        const dims = m.graph.weights.get(l.weight)!.tensor.dims.map(Number);
        const cols = dims.length === 4 ? dims[1] * dims[2] * dims[3] : dims[1];
        expect(l.sweep, `${l.weight} (${cols} inputs)`).toBe(cols <= windowCols ? 'gpu' : 'cpu');
      }
      expect(new Set(report.map((l) => l.sweep))).toEqual(new Set(['gpu', 'cpu']));
      // Every job sent to the kernel ran on the GPU: none fell to its JavaScript reference.
      expect(gpu.scheduler.stats.cpuPasses.filter((p) => p.kernel === 'gptq_sweep')).toEqual([]);
    } finally {
      gpu.scheduler.dispose();
    }
  }, 120_000);

  it('the factorization on the GPU too (cholesky kernel, forced for every layer of the trained CNN): objectives within 1 % of the CPU path\'s', async (ctx) => {
    const gpu = await gpuScheduler();
    if (!gpu.scheduler) return ctx.skip(gpu.reason);
    const before = process.env.MODELPRESS_GPU_FACTOR_MIN_COLS;
    process.env.MODELPRESS_GPU_FACTOR_MIN_COLS = '0';
    try {
      const model = 'test/assets/fashion-cnn.onnx';
      const run = async (scheduler: Scheduler, tag: string) => {
        const r = await compressModel(model, join(dir, `gpu-factor-${tag}.onnx`), {
          scheduler, force: true, calibration: { data: 'test/assets/fashion-mnist/train-images-idx3-ubyte.gz', samples: 128, seed: 1 },
          passes: [{ pass: 'quantize', options: { mode: 'weight-only', recipe: parseRecipe({ weights: 'int4', granularity: 'channel', minElements: 0 }), weightMethod: 'gptq' } }],
        });
        return (r.passes[0].report as QuantizeReport).gptq!;
      };
      gpu.scheduler.resetStats();
      const g = await run(gpu.scheduler, 'gpu');
      expect(gpu.scheduler.stats.fallbacks).toEqual([]);
      expect(gpu.scheduler.stats.kernels.cholesky?.passes ?? 0).toBeGreaterThan(0);
      expect(gpu.scheduler.stats.cpuPasses.filter((p) => p.kernel === 'cholesky')).toEqual([]);
      const c = await run(cpu, 'cpu');
      console.log(`fashion CNN, factor and sweep on the GPU: objective GPU/CPU ${g.map((l, i) => (l.objectiveGptq / c[i].objectiveGptq).toFixed(4)).join(' ')}`);
      g.forEach((l, i) => {
        expect(l.objectiveGptq).toBeLessThan(l.objectiveRtn);
        expect(Math.abs(l.objectiveGptq - c[i].objectiveGptq)).toBeLessThanOrEqual(0.01 * c[i].objectiveGptq);
      });
    } finally {
      if (before === undefined) delete process.env.MODELPRESS_GPU_FACTOR_MIN_COLS;
      else process.env.MODELPRESS_GPU_FACTOR_MIN_COLS = before;
      gpu.scheduler.dispose();
    }
  }, 300_000);
});
