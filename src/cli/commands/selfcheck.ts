/** `modelpress selfcheck`: every kernel on built-in tensors on the chosen backend vs the CPU reference. */
import type { Command } from 'commander';
import { backendOption, guarded, logLevel, type CommonOptions } from '../common.ts';

export function addSelfcheckCommand(program: Command): void {
  program
    .command('selfcheck')
    .description('run every kernel on built-in example tensors on the chosen backend and compare with the CPU reference')
    .option('--json', 'print the results as JSON on stdout')
    .addOption(backendOption())
    .option('-v, --verbose', 'debug logging and stack traces')
    .action((o: CommonOptions) => guarded(o.verbose, async () => {
      const [{ Scheduler }, { selfCheck }, { createLogger }, { formatTable }] = await Promise.all([
        import('../../scheduler/scheduler.ts'), import('../../selfcheck.ts'), import('../../log.ts'), import('../format.ts')]);
      // The self-check exercises the GPU path wherever there is an adapter, software ones included.
      const s = await Scheduler.create({ backend: o.backend, allowSoftwareAdapter: true, cpuThreshold: 0, logger: createLogger(logLevel(o)) });
      try {
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
        process.exitCode = ok ? 0 : 1;
      } finally {
        s.dispose();
      }
    }));
}
