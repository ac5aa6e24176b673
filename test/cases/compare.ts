/** GPU-vs-reference comparisons: exact for integer outputs, tolerances.ts for floats. */
import { firstMismatch, GPTQ_SWEEP_CODES, SQNR_RESOLVED_DB, tolerances, type ToleranceKey } from '../../src/kernels/tolerances.ts';
import type { QuantizeResult } from '../../src/kernels/quantize.ts';
import type { RangeResult } from '../../src/kernels/range.ts';
import type { DequantizeResult, ErrorStats } from '../../src/kernels/dequantize.ts';
import type { HistogramResult } from '../../src/kernels/histogram.ts';
import type { ChannelScoresResult } from '../../src/kernels/channel-scores.ts';
import type { DistillLossResult } from '../../src/kernels/distill-loss.ts';
import type { KernelName } from '../../src/kernels/registry.ts';
import type { GramResult } from '../../src/kernels/gram.ts';
import type { PaletteResult } from '../../src/kernels/palette.ts';
import type { SparsityResult } from '../../src/kernels/sparsity.ts';
import type { GptqSweepResult } from '../../src/kernels/gptq-sweep.ts';
import type { CholeskyResult } from '../../src/kernels/cholesky.ts';
import type { ThresholdSearchResult } from '../../src/kernels/threshold-search.ts';

/** Same bits (NaN payloads and -0 included). */
export function exactBits(what: string, got: ArrayLike<number> & { buffer?: ArrayBufferLike }, want: ArrayLike<number>): string | null {
  if (got.length !== want.length) return `${what}: length ${got.length} != ${want.length}`;
  const g = Float32Array.from(got as ArrayLike<number>);
  const w = Float32Array.from(want);
  const gb = new Uint32Array(g.buffer);
  const wb = new Uint32Array(w.buffer);
  for (let i = 0; i < gb.length; i++) {
    if (gb[i] !== wb[i] && !(Number.isNaN(g[i]) && Number.isNaN(w[i]))) return `${what}[${i}]: ${g[i]} != ${w[i]}`;
  }
  return null;
}

export function exactInts(what: string, got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  if (got.length !== want.length) return `${what}: length ${got.length} != ${want.length}`;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `${what}[${i}]: ${got[i]} != ${want[i]}`;
  return null;
}

export function close(key: ToleranceKey, got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  const i = firstMismatch(got, want, tolerances[key]);
  return i < 0 ? null : `${key}[${i}]: ${got[i]} vs ${want[i]} (tolerance ${JSON.stringify(tolerances[key])})`;
}

function statsArrays(s: ErrorStats[]) {
  return {
    mse: s.map((x) => x.mse), sqnr: s.map((x) => x.sqnrDb), emax: s.map((x) => x.maxAbsError),
    cos: s.map((x) => x.cosine), count: s.map((x) => x.count), bad: s.map((x) => x.nonFinite),
  };
}

function compareStats(got: ErrorStats[], want: ErrorStats[]): string | null {
  const g = statsArrays(got);
  const w = statsArrays(want);
  // Error energy below the f32 sums' resolution (tolerances.ts: SQNR_RESOLVED_DB): both must say so;
  // the exact mse and SQNR are then not compared.
  for (let i = 0; i < w.sqnr.length; i++) {
    if (!(w.sqnr[i] > SQNR_RESOLVED_DB)) continue;
    if (!(g.sqnr[i] > SQNR_RESOLVED_DB)) return `dequantize.sqnrDb[${i}]: ${g.sqnr[i]} vs ${w.sqnr[i]} (beyond ${SQNR_RESOLVED_DB} dB both must be)`;
    g.mse[i] = w.mse[i] = 0;
    g.sqnr[i] = w.sqnr[i] = SQNR_RESOLVED_DB;
  }
  return (
    exactInts('dequantize.count', g.count, w.count) ?? exactInts('dequantize.nonFinite', g.bad, w.bad) ??
    close('dequantize.mse', g.mse, w.mse) ?? close('dequantize.sqnrDb', g.sqnr, w.sqnr) ??
    close('dequantize.maxAbsError', g.emax, w.emax) ?? close('dequantize.cosine', g.cos, w.cos)
  );
}

type Comparator = (got: any, want: any) => string | null;

/** Float entries within `key`'s tolerance of the reference's largest magnitude (cross terms may cancel). */
function closeScaled(what: string, key: ToleranceKey, got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  if (got.length !== want.length) return `${what}: length ${got.length} != ${want.length}`;
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  const t = tolerances[key];
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i] - want[i]) > t.abs * scale + t.rel * Math.abs(want[i])) return `${key}[${i}]: ${got[i]} vs ${want[i]} (scale ${scale}, tolerance ${JSON.stringify(t)})`;
  }
  return null;
}

const compareGram = (g: GramResult, w: GramResult) => closeScaled('gram', 'gram.values', g.gram, w.gram);

/** GPTQ codes: identical, or (an FMA-fusing GPU) a bounded fraction one step apart. */
function compareSweep(g: GptqSweepResult, w: GptqSweepResult): string | null {
  if (g.codes.length !== w.codes.length) return `gptq_sweep: length ${g.codes.length} != ${w.codes.length}`;
  let differ = 0;
  for (let i = 0; i < w.codes.length; i++) {
    const d = Math.abs(g.codes[i] - w.codes[i]);
    if (d > GPTQ_SWEEP_CODES.maxStep) return `gptq_sweep.codes[${i}]: ${g.codes[i]} vs ${w.codes[i]} (more than ${GPTQ_SWEEP_CODES.maxStep} step apart)`;
    if (d) differ++;
  }
  if (differ > GPTQ_SWEEP_CODES.maxDifferingFraction * w.codes.length) return `gptq_sweep.codes: ${differ} of ${w.codes.length} differ (at most ${GPTQ_SWEEP_CODES.maxDifferingFraction} allowed)`;
  return null;
}

/** L⁻¹: the same failed pivot, or entries within tolerance of the inverse's largest magnitude. */
function compareCholesky(g: CholeskyResult, w: CholeskyResult): string | null {
  if (g.failedPivot !== w.failedPivot) return `cholesky: failed pivot ${g.failedPivot} vs ${w.failedPivot}`;
  if (!w.inverse || !g.inverse) return w.inverse === g.inverse ? null : 'cholesky: inverse presence differs';
  return closeScaled('cholesky', 'cholesky.inverse', g.inverse, w.inverse);
}

export const comparators: Record<KernelName, Comparator> = {
  cholesky: compareCholesky,
  gptq_sweep: compareSweep,
  sparsity: (g: SparsityResult, w: SparsityResult) => exactInts('keep', g.keep, w.keep),
  palette: (g: PaletteResult, w: PaletteResult) =>
    (w.counts ? exactInts('counts', g.counts ?? [], w.counts) : null) ?? (w.indices ? exactInts('indices', g.indices ?? [], w.indices) : null),
  gram: compareGram,
  quantize: (g: QuantizeResult, w: QuantizeResult) => exactInts('codes', g.codes, w.codes),
  range: (g: RangeResult, w: RangeResult) =>
    exactBits('min', g.min, w.min) ?? exactBits('max', g.max, w.max) ?? exactBits('absmax', g.absmax, w.absmax) ??
    exactInts('count', g.count, w.count) ?? exactInts('nanCount', g.nanCount, w.nanCount) ??
    exactInts('infCount', g.infCount, w.infCount) ?? close('range.mean', g.mean, w.mean) ?? close('range.variance', g.variance, w.variance),
  dequantize: (g: DequantizeResult, w: DequantizeResult) =>
    (g.values && w.values ? exactBits('values', g.values, w.values) : g.values === w.values ? null : 'values presence differs') ??
    (g.tensor && w.tensor ? compareStats([g.tensor], [w.tensor]) : g.tensor === w.tensor ? null : 'tensor stats presence differs') ??
    compareStats(g.channels, w.channels),
  histogram: (g: HistogramResult, w: HistogramResult) =>
    exactInts('counts', g.counts, w.counts) ?? exactInts('outside', [g.below, g.above, g.nan], [w.below, w.above, w.nan]) ??
    exactBits('min/max', [g.min, g.max], [w.min, w.max]),
  channel_scores: (g: ChannelScoresResult, w: ChannelScoresResult) =>
    (g.l1 && w.l1 ? close('channel_scores.l1', g.l1, w.l1) : null) ??
    (g.l2 && w.l2 ? close('channel_scores.l2', g.l2, w.l2) : null) ??
    (g.fpgm && w.fpgm ? close('channel_scores.fpgm', g.fpgm, w.fpgm) : null) ??
    (Boolean(g.l1) !== Boolean(w.l1) || Boolean(g.fpgm) !== Boolean(w.fpgm) ? 'criteria differ' : null),
  threshold_search: (g: ThresholdSearchResult, w: ThresholdSearchResult) =>
    exactInts('first', [g.first], [w.first]) ?? close('threshold_search.score', g.scores, w.scores),
  distill_loss: (g: DistillLossResult, w: DistillLossResult) =>
    close('distill_loss.loss', [g.loss, g.kl, g.ce], [w.loss, w.kl, w.ce]) ??
    close('distill_loss.loss', g.rowKl, w.rowKl) ?? close('distill_loss.loss', g.rowCe, w.rowCe) ??
    close('distill_loss.grad', g.grad, w.grad),
};
