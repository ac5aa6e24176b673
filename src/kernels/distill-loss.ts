/**
 * distillation loss for student and teacher logits [N, C], temperature T and mix alpha:
 *   loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(softmax(s), label)
 * reduced over the batch as a mean over rows — for the KL term this is PyTorch's 'batchmean'
 * (sum over classes, mean over rows), the mathematically correct KL reduction. The gradient is
 * d loss / d student logits = [alpha * T * (q_T - p_T) + (1 - alpha) * (softmax(s) - onehot)] / N.
 */
import { InvalidArgumentError } from '../errors.ts';
import type { KernelDescriptor, Piece, PieceRegions } from './kernel.ts';
import { f32Bits } from './numerics.ts';

export interface DistillLossJob {
  student: Float32Array;
  teacher: Float32Array;
  labels: Int32Array;
  rows: number;
  classes: number;
  temperature: number;
  alpha: number;
}

export interface DistillLossResult {
  /** Batch loss (mean over rows of alpha * KL * T^2 + (1 - alpha) * CE). */
  loss: number;
  /** Mean over rows of KL * T^2 ('batchmean'). */
  kl: number;
  /** Mean cross-entropy against the labels. */
  ce: number;
  /** Per row: KL * T^2. */
  rowKl: Float32Array;
  rowCe: Float32Array;
  /** d loss / d student logits, [N, C]. */
  grad: Float32Array;
}

function validate(job: DistillLossJob): void {
  const { rows, classes } = job;
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(classes) || classes < 1) {
    throw new InvalidArgumentError(`logits must be [N, C] with N >= 0 and C >= 1, got [${rows}, ${classes}]`);
  }
  for (const [name, arr] of [['student', job.student], ['teacher', job.teacher]] as const) {
    if (arr.length !== rows * classes) throw new InvalidArgumentError(`${name} logits have ${arr.length} values, [${rows}, ${classes}] needs ${rows * classes}`);
  }
  if (job.labels.length !== rows) throw new InvalidArgumentError(`labels have ${job.labels.length} entries for ${rows} rows`);
  for (let i = 0; i < rows; i++) {
    if (job.labels[i] < 0 || job.labels[i] >= classes) {
      throw new InvalidArgumentError(`label ${job.labels[i]} of row ${i} is outside [0, ${classes})`, { row: i });
    }
  }
  if (!(job.temperature > 0) || !Number.isFinite(job.temperature)) throw new InvalidArgumentError(`temperature must be positive and finite, got ${job.temperature}`);
  if (!(job.alpha >= 0 && job.alpha <= 1)) throw new InvalidArgumentError(`alpha must be in [0, 1], got ${job.alpha}`);
}

function reduceRows(rowKl: Float32Array, rowCe: Float32Array, alpha: number): { loss: number; kl: number; ce: number } {
  const n = rowKl.length;
  let kl = 0;
  let ce = 0;
  for (let i = 0; i < n; i++) {
    kl += rowKl[i];
    ce += rowCe[i];
  }
  kl = n ? kl / n : 0;
  ce = n ? ce / n : 0;
  return { loss: alpha * kl + (1 - alpha) * ce, kl, ce };
}

function cpu(job: DistillLossJob): DistillLossResult {
  const { rows, classes: c, temperature: t, alpha } = job;
  const grad = new Float32Array(rows * c);
  const rowKl = new Float32Array(rows);
  const rowCe = new Float32Array(rows);
  const s = job.student;
  const te = job.teacher;
  for (let r = 0; r < rows; r++) {
    const b = r * c;
    let mx = -Infinity;
    let my = -Infinity;
    let mz = -Infinity;
    for (let j = 0; j < c; j++) {
      mx = Math.max(mx, s[b + j] / t);
      my = Math.max(my, te[b + j] / t);
      mz = Math.max(mz, s[b + j]);
    }
    let zx = 0;
    let zy = 0;
    let zz = 0;
    for (let j = 0; j < c; j++) {
      zx += Math.exp(s[b + j] / t - mx);
      zy += Math.exp(te[b + j] / t - my);
      zz += Math.exp(s[b + j] - mz);
    }
    const lx = Math.log(zx);
    const ly = Math.log(zy);
    const lz = Math.log(zz);
    let kl = 0;
    for (let j = 0; j < c; j++) {
      const logQ = s[b + j] / t - mx - lx;
      const logP = te[b + j] / t - my - ly;
      const logS = s[b + j] - mz - lz;
      const p = Math.exp(logP);
      kl += p * (logP - logQ);
      const onehot = j === job.labels[r] ? 1 : 0;
      if (onehot) rowCe[r] = -logS;
      grad[b + j] = (alpha * t * (Math.exp(logQ) - p) + (1 - alpha) * (Math.exp(logS) - onehot)) / rows;
    }
    rowKl[r] = kl * t * t;
  }
  return { ...reduceRows(rowKl, rowCe, alpha), rowKl, rowCe, grad };
}

function pieces(job: DistillLossJob, maxWords: number): Piece[] {
  const { rows, classes } = job;
  const perPiece = Math.max(1, Math.floor(maxWords / classes));
  const out: Piece[] = [];
  for (let r0 = 0; r0 < rows; r0 += perPiece) {
    const n = Math.min(perPiece, rows - r0);
    const a = r0 * classes;
    const b = (r0 + n) * classes;
    out.push({
      entryPoint: 'distill_loss',
      workgroups: n,
      words: { student: n * classes, teacher: n * classes, labels: n, grad: n * classes, rowloss: 2 * n },
      uploads: [
        { stream: 'student', at: 0, data: job.student.subarray(a, b) },
        { stream: 'teacher', at: 0, data: job.teacher.subarray(a, b) },
        { stream: 'labels', at: 0, data: job.labels.subarray(r0, r0 + n) },
      ],
      record: (o) => [o.student, o.teacher, o.labels, n, classes, f32Bits(job.temperature), f32Bits(job.alpha), f32Bits(1 / rows), o.grad, o.rowloss],
    });
  }
  return out;
}

function finish(job: DistillLossJob, regions: PieceRegions[]): DistillLossResult {
  const { rows, classes } = job;
  const grad = new Float32Array(rows * classes);
  const rowKl = new Float32Array(rows);
  const rowCe = new Float32Array(rows);
  let r0 = 0;
  for (const r of regions) {
    const g = new Float32Array(r.grad.buffer, r.grad.byteOffset, r.grad.length);
    const l = new Float32Array(r.rowloss.buffer, r.rowloss.byteOffset, r.rowloss.length);
    const n = l.length / 2;
    grad.set(g, r0 * classes);
    for (let i = 0; i < n; i++) {
      rowKl[r0 + i] = l[2 * i];
      rowCe[r0 + i] = l[2 * i + 1];
    }
    r0 += n;
  }
  return { ...reduceRows(rowKl, rowCe, job.alpha), rowKl, rowCe, grad };
}

export const distillLossKernel: KernelDescriptor<DistillLossJob, DistillLossResult> = {
  name: 'distill_loss',
  shader: 'distill_loss',
  entryPoints: ['distill_loss'],
  streams: [
    { name: 'student', role: 'in' },
    { name: 'teacher', role: 'in' },
    { name: 'labels', role: 'in' },
    { name: 'grad', role: 'out' },
    { name: 'rowloss', role: 'out' },
  ],
  recordWords: 11,
  validate,
  work: (job) => job.rows * job.classes,
  cpu,
  pieces,
  finish,
};
