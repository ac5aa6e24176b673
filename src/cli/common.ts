/**
 * What every command shares: common flags, log level, error exit, number parsing. Only commander
 * and the error classes load here: commands import their heavy modules (ONNX Runtime, WebGPU,
 * protobufjs, sharp) inside their actions, so `--help` starts as fast as Node itself.
 */
import { Option, type Command } from 'commander';
import { ModelpressError, RecipeError } from '../errors.ts';
import type { LogLevel } from '../log.ts';
import type { BackendChoice } from '../scheduler/scheduler.ts';

export interface CommonOptions {
  json?: boolean;
  backend: BackendChoice;
  verbose?: boolean;
  quiet?: boolean;
}

export const backendOption = () =>
  new Option('--backend <backend>', 'where kernels run: auto (GPU if an adapter exists), gpu (required), cpu').choices(['auto', 'gpu', 'cpu']).default('auto');

export function logLevel(o: { verbose?: boolean; quiet?: boolean }): LogLevel {
  return o.verbose ? 'debug' : o.quiet ? 'error' : 'warn';
}

export function fail(err: unknown, verbose: boolean): never {
  if (err instanceof ModelpressError) {
    process.stderr.write(`modelpress: error: ${err.message}\n`);
    if (verbose && err.stack) process.stderr.write(err.stack + '\n');
    process.exit(1);
  }
  process.stderr.write(`modelpress: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof Error && err.stack) process.stderr.write((verbose ? err.stack : 'run again with --verbose for the stack trace') + '\n');
  process.exit(70);
}

/** Runs a command body, turning any error into the CLI's exit codes. */
export async function guarded(verbose: boolean | undefined, body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (err) {
    fail(err, Boolean(verbose));
  }
}

export const int = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new RecipeError(`${flag} needs an integer, got '${v}'`);
  return n;
};

export const num = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new RecipeError(`${flag} needs a number, got '${v}'`);
  return n;
};

export const numList = (v: string | undefined, flag: string, n?: number): number[] | undefined => {
  if (v === undefined) return undefined;
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !Number.isFinite(x)) || (n !== undefined && xs.length !== n)) throw new RecipeError(`${flag} needs ${n ?? 'a list of'} comma-separated numbers, got '${v}'`);
  return xs;
};

export type AddCommand = (program: Command) => void;
