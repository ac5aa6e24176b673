/**
 * Where GPTQ's factorization should run: the CPU path's f64 blocked, threaded factorization
 * (linalg/obs.ts inverseUpperFactor) against the GPU's f32 `cholesky` kernel (one workgroup per
 * matrix; what GptqRounder uses from MODELPRESS_GPU_FACTOR_MIN_COLS / GPU_FACTOR_MIN_COLS inputs),
 * on damped Gram matrices of the sizes ResNet-style layers have, in one run. Sets the crossover.
 * `npm run build && node dist/bench/factor.js [max-n] [out.md]` (default max-n 4608; on a
 * software adapter use 1024: lavapipe factors slowly).
 */
import { appendFileSync } from 'node:fs';
import { formatTable } from '../src/cli/format.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { choleskyKernel, upperFactor, upperFactorJob } from '../src/kernels/cholesky.ts';
import { inverseUpperFactor } from '../src/linalg/obs.ts';
import { createLogger } from '../src/log.ts';
import { seededRandom } from '../src/random.ts';

const args = process.argv.slice(2);
const maxN = Number(args.find((a) => /^\d+$/.test(a)) ?? 4608);
const out = args.find((a) => a.endsWith('.md'));
const sizes = [256, 576, 1024, 1152, 2304, 4608].filter((n) => n <= maxN);
const gpu = await Scheduler.create({ backend: 'gpu', cpuThreshold: 0, logger: createLogger('error') });
const adapter = gpu.info.adapter?.description ?? 'none';

/** A damped Gram matrix of correlated inputs, f64 (what GPTQ factors). */
function hessian(n: number): Float64Array {
  const r = seededRandom(n);
  const m = 2 * n;
  const x = new Float32Array(m * n);
  for (let k = 0; k < m; k++) for (let c = 0; c < n; c++) x[k * n + c] = r() - 0.5 + (c ? 0.5 * x[k * n + c - 1] : 0);
  const h = new Float64Array(n * n);
  for (let k = 0; k < m; k++) {
    for (let i = 0; i < n; i++) {
      const xi = x[k * n + i];
      for (let j = 0; j <= i; j++) h[i * n + j] += xi * x[k * n + j];
    }
  }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i] / n;
  for (let i = 0; i < n; i++) {
    h[i * n + i] += 0.01 * mean;
    for (let j = 0; j < i; j++) h[j * n + i] = h[i * n + j];
  }
  return h;
}

const rows: string[][] = [];
for (const n of sizes) {
  const h = hessian(n);
  const t0 = performance.now();
  const want = inverseUpperFactor(h, n)!;
  const cpuMs = performance.now() - t0;
  const job = upperFactorJob(h, n);
  // First run compiles the pipeline; the second is timed.
  await gpu.run(choleskyKernel, [upperFactorJob([2, 0, 0, 2], 2)]);
  const t1 = performance.now();
  const [got] = await gpu.run(choleskyKernel, [job]);
  const gpuMs = performance.now() - t1;
  let scale = 0;
  let worst = 0;
  const u = got.inverse ? upperFactor(got.inverse) : new Float64Array(0);
  for (let k = 0; k < n * n; k++) scale = Math.max(scale, Math.abs(want[k]));
  for (let k = 0; k < u.length; k++) worst = Math.max(worst, Math.abs(u[k] - want[k]));
  rows.push([String(n), cpuMs.toFixed(0), gpuMs.toFixed(0), (cpuMs / gpuMs).toFixed(2), got.inverse ? (worst / scale).toExponential(1) : `pivot ${got.failedPivot} failed`]);
  console.error(rows[rows.length - 1].join(' | '));
}
gpu.dispose();
const text = `GPTQ factorization (upper factor of H⁻¹), f64 CPU path vs f32 \`cholesky\` kernel on ${adapter}\n`
  + formatTable(['n', 'CPU f64 ms', 'GPU f32 ms', 'CPU / GPU', 'max |ΔU| / max |U|'], rows);
process.stdout.write(text);
if (out) appendFileSync(out, '\n```\n' + text + '```\n');
