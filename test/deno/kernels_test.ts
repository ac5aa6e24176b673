// The kernel suite under Deno's WebGPU (wgpu): the same generated cases as test/kernels.test.ts,
// compared with the same CPU references. Run by `npm run test:deno` (part of `npm test`).
import { kernelSuites, runSuite } from '../cases/kernel-cases.ts';
import { gpuScheduler } from '../helpers/gpu.ts';

declare const Deno: {
  test(def: { name: string; ignore?: boolean; sanitizeResources?: boolean; sanitizeOps?: boolean; fn: () => Promise<void> | void }): void;
};

const gpu = await gpuScheduler();
const windowed = await gpuScheduler({ bindingWindowBytes: 64 * 1024 });

for (const suite of kernelSuites()) {
  for (const [label, s] of [['one pass', gpu], ['64 KiB binding window', windowed]] as const) {
    Deno.test({
      name: `${suite.name}: Deno/wgpu matches the CPU reference on ${suite.cases.length} cases (${label})`,
      ignore: !s.scheduler,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => {
        const problems = await runSuite(suite, s.scheduler!);
        if (problems.length) throw new Error(`${problems.length} cases differ:\n${problems.slice(0, 20).join('\n')}`);
      },
    });
  }
}

// Devices are released, and lavapipe's worker threads given time to wind down, before the process
// exits: wgpu with live devices (or threads still running) has aborted at exit in glibc's free().
Deno.test({
  name: 'release the GPU devices',
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    gpu.scheduler?.dispose();
    windowed.scheduler?.dispose();
    await new Promise((resolve) => setTimeout(resolve, 250));
  },
});
