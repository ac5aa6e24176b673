/**
 * GPU schedulers for tests. Without an adapter the GPU cases are skipped with the reason printed;
 * with MODELPRESS_REQUIRE_GPU=1 (CI) a missing adapter is a failure instead.
 */
import { Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.ts';
import { createLogger } from '../../src/log.ts';

export const requireGpu = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.MODELPRESS_REQUIRE_GPU === '1';

export async function gpuScheduler(opts: SchedulerOptions = {}): Promise<{ scheduler: Scheduler | null; reason: string }> {
  const scheduler = await Scheduler.create({ backend: 'auto', allowSoftwareAdapter: true, cpuThreshold: 0, logger: createLogger('error'), ...opts });
  if (scheduler.info.active === 'gpu') return { scheduler, reason: '' };
  const reason = `GPU cases skipped: ${scheduler.info.reason}`;
  if (requireGpu) throw new Error(`MODELPRESS_REQUIRE_GPU=1 but no GPU adapter: ${scheduler.info.reason}`);
  console.warn(reason);
  return { scheduler: null, reason };
}
