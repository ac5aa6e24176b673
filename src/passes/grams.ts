/**
 * Gram products for the data-aware passes (GPTQ, pruning recovery and obs scores, distillation):
 * on the GPU (`gram` kernel) when there is one and a job's result fits one binding, otherwise
 * through ONNX Runtime's GEMM (cpu/ort-gram.ts) — never the kernel's f64 JavaScript reference,
 * which the scheduler would fall back to for a job too large to bind and which takes hours on a
 * layer of thousands of inputs.
 */
import type { Scheduler } from '../scheduler/scheduler.ts';
import { gramKernel, type GramJob, type GramResult } from '../kernels/gram.ts';
import { ortGram } from '../cpu/ort-gram.ts';

export async function grams(scheduler: Scheduler, jobs: readonly GramJob[]): Promise<GramResult[]> {
  if (!jobs.length) return [];
  const window = scheduler.gpuWindowBytes();
  // The result (fa × fb partials) and one row of inputs must fit a binding (gram.ts pieces()).
  const fits = (j: GramJob) => 4 * j.fa * (j.b ? j.fb ?? 0 : j.fa) <= window && 4 * (j.fa + (j.b ? j.fb ?? 0 : 0)) <= window;
  const onGpu = scheduler.info.active === 'gpu' ? jobs.map(fits) : jobs.map(() => false);
  const gpuJobs = jobs.filter((_, i) => onGpu[i]);
  const gpuResults = gpuJobs.length ? await scheduler.run(gramKernel, gpuJobs) : [];
  const cpuResults = await Promise.all(jobs.filter((_, i) => !onGpu[i]).map(ortGram));
  let g = 0;
  let c = 0;
  return jobs.map((_, i) => (onGpu[i] ? gpuResults[g++] : cpuResults[c++]));
}
