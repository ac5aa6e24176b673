/** A WebAssembly kernel thread (wasm-pool.ts): the module instantiated on the engine's shared memory, running units of each call it is woken for. */
import { workerData } from 'node:worker_threads';
import { CTL, runUnits, type Exports } from './wasm-units.ts';

const { module, memory, ctl, index } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; ctl: Int32Array; index: number };
const x = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Exports;

let gen = Atomics.load(ctl, CTL.GEN);
Atomics.add(ctl, CTL.READY, 1);
Atomics.notify(ctl, CTL.READY);
// Blocks between calls without an event loop; the thread is unref'd, so the process exits anyway.
for (;;) {
  Atomics.wait(ctl, CTL.GEN, gen);
  gen = Atomics.load(ctl, CTL.GEN);
  // A failed unit still counts as finished and sets FAILED: the calling thread throws once the call completes.
  const failure = runUnits(x, ctl, index);
  if (failure) console.error(`modelpress WebAssembly worker ${index}:`, failure);
}
