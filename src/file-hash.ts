/**
 * SHA-256 of a file, for reports' manifests. `sha256FileInBackground` reads and hashes on a worker
 * thread so a compression run overlaps it with its own work (on ResNet-18 the hash is ~15 % of a
 * weight-only run); it falls back to the calling thread where workers cannot start.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = new Uint8Array(1 << 20);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

// The worker's whole program (CommonJS, evaluated: no file to ship beside the bundle): the loop of
// sha256File above, as source text.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
try {
  const h = createHash('sha256');
  const fd = openSync(workerData, 'r');
  const buf = new Uint8Array(1 << 20);
  try { for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n)); } finally { closeSync(fd); }
  parentPort.postMessage({ hex: h.digest('hex') });
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message || err) });
}`;

/** Files smaller than this are hashed on the calling thread (a worker costs more than it saves). */
const BACKGROUND_MIN_BYTES = 8 << 20;

/**
 * Starts hashing `path` off the calling thread; the promise settles with the hex digest. The file
 * must not change meanwhile (inputs are never written). Errors reject the promise; a worker that
 * cannot start (no worker support) is replaced by hashing on the calling thread.
 */
export function sha256FileInBackground(path: string, size: number): Promise<string> {
  if (size < BACKGROUND_MIN_BYTES) return Promise.resolve().then(() => sha256File(path));
  let worker: Worker;
  try {
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: path });
  } catch {
    return Promise.resolve().then(() => sha256File(path));
  }
  return new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { hex?: string; error?: string }) => (m.hex ? resolve(m.hex) : reject(new Error(`hashing ${path}: ${m.error}`))));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`hashing ${path}: the worker exited with code ${code}`)));
  });
}
