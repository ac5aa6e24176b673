/** The prune pass as the pipeline runs it: pruning, then recovery from calibration data. */
import { RecipeError } from '../../errors.ts';
import type { PassContext, PassDescriptor, PassOutcome } from '../pass.ts';
import type { PruneOptions, PruneReport } from './prune.ts';
import type { RecoverMethod, RecoveryReport } from './recover.ts';

export interface PrunePassOptions extends PruneOptions {
  /** Default: lsq with calibration data, none without. */
  recover?: RecoverMethod;
}

export interface PrunePassReport extends PruneReport {
  recovery: RecoveryReport | null;
}

async function runPrune(ctx: PassContext, o: PrunePassOptions): Promise<PassOutcome<PrunePassReport>> {
  const recover = o.recover ?? (ctx.calibration ? 'lsq' : 'none');
  if (recover !== 'none' && !ctx.calibration) throw new RecipeError(`--recover ${recover} needs --calibration data (unlabelled samples are enough)`);
  const original = ctx.model.toBytes();
  ctx.onProgress?.('pruning', 0, 1);
  // Loaded on demand: pruning and recovery run ONNX Runtime.
  const [{ prunePass }, { recoverPruned }] = await Promise.all([import('./prune.ts'), import('./recover.ts')]);
  // Sensitivity probes measure each candidate after the recovery chosen here.
  const { report, targets } = await prunePass(ctx.model, ctx.scheduler, { ...o, recover }, ctx.calibration, (d, t) => ctx.onProgress?.('pruning: group sensitivity', d, t));
  ctx.onProgress?.('pruning', 1, 1);
  const recovery = recover === 'none' ? null
    : await recoverPruned(original, ctx.model, targets, { method: recover, calibration: ctx.calibration!, scheduler: ctx.scheduler, onProgress: ctx.onProgress });
  return { report: { ...report, recovery }, usedCalibration: recovery !== null || report.options.criterion === 'energy' || report.options.criterion === 'obs' || report.options.allocation === 'sensitivity' };
}

export const prunePassDescriptor: PassDescriptor<PrunePassOptions, PrunePassReport> = {
  name: 'prune',
  rank: 0,
  summary: 'structured channel pruning: whole channels removed from coupled groups, weights physically smaller',
  calibrationUse: 'channel scores (energy, obs), per-group sensitivity for --prune-macs, recovery of the pruned layers (--recover bn|lsq)',
  run: runPrune,
};
