/** The prune pass as the pipeline runs it: pruning, then recovery from calibration data. */
import { RecipeError } from '../../errors.ts';
import type { PassContext, PassDescriptor, PassOutcome } from '../pass.ts';
import type { PruneOptions, PruneReport } from './prune.ts';
import type { RecoveryTarget } from './surgery.ts';
import type { NodeMsg } from '../../onnx/proto.ts';
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
  // The model as it entered, encoded, only for recovery (it re-fits layers against it): without
  // recovery this would be a second copy of every weight for nothing.
  const original = recover === 'none' ? null : ctx.model.toBytes();
  ctx.onProgress?.('pruning', 0, 1);
  // Loaded on demand: pruning and recovery run ONNX Runtime.
  const [{ prunePass, validatePruneOptions }, { recoverPruned }] = await Promise.all([import('./prune.ts'), import('./recover.ts')]);
  validatePruneOptions(o);
  // In steps: each reaches its share of the target (MACs or per-group ratio) on the model the last
  // one left, and every layer re-fitted so far is re-fitted against the original model. Output
  // channels are mapped back to the original's through every step (recovery targets them there).
  const steps = o.steps ?? 1;
  const key = (n: NodeMsg) => n.name || n.output[0];
  const toOriginal = new Map<string, number[]>();
  const refit = new Map<string, RecoveryTarget>();
  const reports: PruneReport[] = [];
  let recovery: RecoveryReport | null = null;
  // A per-group ratio compounds: each step removes the same fraction of what is left.
  const ratio = o.ratio === undefined ? undefined : 1 - (1 - o.ratio) ** (1 / steps);
  for (let step = 1; step <= steps; step++) {
    const macs = o.macs === undefined ? undefined : 1 - (1 - (o.macs * step) / steps) / (1 - (o.macs * (step - 1)) / steps);
    // Sensitivity probes measure each candidate after the recovery chosen here.
    const r = await prunePass(ctx.model, ctx.scheduler, { ...o, recover, macs, ratio }, ctx.calibration, (d, t) => ctx.onProgress?.(`pruning${steps > 1 ? ` step ${step}/${steps}` : ''}: group sensitivity`, d, t));
    reports.push(r.report);
    for (const [node, kept] of r.outputChannels) {
      const before = toOriginal.get(key(node));
      toOriginal.set(key(node), before ? kept.map((j) => before[j]) : kept);
    }
    for (const t of r.targets) refit.set(key(t.node), t);
    const targets = [...refit.values()].map((t) => ({ ...t, keptOut: t.keptOut === null ? null : toOriginal.get(key(t.node)) ?? t.keptOut }));
    recovery = recover === 'none' ? null
      : await recoverPruned(original!, ctx.model, targets, { method: recover, calibration: ctx.calibration!, scheduler: ctx.scheduler, onProgress: ctx.onProgress });
  }
  const report = mergeStepReports(reports, o);
  ctx.onProgress?.('pruning', 1, 1);
  return { report: { ...report, recovery }, usedCalibration: recovery !== null || report.options.criterion === 'energy' || report.options.criterion === 'obs' || report.options.allocation === 'sensitivity' };
}

/** One report for the steps: the first's starting point, the last's end, channels removed summed. */
function mergeStepReports(reports: PruneReport[], o: PrunePassOptions): PruneReport {
  const first = reports[0];
  const last = reports[reports.length - 1];
  const before = new Map(first.layers.map((l) => [l.node, l.before]));
  return {
    ...last,
    options: { ...last.options, ratio: o.ratio ?? null, macs: o.macs ?? null, steps: reports.length },
    groups: last.groups.map((g, i) => ({ ...g, removed: reports.reduce((s, r) => s + (r.groups[i]?.removed ?? 0), 0) })),
    layers: last.layers.map((l) => ({ ...l, before: before.get(l.node) ?? l.before })),
    macsBefore: first.macsBefore,
    paramsBefore: first.paramsBefore,
    channelsRemoved: reports.reduce((s, r) => s + r.channelsRemoved, 0),
  };
}

export const prunePassDescriptor: PassDescriptor<PrunePassOptions, PrunePassReport> = {
  name: 'prune',
  rank: 0,
  summary: 'structured channel pruning: whole channels removed from coupled groups, weights physically smaller',
  calibrationUse: 'channel scores (energy, obs), per-group sensitivity for --prune-macs, recovery of the pruned layers (--recover bn|lsq)',
  run: runPrune,
};
