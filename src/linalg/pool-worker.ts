/** A linear-algebra pool thread (pool.ts): binds a session's shared arrays, then runs steps until released. */
import { parentPort, workerData } from 'node:worker_threads';
import { CTL, OP, runStep } from './pool-steps.ts';

const { ctl, index, threads } = workerData as { ctl: Int32Array; index: number; threads: number };

parentPort!.on('message', (m: { arrays: Float64Array[] }) => {
  const bound = { arrays: m.arrays, scratch: new Float64Array(64 * 64) };
  let gen = Atomics.load(ctl, CTL.GEN);
  Atomics.add(ctl, CTL.READY, 1);
  Atomics.notify(ctl, CTL.READY);
  for (;;) {
    Atomics.wait(ctl, CTL.GEN, gen);
    gen = Atomics.load(ctl, CTL.GEN);
    const op = ctl[CTL.OP];
    try {
      if (op !== OP.RELEASE) runStep(bound, ctl, index, threads);
    } catch (err) {
      // The calling thread sees the flag and throws; the step still counts as done, so nothing waits forever.
      Atomics.store(ctl, CTL.FAILED, 1);
      console.error(`modelpress linear-algebra worker ${index}:`, err);
    }
    Atomics.add(ctl, CTL.DONE, 1);
    Atomics.notify(ctl, CTL.DONE);
    if (op === OP.RELEASE) break;
  }
});
