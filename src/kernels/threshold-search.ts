/**
 * threshold_search: scores candidate clipping thresholds of an |x| histogram in parallel
 * (calibration's entropy and MSE methods). The CPU reference computes every score in f64; the GPU
 * computes them in f32 and `pickThreshold` re-scores its near-minimal candidates in f64, so both
 * backends choose the same threshold.
 */
import { InvalidArgumentError } from '../errors.ts';
import { f32Bits } from './numerics.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export type SearchMethod = 'entropy' | 'mse';

export interface ThresholdSearchJob {
  /** Histogram of |x| over [0, nbins * binWidth]. */
  counts: Uint32Array;
  binWidth: number;
  method: SearchMethod;
  /** Quantization levels over [0, T]: 128 for int8 magnitudes (entropy), 127 / 255 steps for MSE. */
  levels: number;
  /** First candidate bin edge (default: levels for entropy, 1 for mse). */
  first?: number;
}

export interface ThresholdSearchResult {
  /** Score of candidate edge first + k (lower is better). */
  scores: Float64Array;
  first: number;
}

export const MAX_LEVELS = 256;
const EPS = 0.0001;

export function firstCandidate(job: ThresholdSearchJob): number {
  return job.first ?? (job.method === 'entropy' ? job.levels : 1);
}

/** The f64 score of one candidate edge `i` (the definition the WGSL follows). */
export function scoreCandidate(job: ThresholdSearchJob, i: number): number {
  const h = job.counts;
  const nbins = h.length;
  if (job.method === 'mse') {
    const t = i * job.binWidth;
    const step = t / job.levels;
    const noise = (step * step) / 12;
    let err = 0;
    let total = 0;
    for (let b = 0; b < nbins; b++) {
      const c = h[b];
      if (c === 0) continue;
      total += c;
      if (b < i) err += c * noise;
      else {
        const d = (b + 0.5) * job.binWidth - t;
        err += c * d * d;
      }
    }
    return total === 0 ? 0 : err / total;
  }
  const nq = job.levels;
  let outliers = 0;
  for (let b = i; b < nbins; b++) outliers += h[b];
  const merged = Math.floor(i / nq);
  const qsum = new Float64Array(nq);
  const qnz = new Float64Array(nq);
  const p = new Float64Array(i);
  let pzeros = 0;
  let psum = 0;
  for (let b = 0; b < i; b++) {
    p[b] = h[b] + (b === i - 1 ? outliers : 0);
    const j = Math.min(Math.floor(b / merged), nq - 1);
    qsum[j] += h[b];
    if (p[b] !== 0) qnz[j]++;
    else pzeros++;
    psum += p[b];
  }
  const q = new Float64Array(i);
  let qzeros = 0;
  let qtotal = 0;
  for (let b = 0; b < i; b++) {
    const j = Math.min(Math.floor(b / merged), nq - 1);
    q[b] = p[b] !== 0 && qsum[j] !== 0 ? qsum[j] / qnz[j] : 0;
    if (q[b] === 0) qzeros++;
    qtotal += q[b];
  }
  const pnz = i - pzeros;
  const qnzc = i - qzeros;
  if (pnz === 0 || qnzc === 0) return 3.0e38;
  const peps = (EPS * pzeros) / pnz;
  const qeps = (EPS * qzeros) / qnzc;
  let kl = 0;
  for (let b = 0; b < i; b++) {
    const ps = p[b] !== 0 ? p[b] - peps : EPS;
    const qs = q[b] !== 0 ? q[b] - qeps : EPS;
    const pn = ps / psum;
    const qn = qs / qtotal;
    kl += pn * Math.log(pn / qn);
  }
  return kl;
}

function validate(job: ThresholdSearchJob): void {
  const n = job.counts.length;
  if (!Number.isInteger(job.levels) || job.levels < 1 || job.levels > MAX_LEVELS) {
    throw new InvalidArgumentError(`levels must be an integer in [1, ${MAX_LEVELS}], got ${job.levels}`);
  }
  const first = firstCandidate(job);
  if (!Number.isInteger(first) || first < 1 || first > n) {
    throw new InvalidArgumentError(`first candidate ${first} must be in [1, ${n}] (the histogram has ${n} bins)`);
  }
  if (job.method === 'entropy' && n < job.levels) throw new InvalidArgumentError(`entropy search needs at least ${job.levels} bins, got ${n}`);
  if (!(job.binWidth > 0)) throw new InvalidArgumentError(`bin width must be positive, got ${job.binWidth}`);
}

function cpu(job: ThresholdSearchJob): ThresholdSearchResult {
  const first = firstCandidate(job);
  const scores = new Float64Array(job.counts.length - first + 1);
  for (let k = 0; k < scores.length; k++) scores[k] = scoreCandidate(job, first + k);
  return { scores, first };
}

function pieces(job: ThresholdSearchJob, maxWords: number): Piece[] {
  const first = firstCandidate(job);
  const n = job.counts.length - first + 1;
  if (job.counts.length > maxWords) throw new InvalidArgumentError(`histogram of ${job.counts.length} bins exceeds the binding window`);
  const method = job.method === 'entropy' ? 0 : 1;
  return [{
    entryPoint: 'threshold_search',
    workgroups: Math.ceil(n / WORKGROUP_SIZE),
    words: { hist: job.counts.length, scores: n },
    uploads: [{ stream: 'hist', at: 0, data: job.counts }],
    record: (o) => [o.hist, job.counts.length, first, n, method, job.levels, o.scores, f32Bits(job.binWidth)],
  }];
}

function finish(job: ThresholdSearchJob, regions: PieceRegions[]): ThresholdSearchResult {
  const first = firstCandidate(job);
  const r = regions[0].scores;
  return { scores: Float64Array.from(new Float32Array(r.buffer, r.byteOffset, r.length)), first };
}

export const thresholdSearchKernel: KernelDescriptor<ThresholdSearchJob, ThresholdSearchResult> = {
  name: 'threshold_search',
  shader: 'threshold_search',
  entryPoints: ['threshold_search'],
  streams: [
    { name: 'hist', role: 'in' },
    { name: 'scores', role: 'out' },
  ],
  recordWords: 9,
  validate,
  work: (job) => job.counts.length * (job.counts.length - firstCandidate(job) + 1),
  cpu,
  pieces,
  finish,
};

/** Relative closeness under which GPU f32 scores are re-scored in f64 on the CPU. */
export const NEAR_TIE = 1e-2;

/**
 * The chosen candidate edge. Scores from the GPU (f32) are only used to shortlist: every candidate
 * within NEAR_TIE of the best is re-scored in f64, so the CPU and GPU paths pick the same edge.
 */
export function pickThreshold(job: ThresholdSearchJob, result: ThresholdSearchResult): number {
  const s = result.scores;
  let min = Infinity;
  for (const v of s) if (v < min) min = v;
  let best = -1;
  let bestScore = Infinity;
  for (let k = 0; k < s.length; k++) {
    if (!(s[k] <= min + NEAR_TIE * Math.abs(min) + 1e-9)) continue;
    const v = scoreCandidate(job, result.first + k);
    if (v < bestScore) {
      bestScore = v;
      best = k;
    }
  }
  return result.first + Math.max(0, best);
}
