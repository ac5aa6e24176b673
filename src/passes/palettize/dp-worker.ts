/** A worker thread of the palettize pass: solves the exact k-means problems it is sent. */
import { parentPort } from 'node:worker_threads';
import { solvePartition, type PartitionProblem } from './kmeans1d.ts';

parentPort!.on('message', (problems: PartitionProblem[]) => parentPort!.postMessage(problems.map(solvePartition)));
