// The WebAssembly CPU engine on worker threads under Deno (its node:worker_threads take the module
// and the shared memory): the same codes and error sums, bit for bit, with one thread and two.
import { setCpuEngine, wasmEngine } from '../../src/cpu/wasm-kernels.ts';
import { quantizeKernel } from '../../src/kernels/quantize.ts';
import { rangeKernel } from '../../src/kernels/range.ts';
import { computeQuantParams } from '../../src/kernels/qparams.ts';
import { makeData } from '../cases/random.ts';

declare const Deno: {
  test(def: { name: string; sanitizeResources?: boolean; sanitizeOps?: boolean; fn: () => Promise<void> | void }): void;
};

Deno.test({
  name: 'WebAssembly kernels on two threads under Deno: same codes and error sums as on one',
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => {
    const shape = [3, 300_007];
    const granularity = { kind: 'channel' as const, axis: 0 };
    const data = makeData(3 * 300_007, 'special', 77);
    const r = rangeKernel.cpu({ data, shape, granularity });
    const params = computeQuantParams(r.min, r.max, { bits: 8, signed: true, symmetric: true, granularity });
    const job = { data, shape, granularity, bits: 8 as const, signed: true, params, errorStats: true };
    const out: string[] = [];
    const codes: Uint8Array[] = [];
    for (const threads of [1, 2]) {
      setCpuEngine('wasm', { minElements: 0, threads });
      const engine = wasmEngine()!;
      const pool = engine.startThreads();
      if (threads === 2) {
        if (!pool || pool.waitReady() !== 1) throw new Error(`no worker listening (threads ${engine.threads})`);
        // Every unit to the worker.
        pool.callerWorks = false;
      }
      const q = quantizeKernel.cpu(job);
      codes.push(q.codes);
      out.push(JSON.stringify(q.error));
    }
    setCpuEngine('wasm', { minElements: 256, threads: null });
    if (out[0] !== out[1]) throw new Error(`error sums differ between one thread and two:\n${out[0]}\n${out[1]}`);
    const at = codes[0].findIndex((c, i) => c !== codes[1][i]);
    if (at >= 0) throw new Error(`codes differ between one thread and two at ${at}`);
  },
});
