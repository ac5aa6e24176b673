/**
 * One inference stream of a concurrent benchmark (a worker thread): its own session and inputs,
 * warm-up, then it waits on the shared gate so that every stream starts timing together.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { benchInputs, sessionOptions, timedRuns, type StreamRequest } from './latency.ts';

parentPort!.on('message', async (m: { request: StreamRequest; gate: SharedArrayBuffer }) => {
  try {
    const { path, options, warmup, until } = m.request;
    const { feeds } = await benchInputs(path, options);
    const session = await ort.InferenceSession.create(path, sessionOptions(options));
    for (let i = 0; i < warmup; i++) await session.run(feeds);
    parentPort!.postMessage({ ready: true });
    Atomics.wait(new Int32Array(m.gate), 0, 0);
    const result = await timedRuns(session, feeds, 0, until);
    await session.release();
    parentPort!.postMessage({ result });
  } catch (err) {
    parentPort!.postMessage({ error: (err as Error).message });
  }
});
