/**
 * A kernel self-check: runs every kernel family on a fixed set of example tensors on the active
 * backend and on the CPU reference, and compares (integers bit-exact, floats within tolerances.ts).
 */
import type { Scheduler } from './scheduler/scheduler.ts';
import { quantizeKernel } from './kernels/quantize.ts';
import { dequantizeKernel } from './kernels/dequantize.ts';
import { rangeKernel } from './kernels/range.ts';
import { histogramKernel } from './kernels/histogram.ts';
import { channelScoresKernel } from './kernels/channel-scores.ts';
import { distillLossKernel } from './kernels/distill-loss.ts';
import { computeQuantParams } from './kernels/qparams.ts';
import { firstMismatch, GPTQ_SWEEP_CODES, tolerances } from './kernels/tolerances.ts';
import { choleskyKernel, upperFactorJob } from './kernels/cholesky.ts';
import { gptqSweepKernel } from './kernels/gptq-sweep.ts';
import { inverseUpperFactor } from './linalg/obs.ts';
import type { Granularity } from './kernels/layout.ts';

/** The bytes of a view (not of its whole buffer: a result may be a view into a larger read-back). */
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export interface SelfCheckRow {
  kernel: string;
  cases: number;
  backend: 'gpu' | 'cpu';
  ok: boolean;
  detail: string;
  ms: number;
}

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a * 1664525 + 1013904223) >>> 0;
    return a / 4294967296;
  };
}

/** Example weights shaped like a small CNN's layers (conv, depthwise, linear), with a NaN and denormals. */
export function exampleTensors(): Array<{ name: string; shape: number[]; data: Float32Array }> {
  const r = seeded(2026);
  const make = (name: string, shape: number[], spread: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => (r() - 0.5) * 2 * spread);
    return { name, shape, data };
  };
  const t = [
    make('conv1.weight', [16, 1, 3, 3], 0.6),
    make('conv2.weight', [32, 16, 3, 3], 0.12),
    make('dw.weight', [32, 1, 3, 3], 0.5),
    make('fc1.weight', [128, 1568], 0.03),
    make('fc2.weight', [10, 128], 0.1),
  ];
  t[1].data[5] = 1e-41;
  t[3].data[17] = -3e-40;
  return t;
}

const bitsEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

export async function selfCheck(s: Scheduler): Promise<SelfCheckRow[]> {
  const tensors = exampleTensors();
  const rows: SelfCheckRow[] = [];
  const backend = s.info.active;
  const time = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    const v = await f();
    return [v, performance.now() - t0];
  };
  const grans: Granularity[] = [{ kind: 'tensor' }, { kind: 'channel', axis: 0 }, { kind: 'block', axis: -1, blockSize: 32 }];

  const rangeJobs = tensors.flatMap((t) => grans.map((granularity) => ({ data: t.data, shape: t.shape, granularity })));
  const [ranges, rms] = await time(() => s.run(rangeKernel, rangeJobs));
  const rangeBad = rangeJobs.findIndex((j, i) => {
    const want = rangeKernel.cpu(j);
    return !(bitsEqual(bytesOf(ranges[i].min), bytesOf(want.min)) &&
      bitsEqual(bytesOf(ranges[i].absmax), bytesOf(want.absmax)) &&
      firstMismatch(ranges[i].mean, want.mean, tolerances['range.mean']) < 0);
  });
  rows.push({ kernel: 'range', cases: rangeJobs.length, backend, ok: rangeBad < 0, detail: rangeBad < 0 ? 'min/max/absmax bit-identical' : `case ${rangeBad} differs`, ms: rms });

  const qJobs = rangeJobs.flatMap((j, i) =>
    ([8, 4] as const).map((bits) => ({
      ...j, bits, signed: true,
      params: computeQuantParams(ranges[i].min, ranges[i].max, { bits, signed: true, symmetric: true, granularity: j.granularity }),
    })),
  );
  const [codes, qms] = await time(() => s.run(quantizeKernel, qJobs));
  const qBad = qJobs.findIndex((j, i) => !bitsEqual(codes[i].codes, quantizeKernel.cpu(j).codes));
  rows.push({ kernel: 'quantize', cases: qJobs.length, backend, ok: qBad < 0, detail: qBad < 0 ? 'int8/int4 codes bit-identical' : `case ${qBad} differs`, ms: qms });

  const dJobs = qJobs.map((j, i) => ({ codes: codes[i].codes, shape: j.shape, granularity: j.granularity, bits: j.bits, signed: j.signed, params: j.params, original: j.data }));
  const [deq, dms] = await time(() => s.run(dequantizeKernel, dJobs));
  const dBad = dJobs.findIndex((j, i) => {
    const want = dequantizeKernel.cpu(j);
    return !bitsEqual(bytesOf(deq[i].values!), bytesOf(want.values!)) ||
      Math.abs(deq[i].tensor!.sqnrDb - want.tensor!.sqnrDb) > tolerances['dequantize.sqnrDb'].abs;
  });
  const worst = Math.min(...deq.map((d) => d.tensor!.sqnrDb));
  rows.push({ kernel: 'dequantize', cases: dJobs.length, backend, ok: dBad < 0, detail: dBad < 0 ? `values bit-identical; worst SQNR ${worst.toFixed(1)} dB` : `case ${dBad} differs`, ms: dms });

  const hJobs = tensors.map((t) => ({ data: t.data, lo: -0.5, hi: 0.5, bins: 256 }));
  const [hist, hms] = await time(() => s.run(histogramKernel, hJobs));
  const hBad = hJobs.findIndex((j, i) => !bitsEqual(bytesOf(hist[i].counts), bytesOf(histogramKernel.cpu(j).counts)));
  rows.push({ kernel: 'histogram', cases: hJobs.length, backend, ok: hBad < 0, detail: hBad < 0 ? 'counts bit-identical' : `case ${hBad} differs`, ms: hms });

  const sJobs = tensors.map((t) => ({ weights: t.data, shape: t.shape }));
  const [scores, sms] = await time(() => s.run(channelScoresKernel, sJobs));
  const sBad = sJobs.findIndex((j, i) => {
    const want = channelScoresKernel.cpu(j);
    return firstMismatch(scores[i].l2!, want.l2!, tolerances['channel_scores.l2']) >= 0 || firstMismatch(scores[i].fpgm!, want.fpgm!, tolerances['channel_scores.fpgm']) >= 0;
  });
  rows.push({ kernel: 'channel_scores', cases: sJobs.length, backend, ok: sBad < 0, detail: sBad < 0 ? 'L1/L2/FPGM within tolerance' : `case ${sBad} differs`, ms: sms });

  const r = seeded(7);
  const dl = { rows: 64, classes: 10, temperature: 4, alpha: 0.7 };
  const dlJob = {
    ...dl,
    student: Float32Array.from({ length: 640 }, () => (r() - 0.5) * 10),
    teacher: Float32Array.from({ length: 640 }, () => (r() - 0.5) * 10),
    labels: Int32Array.from({ length: 64 }, () => Math.floor(r() * 10)),
  };
  const [[loss], lms] = await time(() => s.run(distillLossKernel, [dlJob]));
  const lwant = distillLossKernel.cpu(dlJob);
  const lok = firstMismatch([loss.loss], [lwant.loss], tolerances['distill_loss.loss']) < 0 && firstMismatch(loss.grad, lwant.grad, tolerances['distill_loss.grad']) < 0;
  rows.push({ kernel: 'distill_loss', cases: 1, backend, ok: lok, detail: lok ? `loss ${loss.loss.toFixed(4)} within tolerance` : `loss ${loss.loss} vs ${lwant.loss}`, ms: lms });
  rows.push(...(await gptqChecks(s, tensors[4], time)));
  return rows;
}

/**
 * GPTQ's GPU kernels on the fc2-shaped example weight [10, 128]: the `cholesky` factorization of a
 * damped Gram matrix of correlated inputs, and the `gptq_sweep` of the weight through its f64
 * factor on a per-row int4 grid.
 */
async function gptqChecks(s: Scheduler, t: { data: Float32Array; shape: number[] }, time: <T>(f: () => Promise<T>) => Promise<[T, number]>): Promise<SelfCheckRow[]> {
  const backend = s.info.active;
  const [rowsW, n] = t.shape;
  const r = seeded(11);
  const samples = 2 * n;
  const x = new Float64Array(samples * n);
  for (let k = 0; k < samples; k++) for (let c = 0; c < n; c++) x[k * n + c] = r() - 0.5 + (c ? 0.5 * x[k * n + c - 1] : 0);
  const h = new Float64Array(n * n);
  for (let k = 0; k < samples; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] += x[k * n + i] * x[k * n + j];
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i] / n;
  for (let i = 0; i < n; i++) h[i * n + i] += 0.01 * mean;
  const cJob = upperFactorJob(h, n);
  const [[c], cms] = await time(() => s.run(choleskyKernel, [cJob]));
  const cWant = choleskyKernel.cpu(cJob);
  let scale = 0;
  let worst = 0;
  for (let k = 0; k < n * n; k++) scale = Math.max(scale, Math.abs(cWant.inverse![k]));
  if (c.inverse) for (let k = 0; k < n * n; k++) worst = Math.max(worst, Math.abs(c.inverse[k] - cWant.inverse![k]));
  const cok = c.failedPivot === -1 && worst <= tolerances['cholesky.inverse'].abs * scale;
  const scaleW = Float32Array.from({ length: rowsW }, (_, row) => {
    let m = 0;
    for (let k = 0; k < n; k++) m = Math.max(m, Math.abs(t.data[row * n + k]));
    return m / 7 || 1;
  });
  const sJob = {
    w: t.data, u: Float32Array.from(inverseUpperFactor(h, n)!), rows: rowsW, cols: n,
    group: Uint32Array.from({ length: rowsW * n }, (_, k) => Math.floor(k / n)),
    inverse: scaleW.map((v) => 1 / v), scale: scaleW, zeroPoint: new Int32Array(rowsW), qmin: -8, qmax: 7,
  };
  const [[sw], sms] = await time(() => s.run(gptqSweepKernel, [sJob]));
  const sWant = gptqSweepKernel.cpu(sJob);
  let differ = 0;
  let far = false;
  sWant.codes.forEach((v, k) => {
    const d = Math.abs(v - sw.codes[k]);
    if (d) differ++;
    if (d > GPTQ_SWEEP_CODES.maxStep) far = true;
  });
  const sok = !far && differ <= GPTQ_SWEEP_CODES.maxDifferingFraction * sWant.codes.length;
  return [
    { kernel: 'cholesky', cases: 1, backend, ok: cok, detail: cok ? `L⁻¹ (n ${n}) within tolerance` : c.failedPivot >= 0 ? `pivot ${c.failedPivot} failed` : `worst ${worst} of ${scale}`, ms: cms },
    { kernel: 'gptq_sweep', cases: 1, backend, ok: sok, detail: sok ? `int4 codes: ${differ} of ${sWant.codes.length} differ (at most ${(100 * GPTQ_SWEEP_CODES.maxDifferingFraction).toFixed(1)} %)` : `${differ} codes differ${far ? ', some by more than one step' : ''}`, ms: sms },
  ];
}
