/**
 * The process a local sweep runs its jobs in (forked by local.ts, reused job after job so Node,
 * ONNX Runtime and modelpress load once): a job that crashes or runs out of memory takes down
 * this process, not the sweep. Receives { job } over IPC, writes the job's result file, answers
 * { id, status }.
 */
import { runJob, writeJobResult, type JobSpec } from './job.ts';

process.on('message', async (m: { job: JobSpec }) => {
  const result = await runJob(m.job, (stage) => process.stderr.write(`stage ${stage}\n`));
  writeJobResult(m.job.resultsDir, result);
  process.send!({ id: result.id, status: result.status });
});
process.on('disconnect', () => process.exit(0));
