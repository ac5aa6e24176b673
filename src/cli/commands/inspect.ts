/** `modelpress inspect`: what is in a model and what a default run would do to each weight. */
import type { Command } from 'commander';
import { guarded, type CommonOptions } from '../common.ts';

export function addInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('show opsets, inputs/outputs, op histogram, parameters by type, the largest tensors, and what a default int8 run would quantize or skip (and why)')
    .argument('<model>', 'ONNX model')
    .option('--json', 'print the same as JSON on stdout')
    .option('-v, --verbose', 'stack traces on errors')
    .action((input: string, o: CommonOptions) => guarded(o.verbose, async () => {
      const [{ inspectModel }, { formatInspect }] = await Promise.all([import('../../inspect.ts'), import('../format.ts')]);
      const r = inspectModel(input);
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatInspect(r));
    }));
}
