/** What `modelpress info` reports: runtime, adapter, limits and features used, and the backend choice. */
import { packageVersion } from './package-root.ts';
import { Scheduler, type BackendChoice, type BackendInfo } from './scheduler/scheduler.ts';
import type { Logger } from './log.ts';
import { kernels } from './kernels/registry.ts';
import { wasmEngine } from './cpu/wasm-kernels.ts';

export interface EnvironmentInfo {
  modelpress: string;
  runtime: { name: string; version: string; platform: string; arch: string };
  backend: BackendInfo;
  /** The CPU path's engine: WebAssembly SIMD (on up to `threads` threads) or the TypeScript reference. */
  cpu: { engine: 'wasm' | 'js'; threads: number };
  kernels: string[];
}

export async function environmentInfo(backend: BackendChoice = 'auto', logger?: Logger): Promise<EnvironmentInfo> {
  const s = await Scheduler.create({ backend, logger });
  try {
    const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
    return {
      modelpress: packageVersion(),
      runtime: {
        name: deno ? 'deno' : 'node',
        version: deno ? deno.version.deno : process.versions.node,
        platform: process.platform,
        arch: process.arch,
      },
      backend: s.info,
      cpu: cpuInfo(),
      kernels: Object.keys(kernels),
    };
  } finally {
    s.dispose();
  }
}

function cpuInfo(): EnvironmentInfo['cpu'] {
  const engine = wasmEngine();
  return engine ? { engine: 'wasm', threads: engine.maxThreads } : { engine: 'js', threads: 1 };
}
