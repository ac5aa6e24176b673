/** Run statistics: what ran where, how much moved, how long it took, and every fallback. */
export interface KernelStats {
  passes: number;
  gpuPasses: number;
  cpuPasses: number;
  dispatches: number;
  submits: number;
  segments: number;
  elements: number;
  bytesUploaded: number;
  bytesReadBack: number;
  /** Wall time of GPU passes, upload to readback included. */
  gpuWallMs: number;
  /** Kernel time from timestamp queries (null when the adapter has none). */
  gpuKernelMs: number | null;
  cpuMs: number;
}

export interface FallbackRecord {
  kernel: string;
  reason: string;
}

export interface RunStats {
  dispatches: number;
  submits: number;
  bytesUploaded: number;
  bytesReadBack: number;
  wallMs: number;
  kernels: Record<string, KernelStats>;
  /** Passes that ran on the CPU although a GPU was in use, and why. */
  cpuPasses: FallbackRecord[];
  /** GPU failures whose pass was redone on the CPU. */
  fallbacks: FallbackRecord[];
}

export function emptyKernelStats(): KernelStats {
  return {
    passes: 0, gpuPasses: 0, cpuPasses: 0, dispatches: 0, submits: 0, segments: 0, elements: 0,
    bytesUploaded: 0, bytesReadBack: 0, gpuWallMs: 0, gpuKernelMs: null, cpuMs: 0,
  };
}

export function emptyRunStats(): RunStats {
  return { dispatches: 0, submits: 0, bytesUploaded: 0, bytesReadBack: 0, wallMs: 0, kernels: {}, cpuPasses: [], fallbacks: [] };
}
