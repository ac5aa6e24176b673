/**
 * A sweep job in a process of its own (spawned by local.ts): a job that crashes or runs out of
 * memory takes down this process, not the sweep. Reads the JobSpec as JSON from argv[2], writes
 * the job's result file, and prints { id, status } as one JSON line.
 */
import { runJob, writeJobResult, type JobSpec } from './job.ts';

const spec = JSON.parse(process.argv[2] ?? '{}') as JobSpec;
const result = await runJob(spec, (stage) => process.stderr.write(`stage ${stage}\n`));
writeJobResult(spec.resultsDir, result);
process.stdout.write(JSON.stringify({ id: result.id, status: result.status }) + '\n');
