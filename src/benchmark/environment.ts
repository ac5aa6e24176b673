/** Where a benchmark ran: enough to tell two machines or two configurations apart. */
import { readFileSync } from 'node:fs';
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
  /** x86 with VNNI (AVX512-VNNI or AVX-VNNI): int8 products that do not saturate; null when unknown (not Linux x86). */
  vnni: boolean | null;
}

/**
 * Whether this x86 CPU has VNNI. Without it ONNX Runtime's fused u8 x s8 kernels add products
 * pairwise in 16 bits and saturate with full-range int8 weights (static W8A8 then wants
 * --reduce-range). Read from /proc/cpuinfo; null off Linux or off x86.
 */
export function cpuHasVnni(): boolean | null {
  if (arch() !== 'x64' || platform() !== 'linux') return null;
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    return /\b(avx512_vnni|avx_vnni)\b/.test(flags);
  } catch {
    return null;
  }
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
    vnni: cpuHasVnni(),
  };
}
