/**
 * gptq_sweep: GPTQ's column sweep in f32, one row of W per GPU thread (rows are independent once
 * the upper Cholesky factor U of the damped H⁻¹ is known — linalg/obs.ts factors it in f64 on the
 * CPU). Columns are visited in order; each weight is rounded to its grid with the quantize kernel's
 * exact rule and its error e = (x − q) · (1 / U[i][i]) spread over the row's later columns,
 * W[j] −= e · U[i][j]. Not lazily blocked: every update goes straight to W, which is what makes a
 * row one thread's work.
 *
 * The CPU reference does the same f32 operations in the same order. Codes are bit-identical
 * wherever the inputs of a rounding are; a GPU that fuses `w − e·u` into one multiply-add rounds
 * once instead of twice, and a weight sitting on a rounding boundary may then round the other way
 * (and its row's later columns follow): tolerances.ts bounds how many codes may differ.
 */
import { InvalidArgumentError } from '../errors.ts';
import { quantizeValue } from './quantize.ts';
import { flushDenormal } from './numerics.ts';
import { UnsliceableError } from './layout.ts';
import { type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export interface GptqSweepJob {
  /** Row-major [rows, cols]: the weights, columns in visiting order (dead inputs zeroed). */
  w: Float32Array;
  /** Row-major [cols, cols]: U, the upper Cholesky factor of the damped H⁻¹ (H⁻¹ = UᵀU), visiting order; only i ≤ j is read. */
  u: Float32Array;
  rows: number;
  cols: number;
  /** Row-major [rows, cols]: each weight's grid group. */
  group: Uint32Array;
  /** Per group: the grid's f32 inverse scale, scale and zero point (as in QuantParams). */
  inverse: Float32Array;
  scale: Float32Array;
  zeroPoint: Int32Array;
  /** The grid's code range. */
  qmin: number;
  qmax: number;
}

export interface GptqSweepResult {
  /** Row-major [rows, cols] codes, visiting order. */
  codes: Int32Array;
}

/** Threads (rows) per workgroup: each runs the whole sweep of its row, so many small workgroups. */
const ROWS_PER_WORKGROUP = 64;

function validate(job: GptqSweepJob): void {
  const { rows, cols } = job;
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 0) throw new InvalidArgumentError(`gptq_sweep: rows (${rows}) and cols (${cols}) must be non-negative integers`);
  if (job.w.length !== rows * cols) throw new InvalidArgumentError(`gptq_sweep: W has ${job.w.length} elements, [rows ${rows}, cols ${cols}] needs ${rows * cols}`);
  if (job.group.length !== rows * cols) throw new InvalidArgumentError(`gptq_sweep: the group map has ${job.group.length} entries, W has ${rows * cols}`);
  if (job.u.length !== cols * cols) throw new InvalidArgumentError(`gptq_sweep: U has ${job.u.length} elements, ${cols} columns need ${cols * cols}`);
  const groups = job.scale.length;
  if (job.inverse.length !== groups || job.zeroPoint.length !== groups) throw new InvalidArgumentError(`gptq_sweep: ${groups} scales but ${job.inverse.length} inverses and ${job.zeroPoint.length} zero points`);
  for (const g of job.group) if (g >= groups) throw new InvalidArgumentError(`gptq_sweep: group ${g} out of range (${groups} groups)`);
  if (!Number.isInteger(job.qmin) || !Number.isInteger(job.qmax) || job.qmin > job.qmax) throw new InvalidArgumentError(`gptq_sweep: code range [${job.qmin}, ${job.qmax}] is not an integer range`);
  for (let i = 0; i < cols; i++) {
    const d = job.u[i * cols + i];
    if (!(d > 0) || !Number.isFinite(d)) throw new InvalidArgumentError(`gptq_sweep: U[${i}][${i}] = ${d}; U must have a positive diagonal`);
  }
  for (let k = 0; k < job.w.length; k++) if (!Number.isFinite(job.w[k])) throw new InvalidArgumentError(`gptq_sweep: weight ${k} (row ${Math.floor(k / cols)}, column ${k % cols}) is ${job.w[k]}`);
}

/** 1 / U[i][i] as the f32 both backends multiply by (division is not exact on every GPU). */
function diagonalInverses(job: GptqSweepJob): Float32Array {
  const { u, cols } = job;
  return Float32Array.from({ length: cols }, (_, i) => 1 / u[i * cols + i]);
}

function cpu(job: GptqSweepJob): GptqSweepResult {
  const { rows, cols, u, group, inverse, scale, zeroPoint, qmin, qmax } = job;
  const codes = new Int32Array(rows * cols);
  const dinv = diagonalInverses(job);
  // One row at a time in an f32 array: each store rounds to f32 as the GPU's does (an f32
  // difference computed in f64 and rounded once is the correctly rounded f32 difference).
  const x = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    x.set(job.w.subarray(r * cols, (r + 1) * cols));
    for (let i = 0; i < cols; i++) {
      const xi = flushDenormal(x[i]);
      const g = group[r * cols + i];
      const zp = zeroPoint[g];
      const code = quantizeValue(xi, inverse[g], zp, qmin, qmax);
      codes[r * cols + i] = code;
      const q = Math.fround((code - zp) * scale[g]);
      const e = Math.fround(Math.fround(xi - q) * dinv[i]);
      if (e === 0) continue;
      const ui = i * cols;
      for (let j = i + 1; j < cols; j++) x[j] = x[j] - Math.fround(e * u[ui + j]);
    }
  }
  return { codes };
}

interface Plan {
  /** Per piece: its first row and row count. */
  slices: Array<{ row: number; rows: number }>;
}
const plans = new WeakMap<GptqSweepJob, Plan>();

function pieces(job: GptqSweepJob, maxWords: number): Piece[] {
  const { rows, cols } = job;
  const slices: Plan['slices'] = [];
  plans.set(job, { slices });
  const out: Piece[] = [];
  if (rows === 0 || cols === 0) return out;
  const groups = job.scale.length;
  if (cols * cols > maxWords) throw new UnsliceableError(`gptq_sweep: U of ${cols} columns (${cols * cols} words) does not fit one binding window of ${maxWords} words`);
  if (3 * groups > maxWords) throw new UnsliceableError(`gptq_sweep: ${groups} grid groups do not fit one binding window of ${maxWords} words`);
  // U with its diagonal replaced by the inverses the CPU reference multiplies by.
  const uk = Float32Array.from(job.u);
  const dinv = diagonalInverses(job);
  for (let i = 0; i < cols; i++) uk[i * cols + i] = dinv[i];
  const params = new Uint32Array(3 * groups);
  const pf = new Float32Array(params.buffer);
  const pi = new Int32Array(params.buffer);
  for (let g = 0; g < groups; g++) {
    pf[3 * g] = job.inverse[g];
    pf[3 * g + 1] = job.scale[g];
    pi[3 * g + 2] = job.zeroPoint[g];
  }
  // Rows per piece: W and the group map of a piece each fit the window.
  const step = Math.max(1, Math.floor(maxWords / cols));
  for (let row = 0; row < rows; row += step) {
    const n = Math.min(step, rows - row);
    slices.push({ row, rows: n });
    // Column-major within the piece: a workgroup's threads read consecutive words.
    const wt = new Float32Array(n * cols);
    const gt = new Uint32Array(n * cols);
    for (let r = 0; r < n; r++) {
      const src = (row + r) * cols;
      for (let c = 0; c < cols; c++) {
        wt[c * n + r] = job.w[src + c];
        gt[c * n + r] = job.group[src + c];
      }
    }
    out.push({
      entryPoint: 'sweep',
      workgroups: Math.ceil(n / ROWS_PER_WORKGROUP),
      words: { w: n * cols, u: cols * cols, groups: n * cols, params: 3 * groups },
      uploads: [
        { stream: 'w', at: 0, data: wt },
        { stream: 'u', at: 0, data: uk },
        { stream: 'groups', at: 0, data: gt },
        { stream: 'params', at: 0, data: params },
      ],
      record: (o) => [o.w, o.u, o.groups, o.params, n, cols, job.qmin >>> 0, job.qmax >>> 0],
    });
  }
  return out;
}

function finish(job: GptqSweepJob, regions: PieceRegions[]): GptqSweepResult {
  const { cols } = job;
  const codes = new Int32Array(job.rows * cols);
  plans.get(job)!.slices.forEach((s, i) => {
    const r = regions[i].w;
    const v = new Float32Array(r.buffer, r.byteOffset, r.length);
    for (let c = 0; c < cols; c++) for (let k = 0; k < s.rows; k++) codes[(s.row + k) * cols + c] = v[c * s.rows + k];
  });
  return { codes };
}

export const gptqSweepKernel: KernelDescriptor<GptqSweepJob, GptqSweepResult> = {
  name: 'gptq_sweep',
  shader: 'gptq_sweep',
  entryPoints: ['sweep'],
  streams: [
    { name: 'w', role: 'inout' },
    { name: 'u', role: 'in' },
    { name: 'groups', role: 'in' },
    { name: 'params', role: 'in' },
  ],
  recordWords: 9,
  workgroupSize: ROWS_PER_WORKGROUP,
  validate,
  // Multiply-adds: every row updates every later column once per column.
  work: (job) => (job.rows * job.cols * (job.cols + 1)) / 2,
  cpu,
  pieces,
  finish,
};
