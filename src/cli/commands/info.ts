/** `modelpress info`: runtime, adapter, limits, features, and which backend auto picks and why. */
import type { Command } from 'commander';
import { backendOption, guarded, logLevel, type CommonOptions } from '../common.ts';

export function addInfoCommand(program: Command): void {
  program
    .command('info')
    .description('show the runtime, the WebGPU adapter, the limits and features modelpress uses, and which backend auto picks and why')
    .option('--json', 'print the same as JSON on stdout')
    .addOption(backendOption())
    .option('-v, --verbose', 'debug logging and stack traces')
    .action((o: CommonOptions) => guarded(o.verbose, async () => {
      const [{ environmentInfo }, { createLogger }, { formatInfo }] = await Promise.all([import('../../info.ts'), import('../../log.ts'), import('../format.ts')]);
      const info = await environmentInfo(o.backend, createLogger(logLevel(o)));
      process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : formatInfo(info));
    }));
}
