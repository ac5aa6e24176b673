/**
 * Calibration statistics on two cores: while this thread counts half of a batch's histograms, a
 * worker thread counts the other half. The activations are *transferred* to the worker and back
 * (ONNX Runtime's output buffers are transferable: no copy), so the split costs little. Counts are
 * integers, so the results are the same whichever thread counted them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../package-root.ts';
import { defaultThreads } from '../threads.ts';
import { histogramKernel, type HistogramJob, type HistogramResult } from '../kernels/histogram.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';

/** Below this many elements in a batch the worker round trip is not worth it. */
const MIN_ELEMENTS = 1 << 20;

export class HistogramHelper {
  /** Started on the first batch large enough to share (small models never pay for a thread). */
  private worker: Worker | null = null;
  private constructor(private readonly script: string) {}

  /** A helper when there is a second core and the compiled worker (dist/), else null. */
  static start(threads = defaultThreads()): HistogramHelper | null {
    const script = join(packageRoot(), 'dist', 'src', 'calibrate', 'histogram-worker.js');
    return threads >= 2 && existsSync(script) ? new HistogramHelper(script) : null;
  }

  /** Counts `jobs` on the worker; their arrays come back as new views (the old ones are detached). */
  run(jobs: HistogramJob[]): Promise<{ results: HistogramResult[]; data: Float32Array[] }> {
    if (!this.worker) {
      this.worker = new Worker(this.script);
      this.worker.unref();
    }
    const worker = this.worker;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      worker.once('error', onError);
      worker.once('message', (m: { results: HistogramResult[]; data: Float32Array[] }) => {
        worker.off('error', onError);
        resolve(m);
      });
      worker.postMessage(jobs, jobs.map((j) => j.data.buffer as ArrayBuffer));
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

/** A view that owns its whole buffer (transferable without taking other arrays along). */
const ownsBuffer = (a: Float32Array) => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer);

/**
 * The histograms of `jobs`, split between this thread (the scheduler) and the helper by element
 * count when there is one and the batch is large; `jobs[i].data` is replaced by the returned view
 * for those the worker counted.
 */
export async function countHistograms(scheduler: Scheduler, jobs: HistogramJob[], helper: HistogramHelper | null): Promise<HistogramResult[]> {
  const total = jobs.reduce((s, j) => s + j.data.length, 0);
  if (!helper || scheduler.info.active === 'gpu' || total < MIN_ELEMENTS || jobs.length < 2) return scheduler.run(histogramKernel, jobs);
  // Largest first, each to the less loaded side; only arrays owning their buffers may travel.
  const seen = new Set<ArrayBufferLike>();
  const order = jobs.map((_, i) => i).sort((a, b) => jobs[b].data.length - jobs[a].data.length);
  const here: number[] = [];
  const there: number[] = [];
  let loadHere = 0;
  let loadThere = 0;
  for (const i of order) {
    const d = jobs[i].data;
    if (loadThere < loadHere && ownsBuffer(d) && !seen.has(d.buffer)) {
      seen.add(d.buffer);
      there.push(i);
      loadThere += d.length;
    } else {
      here.push(i);
      loadHere += d.length;
    }
  }
  const pending = there.length ? helper.run(there.map((i) => jobs[i])) : null;
  const mine = await scheduler.run(histogramKernel, here.map((i) => jobs[i]));
  const out = new Array<HistogramResult>(jobs.length);
  here.forEach((i, k) => (out[i] = mine[k]));
  if (pending) {
    const { results, data } = await pending;
    there.forEach((i, k) => {
      out[i] = results[k];
      jobs[i].data = data[k];
    });
  }
  return out;
}
