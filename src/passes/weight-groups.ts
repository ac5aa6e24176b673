/**
 * Weights processed a group at a time, so that a pass holds one group's f32 data, not the model's:
 * consecutive weights up to a byte budget (a weight larger than the budget is a group of its own).
 */
import type { Scheduler } from '../scheduler/scheduler.ts';

/** The default budget: 4 MiB of f32 on the CPU path (cache-sized), 256 MiB on a GPU (fewer, larger submits). */
export function defaultGroupBytes(scheduler: Scheduler): number {
  return (scheduler.info.active === 'gpu' ? 256 : 4) * 2 ** 20;
}

/** `items` in order, cut into groups of at most `limit` bytes each. */
export function groupsByBytes<T>(items: readonly T[], bytes: (item: T) => number, limit: number): T[][] {
  const groups: T[][] = [];
  let used = 0;
  for (const item of items) {
    const b = bytes(item);
    if (groups.length === 0 || used + b > limit) {
      groups.push([]);
      used = 0;
    }
    groups[groups.length - 1].push(item);
    used += b;
  }
  return groups;
}
