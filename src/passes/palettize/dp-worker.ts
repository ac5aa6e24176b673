/** A worker thread of the palettize pass: solves the exact k-means problems it is sent. */
import { parentPort } from 'node:worker_threads';
import { wasmFor } from '../../cpu/wasm-kernels.ts';
import { solvePartition, type PartitionProblem } from './kmeans1d.ts';

// Warm up while the pass is still reading weights: instantiate the WebAssembly engine and solve a
// small problem twice, so the JavaScript around the rows is compiled and V8 has tiered the
// WebAssembly rows up from its baseline compiler (a cold worker measured ~60 ms slower on its
// first share of ResNet-18's problems).
wasmFor(1 << 20);
const warm = 4096;
const values = Float64Array.from({ length: warm }, (_, i) => Math.sinh((i - warm / 2) / 600));
const weights = Float64Array.from({ length: warm }, (_, i) => 1 + (i % 7));
for (let i = 0; i < 2; i++) solvePartition({ values, weights, k: 16, zero: null });
parentPort!.on('message', (problems: PartitionProblem[]) => parentPort!.postMessage(problems.map(solvePartition)));
