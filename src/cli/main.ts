/**
 * The modelpress command line: a thin shell over the typed API in src/index.ts, one file per
 * command in ./commands. Commands load their heavy modules only when they run. The executable is
 * ./bin.ts (it turns the compile cache on first).
 */
import { Command } from 'commander';
import { packageVersion } from '../package-root.ts';
import { fail } from './common.ts';
import { addInfoCommand } from './commands/info.ts';
import { addSelfcheckCommand } from './commands/selfcheck.ts';
import { addCompressCommand } from './commands/compress.ts';
import { addInspectCommand } from './commands/inspect.ts';
import { addEvalCommand } from './commands/eval.ts';
import { addSensitivityCommand } from './commands/sensitivity.ts';
import { addDistillCommand } from './commands/distill.ts';
import { addBenchCommand } from './commands/bench.ts';
import { addSweepCommand } from './commands/sweep.ts';
import { addReportCommand } from './commands/report.ts';
import { addWorkerCommand } from './commands/worker.ts';

const program = new Command();
program
  .name('modelpress')
  .description('Compress neural-network models with WGSL compute shaders (WebGPU), with an exact CPU fallback.')
  .version(packageVersion())
  .showHelpAfterError();

for (const add of [addInfoCommand, addSelfcheckCommand, addCompressCommand, addInspectCommand, addEvalCommand, addSensitivityCommand, addDistillCommand, addBenchCommand, addSweepCommand, addReportCommand, addWorkerCommand]) add(program);

program.parseAsync(process.argv).catch((err) => fail(err, process.argv.includes('--verbose')));
