/**
 * A worker thread of calibration: counts the histograms it is sent (the same CPU kernel as the main
 * thread: integer counts, identical wherever they run) and hands the activations back with them.
 */
import { parentPort } from 'node:worker_threads';
import { histogramKernel, type HistogramJob } from '../kernels/histogram.ts';

parentPort!.on('message', (jobs: HistogramJob[]) => {
  const results = jobs.map((j) => histogramKernel.cpu(j));
  parentPort!.postMessage({ results, data: jobs.map((j) => j.data) }, [...jobs.map((j) => j.data.buffer as ArrayBuffer), ...results.map((r) => r.counts.buffer as ArrayBuffer)]);
});
