/**
 * channel scores: importance of each output channel for structured pruning, from a weight viewed
 * as [channels, row] — conv [Cout, Cin/groups, kh, kw] (grouped and depthwise alike) or linear
 * [Cout, Cin]. L1 norm, L2 norm, and FPGM (sum of L2 distances from a filter to every other
 * filter of the layer; low means redundant, He et al. 2019). Float results: see tolerances.ts.
 */
import { InvalidArgumentError } from '../errors.ts';
import { flushDenormal } from './numerics.ts';
import { groupView, UnsliceableError, type GroupView } from './layout.ts';
import { forEachPartial, reductionHead, reductionSlices, REDUCE_CHUNK, type ReductionSlice } from './reduction.ts';
import { WORKGROUP_SIZE, type KernelDescriptor, type Piece, type PieceRegions } from './kernel.ts';

export type ChannelCriterion = 'l1' | 'l2' | 'fpgm';

export interface ChannelScoresJob {
  weights: Float32Array;
  /** [Cout, ...]: axis 0 is the output channel. */
  shape: readonly number[];
  criteria?: readonly ChannelCriterion[];
}

export interface ChannelScoresResult {
  l1: Float32Array | null;
  l2: Float32Array | null;
  fpgm: Float32Array | null;
}

function criteriaOf(job: ChannelScoresJob): Set<ChannelCriterion> {
  return new Set(job.criteria ?? ['l1', 'l2', 'fpgm']);
}

function dims(job: ChannelScoresJob): { channels: number; row: number } {
  const channels = job.shape[0];
  return { channels, row: channels === 0 ? 0 : job.weights.length / channels };
}

function validate(job: ChannelScoresJob): void {
  if (job.shape.length < 2) throw new InvalidArgumentError(`channel scores need a weight of rank >= 2 ([Cout, ...]), got shape [${job.shape.join(', ')}]`);
  const n = job.shape.reduce((a, b) => a * b, 1);
  if (n !== job.weights.length) throw new InvalidArgumentError(`weights have ${job.weights.length} elements but shape [${job.shape.join(', ')}] needs ${n}`);
  for (const c of criteriaOf(job)) {
    if (c !== 'l1' && c !== 'l2' && c !== 'fpgm') throw new InvalidArgumentError(`unknown channel criterion '${c}' (allowed: l1, l2, fpgm)`);
  }
}

/** The smallest normal f32 (2^-126): magnitudes below it are denormals, which the kernels flush. */
const FLT_MIN = 2 ** -126;

function cpu(job: ChannelScoresJob): ChannelScoresResult {
  const want = criteriaOf(job);
  const { channels, row } = dims(job);
  const src = job.weights;
  const l1 = new Float32Array(channels);
  const l2 = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    let a = 0;
    let b = 0;
    for (let i = c * row, end = i + row; i < end; i++) {
      // Denormals count as zero (flushDenormal; a zero's sign does not matter to |x| or x²).
      const x = Math.abs(src[i]) < FLT_MIN ? 0 : src[i];
      a += Math.abs(x);
      b += x * x;
    }
    l1[c] = a;
    l2[c] = Math.sqrt(b);
  }
  let fpgm: Float32Array | null = null;
  if (want.has('fpgm')) {
    const w = new Float32Array(src.length);
    for (let i = 0; i < w.length; i++) w[i] = flushDenormal(src[i]);
    fpgm = new Float32Array(channels);
    for (let i = 0; i < channels; i++) {
      let total = 0;
      for (let j = 0; j < channels; j++) {
        if (j === i) continue;
        let acc = 0;
        for (let k = 0; k < row; k++) {
          const d = w[i * row + k] - w[j * row + k];
          acc += d * d;
        }
        total += Math.sqrt(acc);
      }
      fpgm[i] = total;
    }
  }
  return { l1: want.has('l1') ? l1 : null, l2: want.has('l2') ? l2 : null, fpgm };
}

interface Plan {
  view: GroupView;
  slices: ReductionSlice[];
  tiles: number;
}
const plans = new WeakMap<ChannelScoresJob, Plan>();

function pieces(job: ChannelScoresJob, maxWords: number): Piece[] {
  const want = criteriaOf(job);
  const { channels, row } = dims(job);
  const view = groupView([channels, row], { kind: 'channel', axis: 0 });
  const needNorms = want.has('l1') || want.has('l2');
  const slices = needNorms ? reductionSlices(view, maxWords) : [];
  const tiles = Math.ceil(channels / WORKGROUP_SIZE);
  plans.set(job, { view, slices, tiles });
  const out: Piece[] = slices.map((s) => ({
    entryPoint: s.threadVariant ? 'channel_norms_small' : 'channel_norms',
    workgroups: s.workgroups,
    words: { src: s.elemCount, partials: 2 * s.partials },
    uploads: [{ stream: 'src', at: 0, data: job.weights.subarray(s.elemStart, s.elemStart + s.elemCount) }],
    record: (o) => [...reductionHead(view, s, o.src), o.partials],
  }));
  if (want.has('fpgm') && channels > 0) {
    if (job.weights.length > maxWords || channels * tiles > maxWords) {
      throw new UnsliceableError(`FPGM needs the whole weight (${job.weights.length} elements) in one binding window of ${maxWords}`);
    }
    out.push({
      entryPoint: 'channel_fpgm',
      workgroups: channels * tiles,
      words: { src: job.weights.length, partials: channels * tiles },
      uploads: [{ stream: 'src', at: 0, data: job.weights }],
      record: (o) => [o.src, channels, row, tiles, o.partials, 0, 0, 0, 0, 0, 0, 0, 0],
    });
  }
  return out;
}

function finish(job: ChannelScoresJob, regions: PieceRegions[]): ChannelScoresResult {
  const want = criteriaOf(job);
  const { view, slices, tiles } = plans.get(job)!;
  const channels = view.dim;
  const l1 = new Float64Array(channels);
  const sq = new Float64Array(channels);
  slices.forEach((s, i) => {
    const p = new Float32Array(regions[i].partials.buffer, regions[i].partials.byteOffset, regions[i].partials.length);
    forEachPartial(view, s, (g, _n, part) => {
      l1[g] += p[2 * part];
      sq[g] += p[2 * part + 1];
    });
  });
  let fpgm: Float32Array | null = null;
  if (want.has('fpgm')) {
    fpgm = new Float32Array(channels);
    const r = regions[slices.length];
    if (r) {
      const p = new Float32Array(r.partials.buffer, r.partials.byteOffset, r.partials.length);
      for (let i = 0; i < channels; i++) {
        let t = 0;
        for (let j = 0; j < tiles; j++) t += p[i * tiles + j];
        fpgm[i] = t;
      }
    }
  }
  return {
    l1: want.has('l1') ? Float32Array.from(l1) : null,
    l2: want.has('l2') ? Float32Array.from(sq, Math.sqrt) : null,
    fpgm,
  };
}

export const channelScoresKernel: KernelDescriptor<ChannelScoresJob, ChannelScoresResult> = {
  name: 'channel_scores',
  shader: 'channel_scores',
  entryPoints: ['channel_norms', 'channel_norms_small', 'channel_fpgm'],
  streams: [
    { name: 'src', role: 'in' },
    { name: 'partials', role: 'out' },
  ],
  recordWords: 14,
  constants: { REDUCE_CHUNK },
  validate,
  work: (job) => {
    const { channels } = dims(job);
    return criteriaOf(job).has('fpgm') ? job.weights.length * Math.max(1, channels) : job.weights.length;
  },
  cpu,
  pieces,
  finish,
};
