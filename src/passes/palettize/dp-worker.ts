/** A worker thread of the palettize pass: solves the exact k-means problems it is sent. */
import { parentPort } from 'node:worker_threads';
import { wasmFor } from '../../cpu/wasm-kernels.ts';
import { solvePartition } from './kmeans1d.ts';
import type { JobMessage, SolvedMessage } from './dp-pool.ts';

// Warm up while the pass is still reading weights: instantiate the WebAssembly engine and solve a
// small problem twice, so the JavaScript around the rows is compiled and V8 has tiered the
// WebAssembly rows up from its baseline compiler (a cold worker measured ~60 ms slower on its
// first share of ResNet-18's problems).
wasmFor(1 << 20);
const warm = 4096;
const values = Float64Array.from({ length: warm }, (_, i) => Math.sinh((i - warm / 2) / 600));
const weights = Float64Array.from({ length: warm }, (_, i) => 1 + (i % 7));
for (let i = 0; i < 2; i++) solvePartition({ values, weights, k: 16, zero: null });
// Problems are taken from the job's shared counter, as the pool's own thread takes them.
parentPort!.on('message', ({ job, order, problems, next }: JobMessage) => {
  for (let t; (t = Atomics.add(next, 0, 1)) < order.length; ) {
    parentPort!.postMessage({ job, index: order[t], solved: solvePartition(problems[order[t]]) } satisfies SolvedMessage);
  }
});
