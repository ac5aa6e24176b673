/** `modelpress worker`: runs sweep jobs from a BullMQ queue until stopped (SIGINT/SIGTERM finish the running job first). */
import type { Command } from 'commander';
import { guarded, int } from '../common.ts';

interface WorkerFlags {
  queue: string;
  queuePrefix?: string;
  queueName?: string;
  concurrency?: string;
  lockMs?: string;
  name?: string;
  quiet?: boolean;
  verbose?: boolean;
}

export function addWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run sweep jobs from a BullMQ queue (Redis/Valkey), each in a sandboxed child process; results go to the results folder the sweep names (a path every worker shares)')
    .requiredOption('--queue <url>', 'Redis/Valkey URL, e.g. redis://10.0.0.5:6379')
    .option('--queue-prefix <prefix>', 'Redis key prefix of the queue (default bull)')
    .option('--queue-name <name>', 'queue name (default modelpress-sweep)')
    .option('--concurrency <n>', 'jobs at once (default 1: run one worker per GPU, and benchmarks that do not share cores)')
    .option('--lock-ms <ms>', 'job lock duration (default 30000): a job whose worker dies is retried elsewhere after about this long')
    .option('--name <name>', 'worker name recorded on the jobs it processes (default host:pid)')
    .option('-q, --quiet', 'no per-job lines')
    .option('-v, --verbose', 'stack traces on errors')
    .action((o: WorkerFlags) => guarded(o.verbose, async () => {
      const { checkRedis, startWorker } = await import('../../sweep/queue.ts');
      const target = { url: o.queue, prefix: o.queuePrefix, name: o.queueName };
      await checkRedis(target, (w) => process.stderr.write(`modelpress: warning: ${w}\n`));
      const log = (s: string) => { if (!o.quiet) process.stderr.write(`modelpress worker: ${s}\n`); };
      const worker = startWorker(target, {
        concurrency: int(o.concurrency, '--concurrency'), lockMs: int(o.lockMs, '--lock-ms'), name: o.name,
        onEvent: (e) => log(`${e.type} ${e.job.name} ${e.job.id}${e.reason ? `: ${e.reason.split('\n')[0]}` : ''}`),
      });
      await worker.waitUntilReady();
      log(`waiting for jobs on ${o.queue} (queue ${o.queueName ?? 'modelpress-sweep'}, concurrency ${o.concurrency ?? 1})`);
      await new Promise<void>((resolve) => {
        const stop = () => { log('stopping after the running job'); void worker.close().then(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }));
}
