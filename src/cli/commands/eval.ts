/** `modelpress eval`: a model and its baseline in ONNX Runtime on the same inputs. */
import type { Command } from 'commander';
import { parseShapes } from './bench.ts';
import { guarded, int, type CommonOptions } from '../common.ts';

interface EvalFlags extends CommonOptions {
  baseline: string;
  data?: string;
  samples?: string;
  seed?: string;
  shape: string[];
}

export function addEvalCommand(program: Command): void {
  program
    .command('eval')
    .description('run a model and its baseline in ONNX Runtime on the same inputs: per-output agreement, accuracy on labelled data, latency')
    .argument('<model>', 'the model to evaluate (e.g. compressed)')
    .requiredOption('--baseline <model>', 'the reference model (e.g. the original)')
    .option('--data <path>', 'IDX images (MNIST format, gzip or not; labels found beside them), .npy/.npz, or a folder of PNG/JPEG images (labels in labels.txt). Default: seeded random inputs')
    .option('--samples <n>', 'number of samples (default: all data, or 32 random)')
    .option('--seed <n>', 'seed for random inputs (default 1)')
    .option('--shape <name=d0,d1,...>', 'concrete shape for an input with symbolic dims (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'print the results as JSON on stdout')
    .option('-v, --verbose', 'stack traces on errors')
    .action((input: string, o: EvalFlags) => guarded(o.verbose, async () => {
      const shapes = parseShapes(o.shape);
      const [{ evaluateModels }, { formatEval }, { jsonNumbers }] = await Promise.all([import('../../eval/evaluate.ts'), import('../format.ts'), import('../../json.ts')]);
      const r = await evaluateModels(input, o.baseline, { data: o.data, samples: int(o.samples, '--samples'), seed: int(o.seed, '--seed'), shapes });
      process.stdout.write(o.json ? JSON.stringify(r, jsonNumbers, 2) + '\n' : formatEval(r));
      if (r.slowdown) process.stderr.write(`modelpress: warning: ${r.slowdown}\n`);
    }));
}
