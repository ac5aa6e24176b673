/** `modelpress sweep`: models × recipes → compress, evaluate, benchmark; a results folder with the Pareto front. */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DataError, RecipeError } from '../../errors.ts';
import { backendOption, guarded, int, num } from '../common.ts';
import type { SweepSpec } from '../../sweep/spec.ts';
import type { PreparedSweep } from '../../sweep/prepare.ts';
import type { SweepSummary } from '../../sweep/summary.ts';

interface SweepFlags {
  output: string;
  recipe: string[];
  sweep?: string;
  calibration?: string;
  evalData?: string;
  samples?: string;
  maxDrop?: string;
  minSpeedup?: string;
  maxSize?: string;
  runs?: string;
  warmup?: string;
  threads?: string;
  batch?: string;
  backend: 'auto' | 'gpu' | 'cpu';
  retryFailed?: boolean;
  status?: boolean;
  queue?: string;
  queuePrefix?: string;
  queueName?: string;
  detach?: boolean;
  attempts?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

async function runQueued(prepared: PreparedSweep, o: SweepFlags, log: (s: string) => void): Promise<void> {
  const [{ checkRedis, submitSweep, followSweep, bullJobId }, { preflight }, { readJob, summaryTable }, { jsonNumbers }] = await Promise.all([
    import('../../sweep/queue.ts'), import('../../sweep/prepare.ts'), import('../../sweep/summary.ts'), import('../../json.ts')]);
  const target = { url: o.queue!, prefix: o.queuePrefix, name: o.queueName };
  await checkRedis(target, (w) => process.stderr.write(`modelpress: warning: ${w}\n`));
  log(`pre-flight: loading and running ${prepared.models.length} model(s) in ONNX Runtime`);
  await preflight(prepared.models, prepared.spec);
  const sub = await submitSweep(prepared, o.output, target, { retryFailed: o.retryFailed, attempts: int(o.attempts, '--attempts') });
  log(`${prepared.jobs.length} jobs (${prepared.models.length} models × ${prepared.spec.recipes.length} recipes): ${sub.submitted.length} submitted to ${o.queue}, ${sub.finished} already finished`);
  if (!sub.flowId) {
    log('nothing to run: every job of this sweep has a result (--retry-failed runs the failed ones again)');
    return;
  }
  if (o.detach) {
    process.stdout.write(`submitted sweep ${sub.flowId}: ${sub.submitted.length} jobs; follow it with: modelpress sweep … --queue ${o.queue} --status\n`);
    return;
  }
  const ours = new Map(sub.submitted.map((id) => [bullJobId(id), prepared.jobs.find((j) => j.id === id)!]));
  let ended = 0;
  const t0 = Date.now();
  const state = await followSweep(sub.flowId, target, (e) => {
    const job = ours.get(e.id);
    if (!job) return;
    const what = `${job.model.split('/').pop()} × ${job.recipe.name} (job ${job.id})`;
    if (e.type === 'retrying') log(`retrying ${what}: ${e.reason?.split('\n')[0]}`);
    if (e.type !== 'completed' && e.type !== 'failed') return;
    ended++;
    const eta = ended < ours.size ? `; ETA ${duration(((Date.now() - t0) / ended) * (ours.size - ended) / 1000)}` : '';
    log(`[${ended}/${ours.size}] ${e.type === 'completed' ? 'done' : `failed: ${e.reason?.split('\n')[0]}`} ${what}${eta}`);
  });
  const file = `${o.output}/sweep.json`;
  if (state !== 'completed' || !existsSync(file)) throw new DataError(`the sweep's summary job ${sub.flowId} ${state}; the job results are in ${o.output}/jobs`);
  const summary = JSON.parse(readFileSync(file, 'utf8')) as SweepSummary;
  if (o.json) process.stdout.write(JSON.stringify(summary, jsonNumbers, 2) + '\n');
  else process.stdout.write(`${summary.counts.jobs} jobs: ${summary.counts.done} done, ${summary.counts.failed} failed; ${summary.counts.meetGoals} meet the goals; Pareto front marked *\n` + summaryTable(summary));
  const failed = summary.jobs.filter((j) => j.status === 'failed');
  for (const j of failed) process.stderr.write(`modelpress: job ${j.id} (${j.model.split('/').pop()} × ${j.recipe}) failed after its attempts: ${readJob(o.output, j.id)?.error?.message ?? j.error}\n`);
  if (failed.length) process.exitCode = 3;
}

function duration(s: number): string {
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function addSweepCommand(program: Command): void {
  program
    .command('sweep')
    .description('compress every model with every recipe, evaluate and benchmark each result, and find the Pareto front over size, latency and quality; finished jobs are skipped on a re-run')
    .argument('[models...]', 'ONNX models or folders of them (or models: in --sweep)')
    .requiredOption('-o, --output <dir>', 'results folder: jobs/<id>.json, models/<id>.onnx, baselines/, sweep.json, results.md, results.csv')
    .option('--recipe <file>', 'a compress recipe file (YAML/JSON) as one recipe, named after the file (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--sweep <file>', 'a sweep file (YAML/JSON): models, recipes (compress flags in camelCase, e.g. { prune: 0.3, weights: int8 }, or a recipe file path), grid (every combination of flag values), gridBase, calibration, evalData, samples, goals, bench')
    .option('--calibration <data>', 'data for every pass that reads it (static W8A8 needs activations: int8|uint8 in the recipe); also evaluates when --eval-data is not given')
    .option('--eval-data <path>', 'evaluation data: accuracy when labelled, agreement with the float model otherwise (default: --calibration, else 32 seeded random samples)')
    .option('--samples <n>', 'evaluate at most this many samples')
    .option('--max-drop <points>', 'goal: quality drop at most this many points (accuracy, or top-1 agreement without labels)')
    .option('--min-speedup <x>', 'goal: at least this speed-up over the float model (p50 latency)')
    .option('--max-size <fraction>', 'goal: at most this fraction of the float model\'s file size')
    .option('--runs <n>', 'benchmark: timed runs per model (default: at least 100 and 2 s)')
    .option('--warmup <n>', 'benchmark: warm-up runs (default 10)')
    .option('--threads <n>', 'benchmark: ONNX Runtime intra-op threads (default: ORT\'s own)')
    .option('--batch <n>', 'benchmark: batch size for a symbolic batch dim (default 1)')
    .addOption(backendOption())
    .option('--retry-failed', 'run the jobs that failed before again (finished jobs are always skipped)')
    .option('--status', 'report what the results folder (and with --queue, the queue) holds for this sweep and run nothing')
    .option('--queue <url>', 'put the jobs on a BullMQ queue in Redis/Valkey (redis://host:port) for `modelpress worker` processes, here or on other machines sharing the results folder; follows progress until the sweep is done')
    .option('--queue-prefix <prefix>', 'Redis key prefix of the queue (default bull)')
    .option('--queue-name <name>', 'queue name (default modelpress-sweep)')
    .option('--detach', 'with --queue: submit and return at once (check later with --status)')
    .option('--attempts <n>', 'with --queue: attempts per job before it counts as failed (default 3; retries back off exponentially from 2 s)')
    .option('--json', 'print the summary as JSON on stdout')
    .option('-q, --quiet', 'no progress lines')
    .option('-v, --verbose', 'stack traces on errors')
    .action((models: string[], o: SweepFlags) => guarded(o.verbose, async () => {
      const [{ loadSweepFile, recipeFromFile }, { prepareSweep, readBaselines }, { runLocalSweep, jobsToRun }, { summarizeSweep, summaryTable }, { jsonNumbers }] = await Promise.all([
        import('../../sweep/spec.ts'), import('../../sweep/prepare.ts'), import('../../sweep/local.ts'), import('../../sweep/summary.ts'), import('../../json.ts')]);
      const file = o.sweep ? loadSweepFile(o.sweep) : {};
      const fileBench = file.bench ?? {};
      const spec: SweepSpec = {
        models: models.length ? models : file.models ?? [],
        recipes: [...(file.recipes ?? []), ...o.recipe.map(recipeFromFile)],
        calibration: o.calibration ?? file.calibration,
        evalData: o.evalData ?? file.evalData,
        samples: int(o.samples, '--samples') ?? file.samples,
        goals: { ...file.goals, ...(o.maxDrop !== undefined ? { maxDrop: num(o.maxDrop, '--max-drop') } : {}), ...(o.minSpeedup !== undefined ? { minSpeedup: num(o.minSpeedup, '--min-speedup') } : {}), ...(o.maxSize !== undefined ? { maxSize: num(o.maxSize, '--max-size') } : {}) },
        bench: { ...fileBench, ...(o.runs !== undefined ? { runs: int(o.runs, '--runs') } : {}), ...(o.warmup !== undefined ? { warmup: int(o.warmup, '--warmup') } : {}), ...(o.threads !== undefined ? { threads: int(o.threads, '--threads') } : {}), ...(o.batch !== undefined ? { batch: int(o.batch, '--batch') } : {}) },
        backend: o.backend,
      };
      if (o.maxSize !== undefined && !(Number(o.maxSize) > 0)) throw new RecipeError(`--max-size ${o.maxSize}: a fraction of the float model's size above 0 (e.g. 0.5)`);
      const prepared = await prepareSweep(spec, o.output);
      const log = (s: string) => { if (!o.quiet) process.stderr.write(`modelpress: ${s}\n`); };
      if (o.status) {
        const left = jobsToRun(prepared, o.output).length;
        if (o.queue) {
          const { queueStates, checkRedis } = await import('../../sweep/queue.ts');
          const target = { url: o.queue, prefix: o.queuePrefix, name: o.queueName };
          await checkRedis(target);
          const states = await queueStates(prepared.jobs.map((j) => j.id), target);
          const count = new Map<string, number>();
          for (const st of states.values()) count.set(st, (count.get(st) ?? 0) + 1);
          process.stdout.write(`queue ${o.queue}: ${[...count].map(([k, n]) => `${n} ${k}`).join(', ') || 'none of this sweep\'s jobs'}\n`);
        }
        const s = summarizeSweep(o.output, prepared.jobs.map((j) => ({ id: j.id, model: j.model, recipe: j.recipe.name })), readBaselines(prepared, o.output), spec.goals, spec.recipes, prepared.version);
        process.stdout.write(o.json ? JSON.stringify(s, jsonNumbers, 2) + '\n' : `${s.counts.jobs} jobs: ${s.counts.done} done, ${s.counts.failed} failed, ${left} not run\n` + summaryTable(s));
        return;
      }
      if (o.queue) {
        await runQueued(prepared, o, log);
        return;
      }
      const summary = await runLocalSweep(prepared, o.output, {
        retryFailed: o.retryFailed,
        onEvent: (e) => {
          if (e.type === 'plan') log(`${e.jobs} jobs (${prepared.models.length} models × ${spec.recipes.length} recipes): ${e.toRun} to run, ${e.finished} already finished`);
          else if (e.type === 'preflight') log(`pre-flight: loading and running ${e.models} model(s) in ONNX Runtime`);
          else if (e.type === 'baseline') log(`benchmarking the float model ${e.model}`);
          else if (e.type === 'job-start') log(`[${e.index + 1}/${e.total}] ${e.job.model.split('/').pop()} × ${e.job.recipe.name} (job ${e.job.id})`);
          else if (e.type === 'job-end') log(`[${e.index + 1}/${e.total}] ${e.status}${e.error ? `: ${e.error.split('\n')[0]}` : ''}${e.etaS !== null && e.index + 1 < e.total ? `; ETA ${duration(e.etaS)}` : ''}`);
        },
      });
      if (o.json) process.stdout.write(JSON.stringify(summary, jsonNumbers, 2) + '\n');
      else {
        const goals = Object.entries(summary.goals).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
        process.stdout.write(`${summary.counts.jobs} jobs: ${summary.counts.done} done, ${summary.counts.failed} failed; ${summary.counts.meetGoals} meet the goals (${goals}); Pareto front marked *\n` + summaryTable(summary) + `results: ${o.output}/sweep.json, results.md, results.csv\n`);
      }
      for (const j of summary.jobs.filter((x) => x.slower)) process.stderr.write(`modelpress: warning: job ${j.id} (${j.model.split('/').pop()} × ${j.recipe}) runs at ${j.speedup!.toFixed(2)}x the float model's speed: ${j.slowerCause ?? 'cause unknown'}\n`);
      if (summary.counts.failed) process.exitCode = 3;
    }));
}
