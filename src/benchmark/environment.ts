/** Where a benchmark ran: enough to tell two machines or two configurations apart. */
import { availableParallelism, cpus, platform, release, arch, totalmem, hostname } from 'node:os';
import * as ort from 'onnxruntime-node';
import { packageVersion } from '../package-root.ts';

export interface Fingerprint {
  cpu: string;
  logicalCores: number;
  availableParallelism: number;
  memoryGiB: number;
  os: string;
  host: string;
  node: string;
  onnxruntime: string;
  modelpress: string;
  executionProvider: string;
  intraOpThreads: number | 'ort-default';
  interOpThreads: number | 'ort-default';
  graphOptimization: string;
}

export function environmentFingerprint(o: { executionProvider?: string; threads?: number; interOpThreads?: number; optimization?: string } = {}): Fingerprint {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    logicalCores: c.length,
    availableParallelism: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()} ${arch()}`,
    host: hostname(),
    node: process.version,
    onnxruntime: ort.env.versions?.node ?? 'unknown',
    modelpress: packageVersion(),
    executionProvider: o.executionProvider ?? 'cpu',
    intraOpThreads: o.threads || 'ort-default',
    interOpThreads: o.interOpThreads || 'ort-default',
    graphOptimization: o.optimization ?? 'all',
  };
}
