#!/usr/bin/env node
/** The modelpress command line: a thin shell over the typed API in src/index.ts. */
import { Command, Option } from 'commander';
import { ModelpressError } from '../errors.ts';
import { createLogger, type LogLevel } from '../log.ts';
import { environmentInfo } from '../info.ts';
import { packageVersion } from '../package-root.ts';
import { Scheduler, type BackendChoice } from '../scheduler/scheduler.ts';
import { selfCheck } from '../selfcheck.ts';
import { formatInfo, formatTable } from './format.ts';

interface CommonOptions {
  json?: boolean;
  backend: BackendChoice;
  verbose?: boolean;
  quiet?: boolean;
}

const backendOption = () =>
  new Option('--backend <backend>', 'where kernels run: auto (GPU if an adapter exists), gpu (required), cpu').choices(['auto', 'gpu', 'cpu']).default('auto');

function logLevel(o: CommonOptions): LogLevel {
  return o.verbose ? 'debug' : o.quiet ? 'error' : 'warn';
}

function fail(err: unknown, verbose: boolean): never {
  if (err instanceof ModelpressError) {
    process.stderr.write(`modelpress: error: ${err.message}\n`);
    if (verbose && err.stack) process.stderr.write(err.stack + '\n');
    process.exit(1);
  }
  process.stderr.write(`modelpress: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof Error && err.stack) process.stderr.write((verbose ? err.stack : 'run again with --verbose for the stack trace') + '\n');
  process.exit(70);
}

const program = new Command();
program
  .name('modelpress')
  .description('Compress neural-network models with WGSL compute shaders (WebGPU), with an exact CPU fallback.')
  .version(packageVersion())
  .showHelpAfterError();

program
  .command('info')
  .description('show the runtime, the WebGPU adapter, the limits and features modelpress uses, and which backend auto picks and why')
  .option('--json', 'print the same as JSON on stdout')
  .addOption(backendOption())
  .option('-v, --verbose', 'debug logging and stack traces')
  .action(async (o: CommonOptions) => {
    try {
      const info = await environmentInfo(o.backend, createLogger(logLevel(o)));
      process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : formatInfo(info));
    } catch (err) {
      fail(err, Boolean(o.verbose));
    }
  });

program
  .command('selfcheck')
  .description('run every kernel on built-in example tensors on the chosen backend and compare with the CPU reference')
  .option('--json', 'print the results as JSON on stdout')
  .addOption(backendOption())
  .option('-v, --verbose', 'debug logging and stack traces')
  .action(async (o: CommonOptions) => {
    let s: Scheduler | undefined;
    try {
      s = await Scheduler.create({ backend: o.backend, cpuThreshold: 0, logger: createLogger(logLevel(o)) });
      const rows = await selfCheck(s);
      const ok = rows.every((r) => r.ok);
      if (o.json) {
        process.stdout.write(JSON.stringify({ ok, backend: s.info, rows, stats: s.stats }, null, 2) + '\n');
      } else {
        process.stdout.write(`backend: ${s.info.active} (${s.info.reason})\n`);
        process.stdout.write(formatTable(['kernel', 'cases', 'backend', 'result', 'ms', 'detail'],
          rows.map((r) => [r.kernel, String(r.cases), r.backend, r.ok ? 'ok' : 'FAIL', r.ms.toFixed(1), r.detail])));
        process.stdout.write(`${s.stats.dispatches} dispatches in ${s.stats.submits} submits; ${(s.stats.bytesUploaded / 1e6).toFixed(1)} MB up, ${(s.stats.bytesReadBack / 1e6).toFixed(1)} MB back\n`);
        process.stdout.write(ok ? 'self-check passed\n' : 'self-check FAILED\n');
      }
      s.dispose();
      process.exitCode = ok ? 0 : 1;
    } catch (err) {
      s?.dispose();
      fail(err, Boolean(o.verbose));
    }
  });

program.parseAsync(process.argv).catch((err) => fail(err, process.argv.includes('--verbose')));
