/** `modelpress sensitivity`: static W8A8 one layer at a time, layers ranked by the damage. */
import type { Command } from 'commander';
import { RecipeError } from '../../errors.ts';
import { backendOption, guarded, logLevel, type CommonOptions } from '../common.ts';
import { addCalibrationOptions, staticOptionsFrom, type CalibrationFlags } from '../calibration-flags.ts';

export function addSensitivityCommand(program: Command): void {
  addCalibrationOptions(program
    .command('sensitivity')
    .description('static W8A8 one layer at a time: rank layers by the damage (accuracy drop on --eval-data, or output SQNR)')
    .argument('<model>', 'ONNX model')
    .option('--eval-data <path>', 'labelled data to measure the damage (IDX / image folder); without it, output SQNR and cosine on calibration samples held out from calibration')
    .option('--samples <n>', 'evaluation samples per layer (default: all of --eval-data, or 64 held-out calibration samples)')
    .option('--json', 'print the ranking as JSON on stdout')
    .addOption(backendOption())
    .option('-q, --quiet', 'no progress bar, errors only')
    .option('-v, --verbose', 'stack traces on errors'), ['int8', 'uint8'])
    .action((input: string, o: CommonOptions & CalibrationFlags & { evalData?: string; samples?: string }) => guarded(o.verbose, async () => {
      if (!o.calibration) throw new RecipeError('sensitivity needs --calibration data');
      const [{ Scheduler }, { sensitivityAnalysis }, { createLogger }, { formatTable }, { ProgressReporter }, { jsonNumbers }] = await Promise.all([
        import('../../scheduler/scheduler.ts'), import('../../passes/quantize/static-pipeline.ts'), import('../../log.ts'), import('../format.ts'), import('../progress.ts'), import('../../json.ts')]);
      const s = await Scheduler.create({ backend: o.backend, logger: createLogger(logLevel(o)) });
      try {
        const progress = new ProgressReporter(!o.quiet && !o.json, '');
        const ranking = await sensitivityAnalysis(input, { ...staticOptionsFrom(o), scheduler: s, onProgress: (stage, d, t) => progress.update(d, t, stage) });
        progress.stop();
        if (o.json) process.stdout.write(JSON.stringify(ranking, jsonNumbers, 2) + '\n');
        else process.stdout.write(formatTable(['rank', 'node', 'op', 'accuracy drop', 'output SQNR', 'output cosine'],
          ranking.map((r, i) => [String(i + 1), r.node, r.op, r.dropPoints === null ? '-' : `${r.dropPoints.toFixed(2)} pts`, Number.isFinite(r.sqnrDb) ? `${r.sqnrDb.toFixed(1)} dB` : 'exact', r.cosine.toFixed(5)])));
      } finally {
        s.dispose();
      }
    }));
}
