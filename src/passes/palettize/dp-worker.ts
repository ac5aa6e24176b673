/** A worker thread of the palettize pass: solves the exact k-means problems it is sent. */
import { parentPort } from 'node:worker_threads';
import { wasmFor } from '../../cpu/wasm-kernels.ts';
import { solvePartition, type PartitionProblem } from './kmeans1d.ts';

// Instantiate the WebAssembly engine while the pass is still reading weights (warm start).
wasmFor(1 << 20);
parentPort!.on('message', (problems: PartitionProblem[]) => parentPort!.postMessage(problems.map(solvePartition)));
