/** `modelpress distill`: knowledge distillation of a student's head to a teacher's logits. */
import type { Command } from 'commander';
import { backendOption, guarded, int, logLevel, num, type CommonOptions } from '../common.ts';
import { addPreprocessOptions, preprocessFrom, type CalibrationFlags } from '../calibration-flags.ts';

interface DistillFlags extends CommonOptions, CalibrationFlags {
  teacher: string;
  data: string;
  output: string;
  samples?: string;
  epochs?: string;
  temperature?: string;
  alpha?: string;
  lr?: string;
  head?: string;
  report?: string;
  force?: boolean;
}

export function addDistillCommand(program: Command): void {
  addPreprocessOptions(program
    .command('distill')
    .description('re-fit a student model\'s head (the last Gemm, MatMul or 1x1 Conv feeding its output) to a teacher\'s logits on unlabelled or labelled data: KL(teacher || student) * T^2, plus cross-entropy when the data has labels, with Adam; the best weights on held-out samples are kept')
    .addHelpText('after', `
Typical use: the teacher is the original model, the student a pruned one (the same outputs).
Labels beside the data (IDX labels, labels.txt) add cross-entropy; without them the fit is pure KL.
A quantized student head is refused: distill before quantizing, or use compress --recover kd.`)
    .argument('<student>', 'the student ONNX model (never modified)')
    .requiredOption('--teacher <model>', 'the teacher ONNX model (never modified)')
    .requiredOption('--data <path>', 'inputs: IDX, .npy/.npz or an image folder')
    .requiredOption('-o, --output <path>', 'output ONNX model')
    .option('--samples <n>', 'samples drawn with --seed (default 1024); a fifth is held out')
    .option('--seed <n>', 'seed for sampling and shuffling (default 1)')
    .option('--epochs <n>', 'most epochs (default 100; stops when held-out samples stop improving for 10)')
    .option('--temperature <T>', 'softmax temperature of the KL term (default 2)')
    .option('--alpha <a>', 'weight of the KL term against cross-entropy on labels (default 0.5 with labels, 1 without)')
    .option('--lr <rate>', 'Adam learning rate (default 0.01)')
    .option('--head <output>', 'the graph output whose head is fitted (default: the first float output that has one)')
    .option('--report <file>', 'write the JSON report')
    .option('--force', 'replace an existing output')
    .option('--json', 'print the report as JSON on stdout')
    .addOption(backendOption())
    .option('-q, --quiet', 'no progress bar, errors only')
    .option('-v, --verbose', 'stack traces on errors'))
    .action((student: string, o: DistillFlags) => guarded(o.verbose, async () => {
      const [{ distillModel }, { createLogger }, { ProgressReporter }, { jsonNumbers }] = await Promise.all([
        import('../../pipeline/distill.ts'), import('../../log.ts'), import('../progress.ts'), import('../../json.ts')]);
      const progress = new ProgressReporter(!o.quiet && !o.json, '');
      const r = await distillModel(student, o.output, {
        teacher: o.teacher, data: o.data, preprocess: preprocessFrom(o), samples: int(o.samples, '--samples'), seed: int(o.seed, '--seed'),
        epochs: int(o.epochs, '--epochs'), temperature: num(o.temperature, '--temperature'), alpha: num(o.alpha, '--alpha'), learningRate: num(o.lr, '--lr'),
        headOutput: o.head, backend: o.backend, force: o.force, reportPath: o.report, logger: createLogger(logLevel(o)),
        onProgress: (stage, d, t) => progress.update(d, t, stage),
      });
      progress.stop();
      if (o.json) {
        process.stdout.write(JSON.stringify(r, jsonNumbers, 2) + '\n');
        return;
      }
      const m = (x: typeof r.before) => x.mse !== null ? `MSE ${x.mse.toPrecision(4)}` : `KL ${x.kl!.toFixed(4)}, agreement with teacher ${x.agreement!.toFixed(2)} %${x.accuracy !== null ? `, accuracy ${x.accuracy.toFixed(2)} %` : ''}`;
      process.stdout.write([
        `${student} -> ${o.output} (teacher ${o.teacher})`,
        `head:      ${r.head} -> output '${r.output}'; loss ${r.loss}, T ${r.temperature}, alpha ${r.alpha}`,
        `data:      ${r.samples.fit} samples fitted (${r.rows.fit} rows), ${r.samples.heldOut} held out; ${r.epochs} epochs, best ${r.bestEpoch}; ${((r.timeMs.collect + r.timeMs.fit) / 1000).toFixed(1)} s`,
        `held-out:  before ${m(r.before)}`,
        `           after  ${m(r.after)}`,
        r.kept ? 'the fitted head was written' : 'fitting did not improve the held-out samples: the student was written unchanged',
      ].join('\n') + '\n');
    }));
}
